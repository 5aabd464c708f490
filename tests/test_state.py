"""The shared call state: the same tests against diskcache and a real redis-server."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import FencedOut, StateError
from app.ids import lease_call, turn_lease_name
from app.state import (
    CallState,
    DiskCallState,
    RedisCallState,
    new_call,
    new_turn,
    open_state,
)
from tests.redis_support import RedisServer

SID = "CA" + "0" * 31 + "1"
OTHER = "CA" + "0" * 31 + "2"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["disk", "redis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "disk":
        return str(tmp_path / "state")
    server: RedisServer = request.getfixturevalue("redis_server")
    with RedisCallState(server.url) as admin:
        admin._r.flushall()
    return server.url


@pytest.fixture
def state(location: str) -> Iterator[CallState]:
    st = open_state(location)
    yield st
    st.close()


def bump(call: dict | None) -> dict:
    call = dict(call or new_call("demo", "warmline", created=1.0))
    call["turn"] += 1
    return call


# --- round trips ------------------------------------------------------------------------------


def test_open_state_picks_the_backend(location: str) -> None:
    st = open_state(location)
    try:
        assert isinstance(st, RedisCallState if location.startswith("redis://") else DiskCallState)
        st.ping()
    finally:
        st.close()


def test_call_round_trip(state: CallState) -> None:
    assert state.get_call(SID) is None
    seen: list[dict | None] = []

    def create(call: dict | None) -> dict:
        seen.append(call)
        record = new_call("demo", "control", created=1700000000.5)
        record["history"].append({"role": "caller", "text": "Héllo — “quotes” 🙂"})
        record["extra"] = {"booking": {"name": "Sam", "slots": [1, 2.5, None, True]}}
        return record

    stored = state.update_call(SID, create, 60)
    assert seen == [None]  # fn is told the call is new
    expected = {
        "business": "demo", "arm": "control", "created": 1700000000.5,
        "history": [{"role": "caller", "text": "Héllo — “quotes” 🙂"}], "last_filler": -1, "turn": 0,
        "extra": {"booking": {"name": "Sam", "slots": [1, 2.5, None, True]}},
    }
    assert stored == expected
    assert state.get_call(SID) == expected
    assert state.get_call(OTHER) is None

    updated = state.update_call(SID, bump, 60)
    assert updated["turn"] == 1
    assert state.get_call(SID) == {**expected, "turn": 1}


def test_update_without_create_leaves_missing_records_missing(state: CallState) -> None:
    calls: list[object] = []
    assert state.update_call(SID, lambda c: calls.append(c) or {"x": 1}, 60, create=False) is None
    assert state.update_turn(SID, 1, lambda r: calls.append(r) or {"x": 1}, 60, create=False) is None
    assert calls == []
    assert state.get_call(SID) is None and state.get_turn(SID, 1) is None
    assert state.count_entries() == 0
    state.update_call(SID, bump, 60)
    assert state.update_call(SID, bump, 60, create=False)["turn"] == 2


def test_turn_round_trip(state: CallState) -> None:
    assert state.get_turn(SID, 1) is None
    record = new_turn(started=100.0)
    before = time.time()
    state.put_turn(SID, 1, record, 60)
    got = state.get_turn(SID, 1)
    assert got is not None
    assert before <= got["updated"] <= time.time()  # every write stamps 'updated'
    assert {k: v for k, v in got.items() if k != "updated"} == {
        "status": "pending", "text": None, "action": None, "sentences": [], "error": None, "timings": {},
        "started": 100.0,
    }
    assert state.get_turn(SID, 2) is None and state.get_turn(OTHER, 1) is None

    sentence = {"text": "We're open.", "url": "http://x/a.wav", "key": "ab" * 32, "hit": True, "source": "index",
                "duration_s": 1.25}

    def finish(rec: dict | None) -> dict:
        assert rec is not None
        return {**rec, "status": "done", "text": "We're open.", "action": "continue", "sentences": [sentence, None]}

    done = state.update_turn(SID, 1, finish, 60)
    assert done["status"] == "done" and done["sentences"] == [sentence, None]
    assert state.get_turn(SID, 1) == done
    assert state.update_turn(SID, 2, lambda r: {"status": "running", "was": r}, 60)["was"] is None


def test_callback_errors_propagate_unchanged_and_write_nothing(state: CallState) -> None:
    state.update_call(SID, bump, 60)

    def boom(call: dict | None) -> dict:
        raise OSError("not a backend error")

    with pytest.raises(OSError, match="not a backend error"):
        state.update_call(SID, boom, 60)
    with pytest.raises(KeyError):
        state.update_turn(SID, 1, lambda r: {"a": 1}["missing"], 60)
    assert state.get_call(SID)["turn"] == 1
    assert state.get_turn(SID, 1) is None


def test_non_json_records_are_refused(state: CallState) -> None:
    with pytest.raises(TypeError):
        state.update_call(SID, lambda c: {"when": object()}, 60)
    with pytest.raises(TypeError):
        state.put_turn(SID, 1, ["not", "a", "dict"], 60)  # type: ignore[arg-type]
    assert state.get_call(SID) is None and state.get_turn(SID, 1) is None


def test_arguments_are_validated(state: CallState) -> None:
    with pytest.raises(ValueError):
        state.get_call("CA:../x")
    with pytest.raises(ValueError):
        state.update_call(SID, bump, 0)
    with pytest.raises(ValueError):
        state.get_turn(SID, -1)
    with pytest.raises(ValueError):
        state.acquire_lease("", "me", 5)


# --- atomicity --------------------------------------------------------------------------------


def _hammer(location: str, worker: int, threads: int, rounds: int) -> None:
    """Child process: ``threads`` threads each add ``rounds`` increments and history items."""
    st = open_state(location)
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            for i in range(rounds):
                def add(call: dict | None, item: str = f"{worker}-{t}-{i}") -> dict:
                    call = dict(call or new_call("demo", "warmline"))
                    call["turn"] += 1
                    call["history"] = call["history"] + [{"role": "caller", "text": item}]
                    return call

                st.update_call(SID, add, 120)
                st.update_turn(SID, 1, lambda r: {"n": (r or {}).get("n", 0) + 1}, 120)
        except Exception as exc:  # noqa: BLE001 - the child's boundary: reported through the exit code
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    st.close()
    if errors:
        raise SystemExit(f"{len(errors)} thread(s) failed: {errors[0]!r}")


def test_updates_are_atomic_across_threads_and_processes(state: CallState, location: str) -> None:
    procs_n, threads, rounds = 2, 8, 12
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(location, w, threads, rounds)) for w in range(procs_n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    assert [p.exitcode for p in procs] == [0] * procs_n
    total = procs_n * threads * rounds
    call = state.get_call(SID)
    assert call["turn"] == total
    items = [h["text"] for h in call["history"]]
    assert len(items) == total and len(set(items)) == total
    assert state.get_turn(SID, 1)["n"] == total


# --- TTLs ------------------------------------------------------------------------------------


def test_entries_expire_after_their_ttl(state: CallState) -> None:
    state.update_call(SID, bump, 0.5)
    state.put_turn(SID, 1, new_turn(), 0.5)
    assert state.acquire_lease("job", "a", 0.5)
    state.update_call(OTHER, bump, 30)
    assert state.count_calls() == 2
    time.sleep(0.8)
    assert state.get_call(SID) is None
    assert state.get_turn(SID, 1) is None
    assert state.lease_owner("job") is None
    assert state.acquire_lease("job", "b", 5)  # an expired lease is free
    assert state.count_calls() == 1
    assert state.get_call(OTHER)["turn"] == 1


def test_every_update_refreshes_the_ttl(state: CallState) -> None:
    state.update_call(SID, bump, 0.8)
    state.put_turn(SID, 1, new_turn(), 0.8)
    started = time.monotonic()
    for _ in range(3):
        time.sleep(0.3)
        state.update_call(SID, bump, 0.8)
        state.update_turn(SID, 1, lambda r: r, 0.8)
    assert time.monotonic() - started > 0.8
    # older than its 0.8 s TTL: alive only because each write reset the TTL
    assert state.get_call(SID)["turn"] == 4
    assert state.get_turn(SID, 1)["status"] == "pending"
    time.sleep(1.0)
    assert state.get_call(SID) is None and state.get_turn(SID, 1) is None


# --- leases ----------------------------------------------------------------------------------


def test_lease_exclusivity_expiry_and_takeover(state: CallState) -> None:
    name = turn_lease_name(SID, 3)
    assert name == f"turn:{SID}:3" and lease_call(name) == SID
    assert state.lease_owner(name) is None
    started = time.monotonic()
    assert state.acquire_lease(name, "worker-a", 1.0) is True
    assert state.acquire_lease(name, "worker-b", 1.0) is False
    assert state.acquire_lease(name, "worker-a", 1.0) is True  # re-entrant for the holder
    assert state.lease_owner(name) == "worker-a"
    assert state.renew_lease(name, "worker-b", 5) is False
    assert state.release_lease(name, "worker-b") is False
    assert state.lease_owner(name) == "worker-a"
    time.sleep(0.5)
    assert state.renew_lease(name, "worker-a", 1.0) is True  # now expires ~1.5 s after the start
    time.sleep(0.6)
    assert time.monotonic() - started > 1.0
    assert state.lease_owner(name) == "worker-a"  # would have expired without the renewal
    assert state.acquire_lease(name, "worker-b", 1.0) is False
    time.sleep(1.0)
    assert state.lease_owner(name) is None  # worker-a "died": the lease expired
    assert state.acquire_lease(name, "worker-b", 5) is True  # takeover
    assert state.renew_lease(name, "worker-a", 5) is False
    assert state.release_lease(name, "worker-a") is False
    assert state.lease_owner(name) == "worker-b"
    assert state.release_lease(name, "worker-b") is True
    assert state.lease_owner(name) is None
    assert state.release_lease(name, "worker-b") is False


def test_only_one_of_many_concurrent_acquirers_wins(state: CallState) -> None:
    barrier = threading.Barrier(12)
    results: dict[int, bool] = {}

    def grab(i: int) -> None:
        barrier.wait()
        results[i] = state.acquire_lease("precompute", f"owner-{i}", 30)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, won in results.items() if won]
    assert len(results) == 12 and len(winners) == 1
    assert state.lease_owner("precompute") == f"owner-{winners[0]}"


# --- delete and counts ------------------------------------------------------------------------


def test_delete_removes_the_call_its_turns_and_leases(state: CallState) -> None:
    for sid in (SID, OTHER):
        state.update_call(sid, bump, 60)
        for n in (1, 2, 3):
            state.put_turn(sid, n, new_turn(), 60)
        assert state.acquire_lease(turn_lease_name(sid, 2), "w", 60)
        assert state.acquire_lease(f"call:{sid}:status", "w", 60)
    assert state.acquire_lease("nightly", "w", 60)
    assert state.count_calls() == 2
    entries_before = state.count_entries()

    state.delete_call(SID)
    assert state.get_call(SID) is None
    assert [state.get_turn(SID, n) for n in (1, 2, 3)] == [None, None, None]
    assert state.lease_owner(turn_lease_name(SID, 2)) is None
    assert state.lease_owner(f"call:{SID}:status") is None
    assert state.count_calls() == 1
    assert state.get_call(OTHER)["turn"] == 1
    assert state.get_turn(OTHER, 3) is not None
    assert state.lease_owner(turn_lease_name(OTHER, 2)) == "w"
    assert state.lease_owner("nightly") == "w"
    assert state.count_entries() < entries_before

    state.delete_call(OTHER)
    state.delete_call(OTHER)  # idempotent
    assert state.count_calls() == 0
    assert state.release_lease("nightly", "w")
    assert state.count_entries() == 0  # nothing left behind


# --- waiting ---------------------------------------------------------------------------------


def test_wait_turn_returns_when_the_condition_holds(state: CallState) -> None:
    state.put_turn(SID, 1, new_turn(), 60)

    def finish_later() -> None:
        time.sleep(0.2)
        state.update_turn(SID, 1, lambda r: {**r, "status": "done"}, 60)

    t = threading.Thread(target=finish_later)
    started = time.monotonic()
    t.start()
    record = state.wait_turn(SID, 1, lambda r: r is not None and r["status"] == "done", timeout_s=5, poll_s=0.02)
    elapsed = time.monotonic() - started
    t.join()
    assert record["status"] == "done"
    assert 0.15 <= elapsed < 1.5


def test_wait_turn_times_out_with_the_last_record(state: CallState) -> None:
    state.put_turn(SID, 1, new_turn(), 60)
    started = time.monotonic()
    record = state.wait_turn(SID, 1, lambda r: r is not None and r["status"] == "done", timeout_s=0.3)
    elapsed = time.monotonic() - started
    assert record["status"] == "pending"
    assert 0.3 <= elapsed < 1.0
    assert state.wait_turn(SID, 9, lambda r: r is not None, timeout_s=0.1) is None
    assert state.wait_turn(SID, 1, lambda r: True, timeout_s=0)["status"] == "pending"


def test_a_write_wakes_a_waiter_at_once_not_at_its_next_poll(state: CallState, location: str) -> None:
    """Notified waits: a writer in this process, and (Redis) a writer with its own connection -- another process's."""
    state.put_turn(SID, 1, new_turn(), 60)
    writers = [state] + ([open_state(location)] if location.startswith("redis://") else [])
    try:
        for i, writer in enumerate(writers, start=2):
            ready = threading.Event()

            def finish(writer=writer, i=i) -> None:
                ready.wait(5)
                writer.update_turn(SID, 1, lambda r: {**r, "status": f"done-{i}"}, 60)

            t = threading.Thread(target=finish)
            t.start()
            started = time.monotonic()
            ready.set()
            record = state.wait_turn(SID, 1, lambda r, i=i: r is not None and r["status"] == f"done-{i}",
                                     timeout_s=10, poll_s=5.0)
            elapsed = time.monotonic() - started
            t.join()
            assert record["status"] == f"done-{i}"
            assert elapsed < 2.5  # a 5 s poll would have waited 5 s: the write itself woke the waiter
    finally:
        for writer in writers[1:]:
            writer.close()


