"""The Twilio model's new knobs: partial results, end-of-speech delay, gaps between plays, barge-in."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from simulator.clock import Clock
from simulator.twilio_client import run_call
from tests.test_simulator_twilio import ZERO, _server, config, events, frozen_clock, server, wav  # noqa: F401

GATHER = '<Gather input="speech" action="/voice/process/demo" partialResultCallback="/voice/partial/demo?turn=1">'


def partial_posts(result):
    return [e for e in result.events if e.kind == "webhook" and e.detail.get("via") == "partial"]


def test_partial_results_are_signed_posts_while_the_caller_speaks_then_the_final_after_the_endpoint(server):
    server.twiml("/voice/incoming/demo", f"<Response>{GATHER}</Gather></Response>")
    server.twiml("/voice/process/demo", "<Response><Hangup/></Response>")
    server.twiml("/voice/partial/demo", "<Response/>")
    knobs = replace(ZERO, caller_speaking_s=1.0, speech_endpoint_ms=700, partial_cadence_ms=300,
                    partial_lag_words=2, partial_stability=1.0, partial_reorder_rate=0.0)
    result = run_call(config(server, knobs=knobs, script=["what time do you open"]), clock=frozen_clock())
    posts = server.requests_to("/voice/partial/demo")
    assert all(p.signature_ok and p.method == "POST" and p.query == {"turn": "1"} for p in posts)
    got = sorted((int(p.form["SequenceNumber"]), p.form["UnstableSpeechResult"], p.form["StableSpeechResult"])
                 for p in posts)
    assert got == [(1, "what time", ""), (2, "what time do", "what"), (3, "what time do you open", "what time do"),
                   (4, "what time do you open", "what time do you open")]
    assert [e.t for e in partial_posts(result)] == pytest.approx([0.3, 0.6, 0.9, 1.0])
    assert posts[0].form["CallSid"] == result.call_sid
    (final,) = server.requests_to("/voice/process/demo")
    assert final.form["SpeechResult"] == "what time do you open"
    process = [e for e in result.events if e.kind == "webhook" and e.detail.get("via") == "gather"][0]
    assert process.t == pytest.approx(1.0 + 0.7)  # the caller stopped at 1.0; Twilio waited 700 ms
    assert result.failures == []


def test_unstable_partials_end_in_a_word_the_final_result_revises(server):
    server.twiml("/voice/incoming/demo", f"<Response>{GATHER}</Gather></Response>")
    server.twiml("/voice/process/demo", "<Response><Hangup/></Response>")
    server.twiml("/voice/partial/demo", "<Response/>")
    knobs = replace(ZERO, caller_speaking_s=0.5, partial_cadence_ms=300, partial_stability=0.0,
                    partial_reorder_rate=0.0)
    run_call(config(server, knobs=knobs, script=["book me for tomorrow"]), clock=frozen_clock())
    last = max(server.requests_to("/voice/partial/demo"), key=lambda p: int(p.form["SequenceNumber"]))
    assert last.form["UnstableSpeechResult"] == last.form["StableSpeechResult"] == "book me for tomorro"
    assert server.requests_to("/voice/process/demo")[0].form["SpeechResult"] == "book me for tomorrow"


def test_partials_may_be_sent_out_of_order_and_failures_are_logged_not_fatal(server):
    server.twiml("/voice/incoming/demo", f"<Response>{GATHER}</Gather></Response>")
    server.twiml("/voice/process/demo", "<Response><Hangup/></Response>")  # no partial route: 404s
    knobs = replace(ZERO, caller_speaking_s=1.0, partial_cadence_ms=300, partial_reorder_rate=1.0)
    result = run_call(config(server, knobs=knobs, script=["what time do you open"]), clock=frozen_clock())
    assert [e.detail["sequence"] for e in partial_posts(result)] == [4, 1, 2, 3]
    assert result.ended_by == "hangup" and len(result.failures) == 4
    assert {(f.code, f.where, f.fatal) for f in result.failures} == {(11200, "partial", False)}


def test_no_partial_callback_no_partials(server):
    server.twiml("/voice/incoming/demo", '<Response><Gather input="speech" action="/voice/process/demo"/></Response>')
    server.twiml("/voice/process/demo", "<Response><Hangup/></Response>")
    result = run_call(config(server, script=["hello there"]), clock=frozen_clock())
    assert partial_posts(result) == [] and server.requests_to("/voice/partial/demo") == []


def test_a_gap_separates_consecutive_plays(server):
    a = server.media("/media/a.wav", wav(1.0))
    b = server.media("/media/b.wav", wav(0.5))
    server.twiml("/voice/incoming/demo", f"<Response><Play>{a}</Play><Play>{b}</Play><Say>Bye.</Say><Hangup/></Response>")
    result = run_call(config(server, knobs=replace(ZERO, play_gap_ms=200)), clock=frozen_clock())
    audio = [e for e in result.events if e.is_audio]
    assert [round(e.t, 6) for e in audio] == [0.0, 1.2, 1.9]
    assert result.greeting.longest_silence_s == pytest.approx(0.2)


def test_a_caller_barges_into_an_answer_nested_in_the_gather_and_is_heard(server):
    greeting = server.media("/media/g.wav", wav(0.5))
    answer = server.media("/media/answer.wav", wav(3.0))
    server.twiml("/voice/incoming/demo",
                 f'<Response><Gather input="speech" action="/voice/process/demo"><Play>{greeting}</Play></Gather></Response>')
    server.twiml("/voice/process/demo",
                 f'<Response><Gather input="speech" action="/voice/second/demo"><Play>{answer}</Play></Gather></Response>')
    server.twiml("/voice/second/demo", "<Response><Hangup/></Response>")
    knobs = replace(ZERO, caller_speaking_s=1.0, barge_in_after_s=1.2, barge_in_rate=1.0)
    result = run_call(config(server, knobs=knobs, script=["first question", "wait, actually"]), clock=frozen_clock())
    plays = events(result, "play")
    assert [(p.detail["url"], p.duration_s, p.detail.get("interrupted", False)) for p in plays] == [
        (greeting, 0.5, False), (answer, pytest.approx(1.2), True)]  # the greeting (turn 0) is never interrupted
    speaks = events(result, "speak")
    assert speaks[1].t == pytest.approx(plays[1].t + 1.2) and speaks[1].detail == {"text": "wait, actually",
                                                                                    "barge_in": True}
    assert server.requests_to("/voice/second/demo")[0].form["SpeechResult"] == "wait, actually"
    turn = result.turns[0]
    assert turn.time_to_answer_audio_s == pytest.approx(0.0) and turn.end_s == pytest.approx(speaks[1].t)
    assert result.failures == []


def test_words_spoken_over_an_answer_outside_the_gather_are_lost_and_said_again(server):
    answer = server.media("/media/answer.wav", wav(3.0))
    server.twiml("/voice/incoming/demo", '<Response><Gather input="speech" action="/voice/process/demo"/></Response>')
    server.twiml("/voice/process/demo",
                 f'<Response><Play>{answer}</Play><Gather input="speech" action="/voice/second/demo"/></Response>')
    server.twiml("/voice/second/demo", "<Response><Hangup/></Response>")
    knobs = replace(ZERO, caller_speaking_s=1.0, barge_in_after_s=1.2, barge_in_rate=1.0)
    result = run_call(config(server, knobs=knobs, script=["first question", "wait, actually"]), clock=frozen_clock())
    (play,) = events(result, "play")
    assert play.duration_s == 3.0 and not play.detail.get("interrupted")
    (lost,) = result.failures
    assert (lost.code, lost.where, lost.fatal) == (None, "caller", False) and "'wait, actually'" in lost.message
    assert server.requests_to("/voice/second/demo")[0].form["SpeechResult"] == "wait, actually"  # said again
    assert events(result, "speak")[1].t == pytest.approx(play.end)


def test_partial_results_never_move_the_calls_clock(server):
    slow = {"n": 0}

    def partial_handler():
        import time as _t

        slow["n"] += 1
        _t.sleep(0.05)  # a slow partial webhook: real time that must not become the call's time
        from flask import Response

        return Response("<Response/>", content_type="text/xml")

    server.twiml("/voice/incoming/demo", f"<Response>{GATHER}</Gather></Response>")
    server.twiml("/voice/process/demo", "<Response><Hangup/></Response>")
    server.routes["/voice/partial/demo"] = partial_handler
    knobs = replace(ZERO, caller_speaking_s=0.5, partial_cadence_ms=100, partial_reorder_rate=0.0)
    # Real time (speed 1): the partial webhooks run while the caller speaks, 0.25 s of real time beside the call.
    result = run_call(config(server, knobs=knobs, speed=1.0, script=["what time do you open"]), clock=Clock(1.0))
    assert slow["n"] == 5
    process = [e for e in result.events if e.kind == "webhook" and e.detail.get("via") == "gather"][0]
    incoming = [e for e in result.events if e.kind == "webhook" and e.detail.get("via") == "incoming"][0]
    assert process.t == pytest.approx(0.5 + incoming.duration_s)  # the speech, and the greeting's own request
