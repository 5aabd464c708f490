"""Answering sooner, through the turn engine and the call flow: streamed turns and speculative ones.

Jobs run when the test runs them (the engine tests' hand-driven pool); where a job must block (a
model still writing), it blocks on an Event the test sets, and the test waits on the state store's
notified wait -- never on a sleep.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from app.responders.base import Reply
from app.responders.stream import ReplyStream
from app.voice import turn as T
from app.voice.flow import Urls
from app.voice.speculation import Speculation, speculator, SLOT
from tests.conftest import new_call_sid
from tests.fakes import ToneProvider
from tests.test_turn_engine import BASE, FakeClock, Host
from tests.twiml_support import verbs


class GatedStreamer:
    """A streaming responder: the first sentence at once, the rest only when ``release`` is set."""

    def __init__(self, first: str = "Here is the first part.", rest: str = "And here is the second part.") -> None:
        self.first, self.rest = first, rest
        self.release = threading.Event()
        self.asked: list[str] = []

    def reply(self, business, history, utterance):  # the non-streaming path (control arm)
        self.asked.append(utterance)
        return Reply(f"{self.first} {self.rest}")

    def stream(self, business, history, utterance) -> ReplyStream:
        self.asked.append(utterance)

        def deltas():
            words = self.rest.split()
            yield self.first + " " + words[0] + " "  # a whole word of the next sentence: the first is complete
            assert self.release.wait(10)
            yield " ".join(words[1:])

        return ReplyStream(deltas(), business)


@pytest.fixture
def rig(make_app, tmp_path):
    responder = GatedStreamer()
    app = make_app(runtime={"providers": {"piper": ToneProvider()}, "responder": responder},
                   state_url=str(tmp_path / "state"), lease_s=1.0, instant_budget_ms=0)
    clock = FakeClock()
    live = {"host-a"}
    a = Host(app, "host-a", live, clock)
    demo = a.rt.businesses.get("demo")
    yield demo, responder, a
    responder.release.set()
    app.extensions["warmline"].shutdown()


def run_in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_a_streamed_turns_first_sentence_is_playable_before_the_model_has_finished(rig):
    demo, responder, a = rig
    call_sid = new_call_sid()
    call = a.engine.caller_said(demo, call_sid, "question")
    a.engine.begin(demo, call_sid, "question", t0=a.engine.clock(), call=call)
    job = run_in_thread(a.pool.run_next)
    turn = a.engine.wait(call_sid, 1, lambda t: bool(t.ready_prefix()), timeout_s=10)
    assert turn.ready_prefix()[0]["text"] == "Here is the first part." and turn.ready_prefix()[0]["url"]
    assert turn.status == T.RUNNING and turn.text is None  # the model is still writing
    urls = Urls(BASE, "demo", call_sid)
    hop = verbs(a.flow.ready(demo, urls, 1, 0))  # a hop plays the ready prefix now and comes back for the rest
    assert [v[0] for v in hop] == ["Play", "Redirect"] and hop[1][2].endswith("turn=1&played=1")
    responder.release.set()
    job.join(10)
    done = a.engine.get(call_sid, 1)
    assert done.status == T.DONE and done.text == "Here is the first part. And here is the second part."
    assert [p["text"] for p in done.pieces] == ["Here is the first part.", "And here is the second part."]
    assert all(p.get("url") for p in done.pieces) and responder.asked == ["question"]


def test_a_phrase_level_streamed_turn_plays_its_first_sentence_before_the_model_has_finished(rig):
    """The default level (``phrase``) is cut sentence by sentence from a model's stream, like ``sentence``."""
    demo, responder, a = rig
    phrase = dataclasses.replace(demo, splice="phrase")
    responder.first, responder.rest = "We open at 9 am on Monday.", "And we close at 5 pm."
    call_sid = new_call_sid()
    call = a.engine.caller_said(phrase, call_sid, "when do you open")
    a.engine.begin(phrase, call_sid, "when do you open", t0=a.engine.clock(), call=call)
    job = run_in_thread(a.pool.run_next)
    turn = a.engine.wait(call_sid, 1, lambda t: len(t.ready_prefix()) == 3, timeout_s=10)
    assert [p["text"] for p in turn.ready_prefix()] == ["We open at~", "~9 am~", "~on Monday."]
    assert turn.status == T.RUNNING and turn.text is None  # the model is still writing
    hop = verbs(a.flow.ready(phrase, Urls(BASE, "demo", call_sid), 1, 0))
    assert [v[0] for v in hop] == ["Play", "Redirect"] and hop[1][2].endswith("turn=1&played=3")  # one assembled clip
    responder.release.set()
    job.join(10)
    done = a.engine.get(call_sid, 1)
    assert [p["text"] for p in done.pieces] == ["We open at~", "~9 am~", "~on Monday.", "And we close at~", "~5 pm."]
    assert done.status == T.DONE and done.text == "We open at 9 am on Monday. And we close at 5 pm."


def settle_flow(a, demo, call_sid: str, final: str) -> str:
    return a.flow.process(demo, Urls(BASE, "demo", call_sid), final, a.engine.clock())


