"""Store faults on a live call: a hung or dead bucket at publish time, and a crash between upload and index.

A real gunicorn publishes to a real ``gcp-storage-emulator`` process. The emulator is frozen
(SIGSTOP: connections hang, like a bucket that stopped answering) or killed (connection refused)
while a turn publishes its clip: the turn still plays, from this host's spool, and when the
emulator answers again the spool drains into the bucket and the index points there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import pytest

from app.speech.canon import canon
from app.speech.keys import content_key, object_name
from app.speech.voices import Voice
from app.speech.wav import validate_ulaw_wav
from cdn.index import KeyIndex
from simulator.llm_emulator import LLMEmulator
from tests.conftest import TWILIO_TOKEN, new_call_sid
from tests.faults_support import (
    Caller,
    GcsEmulator,
    answer_name,
    audit_index,
    audit_store,
    echo_responses,
    fetch_clip,
    gcs_server_env,
    listens,
    wait_until,
)
from tests.gcs_support import emulator_admin_client
from tests.server_support import ROOT, GunicornServer

pytestmark = pytest.mark.slow
PIPER = Voice("piper", "en_US-joe-medium")
PREFIX = "audio"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store-faults")
    with GcsEmulator(tmp / "gcs") as gcs, LLMEmulator(responses=echo_responses) as llm:
        # Store-first, so a clip spooled here is spooled because the store failed (edge-first: test_edge_first*).
        env = gcs_server_env(gcs, llm, PREFIX, WARMLINE_EDGE_FIRST="false")
        with GunicornServer(tmp / "var", env=env, workers=1, threads=8) as server:
            rig = SimpleNamespace(gcs=gcs, server=server, data=tmp / "var")
            warm = Caller(server.base_url, new_call_sid()).turn("warm up")  # published to the bucket
            assert [url for url in warm.plays() if url.startswith(gcs.base_url)], warm.docs
            yield rig
            gcs.thaw()
            # Nothing invalid anywhere: the bucket, the spool, the index.
            for blob in emulator_admin_client(gcs.base_url).list_blobs(gcs.bucket, prefix=PREFIX + "/"):
                validate_ulaw_wav(blob.download_as_bytes())
            audit_store(tmp / "var" / "spool" / "objects")
            audit_index(tmp / "var" / "index", lambda name: gcs.get(name, PREFIX) or b"")


def spooled_answer(rig, scenario: str) -> str:
    """One call turn while the store is away: the answer plays from this host's /cdn edge (the spool)."""
    turn = Caller(rig.server.base_url, new_call_sid()).turn(scenario)
    assert listens(turn.final) and turn.says() == [], turn.final
    name = answer_name(scenario)
    assert turn.plays()[-1] == f"{rig.server.base_url}/cdn/{name}", turn.plays()
    spooled = rig.data / "spool" / "objects" / name
    validate_ulaw_wav(spooled.read_bytes())
    return name


def drained(rig, name: str) -> bytes:
    """Wait for the spool to publish ``name`` to the bucket and index it there; return the bucket's bytes."""
    # The drainer's upload is retried by the storage client (backoff 1, 2, 4, 8 ... s): allow for a slow machine.
    data = wait_until(lambda: rig.gcs.get(name, PREFIX), 45, f"{name} to reach the bucket")
    key = name.rsplit("/", 1)[1][:-4]
    index = KeyIndex(rig.data / "index")
    try:
        entry = wait_until(lambda: index.get(key), 5, f"{name} to be indexed")
    finally:
        index.close()
    assert entry.url == f"{rig.gcs.base_url}/{rig.gcs.bucket}/{PREFIX}/{name}" and entry.source == "spool"
    wait_until(lambda: (rig.data / "spool" / "sent" / key).is_file(), 5, "the sent marker")
    assert data == (rig.data / "spool" / "objects" / name).read_bytes()  # kept for late fetches (retain_s)
    return data


def test_hung_store_at_publish_the_turn_plays_from_the_spool_and_catches_up(rig):
    rig.gcs.freeze()
    try:
        name = spooled_answer(rig, "frozen")
    finally:
        rig.gcs.thaw()
    drained(rig, name)
    # The next caller asking the same thing is served from the bucket, with no synthesis.
    again = Caller(rig.server.base_url, new_call_sid()).turn("frozen")
    url = f"{rig.gcs.base_url}/{rig.gcs.bucket}/{PREFIX}/{name}"
    assert url in again.plays() and again.says() == []


def test_spooled_clip_is_served_by_the_local_edge(rig):
    rig.gcs.freeze()
    try:
        name = spooled_answer(rig, "edge")
        assert fetch_clip(f"{rig.server.base_url}/cdn/{name}") > 0.5
        assert httpx.get(f"{rig.server.base_url}/cdn/tts/v1/piper-en_us-joe-medium/00/{'0' * 64}.wav",
                         timeout=5).status_code == 404
    finally:
        rig.gcs.thaw()
    drained(rig, name)


