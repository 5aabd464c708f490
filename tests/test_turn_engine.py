"""The turn engine, deterministically: a fake clock, a hand-driven pool, a fake heartbeat table.

Nothing here sleeps to synchronize: jobs run when the test runs them (``ManualPool.run_next``),
time moves when the test moves it, and "another process" is a second engine with its own owner
over the same state store. The fencing tests run on diskcache and on a real redis-server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from app.errors import FencedOut
from app.responders.base import Reply
from app.state import RedisCallState
from app.voice import turn as T
from app.voice.flow import CallFlow, Urls
from app.voice.turn import Turn
from app.voice.turns import Liveness, TurnEngine
from tests.conftest import new_call_sid
from tests.fakes import ToneProvider
from tests.redis_support import RedisServer
from tests.twiml_support import verbs

BASE = "http://localhost"
ANSWER = "Here is your answer. Anything else?"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualPool:
    """A pool whose jobs run only when the test says so; ``capacity`` jobs at most (then it refuses)."""

    def __init__(self, capacity: int = 100) -> None:
        self.capacity = capacity
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...], Future]] = []

    def try_submit(self, fn: Callable[..., Any], /, *args: Any) -> Future | None:
        if len(self.jobs) >= self.capacity:
            return None
        future: Future = Future()
        self.jobs.append((fn, args, future))
        return future

    def run_next(self) -> None:
        fn, args, future = self.jobs.pop(0)
        future.set_result(fn(*args))

    def run_all(self) -> None:
        while self.jobs:
            self.run_next()


class FakeLiveness:
    """Heartbeats as a set of live owners (what the state store's ``proc:`` leases say in production)."""

    def __init__(self, alive: set[str]) -> None:
        self.live = alive

    def ensure(self) -> None:
        pass

    def alive(self, owner: str | None) -> bool:
        return owner in self.live

    def close(self) -> None:
        pass


class CountingResponder:
    """Answers ANSWER; records each history it was asked with; ``during`` runs inside the call (a hook)."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.during: Callable[[], None] | None = None

    def reply(self, business, history, utterance):
        self.calls.append([dict(h) for h in history] + [{"role": "caller", "text": utterance}])
        if self.during is not None:
            self.during()
        return Reply(ANSWER)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["diskcache", "redis"])
def state_url(request, tmp_path) -> str:
    if request.param == "diskcache":
        return str(tmp_path / "state")
    server: RedisServer = request.getfixturevalue("redis_server")
    with RedisCallState(server.url) as admin:
        admin._r.flushall()
    return server.url


class Host:
    """One 'process': an engine with its own owner, pool and clock over the shared state of ``app``."""

    def __init__(self, app, name: str, live: set[str], clock: FakeClock) -> None:
        self.rt = app.extensions["warmline"]
        self.pool = ManualPool()
        self.engine = TurnEngine(_WithPool(self.rt, self.pool), clock=clock, liveness=FakeLiveness(live))
        self.engine._owner = (__import__("os").getpid(), name)
        self.flow = CallFlow(self.engine.rt, engine=self.engine)


class _WithPool:
    """The runtime, but with this host's pool."""

    def __init__(self, rt, pool) -> None:
        self._rt = rt
        self.pool = pool

    def __getattr__(self, name):
        return getattr(self._rt, name)


@pytest.fixture
def rig(make_app, state_url):
    responder = CountingResponder()
    app = make_app(runtime={"providers": {"piper": ToneProvider()}, "responder": responder}, state_url=state_url,
                   lease_s=1.0, instant_budget_ms=0)
    clock = FakeClock()
    live = {"host-a", "host-b"}
    a, b = Host(app, "host-a", live, clock), Host(app, "host-b", live, clock)
    demo = a.rt.businesses.get("demo")
    yield app, demo, responder, clock, live, a, b
    app.extensions["warmline"].shutdown()


def start_turn(host: Host, demo, call_sid: str, utterance: str = "question") -> Turn:
    call = host.engine.caller_said(demo, call_sid, utterance)
    return host.engine.begin(demo, call_sid, utterance, t0=host.engine.clock(), call=call)


def history(host: Host, call_sid: str) -> list[dict[str, Any]]:
    return (host.rt.state.get_call(call_sid) or {}).get("history", [])


# --- leases mean "running" ------------------------------------------------------------------------
def test_a_job_queued_past_its_lease_is_not_run_twice(rig):
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    turn = start_turn(a, demo, call_sid)
    assert (turn.status, turn.host, turn.gen) == (T.QUEUED, "host-a", 0)
    clock.advance(5 * a.rt.settings.lease_s)  # five leases (still inside the turn deadline): A is just busy
    for host in (a, b, a, b):  # hops on both hosts look at it
        seen = host.engine.adopt_if_orphaned(demo, call_sid, 1, a.engine.get(call_sid, 1))
        assert (seen.status, seen.host, seen.gen) == (T.QUEUED, "host-a", 0)
    assert len(a.pool.jobs) == 1 and b.pool.jobs == []
    a.pool.run_all()
    done = a.engine.get(call_sid, 1)
    assert (done.status, done.gen, done.text) == (T.DONE, 1, ANSWER)
    assert len(responder.calls) == 1


def test_a_queued_turn_on_a_dead_host_is_adopted_once_and_the_old_job_never_starts(rig):
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    start_turn(a, demo, call_sid)
    live.discard("host-a")  # host A's heartbeat is gone (the process died with the job in its queue)
    adopted = b.engine.adopt_if_orphaned(demo, call_sid, 1, b.engine.get(call_sid, 1))
    assert (adopted.status, adopted.host, adopted.gen, adopted.adopted) == (T.QUEUED, "host-b", 1, 1)
    again = b.engine.adopt_if_orphaned(demo, call_sid, 1, b.engine.get(call_sid, 1))
    assert again.gen == 1 and len(b.pool.jobs) == 1  # B is alive: nobody adopts from it
    a.pool.run_all()  # had A only been slow, its queued job now finds the turn is not its own
    assert responder.calls == [] and b.engine.get(call_sid, 1).status == T.QUEUED
    b.pool.run_all()
    assert (b.engine.get(call_sid, 1).status, b.engine.get(call_sid, 1).gen) == (T.DONE, 2)
    assert len(responder.calls) == 1


def test_a_running_job_whose_owner_is_adopted_away_stops_at_its_next_write(rig):
    """The stale generation's write is refused: A's reply never lands in the turn B now runs."""
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    start_turn(a, demo, call_sid)

    def a_is_declared_dead_mid_call() -> None:
        responder.during = None
        live.discard("host-a")
        b.engine.adopt_if_orphaned(demo, call_sid, 1, b.engine.get(call_sid, 1))

    responder.during = a_is_declared_dead_mid_call
    a.pool.run_all()  # A starts (gen 1), asks the responder; meanwhile B adopts (gen 2); A's write is fenced out
    turn = a.engine.get(call_sid, 1)
    assert (turn.status, turn.gen, turn.host, turn.text) == (T.QUEUED, 2, "host-b", None)
    with pytest.raises(FencedOut):
        a.engine._write(call_sid, 1, 1, lambda t: T.complete(t))
    b.pool.run_all()
    turn = b.engine.get(call_sid, 1)
    assert (turn.status, turn.gen, turn.text) == (T.DONE, 3, ANSWER)
    assert len(responder.calls) == 2 and responder.calls[0] == responder.calls[1]  # same history, one writer
    assert history(a, call_sid) == [{"role": "caller", "text": "question"}]  # nothing committed before it is heard


# --- cancellation -------------------------------------------------------------------------------
def test_a_job_whose_turn_ended_writes_nothing_and_appends_nothing(rig):
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    start_turn(a, demo, call_sid)
    before: dict[str, Any] = {}

    def deadline_fallback_while_the_ai_thinks() -> None:
        # the hop at the deadline apologises (nothing else to say) and ends the turn
        with app.test_request_context():
            v = verbs(b.flow._fallback(demo, Urls(BASE, "demo", call_sid), 1, b.engine.get(call_sid, 1), 0))
        assert v[0][2] == demo.prompt("apology")
        before["turn"] = a.rt.state.get_turn(call_sid, 1)

    responder.during = deadline_fallback_while_the_ai_thinks
    a.pool.run_all()
    after = a.rt.state.get_turn(call_sid, 1)
    assert after == before["turn"]  # the late reply wrote nothing: no text, no pieces
    turn = Turn.from_dict(after)
    assert (turn.status, turn.ended, turn.text, turn.pieces) == (T.ABANDONED, "apology", None, None)
    assert history(a, call_sid) == [{"role": "caller", "text": "question"},
                                    {"role": "agent", "text": demo.prompt("apology")}]  # what was heard, only


def test_a_job_whose_call_ended_writes_nothing(rig):
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    start_turn(a, demo, call_sid)
    responder.during = lambda: b.flow.status(call_sid)  # the status callback: the caller hung up
    a.pool.run_all()
    assert a.rt.state.get_turn(call_sid, 1) is None and a.rt.state.get_call(call_sid) is None


def test_a_queued_job_whose_turn_ended_never_calls_the_responder(rig):
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    start_turn(a, demo, call_sid)
    assert a.engine.end(call_sid, 1, "apology", demo.prompt("apology"), 8000.0) is not None
    assert a.engine.end(call_sid, 1, "apology", demo.prompt("apology"), 8000.0) is None  # once only
    a.pool.run_all()
    assert responder.calls == [] and a.engine.get(call_sid, 1).status == T.ABANDONED


def test_a_job_that_waited_past_the_deadline_does_not_start(rig):
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    start_turn(a, demo, call_sid)
    clock.advance(a.rt.settings.turn_deadline_s)
    a.pool.run_all()
    turn = a.engine.get(call_sid, 1)
    assert responder.calls == [] and (turn.status, turn.error) == (T.FAILED, "waited in the queue past the turn deadline")


def test_the_agent_line_enters_the_history_when_it_is_heard(rig):
    app, demo, responder, clock, live, a, b = rig
    call_sid = new_call_sid()
    urls = Urls(BASE, "demo", call_sid)
    start_turn(a, demo, call_sid)
    a.pool.run_all()
    assert history(a, call_sid) == [{"role": "caller", "text": "question"}]  # replied, not yet heard
    with app.test_request_context():
        v = verbs(b.flow.ready(demo, urls, 1, 0))
        assert [x[0] for x in v][:2] == ["Play", "Play"]
        verbs(b.flow.ready(demo, urls, 1, 0))  # a repeated hop (Twilio re-posted it) commits nothing more
    assert history(a, call_sid) == [{"role": "caller", "text": "question"}, {"role": "agent", "text": ANSWER}]
    call = a.engine.caller_said(demo, call_sid, "and then?")
    start_turn_with = a.engine.begin(demo, call_sid, "and then?", t0=clock(), call=call)
    assert start_turn_with.history_len == 2
    a.pool.run_all()
    assert responder.calls[-1] == [{"role": "caller", "text": "question"}, {"role": "agent", "text": ANSWER},
                                   {"role": "caller", "text": "and then?"}]


# --- admission control --------------------------------------------------------------------------
def test_a_full_pool_refuses_the_turn_and_the_caller_hears_the_apology_at_once(rig):
    app, demo, responder, clock, live, a, b = rig
    a.pool.capacity = 0
    call_sid = new_call_sid()
    with app.test_request_context():
        v = verbs(a.flow.process(demo, Urls(BASE, "demo", call_sid), "question", clock()))
    assert v[0] == ("Say", {"voice": "Polly.Joanna-Neural", "language": "en-US"}, demo.prompt("apology"), [])
    assert [x[0] for x in v][1:] == ["Gather", "Say", "Gather", "Say", "Hangup"]
    turn = a.engine.get(call_sid, 1)
    assert (turn.status, turn.error, turn.ended) == (T.FAILED, "overloaded: the turn pool is full", "apology")
    assert responder.calls == []


# --- the record ---------------------------------------------------------------------------------
def test_transitions_are_explicit_and_illegal_ones_raise():
    turn = T.new("hi", started=1.0, host="h", now=1.0, history_len=0)
    with pytest.raises(T.IllegalTransition):
        T.complete(turn)
    running = T.start(turn, "h")
    with pytest.raises(T.IllegalTransition):
        T.start(running, "h")
    grown = T.extend(T.replied(running, "A. B.", "continue", [{"text": "A."}], 12.0), [{"text": "B."}])
    assert [p["text"] for p in grown.pieces] == ["A.", "B."] and grown.status == T.RUNNING
    ended = T.end(grown, "fallback", "A. B.")
    assert (ended.status, ended.ended, ended.heard) == (T.ABANDONED, "fallback", "A. B.")
    with pytest.raises(T.IllegalTransition):
        T.end(ended, "fallback", "A. B.")
    with pytest.raises(T.IllegalTransition):
        T.piece_ready(ended, 0, {"text": "A.", "url": "/x"})
    assert Turn.from_dict(ended.to_dict()) == ended


def test_a_ready_prefix_never_stops_inside_running_speech():
    turn = T.extend(T.start(T.new("hi", started=1.0, host="h", now=1.0, history_len=0), "h"),
                    [{"text": t} for t in ("We open at~", "~9 am~", "~on Monday.", "Bye~", "~now.")])
    ready = lambda t, i: T.piece_ready(t, i, {"text": t.pieces[i]["text"], "url": f"/c{i}"})  # noqa: E731
    assert ready(turn, 0).ready_prefix() == []  # "We open at" runs on into "9 am": not a place to pause
    assert ready(ready(turn, 0), 1).ready_prefix() == []
    first = ready(ready(ready(turn, 0), 1), 2)
    assert [p["text"] for p in first.ready_prefix()] == ["We open at~", "~9 am~", "~on Monday."]
    assert [p["text"] for p in ready(first, 3).ready_prefix()] == ["We open at~", "~9 am~", "~on Monday."]
    failed = T.piece_ready(first, 3, {"text": "Bye~", "failed": "timeout"})  # a <Say>'d piece runs on too
    assert len(failed.ready_prefix()) == 3 and len(ready(failed, 4).ready_prefix()) == 5


# --- the heartbeat itself -------------------------------------------------------------------------
def test_liveness_heartbeat_is_seen_by_another_process_and_gone_when_released(make_app, state_url):
    app = make_app(state_url=state_url)
    state = app.extensions["warmline"].state
    mine = Liveness(state, lambda: "host-x:1:aa", lease_s=5.0)
    other = Liveness(state, lambda: "host-y:2:bb", lease_s=5.0)
    assert other.alive("host-x:1:aa") is False
    mine.ensure()
    assert other.alive("host-x:1:aa") is True and mine.alive("host-x:1:aa") is True
    mine.close()
    state.release_lease("proc:host-x:1:aa", "host-x:1:aa")
    assert other.alive("host-x:1:aa") is False


def test_liveness_on_this_host_asks_the_kernel_not_the_heartbeat(make_app):
    """A local process is alive while its pid runs (whatever its heartbeat says), dead once killed -- even
    as a zombie its parent has not reaped yet."""
    import os
    import signal
    import socket
    import subprocess

    app = make_app()
    state = app.extensions["warmline"].state
    host = socket.gethostname()
    me = Liveness(state, lambda: f"{host}:{os.getpid()}:aa", lease_s=5.0)
    child = subprocess.Popen(["sleep", "60"])
    try:
        other = f"{host}:{child.pid}:bb"
        assert me.alive(other) is True  # no heartbeat written: the kernel says it runs
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while me.alive(other) and time.monotonic() < deadline:  # dead once the kernel has killed it
            time.sleep(0.01)
        assert me.alive(other) is False
        with open(f"/proc/{child.pid}/stat") as fh:  # not reaped yet: the pid is still there, as a zombie
            assert fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        child.kill()
        child.wait()
    assert me.alive(other) is False  # reaped: gone
    assert me.alive(f"elsewhere:{os.getpid()}:cc") is False  # another host's process: by its heartbeat only


# --- the fast path ----------------------------------------------------------------------------------
def test_a_fully_cached_instant_answer_is_one_write_and_a_miss_takes_the_ordinary_path(make_app):
    """The embedded FAQ responder (instant): a fully cached answer is answered in the request, the caller's
    line and the answer land in the history together, no job, no turn record; an uncached one runs a job."""
    from app.responders.faq import FaqResponder

    pool = ManualPool()
    app = make_app(runtime={"providers": {"piper": ToneProvider()}, "responder": FaqResponder(), "pool": pool})
    rt = app.extensions["warmline"]
    demo = rt.businesses.get("demo")
    reply = FaqResponder().reply(demo, [], "what are your opening hours")
    from app.speech.pieces import split_pieces

    for text in split_pieces(reply.text, demo.splice):
        rt.synthesizer.clip(text, demo.voice)
    flow = CallFlow(rt)
    call_sid = new_call_sid()
    writes: list[str] = []
    real_update_call, real_put_turn = rt.state.update_call, rt.state.put_turn
    rt.state.update_call = lambda *a, **k: writes.append("call") or real_update_call(*a, **k)
    rt.state.put_turn = lambda *a, **k: writes.append("turn") or real_put_turn(*a, **k)
    try:
        with app.test_request_context():
            v = verbs(flow.process(demo, Urls(BASE, "demo", call_sid), "what are your opening hours", time.time()))
        assert [x[0] for x in v][:len(split_pieces(reply.text, demo.splice))] == ["Play"] * len(
            split_pieces(reply.text, demo.splice))
        assert writes == ["call"] and pool.jobs == [] and rt.state.get_turn(call_sid, 1) is None
        assert rt.state.get_call(call_sid)["history"] == [{"role": "caller", "text": "what are your opening hours"},
                                                          {"role": "agent", "text": reply.text}]
        writes.clear()
        with app.test_request_context():  # a booking with a new name: not cached, so a job makes its clips
            flow.process(demo, Urls(BASE, "demo", call_sid), "I'd like to book an appointment", time.time())
        assert "turn" in writes and len(pool.jobs) == 1
        turn = Turn.from_dict(rt.state.get_turn(call_sid, 2))
        assert turn.status == T.RUNNING and turn.text is not None
    finally:
        rt.state.update_call, rt.state.put_turn = real_update_call, real_put_turn
    events = list(rt.events.read())
    assert events[0]["outcome"] == "instant" and events[0]["turn"] == 1
