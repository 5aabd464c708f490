"""Speculative turns and the answer producer: deterministic (hand-run jobs, inline or event-driven pools)."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from app.business import Business, load_businesses
from app.errors import SpeculationDropped
from app.responders.base import Reply
from app.responders.stream import one_shot
from app.speech.canon import canon
from app.state import DiskCallState
from app.voice.answer import produce
from app.voice.speculation import (
    ADOPTED,
    DISCARDED,
    MAX_PER_TURN,
    SLOT,
    Speculation,
    Speculator,
    complete_and_stable,
    looks_complete,
    spare_reserve,
    speech_key,
    start_on_pool,
)
from app.voice.pool import BoundedPool

ROOT = Path(__file__).resolve().parent.parent
SID = "CA" + "1" * 32


@pytest.fixture(scope="module")
def demo() -> Business:
    return load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")


class Inline:
    """An executor that runs each job at once, on the caller's thread."""

    def submit(self, fn, *args):
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the future like a real pool
            future.set_exception(exc)
        return future


class Stream:
    """A reply stream the test scripts: sentences in order, then ``reply``; logs what was asked of it."""

    def __init__(self, sentences, reply, log):
        self.sentences = list(sentences)
        self.final = reply
        self.reply = None
        self.log = log
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        self.log.append("next")
        if not self.sentences:
            self.reply = self.final
            raise StopIteration
        return self.sentences.pop(0)

    def close(self):
        self.closed = True


class RecordingSink:
    """A Sink that records each write (``("step", added, ready indices, done)``) and the answer it builds."""

    stops = (SpeculationDropped,)

    def __init__(self, log=None, drop_at=None):
        self.log = log if log is not None else []
        self.pieces: list[dict] = []
        self.reply = None
        self.finished = False
        self.drop_at = drop_at
        self.lock = threading.Lock()

    def check(self):
        with self.lock:
            if self.drop_at is not None and len(self.pieces) > self.drop_at:
                raise SpeculationDropped("dropped")

    def progress(self, step):
        with self.lock:
            if self.drop_at is not None and any(i >= self.drop_at for i, _ in step.ready):
                raise SpeculationDropped("dropped")
            self.log.append(("step", tuple(step.added), tuple(i for i, _ in step.ready), step.done))
            self.pieces.extend({"text": t} for t in step.added)
            for i, piece in step.ready:
                self.pieces[i] = dict(piece)
            if step.reply is not None:
                self.reply = step.reply[:2]
            self.finished = self.finished or step.done


def clip_of(text: str) -> dict:
    return {"text": text, "url": f"/cdn/{canon(text)}.wav", "hit": False, "source": "synth"}


# --- produce ---------------------------------------------------------------------------------------


def test_the_first_sentences_clip_is_made_before_the_stream_is_asked_for_more():
    log: list = []
    stream = Stream(["We open at 9.", "We close at 6."], Reply("We open at 9. We close at 6.", "continue"), log)

    def make_clip(text):
        log.append(("clip", text))
        return clip_of(text)

    sink = RecordingSink(log)
    assert produce(stream, splice="sentence", make_clip=make_clip, sink=sink, synth=Inline()) is True
    assert log == [  # one write per playable piece, with its text; the reply and done when it is known
        "next", ("clip", "We open at 9."), ("step", ("We open at 9.",), (0,), False),
        "next", ("clip", "We close at 6."), ("step", ("We close at 6.",), (1,), False),
        "next", ("step", (), (), True),
    ]
    assert sink.reply == ("We open at 9. We close at 6.", "continue")
    assert [p["url"] for p in sink.pieces] == [clip_of("We open at 9.")["url"], clip_of("We close at 6.")["url"]]


