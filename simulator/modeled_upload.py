"""The audio store's upload, modelled at the store boundary for the call benchmark.

The embedded store writes a clip to local disk in about a millisecond; a bucket takes roughly
100-200 ms for a small create-only upload. :func:`modeled_put` wraps ``LocalStore.put`` so that
publishing an object the store (rooted at ``root``) does not hold yet first waits ``upload_s``:
every new clip pays it where production pays it -- a synthesized clip after synthesis, and a clip
*assembled* from cached pieces too (without it the benchmark would give assembly a silent zero).
Other LocalStores (the host's publish spool: local disk in production as well) pay nothing.
The wait is the modelled latency of a transport, not synchronization.

:mod:`simulator.bench_wsgi` installs it in the benchmark's gunicorn workers. Benchmark-only: the
product never imports this module. Thread-safe (the wrapper keeps no state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cdn.local import LocalStore

Put = Callable[[LocalStore, str, bytes], str]


def modeled_put(root: Path | str, upload_s: float, *, publish: Put = LocalStore.put,
                sleep: Callable[[float], None] = time.sleep) -> Put:
    """``LocalStore.put`` that waits ``upload_s`` seconds before publishing a new object under ``root``."""
    store_root = Path(root).resolve()

    def put(self: LocalStore, name: str, data: bytes) -> str:
        if upload_s > 0 and self.root.resolve() == store_root and not self.exists(name):
            sleep(upload_s)
        return publish(self, name, data)

    return put


__all__ = ["modeled_put"]
