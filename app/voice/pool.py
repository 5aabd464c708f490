"""Bounded job pools: threads for I/O-bound jobs, with a queue that refuses instead of growing.

A turn job spends nearly all its time waiting on the network (the AI 0.5-1.5 s, TTS, the store),
so its thread costs memory (a stack) and a GIL hand-off, not CPU: a pool of a few dozen threads per
process carries a few dozen turns in flight. What must never happen is a queue that grows without
bound while the host is overloaded -- every queued job is a caller in silence. :class:`BoundedPool`
admits at most ``workers + queue`` jobs at once; :meth:`BoundedPool.try_submit` returns None when
full and the caller answers with what it has (a bridge, then ``<Say>`` / the apology) instead.

Thread-safe. Made per process (threads do not cross ``fork``): see :class:`app.runtime.Runtime`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol


class JobPool(Protocol):
    """What the turn engine needs of a pool (tests pass a hand-driven one)."""

    def try_submit(self, fn: Callable[..., Any], /, *args: Any) -> Future | None: ...


class BoundedPool:
    """``workers`` threads and room for ``queue`` waiting jobs; beyond that, :meth:`try_submit` refuses."""

    def __init__(self, *, workers: int, queue: int, name: str) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"a pool needs workers >= 1 and queue >= 0, got {workers}, {queue}")
        self.workers = workers
        self.queue = queue
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._admitted = threading.BoundedSemaphore(workers + queue)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.refused = 0

    def try_submit(self, fn: Callable[..., Any], /, *args: Any) -> Future | None:
        """Run ``fn(*args)`` on the pool, or return None at once when ``workers + queue`` jobs are in already."""
        if not self._admitted.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            return None
        with self._lock:
            self._in_flight += 1
        return self._launch(fn, args)

    def try_submit_spare(self, fn: Callable[..., Any], /, *args: Any, reserve: int) -> Future | None:
        """Run ``fn(*args)`` only if a thread is idle now with ``reserve`` more left idle; else None at once.

        For optional work (a speculation): it never waits in the queue and never takes one of the last
        ``reserve`` threads, so it cannot delay or displace a job :meth:`try_submit` would admit.
        """
        with self._lock:
            if self._in_flight + 1 + max(0, reserve) > self.workers:
                return None
            if not self._admitted.acquire(blocking=False):  # cannot fail while in_flight < workers, but be exact
                return None
            self._in_flight += 1
        return self._launch(fn, args)

    def _launch(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Future | None:
        """Submit an admitted job (its slot already counted); the slot is released when it ends or cannot start."""
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError:  # shut down
            self._release(None)
            return None
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self._in_flight -= 1
        self._admitted.release()

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not finished (running or queued)."""
        with self._lock:
            return self._in_flight

    def shutdown(self, wait: bool = True, *, cancel_queued: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=cancel_queued)


__all__ = ["BoundedPool", "JobPool"]