def test_the_first_wait_of_a_process_starts_after_redis_confirmed_its_subscription(redis_server: RedisServer) -> None:
    """Else a change published in between reaches nobody and the first waiter sleeps out a whole poll."""
    with RedisCallState(redis_server.url) as admin:
        admin._r.flushall()
    state, writer = open_state(redis_server.url), open_state(redis_server.url)
    try:
        state.put_turn(SID, 1, new_turn(), 60)
        assert not state._subscribed.is_set()
        state._listen()
        assert state._subscribed.is_set()  # _listen returned only once the server had confirmed it
        writer.update_turn(SID, 1, lambda r: {**r, "status": "done"}, 60)  # another connection's write
        started = time.monotonic()
        record = state.wait_turn(SID, 1, lambda r: r["status"] == "done", timeout_s=10, poll_s=5.0)
        assert record["status"] == "done" and time.monotonic() - started < 2.5
    finally:
        state.close()
        writer.close()


# --- fencing ---------------------------------------------------------------------------------


def test_a_stale_generation_write_is_refused_and_writes_nothing(state: CallState) -> None:
    state.put_turn(SID, 1, {**new_turn(), "status": "running", "gen": 3}, 60)
    calls: list[dict | None] = []

    def stale(r: dict | None) -> dict:
        calls.append(r)
        return {**r, "text": "late"}

    with pytest.raises(FencedOut):
        state.update_turn(SID, 1, stale, 60, fence={"gen": 2, "status": "running"})
    with pytest.raises(FencedOut):  # right generation, but the turn is no longer running
        state.update_turn(SID, 1, stale, 60, fence={"gen": 3, "status": "queued"})
    assert calls == [] and state.get_turn(SID, 1)["text"] is None
    written = state.update_turn(SID, 1, lambda r: {**r, "text": "current"}, 60, fence={"gen": 3, "status": "running"})
    assert written["text"] == "current" and state.get_turn(SID, 1)["text"] == "current"
    # a fenced write never creates a record
    assert state.update_turn(SID, 2, lambda r: {"gen": 1}, 60, fence={"gen": 1}) is None
    assert state.get_turn(SID, 2) is None