def test_clips_of_one_answer_are_made_in_parallel_up_to_the_per_turn_bound():
    texts = ["One.", "Two.", "Three.", "Four."]
    gates = {t: threading.Event() for t in texts}
    started: list[str] = []
    in_flight = {"now": 0, "max": 0}
    changed = threading.Condition()

    def make_clip(text):
        with changed:
            started.append(text)
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            changed.notify_all()
        gates[text].wait(10)
        with changed:
            in_flight["now"] -= 1
        return clip_of(text)

    sink = RecordingSink()
    result: list[bool] = []
    with ThreadPoolExecutor(max_workers=8) as synth:
        runner = threading.Thread(target=lambda: result.append(produce(
            one_shot(Reply(" ".join(texts))), splice="sentence", make_clip=make_clip, sink=sink, synth=synth,
            per_turn=2)))
        runner.start()
        with changed:
            assert changed.wait_for(lambda: len(started) == 2, 10)
        assert started == ["One.", "Two."]  # the third waits for a slot
        gates["Two."].set()  # the second finishes first: the ready prefix is still empty
        with changed:
            assert changed.wait_for(lambda: len(started) == 3, 10)
        assert sink.pieces[0] == {"text": "One."} and sink.pieces[1]["url"]
        for t in texts:
            gates[t].set()
        runner.join(10)
    assert result == [True] and in_flight["max"] == 2 and sink.finished
    assert [p["text"] for p in sink.pieces] == texts and all(p.get("url") for p in sink.pieces)


def test_a_dropped_answer_stops_the_stream_and_writes_nothing_more():
    log: list = []
    stream = Stream(["One.", "Two.", "Three."], Reply("One. Two. Three."), log)
    sink = RecordingSink(drop_at=1)
    assert produce(stream, splice="sentence", make_clip=clip_of, sink=sink, synth=Inline()) is False
    assert stream.closed and log.count("next") == 2  # "Three." was never read
    assert sink.reply is None and not sink.finished and [p["text"] for p in sink.pieces] == ["One."]


def test_a_phrase_sentence_is_assembled_when_its_last_clip_is_made_and_before_that_piece_is_written():
    log: list = []
    stream = Stream(["We open at 9 am.", "Bye."], Reply("We open at 9 am. Bye."), log)
    stream.streamed = True  # a model's stream: cut sentence by sentence at the phrase level too
    sink = RecordingSink(log)
    assert produce(stream, splice="phrase", make_clip=clip_of, sink=sink, synth=Inline(),
                   assemble=lambda texts: log.append(("assemble", tuple(texts))))
    assert log == [
        "next", ("step", ("We open at~", "~9 am."), (0,), False),
        ("assemble", ("We open at~", "~9 am.")), ("step", (), (1,), False),
        "next", ("step", ("Bye.",), (2,), False),  # one piece: nothing to assemble
        "next", ("step", (), (), True),
    ]


def test_a_sentence_with_a_failed_piece_is_not_assembled_and_an_assembly_failure_loses_nothing():
    log: list = []

    def make_clip(text):
        return {"text": text, "failed": "timeout"} if "9 am" in text else clip_of(text)

    def assemble(texts):
        log.append(("assemble", tuple(texts)))
        raise OSError("store away")

    stream = Stream(["We open at 9 am.", "We close at 6 pm."], Reply("We open at 9 am. We close at 6 pm."), log)
    stream.streamed = True
    sink = RecordingSink(log)
    assert produce(stream, splice="phrase", make_clip=make_clip, sink=sink, synth=Inline(), assemble=assemble)
    assert [x for x in log if x[0] == "assemble"] == [("assemble", ("We close at~", "~6 pm."))]
    assert sink.finished and [p.get("failed") for p in sink.pieces] == [None, "timeout", None, None]


def test_whole_splice_waits_for_the_whole_reply():
    log: list = []
    stream = Stream(["One.", "Two."], Reply("One. Two."), log)
    sink = RecordingSink(log)
    assert produce(stream, splice="whole", make_clip=clip_of, sink=sink, synth=Inline())
    assert log[:3] == ["next", "next", "next"] and sink.pieces == [clip_of("One. Two.")]


# --- speculation -------------------------------------------------------------------------------------


@pytest.fixture
def state(tmp_path):
    with DiskCallState(tmp_path / "state") as s:
        yield s


