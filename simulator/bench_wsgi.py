"""The call benchmark's WSGI app: ``wsgi:app`` with the store's upload modelled (:mod:`simulator.modeled_upload`).

``gunicorn -c gunicorn.conf.py simulator.bench_wsgi:app`` with ``SIMULATOR_UPLOAD_MS`` (ms, default 0):
the store under ``<WARMLINE_DATA_DIR>/cdn`` takes that long to publish each new object.
"""

from __future__ import annotations

import os
from pathlib import Path

from cdn.local import LocalStore
from simulator.modeled_upload import modeled_put

LocalStore.put = modeled_put(  # type: ignore[method-assign]
    Path(os.environ.get("WARMLINE_DATA_DIR") or ".") / "cdn",
    max(0.0, float(os.environ.get("SIMULATOR_UPLOAD_MS") or 0) / 1000),
)

from wsgi import app  # noqa: E402  (after the store is wrapped)

__all__ = ["app"]
