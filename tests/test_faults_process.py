"""Process faults: a graceful gunicorn restart and a Redis restart while calls are in flight.

SIGKILL of a worker mid-turn (the next hop takes the turn over) is proven in
tests/test_gunicorn_flow.py::test_worker_killed_mid_turn_the_next_hop_takes_it_over, for both
state backends; it is not repeated here.
"""

from __future__ import annotations

import time

import httpx
import pytest

from simulator.llm_emulator import LLMEmulator
from tests.conftest import TWILIO_TOKEN, new_call_sid
from tests.faults_support import Caller, Threads, answer_name, echo_responses, listens
from tests.redis_support import RedisServer
from tests.server_support import GunicornServer
from tests.twiml_support import verbs

pytestmark = pytest.mark.slow


def env_for(llm: LLMEmulator, **extra: str) -> dict[str, str]:
    return {"WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WARMLINE_LLM_URL": llm.base_url,
            "WARMLINE_LLM_API_KEY": llm.api_key, "WARMLINE_LEASE_S": "1.5", "WARMLINE_HOP_S": "1.0",
            # Every synthesis is bounded by the turn deadline; six new Piper clips behind a restart on a loaded
            # machine need more than the default 8 s. What is tested is that no turn is lost, not speed.
            "WARMLINE_TURN_DEADLINE_S": "12", **extra}


def assert_played(turn, scenario: str) -> None:
    """The turn ended with its answer as audio (one clip), then listened."""
    assert listens(turn.final), turn.final
    assert turn.says() == [], f"{scenario}: the answer fell back to <Say>: {turn.final}"
    assert turn.plays()[-1].endswith("/cdn/" + answer_name(scenario)), (scenario, turn.docs)


def test_graceful_restart_during_calls_loses_no_turn(tmp_path):
    """SIGHUP while six calls wait for their answers (the AI takes 1.5 s): every turn is answered with audio."""
    with LLMEmulator(responses=echo_responses, base_ms=1500) as llm, \
            GunicornServer(tmp_path / "var", env=env_for(llm), workers=2, threads=8) as server:
        Caller(server.base_url, new_call_sid()).turn("warm up")
        old = set(server.worker_pids())
        callers = [Caller(server.base_url, new_call_sid()) for _ in range(6)]
        firsts = Threads()
        for i, caller in enumerate(callers):
            firsts.start(i, lambda c=caller, i=i: c.post(f"/voice/process/demo/{c.call_sid}",
                                                         SpeechResult=f"reload {i}"))
        redirects = firsts.join(20)
        for response in redirects.values():
            assert verbs(response.content)[-1][0] == "Redirect"  # every turn is running, behind a filler
        server.reload()
        time.sleep(0.2)
        rest = Threads()
        for i, caller in enumerate(callers):
            rest.start(i, lambda c=caller, i=i: follow_all(c, verbs(redirects[i].content)[-1][2]))
        finals = rest.join(30)
        # A second turn on every call, after the restart completed.
        server.wait_ready(timeout=20)
        seconds = Threads()
        for i, caller in enumerate(callers):
            seconds.start(i, lambda c=caller, i=i: c.turn(f"again {i}"))
        again = seconds.join(30)
        new = set(server.worker_pids())
    assert len(llm.requests) == 1 + 6 + 6  # each turn asked the AI exactly once: none was lost and re-run
    for i in range(6):
        assert_played(finals[i], f"reload {i}")
        assert_played(again[i], f"again {i}")
    assert not (old & new), (old, new)  # the old workers are gone


def follow_all(caller: Caller, url: str):
    """Follow redirects from ``url`` to the answer; returns a Turn-like result."""
    from tests.faults_support import Turn

    turn = Turn()
    turn.docs.append([("Say", {}, "(filler)", []), ("Redirect", {}, url, [])])
    for _ in range(40):  # hops are bounded by the silence budget (0.5 s): a slow turn is many of them
        response = caller.post(url)
        doc = verbs(response.content)
        turn.docs.append(doc)
        if doc[-1][0] != "Redirect":
            return turn
        url = doc[-1][2]
    raise AssertionError(f"no answer: {turn.docs[-1]}")


def test_redis_restart_mid_call_reprompts_then_the_call_continues(tmp_path):
    """Redis restarts (its data gone) while a turn is in flight: the next hop re-prompts, the call goes on."""
    redis = RedisServer(workdir=tmp_path).start()
    try:
        with LLMEmulator(responses=echo_responses, base_ms=1200) as llm, \
                GunicornServer(tmp_path / "var", env=env_for(llm, WARMLINE_STATE_URL=redis.url), workers=2) as server:
            Caller(server.base_url, new_call_sid()).turn("warm up")
            caller = Caller(server.base_url, new_call_sid())
            first = verbs(caller.post(f"/voice/process/demo/{caller.call_sid}", SpeechResult="before").content)
            assert first[-1][0] == "Redirect"
            redis.stop()
            redis.start()  # same port, empty
            time.sleep(1.5)  # the turn job notices (its writes find no turn) and stops
            hop = caller.post(first[-1][2])
            doc = verbs(hop.content)
            assert listens(doc) and doc[0][0] in ("Play", "Say"), doc  # a polite re-prompt, then listening
            assert doc[1][1]["action"] == f"{server.base_url}/voice/process/demo/{caller.call_sid}"
            after = caller.turn("after")
            assert_played(after, "after")
            # While Redis is down: a webhook still answers 200 with valid TwiML (never Twilio's application
            # error), and /healthz tells ops which backend failed.
            redis.stop()
            down = caller.post(f"/voice/process/demo/{caller.call_sid}", SpeechResult="during")
            assert verbs(down.content)[-1][0] in ("Hangup", "Redirect", "Gather")
            health = httpx.get(server.base_url + "/healthz", timeout=10)
            assert health.status_code == 503 and "state" in health.json()["problems"]
            redis.start()
            later = Caller(server.base_url, new_call_sid()).turn("later")
            assert_played(later, "later")
            assert httpx.get(server.base_url + "/healthz", timeout=10).status_code == 200
    finally:
        redis.stop()