class Harness:
    """A Speculator whose jobs wait until the test runs them; the answer job is scripted."""

    def __init__(self, state, demo, replies=None):
        self.state = state
        self.demo = demo
        self.jobs: list = []
        self.clipped: list[str] = []
        self.replies = replies or {}
        self.timers: list = []
        self.spec = Speculator(state=state, ttl_s=600, start_job=self.start, produce_job=self.produce,
                               timers=self)
        state.update_call(SID, lambda c: {"business": "demo", "arm": "warmline", "turn": 1,
                                          "history": [{"role": "caller", "text": "Hi"},
                                                      {"role": "agent", "text": "Hello!"}]}, 600)

    def call_later(self, delay_s, fn):
        self.timers.append((delay_s, fn))

    def start(self, fn, *args):
        self.jobs.append((fn, args))
        return True

    def run_jobs(self):
        jobs, self.jobs = self.jobs, []
        for fn, args in jobs:
            fn(*args)

    def produce(self, business, call_sid, gen, history, text, sink):
        reply = self.replies.get(canon(text), Reply(f"You said {text}. Anything else?"))

        def make_clip(t):
            self.clipped.append(t)
            return clip_of(t)

        return produce(one_shot(reply), splice="sentence", make_clip=make_clip, sink=sink, synth=Inline())

    def partial(self, unstable, stable, seq, turn=2, business=None):
        return self.spec.on_partial(business or self.demo, self.state.get_call(SID), SID, turn=turn,
                                    unstable=unstable, stable=stable, seq=seq)


def test_complete_and_stable():
    assert looks_complete("What time do you open") and not looks_complete("I'd like to book a")
    assert not looks_complete("Hello")
    assert complete_and_stable("what time do you open", "What time do you open?")
    assert not complete_and_stable("what time do you open", "what time do")
    assert speech_key("Book a cleaning, please.") == speech_key("book a cleaning please") == "book a cleaning please"
    assert speech_key("At 9.30, for 1,200 people?") == speech_key("at 9.30 for 1,200 people")
    assert speech_key("At 9.30 for 1,200 people") != speech_key("At 9.30 for 1,300 people")
    assert speech_key("Is it US?") != speech_key("is it us")  # canon keeps acronyms


def test_a_speculation_is_adopted_when_the_final_result_means_the_same(state, demo):
    h = Harness(state, demo)
    call_before = state.get_call(SID)
    assert h.partial("what time do", "what", 1) == "noted"
    assert h.partial("what time do you open", "what time do you open", 2) == "started"
    assert h.partial("what time do you open", "what time do you open", 3) == "already"
    assert len(h.jobs) == 1
    h.run_jobs()
    spec = Speculation.from_dict(state.get_turn(SID, SLOT))
    assert spec.status == "done" and spec.reply == "You said what time do you open. Anything else?"
    assert state.get_call(SID) == call_before  # nothing of it in the history

    settled = h.spec.settle(SID, 2, "What time do you open?", history_len=2)
    assert (settled.gen, settled.started, settled.outcome) == (spec.gen, 1, ADOPTED)
    turn_sink = RecordingSink()
    assert h.spec.follow(SID, settled.gen, turn_sink) is True
    assert turn_sink.reply == ("You said what time do you open. Anything else?", "continue")
    assert [p["url"] for p in turn_sink.pieces] == [clip_of(t)["url"] for t in
                                                    ("You said what time do you open.", "Anything else?")]
    assert h.partial("what time do you open", "what time do you open", 4) == "stale"  # the turn began


def test_a_discarded_speculation_never_reaches_the_turn_and_stops_at_its_next_write(state, demo):
    h = Harness(state, demo)
    assert h.partial("book me in for tuesday", "book me in for tuesday", 1) == "started"
    settled = h.spec.settle(SID, 2, "Book me in for Thursday.", history_len=2)
    assert (settled.gen, settled.started, settled.outcome) == (None, 1, DISCARDED)
    h.run_jobs()  # the job starts after it was dropped: its first write is fenced out
    spec = Speculation.from_dict(state.get_turn(SID, SLOT))
    assert spec.fate == DISCARDED and spec.pieces == () and spec.reply is None
    assert h.clipped == []  # it stopped before making a clip
    assert state.get_call(SID)["history"] == [{"role": "caller", "text": "Hi"}, {"role": "agent", "text": "Hello!"}]


