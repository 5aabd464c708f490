"""Edge-first on a live call: real gunicorn hosts publishing to a real ``gcp-storage-emulator``.

A turn's fresh clip plays from the host's own ``/cdn`` edge at once; its upload lands in the bucket
behind it and the index then points there, so the next caller gets the bucket URL. Another host
behind the same load balancer, asked for that clip, serves it from the bucket.
"""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from app.speech.keys import object_name
from app.speech.voices import Voice
from app.speech.wav import validate_ulaw_wav
from cdn.index import KeyIndex
from simulator.llm_emulator import LLMEmulator
from tests.conftest import new_call_sid
from tests.faults_support import (
    Caller,
    GcsEmulator,
    answer_name,
    audit_store,
    echo_responses,
    gcs_server_env,
    listens,
    wait_until,
)
from tests.server_support import GunicornServer

pytestmark = pytest.mark.slow
PIPER = Voice("piper", "en_US-joe-medium")
PREFIX = "audio"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("edge-first")
    with GcsEmulator(tmp / "gcs") as gcs, LLMEmulator(responses=echo_responses) as llm:
        env = gcs_server_env(gcs, llm, PREFIX)
        with GunicornServer(tmp / "a", env=env, workers=1, threads=8) as a, \
                GunicornServer(tmp / "b", env=env, workers=1, threads=8) as b:
            yield SimpleNamespace(gcs=gcs, a=a, b=b, data=tmp / "a")
            audit_store(tmp / "a" / "spool" / "objects")


def test_a_fresh_clip_plays_from_the_host_then_from_the_bucket(hosts):
    turn = Caller(hosts.a.base_url, new_call_sid()).turn("fresh")
    assert listens(turn.final) and turn.says() == [], turn.final
    name = answer_name("fresh")
    assert turn.plays()[-1] == f"{hosts.a.base_url}/cdn/{name}", turn.plays()
    served = httpx.get(f"{hosts.a.base_url}/cdn/{name}", timeout=5)
    assert served.status_code == 200 and validate_ulaw_wav(served.content) > 0.5

    # The upload lands behind it: the bucket holds the same bytes, the index points there.
    bucket = wait_until(lambda: hosts.gcs.get(name, PREFIX), 30, f"{name} to reach the bucket")
    assert bucket == served.content
    key = name.rsplit("/", 1)[1][:-4]
    index = KeyIndex(hosts.data / "index")
    try:
        entry = wait_until(lambda: index.get(key), 5, f"{name} to be indexed")
    finally:
        index.close()
    bucket_url = f"{hosts.gcs.base_url}/{hosts.gcs.bucket}/{PREFIX}/{name}"
    assert (entry.url, entry.source) == (bucket_url, "piper")

    again = Caller(hosts.a.base_url, new_call_sid()).turn("fresh")
    assert bucket_url in again.plays() and again.says() == []


def test_another_host_serves_a_fresh_clip_from_the_bucket(hosts):
    turn = Caller(hosts.a.base_url, new_call_sid()).turn("routed")
    name = answer_name("routed")
    assert turn.plays()[-1] == f"{hosts.a.base_url}/cdn/{name}", turn.plays()
    # The load balancer sends Twilio's fetch to host B, which never made this clip.
    served = httpx.get(f"{hosts.b.base_url}/cdn/{name}", timeout=10)
    assert served.status_code == 200, served.text
    assert served.content == httpx.get(f"{hosts.a.base_url}/cdn/{name}", timeout=5).content
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    unknown = f"{hosts.b.base_url}/cdn/{object_name('0' * 64, PIPER)}"  # well formed, never published
    assert httpx.get(unknown, timeout=10).status_code == 404
