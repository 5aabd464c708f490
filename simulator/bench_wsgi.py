"""The call benchmark's WSGI app: ``wsgi:app`` with the store's upload modelled (:mod:`simulator.modeled_upload`).

``gunicorn -c gunicorn.conf.py simulator.bench_wsgi:app`` with ``SIMULATOR_UPLOAD_MS`` (ms, default 0):
the store under ``<WARMLINE_DATA_DIR>/cdn`` takes that long to publish each new object. The
modelled store stands for a bucket, so the host keeps a publish spool beside it as it does with
GCS (``Runtime.spool``), and a live turn's fresh clip plays from the host's edge while it uploads
(``WARMLINE_EDGE_FIRST``, on by default) exactly as in a GCS deployment.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from app.runtime import Runtime
from cdn.local import LocalStore
from cdn.spool import Spool
from simulator.modeled_upload import modeled_put

LocalStore.put = modeled_put(  # type: ignore[method-assign]
    Path(os.environ.get("WARMLINE_DATA_DIR") or ".") / "cdn",
    max(0.0, float(os.environ.get("SIMULATOR_UPLOAD_MS") or 0) / 1000),
)


def _spool(runtime: Runtime) -> Spool:
    """The host's publish spool, as a remote store gets one (the modelled store is a bucket)."""
    return Spool(runtime.data_dir / "spool", runtime.edge_base_url)


Runtime.spool = cached_property(_spool)  # type: ignore[assignment]
Runtime.spool.__set_name__(Runtime, "spool")

from wsgi import app  # noqa: E402  (after the store is wrapped)

__all__ = ["app"]