def test_a_speculation_dropped_mid_answer_keeps_its_published_clips_out_of_the_turn(state, demo):
    h = Harness(state, demo, {canon("book me in for tuesday"): Reply("Done. See you Tuesday.")})
    assert h.partial("book me in for tuesday", "book me in for tuesday", 1) == "started"
    fn, args = h.jobs.pop()
    original = h.spec.produce_job

    def produce_then_drop(business, call_sid, gen, history, text, sink):
        class Dropping:
            stops = sink.stops

            def check(self):
                sink.check()

            def progress(self, step):
                sink.progress(step)
                if step.ready:
                    h.spec.settle(SID, 2, "Book me in for Thursday.", history_len=2)  # the final differs

        return original(business, call_sid, gen, history, text, Dropping())

    h.spec.produce_job = produce_then_drop
    fn(*args)
    spec = Speculation.from_dict(state.get_turn(SID, SLOT))
    assert h.clipped == ["Done."]  # one clip was published (harmless: content-addressed) ...
    assert spec.fate == DISCARDED and spec.status == "running" and spec.reply is None  # ... then nothing more
    assert h.spec.follow(SID, spec.gen, RecordingSink(), stall_s=0.2) is False


def test_a_speculation_raced_by_the_final_result_never_starts(state, demo):
    h = Harness(state, demo)
    assert h.partial("what are your hours", "", 1) == "waiting"  # complete-looking, no stable part reported
    assert h.spec.settle(SID, 2, "What are your hours?", history_len=2).outcome == "none"
    (delay, check), = h.timers
    assert delay == h.spec.quiet_s
    assert check() == "stale" and h.jobs == []


def test_the_quiet_window_starts_a_speculation_when_nothing_newer_came(state, demo):
    h = Harness(state, demo)
    assert h.partial("what are your hours", "", 1) == "waiting"
    assert h.partial("what are your hours today", "", 2) == "waiting"
    first, second = h.timers
    assert first[1]() == "stale"  # a newer partial came within the window
    assert second[1]() == "started" and len(h.jobs) == 1
    # Where the recognizer reports a stable part, only its catching up starts one: no timer.
    assert h.partial("what are your hours today please", "what are your", 3) == "noted" and len(h.timers) == 2


def test_out_of_order_late_and_disabled_partials(state, demo):
    h = Harness(state, demo)
    assert h.partial("what are your hours", "what are your hours", 5) == "started"
    assert h.partial("what are", "what", 3) == "stale"  # an older SequenceNumber arriving late
    assert h.partial("what are your hours", "what are your hours", 6, turn=1) == "stale"  # for a past turn
    off = dataclasses.replace(demo, speculate=False)
    assert h.partial("anything else", "anything else", 7, business=off) == "off"
    state.update_call(SID, lambda c: {**c, "arm": "control"}, 600)
    assert h.partial("anything else", "anything else", 8) == "off"


def test_at_most_one_live_speculation_and_a_bounded_number_per_turn(state, demo):
    h = Harness(state, demo)
    assert h.partial("book a cleaning", "book a cleaning", 1) == "started"
    first = Speculation.from_dict(state.get_turn(SID, SLOT)).gen
    assert h.partial("book a cleaning please", "book a cleaning please", 2) == "started"  # replaces the first
    assert h.partial("book a cleaning please now", "book a cleaning please now", 3) == "limit"
    assert MAX_PER_TURN == 2
    jobs = list(h.jobs)
    h.run_jobs()
    spec = Speculation.from_dict(state.get_turn(SID, SLOT))
    assert spec.gen == first + 1 and spec.key == speech_key("book a cleaning please") and spec.status == "done"
    assert h.clipped == ["You said book a cleaning please.", "Anything else?"]  # the first was fenced out
    assert len(jobs) == 2
    settled = h.spec.settle(SID, 2, "Book a cleaning, please.", history_len=2)
    assert settled.outcome == ADOPTED and settled.started == 2


