"""The key index: content key -> where its clip is published, on local disk (diskcache).

The store is the truth; the index is a rebuildable cache of it (``flask cdn reindex``) so that a
hit costs one local lookup and no network request. Safe across threads and processes (diskcache
uses SQLite with its own locking); every gunicorn worker of a host shares one directory.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diskcache

from app.errors import StateError


@dataclass(frozen=True)
class IndexEntry:
    """One published clip. ``bytes`` is the WAV size, ``duration_s`` in seconds, ``created`` epoch seconds."""

    url: str
    name: str
    bytes: int
    duration_s: float
    source: str  # "piper" | "deepgram" | "reindex" ...
    created: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KeyIndex:
    """diskcache-backed map of content key -> :class:`IndexEntry`; never evicts.

    Errors of the disk (full, unwritable, corrupt) are raised as StateError; callers treat the
    index as optional and fall back to the store.

    A found entry is remembered in this process for ``memo_s`` seconds (a hit on the call path is
    then a dict lookup, not an SQLite read): an entry names an immutable, content-addressed clip,
    so what can go stale is only an entry another process deleted or re-pointed (``reindex``, a
    spooled clip reaching the store), for at most ``memo_s``. Misses are never remembered.
    Thread-safe (dict operations under the GIL).
    """

    MEMO_MAX = 50_000

    def __init__(self, directory: Path | str, *, memo_s: float = 30.0) -> None:
        self.directory = Path(directory)
        self._cache: diskcache.Cache | None = None
        self.memo_s = memo_s
        self._memo: dict[str, tuple[IndexEntry, float]] = {}

    @property
    def cache(self) -> diskcache.Cache:
        if self._cache is None:
            try:
                self._cache = diskcache.Cache(str(self.directory), eviction_policy="none", size_limit=2**40)
            except (OSError, sqlite3.Error) as exc:
                raise StateError(f"key index at {self.directory} cannot be opened: {exc}") from exc
        return self._cache

    def get(self, key: str) -> IndexEntry | None:
        now = time.monotonic()
        memo = self._memo.get(key)
        if memo is not None and memo[1] > now:
            return memo[0]
        try:
            raw = self.cache.get(("clip", key))
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"key index read failed: {exc}") from exc
        entry = IndexEntry(**raw) if raw else None
        if entry is None:
            self._memo.pop(key, None)
        elif self.memo_s > 0:
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            self._memo[key] = (entry, now + self.memo_s)
        return entry

    def put(self, key: str, entry: IndexEntry) -> None:
        self._memo.pop(key, None)
        try:
            self.cache.set(("clip", key), entry.to_dict())
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"key index write failed: {exc}") from exc

    def delete(self, key: str) -> None:
        self._memo.pop(key, None)
        try:
            self.cache.delete(("clip", key))
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"key index write failed: {exc}") from exc

    def keys(self) -> list[str]:
        try:
            return [k[1] for k in self.cache.iterkeys() if isinstance(k, tuple) and k[0] == "clip"]
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"key index read failed: {exc}") from exc

    def __len__(self) -> int:
        return len(self.keys())

    def key_lock(self, key: str) -> KeyLock:
        """The cross-process lock of content key ``key`` (singleflight synthesis on this host)."""
        stripe = int(key[:8], 16) % LOCK_STRIPES
        return KeyLock(self.directory / "locks" / f"{stripe:04d}.lock")

    def clear(self) -> None:
        self._memo.clear()
        self.cache.clear()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


LOCK_STRIPES = 1024


class KeyLock:
    """An exclusive ``flock`` on one of LOCK_STRIPES files beside the index.

    Held by one thread of one process at a time (each acquire opens its own file description), and
    released by the kernel when its process dies -- a SIGKILLed synthesis never leaves a stale lock.
    Keys share a stripe only by hash collision (1 in 1,024), which can only make one wait for the
    other. Not reentrant; one KeyLock object per acquire.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout_s: float | None = None, poll_s: float = 0.01) -> bool:
        """Take the lock, waiting at most ``timeout_s`` (None: as long as it takes); False on timeout.

        Raises StateError when the lock file cannot be opened (the index directory is unusable).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(f"key lock {self.path} cannot be opened: {exc}") from exc
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                self._fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(poll_s)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor of the open file releases the flock