def test_redis_refuses_a_stale_write_that_raced_past_the_read(redis_server: RedisServer) -> None:
    """The fence is checked inside the Lua script: a generation bumped between our read and our write still wins."""
    with RedisCallState(redis_server.url) as st, RedisCallState(redis_server.url) as other:
        st._r.flushall()
        st.put_turn(SID, 1, {**new_turn(), "status": "running", "gen": 1}, 60)

        def adopt_meanwhile(r: dict | None) -> dict:
            if r["gen"] == 1:  # first attempt: another host adopts the turn before our write lands
                other.update_turn(SID, 1, lambda cur: {**cur, "gen": 2, "status": "queued"}, 60)
            return {**r, "text": "late"}

        with pytest.raises(FencedOut):
            st.update_turn(SID, 1, adopt_meanwhile, 60, fence={"gen": 1, "status": "running"})
        assert st.get_turn(SID, 1)["text"] is None and st.get_turn(SID, 1)["gen"] == 2


# --- failures --------------------------------------------------------------------------------


def test_redis_down_raises_state_error(tmp_path: Path) -> None:
    server = RedisServer().start()
    st = open_state(server.url)
    st.update_call(SID, bump, 60)
    st.put_turn(SID, 1, new_turn(), 60)
    server.stop()
    calls = [
        lambda: st.ping(),
        lambda: st.get_call(SID),
        lambda: st.update_call(SID, bump, 60),
        lambda: st.delete_call(SID),
        lambda: st.put_turn(SID, 1, new_turn(), 60),
        lambda: st.get_turn(SID, 1),
        lambda: st.update_turn(SID, 1, lambda r: r, 60),
        lambda: st.acquire_lease("x", "me", 5),
        lambda: st.renew_lease("x", "me", 5),
        lambda: st.release_lease("x", "me"),
        lambda: st.lease_owner("x"),
        lambda: st.wait_turn(SID, 1, lambda r: False, timeout_s=0.05),
        lambda: st.count_calls(),
        lambda: st.count_entries(),
    ]
    for call in calls:
        with pytest.raises(StateError):
            call()
    st.close()