def test_the_stream_is_read_as_the_model_writes_whatever_the_synthesis_backlog():
    """A slow voice must not hold the model's stream (its own deadline would run out mid-reply)."""
    log: list = []
    texts = ["One.", "Two.", "Three.", "Four."]
    exhausted = threading.Event()

    class Watched(Stream):
        def __next__(self):
            try:
                return super().__next__()
            except StopIteration:
                exhausted.set()
                raise

    stream = Watched(texts, Reply(" ".join(texts)), log)
    gate = threading.Event()
    sink = RecordingSink()
    result: list[bool] = []

    def make_clip(text):
        gate.wait(10)
        return clip_of(text)

    with ThreadPoolExecutor(max_workers=4) as synth:
        runner = threading.Thread(target=lambda: result.append(produce(
            stream, splice="sentence", make_clip=make_clip, sink=sink, synth=synth, per_turn=1)))
        runner.start()
        assert exhausted.wait(10)  # the whole reply was read while the first clip still waits
        assert log.count("next") == len(texts) + 1
        assert sink.pieces == [] and sink.log == []  # nothing playable yet: nothing written
        gate.set()
        runner.join(10)
    assert result == [True] and all(p.get("url") for p in sink.pieces)


class BlockedJobs:
    """Real-turn stand-ins for a real pool: each job says it started, then holds its thread until released."""

    def __init__(self) -> None:
        self.started: dict[str, threading.Event] = {}
        self.release = threading.Event()

    def job(self, name: str):
        self.started[name] = threading.Event()

        def run() -> str:
            self.started[name].set()
            assert self.release.wait(10)
            return name

        return run


def test_a_speculation_never_takes_the_turn_thread_a_real_turn_needs(state, demo):
    pool = BoundedPool(workers=2, queue=4, name="test-turn")
    h = Harness(state, demo)
    h.spec.start_job = lambda fn, *args: start_on_pool(pool, fn, *args)
    real = BlockedJobs()
    try:
        first = pool.try_submit(real.job("turn 1"))
        assert first is not None and real.started["turn 1"].wait(10)
        # One thread is idle, but it is the last one: the speculation is refused, not started or queued.
        assert h.partial("what time do you open", "what time do you open", 1) == "refused"
        assert pool.in_flight == 1
        spec = Speculation.from_dict(state.get_turn(SID, SLOT))
        assert (spec.status, spec.error) == ("failed", "pool full")
        second = pool.try_submit(real.job("turn 2"))  # the next real turn gets that thread at once
        assert second is not None and real.started["turn 2"].wait(10)
        real.release.set()
        assert (first.result(10), second.result(10)) == ("turn 1", "turn 2")
        # With the pool idle again the speculation may run (the reserve thread stays free meanwhile).
        assert h.partial("what time do you open", "what time do you open", 2) == "started"
    finally:
        real.release.set()
        pool.shutdown(wait=True)
    spec = Speculation.from_dict(state.get_turn(SID, SLOT))
    assert spec.status == "done" and spec.reply == "You said what time do you open. Anything else?"


def test_spare_submission_never_queues_and_leaves_the_reserve_idle():
    pool = BoundedPool(workers=4, queue=2, name="test-spare")
    real = BlockedJobs()
    try:
        held = [pool.try_submit(real.job(f"turn {i}")) for i in (1, 2)]
        assert all(held) and all(real.started[f"turn {i}"].wait(10) for i in (1, 2))
        extra = pool.try_submit_spare(real.job("spec 1"), reserve=1)  # 3 of 4 threads busy, one left idle
        assert extra is not None and real.started["spec 1"].wait(10)
        assert pool.try_submit_spare(real.job("spec 2"), reserve=1) is None  # would take the last thread
        assert pool.in_flight == 3 and pool.refused == 0
        last = [pool.try_submit(real.job(f"turn {i}")) for i in (3, 4, 5)]  # real turns: the last thread, then the queue
        assert all(last) and pool.in_flight == 6
        assert pool.try_submit_spare(real.job("spec 3"), reserve=0) is None  # nothing idle: never queued
        real.release.set()
        assert [f.result(10) for f in (*held, extra, *last)] == ["turn 1", "turn 2", "spec 1", "turn 3", "turn 4",
                                                                 "turn 5"]
    finally:
        real.release.set()
        pool.shutdown(wait=True)
    assert spare_reserve(2) == 1 and spare_reserve(48) == 12


