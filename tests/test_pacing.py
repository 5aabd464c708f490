"""Pacing: the instant budget turns itself off while the AI is too slow for it to pay."""

from __future__ import annotations

import time

from app.responders.base import Reply
from app.voice.pacing import MIN_SAMPLES, Pacing
from tests.conftest import new_call_sid
from tests.fakes import ScriptedResponder
from tests.test_voice_flow import BASE, build, follow, process, publish, verbs, warm


def test_budget_holds_until_enough_turns_are_seen():
    pacing = Pacing()
    for _ in range(MIN_SAMPLES - 1):
        pacing.observe_ai("demo", 1200)
    assert pacing.instant_budget_s("demo", 0.3) == 0.3
    # A model behind the network: until the process has seen it answer in time, no waiting before the filler.
    assert pacing.instant_budget_s("demo", 0.3, remote_responder=True) == 0.0
    for _ in range(MIN_SAMPLES):
        pacing.observe_ai("fast-model", 120)
    assert pacing.instant_budget_s("fast-model", 0.3, remote_responder=True) == 0.3


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


def test_every_hop_waits_at_most_the_silence_budget_and_bridges_never_repeat(make_app):
    """While the answer is pending each hop returns within the silence budget with a bridge, never the same one
    twice in a row: phrases chosen from the predicted wait (issue 11: a bridge must not outlast the wait), and once the caller has waited
    ``SORRY_AFTER_S`` an honest "sorry for the wait", once; then the answer."""
    responder = ScriptedResponder({}, default=Reply("Thought about it."), delay_s=1.5)
    app, _ = build(make_app, responder=responder, hop_s=2.5, silence_budget_s=0.3)
    demo = warm(app)  # the bridges are precomputed clips, as in production
    text_of = {BASE + publish(app, t)[0]: t for t in (*demo.prompts.values(), *demo.short_fillers)}
    client = app.test_client()
    call_sid = new_call_sid()
    url = verbs(process(client, call_sid, "question").data)[1][2]
    allowed = {*demo.short_fillers, *(demo.prompt(n) for n in ("second_filler", "hold", "sorry_wait"))}
    bridges, waits = [], []
    for _ in range(20):
        started = time.monotonic()
        hop = verbs(follow(client, url).data)
        waits.append(time.monotonic() - started)
        if hop[-1][0] != "Redirect":
            break
        assert [x[0] for x in hop] == ["Play", "Redirect"] and hop[1][2] == url
        bridges.append(text_of[hop[0][2]])
    assert [x[0] for x in hop][-5::2] == ["Gather", "Gather", "Hangup"] and hop[0][0] == "Play"
    assert len(bridges) >= 3 and set(bridges) <= allowed
    assert all(a != b for a, b in zip(bridges, bridges[1:])) and bridges.count(demo.prompt("sorry_wait")) <= 1
    assert max(waits[:-1]) < 0.3 + 0.4  # the budget plus this shared machine's scheduling slack


def test_next_bridge_never_repeats_even_when_two_prompts_are_alike(make_app):
    from dataclasses import replace

    app, _ = build(make_app)
    demo = app.extensions["warmline"].businesses.get("demo")
    same = replace(demo, prompts={**demo.prompts, "hold": demo.prompt("second_filler")})
    played: list[str] = []
    for _ in range(6):
        played.append(Pacing.next_bridge(same, played))
    assert all(a != b for a, b in zip(played, played[1:])), played
