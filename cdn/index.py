"""The key index: content key -> where its clip is published, on local disk (diskcache).

The store is the truth; the index is a rebuildable cache of it (``flask cdn reindex``) so that a
hit costs one local lookup and no network request. Safe across threads and processes (diskcache
uses SQLite with its own locking); every gunicorn worker of a host shares one directory.
"""

from __future__ import annotations

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
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._cache: diskcache.Cache | None = None

    @property
    def cache(self) -> diskcache.Cache:
        if self._cache is None:
            try:
                self._cache = diskcache.Cache(str(self.directory), eviction_policy="none", size_limit=2**40)
            except (OSError, sqlite3.Error) as exc:
                raise StateError(f"key index at {self.directory} cannot be opened: {exc}") from exc
        return self._cache

    def get(self, key: str) -> IndexEntry | None:
        try:
            raw = self.cache.get(("clip", key))
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"key index read failed: {exc}") from exc
        return IndexEntry(**raw) if raw else None

    def put(self, key: str, entry: IndexEntry) -> None:
        try:
            self.cache.set(("clip", key), entry.to_dict())
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"key index write failed: {exc}") from exc

    def delete(self, key: str) -> None:
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

    def lock(self, name: str, expire_s: float = 60.0) -> diskcache.Lock:
        """A cross-process lock in this index's database (used for singleflight synthesis)."""
        return diskcache.Lock(self.cache, ("lock", name), expire=expire_s)

    def clear(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


def now() -> float:
    return time.time()
