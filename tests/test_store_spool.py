"""SpoolDrainer: a clip spooled while a drain pass runs is drained too (no lost wake-up)."""

from __future__ import annotations

import threading
from pathlib import Path

from app.speech.keys import content_key, object_name
from app.speech.voices import Voice
from app.speech.wav import ulaw_wav
from cdn.local import LocalStore
from cdn.spool import Spool, SpoolDrainer

VOICE = Voice("piper", "en_US-joe-medium")


def clip_name(text: str) -> str:
    return object_name(content_key(text, VOICE), VOICE)


class GatedStore:
    """A LocalStore whose first ``put`` waits until ``release`` is set (a slow upload mid-pass)."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStore(root, "http://bucket.test")
        self.entered = threading.Event()
        self.release = threading.Event()
        self.puts: list[str] = []

    def put(self, name: str, data: bytes) -> str:
        first = not self.puts
        self.puts.append(name)
        if first:
            self.entered.set()
            assert self.release.wait(10), "the test never released the first upload"
        return self.inner.put(name, data)


def test_a_clip_spooled_during_a_drain_pass_is_drained_before_the_thread_exits(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "http://edge.test/cdn")
    store = GatedStore(tmp_path / "bucket")
    first, second = clip_name("First answer."), clip_name("Second answer.")
    spool.put(first, ulaw_wav(b"\x10" * 800))
    drainer = SpoolDrainer(spool, store, None, interval_s=0.01, max_interval_s=0.01, check_s=3600)

    assert drainer.poke(force=True)
    thread = drainer._thread
    assert thread is not None
    assert store.entered.wait(10)  # the pass listed [first] and is uploading it
    spool.put(second, ulaw_wav(b"\x20" * 800))  # what Synthesizer._spool_put does: put, then a forced poke
    assert drainer.poke(force=True)  # the thread is alive: the poke only wakes it
    store.release.set()
    thread.join(10)

    assert not thread.is_alive()
    assert store.puts == [first, second]
    assert spool.pending() == []
    assert store.inner.get(second) == spool.get(second)
    assert drainer._thread is None
