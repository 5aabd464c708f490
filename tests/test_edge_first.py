"""Edge-first publishing: a live turn's fresh clip plays from this host's edge while it uploads.

The synthesizer with a spool and ``edge_first``: a clip made under a deadline is written to the
spool and its edge URL returned before any upload; the upload (run here when the test says so)
publishes it create-only, indexes it under the store's URL and marks it sent. The edge serves a
spooled clip even beside the embedded store, and another host's fresh clip from the store once
its upload lands (fake clock and sleep: no real waiting).
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from flask import Flask

from app.errors import ObjectNotFound, StoreUnavailable
from app.speech.keys import content_key, object_name
from app.speech.synthesizer import Synthesizer
from app.speech.voices import Voice
from app.speech.wav import ulaw_wav
from cdn import edge as edge_module
from cdn.edge import make_edge_blueprint
from cdn.index import KeyIndex
from cdn.local import LocalStore
from cdn.spool import Spool
from cdn.store import IMMUTABLE_CACHE_CONTROL
from tests.fakes import ToneProvider

VOICE = Voice("piper", "en_US-joe-medium")
EDGE = "http://host-a.test/cdn"
BUCKET = "http://bucket.test"


class HeldUploads:
    """An executor that runs nothing until ``run_all()``: the test decides when uploads happen."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., object], tuple[object, ...]]] = []

    def submit(self, fn: Callable[..., object], *args: object) -> Future:
        self.jobs.append((fn, args))
        return Future()

    def run_all(self) -> int:
        jobs, self.jobs = self.jobs, []
        for fn, args in jobs:
            fn(*args)
        return len(jobs)


class FlakyStore(LocalStore):
    """A LocalStore whose ``put`` fails while ``down`` is set."""

    down = False

    def put(self, name: str, data: bytes) -> str:
        if self.down:
            raise StoreUnavailable("bucket down")
        return super().put(name, data)


def rig(tmp_path: Path, *, edge_first: bool = True):
    store = FlakyStore(tmp_path / "bucket", BUCKET)
    spool = Spool(tmp_path / "spool", EDGE)
    uploads = HeldUploads()
    provider = ToneProvider()
    synth = Synthesizer(store=store, index=KeyIndex(tmp_path / "index"), providers={"piper": provider},
                        spool=spool, edge_first=edge_first, uploads=uploads)
    return synth, store, spool, uploads, provider


def test_a_live_clip_plays_from_the_edge_before_its_upload_then_from_the_store(tmp_path: Path) -> None:
    synth, store, spool, uploads, provider = rig(tmp_path)
    clip = synth.clip("We open at nine.", VOICE, deadline=time.time() + 8)
    name = object_name(content_key("we open at nine.", VOICE), VOICE)
    assert (clip.name, clip.url, clip.source, clip.spooled) == (name, f"{EDGE}/{name}", "synth", True)
    assert not store.exists(name) and spool.pending() == [name]
    again = synth.clip("We open at nine.", VOICE, deadline=time.time() + 8)
    assert (again.url, again.source) == (clip.url, "spool")  # still uploading: the edge URL again
    assert uploads.run_all() == 1
    assert store.get(name) == spool.get(name)
    assert spool.pending() == [] and spool.is_sent(name)
    entry = synth.index.get(clip.key)
    assert (entry.url, entry.name, entry.source) == (f"{BUCKET}/{name}", name, "fake")
    later = synth.clip("We open at nine.", VOICE, deadline=time.time() + 8)
    assert (later.url, later.source, later.spooled) == (f"{BUCKET}/{name}", "index", False)
    assert provider.calls == ["we open at nine."]


def test_without_a_deadline_the_clip_goes_to_the_store_first(tmp_path: Path) -> None:
    synth, store, spool, uploads, _ = rig(tmp_path)
    clip = synth.clip("We open at nine.", VOICE)  # precompute and the CLI publish before they return
    assert clip.url == f"{BUCKET}/{clip.name}" and not clip.spooled
    assert store.exists(clip.name) and list(spool.names()) == [] and uploads.jobs == []


def test_edge_first_off_publishes_before_returning(tmp_path: Path) -> None:
    synth, store, spool, uploads, _ = rig(tmp_path, edge_first=False)
    clip = synth.clip("We open at nine.", VOICE, deadline=time.time() + 8)
    assert clip.url == f"{BUCKET}/{clip.name}" and store.exists(clip.name)
    assert list(spool.names()) == [] and uploads.jobs == []


