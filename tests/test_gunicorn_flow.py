"""The call flow on real gunicorn processes: turns move between workers and hosts, and survive SIGKILL.

Two gunicorn masters sharing one data directory (or one Redis) stand for two hosts behind a load
balancer: ``process`` goes to one, ``tts-ready`` to the other, exactly as a redirect may land.
The AI is an OpenAI-compatible emulator with a fixed latency, so every turn needs a filler.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
import pytest

from app.business import load_businesses
from app.speech.keys import content_key, object_name
from simulator.llm_emulator import LLMEmulator
from tests.conftest import TWILIO_TOKEN, new_call_sid, sign, twilio_form
from tests.redis_support import RedisServer
from tests.server_support import ROOT, GunicornServer
from tests.twiml_support import verbs

pytestmark = pytest.mark.slow
ANSWER = "Sure, I can help with that. Is there anything else I can help you with?"


def post(base: str, path: str, params: dict[str, str]) -> httpx.Response:
    return httpx.post(base + path, data=params, headers={"X-Twilio-Signature": sign(base + path, params)}, timeout=20)


def process(base: str, call_sid: str, speech: str) -> httpx.Response:
    return post(base, f"/voice/process/demo/{call_sid}", twilio_form(call_sid, SpeechResult=speech))


def follow_on(base: str, redirect_url: str, call_sid: str) -> httpx.Response:
    """POST the redirect as Twilio would, but to ``base`` (another host behind the same balancer)."""
    parts = urlsplit(redirect_url)
    return post(base, parts.path + "?" + parts.query, twilio_form(call_sid))


def env_for(llm: LLMEmulator, **extra: str) -> dict[str, str]:
    return {"WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WARMLINE_LLM_URL": llm.base_url, "WARMLINE_LLM_API_KEY": llm.api_key,
            "WARMLINE_LEASE_S": "1.0", "WARMLINE_HOP_S": "2.5", "WARMLINE_TURN_DEADLINE_S": "12", **extra}


def fixed_phrase_urls(base: str) -> set[str]:
    """Clip URLs of the demo business's fillers and prompts (heard while waiting, not part of the answer)."""
    demo = load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")
    texts = [*demo.fillers, *demo.prompts.values()]
    return {f"{base}/cdn/" + object_name(content_key(t, demo.voice), demo.voice) for t in texts}


def until_answer(base: str, redirect_url: str, call_sid: str, max_hops: int = 40) -> tuple[list, list[str]]:
    """Follow redirects until the answer ends; returns the last document and the answer's clip URLs.

    Each hop waits at most the silence budget (0.5 s) before it bridges, so a 12 s turn takes many hops.
    """
    fixed = fixed_phrase_urls(base)
    plays: list[str] = []
    v = None
    for _ in range(max_hops):
        response = follow_on(base, redirect_url, call_sid)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
        v = verbs(response.content)
        if v[-1][0] != "Redirect":
            assert [x[0] for x in v[:-5]] == ["Play"] * len(v[:-5]), f"answer fell back to <Say>: {v}"
            return v, plays + [x[2] for x in v[:-5]]
        plays += [x[2] for x in v if x[0] == "Play" and x[2] not in fixed]
        redirect_url = v[-1][2]
    raise AssertionError(f"no answer after {max_hops} hops: {v}")


@pytest.fixture
def llm():
    with LLMEmulator(base_ms=1200) as emulator:
        yield emulator


@pytest.fixture(params=["diskcache", "redis"])
def state_env(request, tmp_path):
    if request.param == "diskcache":
        yield {}
    else:
        with RedisServer(workdir=tmp_path) as redis:
            yield {"WARMLINE_STATE_URL": redis.url}


def test_process_on_one_host_and_tts_ready_on_another(tmp_path, llm, state_env):
    data = tmp_path / "var"
    with GunicornServer(data, env=env_for(llm, **state_env)) as a, GunicornServer(data, env=env_for(llm, **state_env)) as b:
        call_sid = new_call_sid()
        first = process(a.base_url, call_sid, "Can you help me?")
        v = verbs(first.content)
        assert [x[0] for x in v] == ["Say", "Redirect"]
        assert v[1][2] == f"{a.base_url}/voice/tts-ready/demo/{call_sid}?turn=1&played=0"
        answer, plays = until_answer(b.base_url, v[1][2], call_sid)
        assert [x[0] for x in answer][-5:] == ["Gather", "Say", "Gather", "Say", "Hangup"]
        assert answer[-4][2] == "Are you still there?"
        assert len(plays) == 2 and all(u.startswith(b.base_url + "/cdn/tts/v2/piper-en_us-joe-medium/") for u in plays)
        # Both sentences were synthesized on host A and are served to B's callers from the shared store.
        for url in plays:
            clip = httpx.get(b.base_url + urlsplit(url).path, timeout=10)
            assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
        assert len(llm.requests) == 1