def test_disk_state_on_an_unusable_path_raises_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError):
        open_state(str(blocker))
    with pytest.raises(StateError):
        open_state("")


def test_corrupt_entries_raise_state_error(state: CallState) -> None:
    if isinstance(state, DiskCallState):
        state._cache.set(f"call:{SID}", "{not json")
    else:
        state._r.set(f"warmline:call:{SID}", "[1, 2]")
    with pytest.raises(StateError, match="corrupt call"):
        state.get_call(SID)


# --- the diskcache writers' queue --------------------------------------------------------------


def test_disk_writers_of_one_process_queue_on_a_lock_bounded_by_the_timeout(tmp_path: Path) -> None:
    st = DiskCallState(tmp_path / "state", timeout_s=0.2)
    st.update_call(SID, lambda _: new_call("demo", "warmline"), 60)
    _pid, lock, _fd = st._writer
    with lock:  # another thread of this process is mid-write
        with pytest.raises(StateError, match="database locked"):
            st.update_call(SID, bump, 60)
        assert st.get_call(SID)["turn"] == 0  # reads never queue behind writers
    assert st.update_call(SID, bump, 60)["turn"] == 1
    st.close()


def test_a_forked_child_does_not_inherit_a_held_writer_lock(tmp_path: Path) -> None:
    import os

    st = DiskCallState(tmp_path / "state", timeout_s=2.0)
    st.update_call(SID, lambda _: new_call("demo", "warmline"), 60)
    _pid, lock, _fd = st._writer
    with lock:  # held by this thread at the moment of the fork
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if st.update_call(SID, bump, 60)["turn"] == 1 else 2
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert st.get_call(SID)["turn"] == 1
    st.close()


