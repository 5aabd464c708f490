"""Deployment-wide leases in Redis: one precompute run, one scheduler, across every host.

The run lock of :mod:`precompute.runner` is a ``flock`` on the data directory: it keeps two runs on
one host apart. With several hosts sharing Redis (``WARMLINE_STATE_URL=redis://...``), the same
lock also takes a :class:`RedisLease`, so a second run *anywhere* in the deployment is refused, and
``flask precompute schedule`` holds one for its whole life, so a second scheduler refuses to start.

A lease is ``SET key holder NX PX ttl``; a daemon thread renews it every ``ttl/3`` while held
(compare-and-``PEXPIRE`` in Lua, so only the holder extends it), and release is compare-and-``DEL``.
A holder that dies (even SIGKILL) stops renewing: its lease lapses within ``ttl_s`` and the next run
or scheduler may start. Keys live under ``warmline-ops:`` (not ``warmline:``, the call state's
prefix, whose keys ops count as live calls). Thread-safe; one holder per instance.
"""

from __future__ import annotations

import os
import socket
import threading

import redis

from app.errors import PrecomputeLocked

KEY_PREFIX = "warmline-ops:"
DEFAULT_TTL_S = 60.0

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def holder_name(host: str = "") -> str:
    """Who holds a lease, as ops read it: ``<host id> pid <pid>``."""
    return f"{host or socket.gethostname()} pid {os.getpid()}"


class RedisLease:
    """A named lease in Redis at ``url`` held by one process at a time, kept alive while held.

    ``what`` is how a refusal names the thing ("precompute run", "precompute scheduler"). TTL in
    seconds. Connection failures raise PrecomputeLocked too: without the lease nothing may run.
    """

    def __init__(self, url: str, name: str, *, what: str, holder: str | None = None,
                 ttl_s: float = DEFAULT_TTL_S) -> None:
        self.key = KEY_PREFIX + name
        self.what = what
        self.holder = holder or holder_name()
        self.ttl_ms = int(ttl_s * 1000)
        self._r = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current_holder(self) -> str | None:
        return self._r.get(self.key)

    def acquire(self) -> RedisLease:
        """Take the lease or raise PrecomputeLocked naming its holder."""
        try:
            taken = self._r.set(self.key, self.holder, nx=True, px=self.ttl_ms)
            holder = None if taken else self._r.get(self.key)
        except redis.RedisError as exc:
            raise PrecomputeLocked(f"cannot take the deployment-wide {self.what} lease in Redis: {exc}") from exc
        if not taken:
            raise PrecomputeLocked(f"another {self.what} is running ({holder or 'just released'}, "
                                   f"deployment-wide lease {self.key}); not starting")
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.key}", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self._r.eval(_RENEW, 1, self.key, self.holder, self.ttl_ms):
                    return  # lost (expired while this process was stopped); nothing to renew
            except redis.RedisError:
                continue  # try again next period; the TTL covers two missed renewals

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self._r.eval(_RELEASE, 1, self.key, self.holder)
        except redis.RedisError:
            pass  # it lapses by itself within the TTL
        self._r.close()
