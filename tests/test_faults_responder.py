"""Responder faults on a live call, through real gunicorn and the LLM emulator.

A timeout, an HTTP error or an unusable reply becomes the business's apology (spoken in its own
voice, then the call listens again); a 20,000-character reply is trimmed at a sentence boundary.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.business import load_businesses
from app.responders.base import Reply
from app.responders.openai import MAX_REPLY_CHARS, trim_reply
from app.speech.canon import canon
from app.speech.keys import content_key, object_name
from app.speech.pieces import split_pieces
from app.voice.pacing import BRIDGES
from simulator.llm_emulator import LLMEmulator, long_reply
from tests.conftest import TWILIO_TOKEN, new_call_sid
from tests.faults_support import Caller, echo_responses, fetch_clip, listens
from tests.server_support import ROOT, GunicornServer

pytestmark = pytest.mark.slow
DEMO = load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")


def names_of(text: str) -> list[str]:
    return [object_name(content_key(canon(p), DEMO.voice), DEMO.voice) for p in split_pieces(text, DEMO.splice)]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("responder-faults")
    with LLMEmulator(responses=echo_responses, stall_s=4.0) as llm:
        env = {"WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WARMLINE_LLM_URL": llm.base_url,
               "WARMLINE_LLM_API_KEY": llm.api_key, "WARMLINE_LLM_TIMEOUT_S": "1.0", "WARMLINE_HOP_S": "1.0"}
        with GunicornServer(tmp / "var", env=env, workers=2) as server:
            Caller(server.base_url, new_call_sid()).turn("warm up")
            yield SimpleNamespace(llm=llm, server=server)


def answer_urls(rig, fault: str) -> list[str]:
    rig.llm.inject(fault)
    turn = Caller(rig.server.base_url, new_call_sid()).turn(f"fault {fault}")
    assert listens(turn.final), turn.final  # the call goes on: it listens for the next question
    assert turn.says() == [], turn.final
    # Bridges may play between the answer's sentences while one is still being made: not part of the answer.
    bridges = {name for text in (*DEMO.short_fillers, *(DEMO.prompt(b) for b in BRIDGES)) for name in names_of(text)}
    return [url.split("/cdn/", 1)[1] for url in turn.plays() if "/cdn/" in url and url.split("/cdn/", 1)[1] not in bridges]


@pytest.mark.parametrize("fault", ["stall", "500", "429", "bad_json", "empty"])
def test_responder_failure_plays_the_apology(rig, fault):
    """stall: no answer within WARMLINE_LLM_TIMEOUT_S (1 s); the others answer at once, unusably."""
    names = answer_urls(rig, fault)
    assert names[-2:] == names_of(DEMO.prompt("apology")), names
    for name in names[-2:]:
        assert fetch_clip(f"{rig.server.base_url}/cdn/{name}") > 0.5


def test_a_20000_character_reply_is_trimmed_at_a_sentence_boundary(rig):
    """What the caller hears is exactly the trimmed reply: eight sentences, not 280 (as clips, or as <Say> for
    any sentence a busy machine could not synthesize before the turn's deadline)."""
    trimmed = trim_reply(Reply(long_reply())).text
    assert len(long_reply()) == 20_000 and len(trimmed) <= MAX_REPLY_CHARS
    assert trimmed.startswith("This is sentence number 1 of") and trimmed.endswith("too long to speak.")
    pieces = split_pieces(trimmed, DEMO.splice)
    assert len(pieces) == 8
    by_name = dict(zip(names_of(trimmed), pieces))
    rig.llm.inject("long")
    turn = Caller(rig.server.base_url, new_call_sid()).turn("fault long")
    assert listens(turn.final), turn.final
    heard = []
    for i, doc in enumerate(turn.docs):
        body = turn.answer if i == len(turn.docs) - 1 else doc
        for verb, _, value, _ in body:
            if verb == "Play" and "/cdn/" in value and value.split("/cdn/", 1)[1] in by_name:
                heard.append(by_name[value.split("/cdn/", 1)[1]])
                assert fetch_clip(value) > 1.0
            elif verb == "Say" and (i == len(turn.docs) - 1 or value in pieces):
                heard.append(value)  # a piece <Say>'d in a hop (its clip failed in time) is heard there
    assert " ".join(heard) == trimmed