def test_a_writer_of_another_process_holds_off_writes_only_up_to_the_timeout(tmp_path: Path) -> None:
    import fcntl
    import os

    st = DiskCallState(tmp_path / "state", timeout_s=0.2)
    st.update_call(SID, lambda _: new_call("demo", "warmline"), 60)
    other = os.open(tmp_path / "state" / "writer.lock", os.O_RDWR)  # its own open file: another process's flock
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(StateError, match="database locked"):
            st.update_call(SID, bump, 60)
        assert st.get_call(SID)["turn"] == 0
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    assert st.update_call(SID, bump, 60)["turn"] == 1  # handed on as soon as it was released
    st.close()


def _write_turn_status(location: str, status: str) -> None:
    st = open_state(location)
    st.update_turn(SID, 1, lambda r: {**r, "status": status}, 60)
    st.close()


def test_another_processs_diskcache_write_wakes_a_waiter_without_its_poll(tmp_path: Path) -> None:
    """diskcache has no pub/sub: the host's processes send each other notices (the poll only backs them up)."""
    location = str(tmp_path / "state")
    st = open_state(location)
    st.put_turn(SID, 1, new_turn(), 60)
    st.wait_turn(SID, 1, lambda r: True, timeout_s=0)  # binds this process's notice socket
    writer = multiprocessing.get_context("spawn").Process(target=_write_turn_status, args=(location, "done"))
    writer.start()
    # A poll of 60 s and a timeout of 30 s: only a notice can make this return with the write seen.
    record = st.wait_turn(SID, 1, lambda r: r is not None and r["status"] == "done", timeout_s=30, poll_s=60)
    writer.join(30)
    assert writer.exitcode == 0 and record["status"] == "done"
    st.close()