def test_a_failed_upload_leaves_the_clip_pending_for_the_drainer(tmp_path: Path) -> None:
    synth, store, spool, uploads, _ = rig(tmp_path)
    synth.drainer.check_s = 3600  # no drain thread: what is pending stays visible
    synth.drainer.poke = lambda force=False: False  # type: ignore[method-assign]
    clip = synth.clip("We open at nine.", VOICE, deadline=time.time() + 8)
    store.down = True
    assert uploads.run_all() == 1
    assert spool.pending() == [clip.name] and not store.exists(clip.name)
    assert synth.index.get(clip.key) is None
    assert synth._store_away()  # the next clips go to the spool without trying the store first
    store.down = False
    report = spool.drain(store, synth.index)
    assert (report.published, report.pending) == (1, 0)
    assert synth.index.get(clip.key).url == f"{BUCKET}/{clip.name}"


def test_an_answer_assembled_from_fresh_pieces_reads_them_from_the_spool(tmp_path: Path) -> None:
    synth, store, spool, uploads, _ = rig(tmp_path)
    deadline = time.time() + 8
    pieces = [synth.clip(text, VOICE, deadline=deadline) for text in ("Yes,", "we open at nine.")]
    whole = synth.assemble(pieces, VOICE, deadline=deadline)
    assert whole.source == "assembled" and whole.url == f"{EDGE}/{whole.name}"
    assert sorted(spool.pending()) == sorted([p.name for p in pieces] + [whole.name])
    assert not any(store.exists(n) for n in spool.pending())
    assert uploads.run_all() == 3
    assert store.get(whole.name) == spool.get(whole.name)
    assert synth.index.get(whole.key).source == "assembled"


# --- the edge ---------------------------------------------------------------------------------------

NAME = object_name(content_key("let me check that for you.", VOICE), VOICE)
DATA = ulaw_wav(bytes(range(256)) * 8)


def edge_client(runtime: object):
    app = Flask(__name__)
    app.register_blueprint(make_edge_blueprint())
    app.extensions["warmline"] = runtime
    return app.test_client()


def test_the_edge_serves_a_spooled_clip_beside_the_embedded_store(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", EDGE)
    spool.put(NAME, DATA)
    runtime = types.SimpleNamespace(store=LocalStore(tmp_path / "cdn", "/cdn"), spool=spool,
                                    settings=types.SimpleNamespace(edge_first=True))
    response = edge_client(runtime).get("/cdn/" + NAME, buffered=True)
    assert (response.status_code, response.data) == (200, DATA)
    assert response.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL


class RemoteStore:
    """A remote store whose object appears after ``absent`` lookups (another host's upload in flight)."""

    def __init__(self, data: bytes | None, absent: int) -> None:
        self.data, self.absent, self.gets = data, absent, 0

    def get(self, name: str) -> bytes:
        self.gets += 1
        if self.data is None or self.gets <= self.absent:
            raise ObjectNotFound(name)
        return self.data


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def proxied(store: RemoteStore, clock: FakeClock, headers: dict[str, str] | None = None):
    app = Flask(__name__)
    with app.test_request_context("/cdn/" + NAME, headers=headers or {}):
        return edge_module._proxied(store, NAME, wait_s=2.0, poll_s=0.25, sleep=clock.sleep, clock=clock)


def test_another_hosts_fresh_clip_is_served_from_the_store_once_its_upload_lands() -> None:
    clock, store = FakeClock(), RemoteStore(DATA, absent=3)
    response = proxied(store, clock)
    assert (response.status_code, response.get_data()) == (200, DATA)
    assert response.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
    assert response.headers["ETag"] == f'"{NAME.rsplit("/", 1)[1].removesuffix(".wav")}"'
    assert (store.gets, clock.sleeps) == (4, [0.25, 0.25, 0.25])
    again = proxied(RemoteStore(DATA, absent=0), FakeClock(), {"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_a_clip_that_never_reaches_the_store_is_404_after_the_wait() -> None:
    clock, store = FakeClock(), RemoteStore(None, absent=0)
    response = proxied(store, clock)
    assert response.status_code == 404 and response.headers["Cache-Control"] == "no-store"
    assert (clock.now, store.gets) == (102.0, 9)  # looks at 0, 0.25, ... 2.0 s, then gives up


def test_invalid_bytes_from_the_store_are_never_served() -> None:
    response = proxied(RemoteStore(b"RIFF not audio", absent=0), FakeClock())
    assert response.status_code == 404


def test_waiting_requests_are_bounded_per_process() -> None:
    taken = 0
    while edge_module._proxy_slots.acquire(blocking=False):
        taken += 1
    try:
        assert taken == edge_module.PROXY_SLOTS
        clock, store = FakeClock(), RemoteStore(DATA, absent=0)
        assert proxied(store, clock).status_code == 404 and store.gets == 0
    finally:
        for _ in range(taken):
            edge_module._proxy_slots.release()