def test_dead_store_at_publish_then_back_the_spool_drains(rig):
    rig.gcs.stop()  # connection refused
    try:
        name = spooled_answer(rig, "down")
        assert "spooling new clips" in rig.server.log_tail()
    finally:
        rig.gcs.start()  # same port, same objects
    drained(rig, name)


def test_reindex_heals_a_crash_between_upload_and_index(tmp_path):
    """Objects in the store without index entries (the process died after the upload) plus one corrupt file.

    ``flask --app wsgi cdn reindex`` indexes every valid clip, reports the corrupt one and indexes
    nothing invalid; the next call is then served from the index with no synthesis.
    """
    from app import create_app
    from app.responders.base import Reply
    from cdn.local import LocalStore
    from tests.conftest import signed_post, twilio_form
    from tests.fakes import ScriptedResponder, ToneProvider, tone_wav

    data = tmp_path / "var"
    store = LocalStore(data / "cdn", "/cdn")
    texts = ["Sure, we can do that.", "Anything else?"]
    names = [object_name(content_key(canon(t), PIPER), PIPER) for t in texts]
    for text, name in zip(texts, names):
        store.put(name, tone_wav(canon(text)))  # uploaded; the crash came before the index write
    corrupt = object_name(content_key("corrupt.", PIPER), PIPER)
    (data / "cdn" / corrupt).parent.mkdir(parents=True, exist_ok=True)
    (data / "cdn" / corrupt).write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # a torn write on the disk
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
    env.update({"WARMLINE_ENV": "testing", "WARMLINE_DATA_DIR": str(data)})
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "cdn", "reindex"], check=False, cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # exit 1: something invalid was found
    assert "indexed 2 clips, 1 invalid" in done.stdout
    assert f"invalid  {corrupt}" in done.stderr
    index = KeyIndex(data / "index")
    try:
        assert sorted(index.keys()) == sorted(n.rsplit("/", 1)[1][:-4] for n in names)
    finally:
        index.close()
    audit_index(data / "index", lambda name: store.get(name))

    provider = ToneProvider()
    app = create_app({"env": "testing", "data_dir": data, "twilio_auth_token": TWILIO_TOKEN,
                      "runtime": {"providers": {"piper": provider},
                                  "responder": ScriptedResponder({}, default=Reply(" ".join(texts)))}})
    try:
        call_sid = new_call_sid()
        from tests.twiml_support import verbs

        doc = verbs(signed_post(app.test_client(), f"/voice/process/demo/{call_sid}",
                                twilio_form(call_sid, SpeechResult="Can I book?")).data)
    finally:
        app.extensions["warmline"].shutdown(wait=True)
    assert [v[2] for v in doc[:2]] == [f"http://localhost/cdn/{n}" for n in names]  # instant: both were hits
    assert not any(call in texts or canon(call) in [canon(t) for t in texts] for call in provider.calls)


def test_spool_drain_publishes_valid_clips_drops_corrupt_ones_and_expires_sent_ones(tmp_path):
    """The catch-up on its own: publish + index, never publish a corrupt spool file, keep sent clips retain_s."""
    from app.errors import StoreUnavailable
    from cdn.local import LocalStore
    from cdn.spool import Spool
    from tests.fakes import tone_wav

    spool = Spool(tmp_path / "spool", "/cdn", retain_s=60)
    good, bad = answer_name("good"), answer_name("bad")
    spool.put(good, tone_wav("good"))
    (tmp_path / "spool" / "objects" / bad).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "spool" / "objects" / bad).write_bytes(b"RIFF....WAVEtorn")
    assert spool.pending() == sorted([good, bad])

    class Away:
        def put(self, name: str, data: bytes) -> str:
            raise StoreUnavailable("still away")

    away = spool.drain(Away(), None)
    assert (away.published, away.failed) == (0, 1) and good in spool.pending()  # stops at the first failure
    store = LocalStore(tmp_path / "cdn", "https://cdn.example/audio")
    index = KeyIndex(tmp_path / "index")
    try:
        report = spool.drain(store, index)
        assert (report.published, report.failed, report.pending, report.removed) == (1, 0, 0, 1 - away.removed)
        assert audit_store(tmp_path / "cdn") == [good]
        entry = index.get(good.rsplit("/", 1)[1][:-4])
        assert (entry.url, entry.source) == (f"https://cdn.example/audio/{good}", "spool")
        assert spool.pending() == [] and spool.exists(good)  # kept for late fetches of its local URL
        assert spool.drain(store, index).removed == 0
        assert spool.drain(store, index, now=time.time() + 61).removed == 1
        assert not spool.exists(good) and list(spool.names()) == []
    finally:
        index.close()