def test_a_partial_that_changes_nothing_writes_nothing(state, demo):
    h = Harness(state, demo)
    assert h.partial("what time do", "what", 1) == "noted"  # the call's first stable part: recorded once
    assert Speculation.from_dict(state.get_turn(SID, SLOT)).stable_seen
    assert h.partial("what time do you", "what time", 2) == "noted"
    assert Speculation.from_dict(state.get_turn(SID, SLOT)).seq == 1  # read and dropped: no write per partial
    assert h.partial("what time do you open", "what time do you open", 3) == "started"
    spec = Speculation.from_dict(state.get_turn(SID, SLOT))
    assert (spec.seq, spec.text, spec.count) == (3, "what time do you open", 1)  # noted and started in one write
    assert h.partial("what time do you open", "what time do you open", 4) == "already"
    assert Speculation.from_dict(state.get_turn(SID, SLOT)).seq == 3  # "already": nothing written either


def test_without_a_stable_part_an_incomplete_partial_still_fences_the_quiet_window(state, demo):
    h = Harness(state, demo)
    assert h.partial("what are your hours", "", 1) == "waiting"
    assert h.partial("what are your hours and", "", 2) == "noted"  # recorded: the caller is still speaking
    (_, check), = h.timers
    assert check() == "stale" and h.jobs == []


def test_a_stable_part_ends_quiet_windows_for_the_call(state, demo):
    h = Harness(state, demo)
    assert h.partial("what time", "", 1) == "waiting"  # short, no stable part yet: a quiet window is armed
    assert h.partial("what time do you open on", "what time do you", 2) == "noted"  # Twilio reports stable parts
    (_, check), = h.timers
    assert check() == "stale" and h.jobs == []  # the early window never starts a speculation on "what time"
    assert h.partial("what time do you open on sunday", "", 3) == "noted" and len(h.timers) == 1  # no more windows


def test_a_turn_sink_reports_the_first_moment_the_answer_can_be_played_not_its_first_piece():
    from app.voice import turn as T
    from app.voice.answer import Progress, TurnSink

    seen: list[float] = []
    writes: list = []
    record = [T.start(T.new("when", started=0.0, host="h", now=0.0, history_len=0), "h")]

    def write(fn):  # the engine's fenced write: apply, store, return the turn as written
        writes.append(fn)
        record[0] = fn(record[0])
        return record[0]

    sink = TurnSink(write, (SpeculationDropped,), origin=0.0, on_first_piece=seen.append)
    texts = ("We open at~", "~9 am.", "Bye.")
    sink.progress(Progress(added=texts, ready=((0, {"text": texts[0], "url": "/a"}),)))
    assert seen == []  # "We open at" runs on into "9 am": nothing can be played yet
    sink.progress(Progress(ready=((2, {"text": texts[2], "url": "/c"}),)))
    assert seen == []
    sink.progress(Progress(ready=((1, {"text": texts[1], "url": "/b"}),)))
    assert len(seen) == 1 and seen[0] > 0 and len(writes) == 3
    sink.progress(Progress(reply=("We open at 9 am. Bye.", "continue", 1.0, None), done=True))
    assert len(seen) == 1 and sink.added == 3


def test_the_write_that_makes_the_answer_playable_records_when_in_the_turn():
    from app.voice import turn as T
    from app.voice.answer import Progress, TurnSink

    now = [100.0]
    record = [T.start(T.new("when", started=100.0, host="h", now=100.0, history_len=0), "h")]

    def write(fn):
        record[0] = fn(record[0])
        return record[0]

    sink = TurnSink(write, (SpeculationDropped,), origin=99.5, clock=lambda: now[0])
    now[0] = 100.4
    sink.progress(Progress(added=("We open at~", "~9 am."), ready=((0, {"text": "We open at~", "url": "/a"}),)))
    assert "first_playable_ms" not in record[0].extra  # "We open at" runs on: nothing playable yet
    now[0] = 101.25
    sink.progress(Progress(ready=((1, {"text": "~9 am.", "url": "/b"}),)))
    assert record[0].extra["first_playable_ms"] == 1250.0  # from the turn's start, not the job's origin
    now[0] = 102.0
    sink.progress(Progress(added=("Bye.",), ready=((2, {"text": "Bye.", "url": "/c"}),)))
    assert record[0].extra["first_playable_ms"] == 1250.0  # kept once
    assert T.first_playable(record[0], 5.0).extra["first_playable_ms"] == 1250.0
    assert T.first_playable(T.new("x", started=0.0, host="h", now=0.0, history_len=0), -3.0).extra == {
        "first_playable_ms": 0.0}