def pinned_clients(base: str, pids: int = 2, tries: int = 40) -> dict[str, httpx.Client]:
    """One keep-alive client per gunicorn worker: a connection stays with the worker that accepted it,
    so requests sent through ``clients[pid]`` are served by worker ``pid``. Opens connections until
    each worker has one (which worker accepts a new connection is the kernel's choice)."""
    clients: dict[str, httpx.Client] = {}
    for _ in range(tries):
        client = httpx.Client(base_url=base, timeout=20, limits=httpx.Limits(max_connections=1))
        pid = client.get("/healthz").headers["X-Warmline-Worker"]
        if pid in clients:
            client.close()
        else:
            clients[pid] = client
        if len(clients) == pids:
            return clients
    for client in clients.values():
        client.close()
    raise AssertionError(f"{tries} connections all went to workers {sorted(clients)}")


def pinned_post(client: httpx.Client, path: str, params: dict[str, str]) -> httpx.Response:
    url = str(client.base_url).rstrip("/") + path
    return client.post(path, data=params, headers={"X-Twilio-Signature": sign(url, params)})


def test_turns_cross_workers_of_one_gunicorn(tmp_path, llm):
    with GunicornServer(tmp_path / "var", env=env_for(llm), workers=2, threads=4) as server:
        assert len(server.worker_pids()) == 2
        clients = pinned_clients(server.base_url)
        (a, on_a), (b, on_b) = clients.items()
        try:
            for first_on, hops_on in ((on_a, on_b), (on_b, on_a)):  # started on one worker, answered by the other
                call_sid = new_call_sid()
                first = pinned_post(first_on, f"/voice/process/demo/{call_sid}",
                                    twilio_form(call_sid, SpeechResult="Can you help me?"))
                v = verbs(first.content)
                assert v[0][0] in ("Say", "Play") and v[1][0] == "Redirect"  # the filler (a clip once synthesized)
                fixed = fixed_phrase_urls(server.base_url)
                answer, plays, served = v, [], []
                while answer[-1][0] == "Redirect":
                    parts = urlsplit(answer[-1][2])
                    response = pinned_post(hops_on, parts.path + "?" + parts.query, twilio_form(call_sid))
                    served.append(response.headers["X-Warmline-Worker"])
                    answer = verbs(response.content)
                    plays += [x[2] for x in answer if x[0] == "Play" and x[2] not in fixed]
                assert [x[0] for x in answer][-5::2] == ["Gather", "Gather", "Hangup"]
                assert len(plays) == 2
                assert first.headers["X-Warmline-Worker"] != served[-1] and set(served) == {served[-1]}
                assert {first.headers["X-Warmline-Worker"], served[-1]} == {a, b}
        finally:
            for client in clients.values():
                client.close()


def test_worker_killed_mid_turn_the_next_hop_takes_it_over(tmp_path, llm, state_env):
    data = tmp_path / "var"
    llm.base_ms = 2500
    with GunicornServer(data, env=env_for(llm, **state_env)) as a, GunicornServer(data, env=env_for(llm, **state_env)) as b:
        call_sid = new_call_sid()
        first = process(a.base_url, call_sid, "Can you help me?")
        v = verbs(first.content)
        assert [x[0] for x in v] == ["Say", "Redirect"]
        owner = int(first.headers["X-Warmline-Worker"])
        deadline = time.monotonic() + 10
        while not llm.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(llm.requests) == 1, "the owner never asked the AI"
        a.kill_worker(owner)  # SIGKILL: its turn thread dies with it, mid-way through the AI call
        answer, plays = until_answer(b.base_url, v[1][2], call_sid)
        assert [x[0] for x in answer][-5:] == ["Gather", "Say", "Gather", "Say", "Hangup"]
        assert len(plays) == 2
        assert len(llm.requests) == 2  # the dead worker's request, then the takeover's
        assert "took over turn" in b.log_tail()
