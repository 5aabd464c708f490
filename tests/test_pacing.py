"""Pacing: the instant budget turns itself off while the AI is too slow for it to pay."""

from __future__ import annotations

import time

from app.responders.base import Reply
from app.voice.pacing import MIN_SAMPLES, Pacing
from tests.conftest import new_call_sid
from tests.fakes import ScriptedResponder
from tests.test_voice_flow import build, follow, process, verbs


def test_budget_holds_until_enough_turns_are_seen():
    pacing = Pacing()
    for _ in range(MIN_SAMPLES - 1):
        pacing.observe_ai("demo", 1200)
    assert pacing.instant_budget_s("demo", 0.3) == 0.3


def test_a_slow_ai_turns_the_budget_off_and_a_fast_one_back_on():
    pacing = Pacing(window=16)
    for _ in range(16):
        pacing.observe_ai("demo", 900)
    assert pacing.instant_budget_s("demo", 0.3) == 0.0
    assert pacing.instant_budget_s("other", 0.3) == 0.3
    for _ in range(4):
        pacing.observe_ai("demo", 5)
    assert pacing.instant_budget_s("demo", 0.3) == 0.3  # a quarter of recent replies came in time


def test_unknown_ai_latency_is_not_a_sample():
    pacing = Pacing()
    for _ in range(20):
        pacing.observe_ai("demo", None)
    assert pacing.instant_budget_s("demo", 0.3) == 0.3


def test_after_the_filler_silence_lasts_at_most_the_silence_budget_then_a_second_filler(make_app):
    responder = ScriptedResponder({}, default=Reply("Thought about it."), delay_s=1.5)
    app, _ = build(make_app, responder=responder, hop_s=2.5, silence_budget_s=0.3)
    client = app.test_client()
    call_sid = new_call_sid()
    v = verbs(process(client, call_sid, "question").data)
    started = time.monotonic()
    hop = verbs(follow(client, v[1][2]).data)
    waited = time.monotonic() - started
    assert [x[0] for x in hop] == ["Say", "Redirect"] and hop[0][2] == "Just a moment."
    assert 0.3 <= waited < 1.2
    # once bridged, the next hop waits a full hop for the answer instead of bridging again
    answer = verbs(follow(client, hop[1][2]).data)
    assert [x[0] for x in answer][-5::2] == ["Gather", "Gather", "Hangup"]
    assert answer[0][0] == "Play"