def test_an_adopted_speculation_answers_the_turn_with_one_responder_call(rig):
    demo, responder, a = rig
    responder.release.set()
    call_sid = new_call_sid()
    a.engine.ensure_call(demo, call_sid)
    spec = speculator(a.engine.rt)
    call = a.rt.state.get_call(call_sid)
    assert spec.on_partial(demo, call, call_sid, turn=1, unstable="what time do you open",
                           stable="what time do you open", seq=1) == "started"
    a.pool.run_next()  # the speculative job: reply and clips, under its own record
    assert Speculation.from_dict(a.rt.state.get_turn(call_sid, SLOT)).status == "done"
    assert a.rt.state.get_call(call_sid)["history"] == []  # nothing of it in the history yet
    settle_flow(a, demo, call_sid, "What time do you open?")
    a.pool.run_next()  # the turn's job follows the adopted speculation
    turn = a.engine.get(call_sid, 1)
    assert turn.status == T.DONE and turn.extra["speculation"] == "adopted" and turn.extra["speculative_calls"] == 1
    assert responder.asked == ["what time do you open"]  # one responder call for the turn
    answer = verbs(a.flow.ready(demo, Urls(BASE, "demo", call_sid), 1, 0))
    assert [v[0] for v in answer][:2] == ["Play", "Play"]
    event = [e for e in a.rt.events.read() if e.get("turn") == 1][-1]
    assert (event["speculation"], event["speculative_calls"]) == ("adopted", 1)
    assert [h["role"] for h in a.rt.state.get_call(call_sid)["history"]] == ["caller", "agent"]


def test_a_discarded_speculation_never_reaches_the_history_and_the_turn_asks_again(rig):
    demo, responder, a = rig
    responder.release.set()
    responder.first = "Tuesday works."
    call_sid = new_call_sid()
    a.engine.ensure_call(demo, call_sid)
    spec = speculator(a.engine.rt)
    spec.on_partial(demo, a.rt.state.get_call(call_sid), call_sid, turn=1, unstable="book me for tuesday",
                    stable="book me for tuesday", seq=1)
    a.pool.run_next()  # it ran to the end: a reply for the wrong words, clips published
    settle_flow(a, demo, call_sid, "Book me for Thursday.")
    responder.first = "Thursday works."
    a.pool.run_next()  # the turn asks the responder itself
    turn = a.engine.get(call_sid, 1)
    assert turn.extra["speculation"] == "discarded" and turn.text.startswith("Thursday works.")
    assert responder.asked == ["book me for tuesday", "Book me for Thursday."]
    a.flow.ready(demo, Urls(BASE, "demo", call_sid), 1, 0)
    said = [h["text"] for h in a.rt.state.get_call(call_sid)["history"]]
    assert said == ["Book me for Thursday.", turn.text] and not any("Tuesday" in s for s in said)


def test_a_speculation_still_running_when_the_final_result_arrives_is_followed_as_it_writes(rig):
    demo, responder, a = rig
    call_sid = new_call_sid()
    a.engine.ensure_call(demo, call_sid)
    spec = speculator(a.engine.rt)
    spec.on_partial(demo, a.rt.state.get_call(call_sid), call_sid, turn=1, unstable="are you open today",
                    stable="are you open today", seq=1)
    spec_job = run_in_thread(a.pool.run_next)  # blocks mid-reply until release
    settle_flow(a, demo, call_sid, "Are you open today?")
    turn_job = run_in_thread(a.pool.run_next)  # follows the speculation while it is still being written
    first = a.engine.wait(call_sid, 1, lambda t: bool(t.ready_prefix()), timeout_s=10)
    assert first.ready_prefix()[0]["text"] == "Here is the first part." and first.status == T.RUNNING
    responder.release.set()
    spec_job.join(10)
    turn_job.join(10)
    turn = a.engine.get(call_sid, 1)
    assert turn.status == T.DONE and turn.extra["speculation"] == "adopted"
    assert turn.text == "Here is the first part. And here is the second part." and responder.asked == ["are you open today"]


def test_a_finished_speculation_is_copied_into_the_turn_in_one_write_failure_and_all(rig):
    from app.errors import ResponderError

    demo, responder, a = rig

    def down(business, history, utterance):
        responder.asked.append(utterance)
        raise ResponderError("the model is down")

    responder.stream = down
    call_sid = new_call_sid()
    a.engine.ensure_call(demo, call_sid)
    spec = speculator(a.engine.rt)
    assert spec.on_partial(demo, a.rt.state.get_call(call_sid), call_sid, turn=1, unstable="what time do you open",
                           stable="what time do you open", seq=1) == "started"
    a.pool.run_next()  # the speculation ends with the apology (the responder failed)
    assert Speculation.from_dict(a.rt.state.get_turn(call_sid, SLOT)).failure
    settle_flow(a, demo, call_sid, "What time do you open?")
    writes: list[int] = []
    update_turn = a.rt.state.update_turn

    def counted(sid, n, fn, ttl, **kw):
        writes.append(n)
        return update_turn(sid, n, fn, ttl, **kw)

    a.rt.state.update_turn = counted
    try:
        a.pool.run_next()  # the turn's job: start, then the whole speculation copied at once
    finally:
        del a.rt.state.update_turn
    assert writes == [1, 1]  # queued -> running, then one copy (pieces, clips, reply, done)
    turn = a.engine.get(call_sid, 1)
    assert turn.status == T.DONE and turn.text == demo.prompt("apology") and turn.failure
    assert responder.asked == ["what time do you open"]
