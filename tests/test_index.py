"""The key index: entries on disk, and the per-process memo of found ones."""

from __future__ import annotations

import pytest

from app.errors import StateError
from cdn.index import IndexEntry, KeyIndex

KEY = "ab" * 32


def entry(url: str = "/cdn/tts/v2/x.wav") -> IndexEntry:
    return IndexEntry(url=url, name=url.rsplit("/", 1)[-1], bytes=100, duration_s=1.5, source="piper", created=1.0)


class Broken:
    """A diskcache stand-in whose every read fails (the disk went away)."""

    def get(self, key):
        raise OSError("disk gone")

    def set(self, key, value):
        raise OSError("disk gone")

    def delete(self, key):
        raise OSError("disk gone")

    def close(self):
        pass


def test_a_found_entry_is_served_from_the_memo_without_a_disk_read(tmp_path):
    index = KeyIndex(tmp_path / "index")
    index.put(KEY, entry())
    assert index.get(KEY) == entry()  # read from disk, remembered
    real, index._cache = index._cache, Broken()
    try:
        assert index.get(KEY) == entry()  # no disk read
        with pytest.raises(StateError):
            index.get("cd" * 32)  # a miss is never remembered: it reads (and here fails)
    finally:
        index._cache = real
    index.close()


def test_put_and_delete_forget_the_memo_and_memo_s_zero_turns_it_off(tmp_path):
    index = KeyIndex(tmp_path / "index")
    index.put(KEY, entry("/cdn/a.wav"))
    assert index.get(KEY).url == "/cdn/a.wav"
    index.put(KEY, entry("/cdn/b.wav"))  # re-pointed here: this process sees it at once
    assert index.get(KEY).url == "/cdn/b.wav"
    index.delete(KEY)
    assert index.get(KEY) is None
    off = KeyIndex(tmp_path / "index", memo_s=0)
    off.put(KEY, entry())
    assert off.get(KEY) == entry()
    off._cache.delete(("clip", KEY))  # another process deleted it
    assert off.get(KEY) is None
    index.close()
    off.close()
