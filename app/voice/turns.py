"""The turn engine: runs turns (responder -> pieces -> clips) with their records in the shared call state.

A turn is started by the ``process`` webhook; its record (:class:`app.voice.turn.Turn`, whose module
owns every transition) lives in the shared state, never in a worker's memory, so any worker or host
can answer the ``tts-ready`` redirect.

**Who runs a turn.** A turn is ``queued`` on the pool of the process that created it (``host``,
with ``queued_at``), then ``running`` under that process (``owner``) with a new generation
``gen``. Each process keeps one heartbeat in the state store (a lease ``proc:<owner>`` renewed by a
daemon thread every ``lease_s / 4``; :class:`Liveness`; on the same host the kernel is asked
instead: the pid is running). A turn is adopted by another process only when the process holding
it -- its queue or its runner -- is gone: a job waiting in
a busy but live pool is never duplicated, however long it waits, and a dead one is picked up within
``lease_s``. Adoption bumps ``gen``, so if the old holder was only slow, not dead, its next write is
refused (fencing) and it stops; it cannot write a reply into the turn another copy produces.

**Fencing and cancellation.** Every write a job makes carries its ``gen`` and requires
``status == running`` (``fence`` of :meth:`app.state.CallState.update_turn`); a turn that ended --
answered, fell back to ``<Say>``, or the call ended and its state was deleted -- refuses it, so the
job stops at its next write and no late reply or clip lands. The job writes nothing into the
call's history: the agent's line is committed by the webhook that made the caller *hear* it
(:meth:`TurnEngine.commit`).

**Fast path.** With an instant responder (``responder.instant``: the embedded FAQ responder), the
``process`` request runs the turn itself (:meth:`TurnEngine.run_inline`): reply, index lookups,
and when every piece is a hit the whole turn is one write -- no pool hop, no wait.

Thread-safe; one engine per process. No Flask here. Times: ``clock()`` is epoch seconds
(``time.time`` by default; tests pass a fake).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from app.business import Business
from app.errors import FencedOut, StateError
from app.responders.base import Reply
from app.speech.pieces import split_pieces
from app.state import pid_alive
from app.voice import turn as T
from app.voice.answer import make_clip
from app.voice.arms import arm_for
from app.voice.turn import Turn

log = logging.getLogger("warmline.turnjob")

DEADLINE_MARGIN_S = 0.3
"""Clips must be ready this long before the turn deadline, so the hop waiting for them can still play them."""
MIN_USEFUL_S = 1.0
"""A job that would start with less than this left before the turn deadline does not start (nobody would hear it)."""


def process_lease(owner: str) -> str:
    """The name of a process's heartbeat lease (not a call's: it outlives every call)."""
    return f"proc:{owner}"


class Liveness:
    """This process's heartbeat in the shared state, and the check of another process's.

    ``ensure()`` writes the heartbeat at once and starts a daemon thread renewing it every
    ``lease_s / 4`` (in this process; again after a fork). ``alive(owner)`` is True for this
    process, else when ``owner``'s heartbeat is there. Thread-safe.
    """

    def __init__(self, state: Any, owner: Callable[[], str], lease_s: float) -> None:
        self.state = state
        self._owner = owner
        self.lease_s = lease_s
        self._pid = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def ensure(self) -> None:
        if self._pid == os.getpid() and not self._stop.is_set():
            return
        with self._lock:
            if self._pid == os.getpid() and not self._stop.is_set():
                return
            self._stop = threading.Event()
            owner = self._owner()
            self.state.acquire_lease(process_lease(owner), owner, self.lease_s)
            self._pid = os.getpid()
            threading.Thread(target=self._beat, args=(owner, self._stop), name="heartbeat", daemon=True).start()

    def _beat(self, owner: str, stop: threading.Event) -> None:
        name = process_lease(owner)
        while not stop.wait(self.lease_s / 4):
            try:
                if not self.state.renew_lease(name, owner, self.lease_s):
                    log.warning("this process's heartbeat had expired (starved?); its turns may have been adopted")
                    self.state.acquire_lease(name, owner, self.lease_s)
            except StateError as exc:
                log.warning("could not renew this process's heartbeat: %s", exc)

    def alive(self, owner: str | None) -> bool:
        """Is process ``owner`` (``host:pid:nonce``) alive? Exact on this host, by its heartbeat elsewhere.

        On this host the kernel knows: the pid exists and is not a zombie (a SIGKILLed worker its
        master has not reaped yet). A heartbeat late because its thread was starved on a loaded
        machine must not make a live local process look dead.
        """
        if not owner:
            return False
        mine = self._owner()
        if owner == mine:
            return True
        host, pid, _nonce = (owner.rsplit(":", 2) + ["", ""])[:3]
        if host == mine.rsplit(":", 2)[0] and pid.isdigit():
            return pid_alive(int(pid))
        return self.state.lease_owner(process_lease(owner)) == owner

    def close(self) -> None:
        """Stop the heartbeat and drop it (this process runs nothing any more: its turns may be adopted at once)."""
        running = self._pid == os.getpid() and not self._stop.is_set()
        self._stop.set()
        self._pid = 0
        if running:
            owner = self._owner()
            try:
                self.state.release_lease(process_lease(owner), owner)
            except StateError as exc:
                log.warning("could not drop this process's heartbeat: %s", exc)


def reply_pieces(reply: Reply, business: Business) -> list[dict[str, Any]]:
    """The reply split into piece entries; a piece holding a responder-marked value is flagged ``slot``
    (reports and the precompute plan never list it: it may be a caller's name or booking)."""
    from app.events import marked_in

    values = list(reply.marked().values())
    pieces = [{"text": p, **({"slot": True} if marked_in(p, values) else {})}
              for p in split_pieces(reply.text, business.splice, reply.marks)]
    return pieces or [{"text": business.prompt("apology")}]


class _Moved(Exception):
    """The call changed between reading it and writing the instant answer (the ordinary path runs instead)."""


class TurnEngine:
    """Starts, runs, adopts and ends turns. ``runtime`` supplies state, synthesizer, responder, pool, settings.

    ``clock``: epoch seconds. ``liveness``: who is alive (default: heartbeats in the state store).
    """

    def __init__(self, runtime: Any, *, clock: Callable[[], float] = time.time, liveness: Any = None) -> None:
        self.rt = runtime
        self.clock = clock
        self._owner: tuple[int, str] | None = None
        self.liveness = liveness or Liveness(runtime.state, lambda: self.owner, runtime.settings.lease_s)

    @property
    def owner(self) -> str:
        """This process: host (``WARMLINE_HOST_ID``, else the host name; unique per host), pid and a random nonce."""
        pid = os.getpid()
        if self._owner is None or self._owner[0] != pid:
            host = (getattr(self.rt.settings, "host_id", "") or socket.gethostname()).replace(":", "-")
            self._owner = (pid, f"{host}:{pid}:{secrets.token_hex(3)}")
        return self._owner[1]

    @property
    def ttl(self) -> float:
        return self.rt.settings.call_ttl_s

    def close(self) -> None:
        self.liveness.close()

    # --- calls -------------------------------------------------------------------------------
    def _new_call(self, business: Business, call_sid: str) -> dict[str, Any]:
        return {
            "business": business.id,
            "arm": arm_for(call_sid, use_proactive_filler=business.use_proactive_filler,
                           rollout_percent=business.rollout_percent),
            "created": time.time(), "history": [], "turn": 0, "last_filler": -1, "extra": {}, "open": None,
        }

    def ensure_call(self, business: Business, call_sid: str) -> dict[str, Any]:
        """The call's record, created (with its rollout arm) on first sight."""
        return self.rt.state.update_call(call_sid, lambda call: call or self._new_call(business, call_sid), self.ttl)

    def next_filler(self, business: Business, call_sid: str) -> str:
        """The next filler variant for this call: rotates, never the same one twice in a row."""

        def rotate(call: dict[str, Any] | None) -> dict[str, Any]:
            call = dict(call or {})
            call["last_filler"] = (call.get("last_filler", -1) + 1) % len(business.fillers)
            return call

        call = self.rt.state.update_call(call_sid, rotate, self.ttl)
        return business.fillers[call["last_filler"]]

    def caller_said(self, business: Business, call_sid: str, utterance: str) -> dict[str, Any]:
        """One write: the call (created on first sight), turn N+1 counted and open, the caller's words appended.

        Returns the call record; ``record["previous_open"]`` is the turn left open before (None
        normally): the caller spoke again before it ended, so the caller must end it.
        """

        def add(call: dict[str, Any] | None) -> dict[str, Any]:
            call = dict(call or self._new_call(business, call_sid))
            call["previous_open"] = call.get("open")
            call["turn"] = call.get("turn", 0) + 1
            call["open"] = call["turn"]
            call["history"] = list(call.get("history", [])) + [{"role": "caller", "text": utterance}]
            return call

        return self.rt.state.update_call(call_sid, add, self.ttl)

    def commit(self, call_sid: str, turn: int, heard: str, *, filler: str | None = None) -> None:
        """Append what the caller heard as the agent's line and close turn N (never re-creating an ended call).

        ``filler``: the filler the turn played, kept as the call's ``last_filler_text`` (the next turn
        does not open with the same one).
        """

        def add(call: dict[str, Any]) -> dict[str, Any]:
            call = dict(call)
            if filler:
                call["last_filler_text"] = filler
            call["history"] = list(call.get("history", [])) + [{"role": "agent", "text": heard}]
            if call.get("open") == turn:
                call["open"] = None
            return call

        self.rt.state.update_call(call_sid, add, self.ttl, create=False)

    # --- reading and webhook writes ----------------------------------------------------------
    def get(self, call_sid: str, turn: int) -> Turn | None:
        record = self.rt.state.get_turn(call_sid, turn)
        return None if record is None else Turn.from_dict(record)

    def wait(self, call_sid: str, turn: int, until: Callable[[Turn], bool], timeout_s: float) -> Turn | None:
        """Wait (notified, bounded) until ``until(turn)`` or ``timeout_s``; the last turn read."""
        record = self.rt.state.wait_turn(call_sid, turn, lambda r: r is not None and until(Turn.from_dict(r)),
                                         timeout_s=timeout_s)
        return None if record is None else Turn.from_dict(record)

    def update(self, call_sid: str, turn: int, fn: Callable[[Turn], Turn]) -> Turn | None:
        """A webhook's write (unfenced): ``fn`` is a transition of :mod:`app.voice.turn`; None if the turn is gone."""
        record = self.rt.state.update_turn(call_sid, turn, lambda r: fn(Turn.from_dict(r)).to_dict(), self.ttl,
                                           create=False)
        return None if record is None else Turn.from_dict(record)

    def end(self, call_sid: str, turn: int, outcome: str, heard: str, answer_ms: float) -> Turn | None:
        """End turn N (its job, if any, is abandoned); None when another request ended it first or it is gone."""
        try:
            return self.update(call_sid, turn, lambda t: T.end(T.answer_started(t, answer_ms), outcome, heard))
        except T.IllegalTransition:
            return None

    # --- starting turns ----------------------------------------------------------------------
    def begin(self, business: Business, call_sid: str, utterance: str, *, t0: float,
              call: dict[str, Any], settled: Any = None) -> Turn:
        """Create turn N (queued here) and hand it to the pool; a full pool fails it at once (admission control).

        ``settled`` (:class:`app.voice.speculation.Settled`): what the call's speculation did for this
        turn; when adopted, the job follows the speculation instead of calling the responder again.
        """
        n = call["turn"]
        self.liveness.ensure()
        turn = T.new(utterance, started=t0, host=self.owner, now=self.clock(), history_len=len(call["history"]) - 1)
        if settled is not None:
            turn = T.speculated(turn, settled.outcome, settled.started, settled.gen, settled.head_start_ms)
        self.rt.state.put_turn(call_sid, n, turn.to_dict(), self.ttl)
        if self.rt.pool.try_submit(self.run_job, business, call_sid, n, turn.gen) is None:
            log.warning("turn pool full: turn %s/%d refused (host overloaded)", call_sid, n)
            turn = self.update(call_sid, n, lambda t: T.fail(t, "overloaded: the turn pool is full")) or turn
        return turn

    def run_inline(self, business: Business, call_sid: str, utterance: str, *, t0: float,
                   call: dict[str, Any], end_as: Callable[[Turn], Turn] | None = None) -> Turn:
        """Run turn N in this (request) thread: reply, index lookups, one write.

        When every piece is an index hit the turn is written ``done`` -- already ended by ``end_as``
        when given (the caller answers with it now) -- and nothing else runs; otherwise it is
        written ``running`` under this process and a job makes the missing clips.
        """
        n = call["turn"]
        self.liveness.ensure()
        history = list(call["history"])[:-1]
        turn = T.start(T.new(utterance, started=t0, host=self.owner, now=self.clock(), history_len=len(history)),
                       self.owner)
        started = time.perf_counter()
        reply = self.reply(business, history, utterance, call_sid)
        turn = T.replied(turn, reply.text, reply.action, self.pieces_of(business, reply),
                         (time.perf_counter() - started) * 1000, reply.failure)
        if len(turn.ready_prefix()) == len(turn.pieces or ()):
            turn = T.complete(turn)
            if end_as is not None:
                turn = end_as(turn)
            self.rt.state.put_turn(call_sid, n, turn.to_dict(), self.ttl)
            return turn
        self.rt.state.put_turn(call_sid, n, turn.to_dict(), self.ttl)
        if self.rt.pool.try_submit(self.continue_job, business, call_sid, n, turn.gen) is None:
            log.warning("turn pool full: clips of turn %s/%d refused (host overloaded)", call_sid, n)
            turn = self._write(call_sid, n, turn.gen, lambda t: T.fail(t, "overloaded: the turn pool is full"))
        return turn

    def answer_now(self, business: Business, call_sid: str, utterance: str, *, t0: float,
                   end_as: Callable[[Turn], Turn]) -> tuple[int, Turn] | None:
        """The fully cached answer of an instant responder, in one state write; None when it is not that.

        Reads the call, asks the responder, looks every piece up in the index; only when every piece
        is a hit does it write -- once: the turn counted and the caller's line and the answer heard
        appended to the history together. No turn record is kept (the turn is over when this returns;
        its event carries what happened). None (nothing written) for a control-arm call, a call with
        a turn still open, a piece that is not cached, or a call that moved meanwhile: the caller
        then runs the ordinary path.
        """
        call = self.rt.state.get_call(call_sid) or self._new_call(business, call_sid)
        if call.get("arm") != "warmline" or call.get("open"):
            return None
        history = list(call.get("history", []))
        n = int(call.get("turn", 0)) + 1
        started = time.perf_counter()
        reply = self.reply(business, history, utterance, call_sid)
        turn = T.start(T.new(utterance, started=t0, host=self.owner, now=self.clock(), history_len=len(history)),
                       self.owner)
        turn = T.replied(turn, reply.text, reply.action, self.pieces_of(business, reply),
                         (time.perf_counter() - started) * 1000, reply.failure)
        if len(turn.ready_prefix()) != len(turn.pieces or ()):
            return None
        turn = end_as(T.complete(turn))

        def add(current: dict[str, Any] | None) -> dict[str, Any]:
            current = dict(current or self._new_call(business, call_sid))
            if int(current.get("turn", 0)) + 1 != n or current.get("open"):
                raise _Moved()
            current["turn"] = n
            current["history"] = list(current.get("history", [])) + [
                {"role": "caller", "text": utterance}, {"role": "agent", "text": turn.heard or ""}]
            return current

        try:
            self.rt.state.update_call(call_sid, add, self.ttl)
        except _Moved:
            return None
        return n, turn

    def instant(self) -> bool:
        """True when the responder answers without waiting on the network (the request thread may run the turn)."""
        return bool(getattr(self.rt.responder, "instant", False))

    # --- adoption ----------------------------------------------------------------------------
    def adopt_if_orphaned(self, business: Business, call_sid: str, n: int, turn: Turn) -> Turn:
        """Adopt turn N when the process holding it (queue or runner) has no heartbeat; else return it as is."""
        if turn.job_over or turn.ended:
            return turn
        holder = turn.owner if turn.status == T.RUNNING else turn.host
        if self.liveness.alive(holder):
            return turn
        self.liveness.ensure()
        try:
            record = self.rt.state.update_turn(
                call_sid, n, lambda r: T.adopt(Turn.from_dict(r), self.owner, self.clock()).to_dict(), self.ttl,
                fence={"gen": turn.gen, "status": turn.status})
        except FencedOut:  # someone else adopted it (or it moved on) first
            return self.get(call_sid, n) or turn
        if record is None:
            return turn
        adopted = Turn.from_dict(record)
        log.warning("took over turn %s/%d from %s (no heartbeat): generation %d", call_sid, n, holder, adopted.gen)
        if self.rt.pool.try_submit(self.run_job, business, call_sid, n, adopted.gen) is None:
            adopted = self.update(call_sid, n, lambda t: T.fail(t, "overloaded: the turn pool is full")) or adopted
        return adopted

    # --- the job -----------------------------------------------------------------------------
    def run_job(self, business: Business, call_sid: str, n: int, queued_gen: int) -> None:
        """Pool entry: start turn N if it is still queued here under ``queued_gen``, then produce it."""
        try:
            record = self.rt.state.update_turn(call_sid, n, lambda r: T.start(Turn.from_dict(r), self.owner).to_dict(),
                                               self.ttl, fence={"status": T.QUEUED, "gen": queued_gen,
                                                                "host": self.owner})
        except FencedOut:
            log.info("turn %s/%d moved on while queued (ended or adopted); not run", call_sid, n)
            return
        except StateError as exc:
            log.warning("turn %s/%d not started: %s", call_sid, n, exc)
            return
        if record is None:
            return
        turn = Turn.from_dict(record)
        deadline_s = self.rt.settings.turn_deadline_s
        if self.clock() > turn.started + deadline_s - min(MIN_USEFUL_S, deadline_s / 4):
            self._guarded(call_sid, n, turn.gen, lambda: self._write(
                call_sid, n, turn.gen, lambda t: T.fail(t, "waited in the queue past the turn deadline")))
            return
        self._guarded(call_sid, n, turn.gen, lambda: self.produce(business, call_sid, n, turn))

    def continue_job(self, business: Business, call_sid: str, n: int, gen: int) -> None:
        """Pool entry for a turn this process already runs (the inline path): make its missing clips."""
        turn = self.get(call_sid, n)
        if turn is None or turn.gen != gen or turn.status != T.RUNNING:
            return
        self._guarded(call_sid, n, gen, lambda: self.produce(business, call_sid, n, turn))

    def _guarded(self, call_sid: str, n: int, gen: int, work: Callable[[], Any]) -> None:
        try:
            work()
        except FencedOut as exc:
            log.info("turn %s/%d: job of generation %d stopped: %s", call_sid, n, gen, exc)
        except Exception as exc:  # the pool thread's boundary: record the failure for the waiting webhook
            log.exception("turn %s/%d failed", call_sid, n)
            error = f"{type(exc).__name__}: {exc}"
            try:
                self._write(call_sid, n, gen, lambda t: T.fail(t, error))
            except (FencedOut, StateError):
                log.error("could not record the failure of turn %s/%d", call_sid, n)

    def produce(self, business: Business, call_sid: str, n: int, turn: Turn) -> None:
        """Produce a running turn: the reply (unless recorded), then a clip for every piece still missing.

        A fresh turn streams (:func:`app.voice.answer.produce`): pieces are added as the model writes
        and their clips made side by side, or copied from the adopted speculation as it progresses.
        """
        gen = turn.gen
        if turn.text is None and not turn.pieces:
            if self._stream(business, call_sid, n, turn):
                return
            turn = self.get(call_sid, n) or turn
        if turn.text is None:
            call = self.rt.state.get_call(call_sid)
            if call is None:
                raise FencedOut("the call ended")
            history = list(call.get("history", []))[:turn.history_len]
            started = time.perf_counter()
            reply = self.reply(business, history, turn.utterance, call_sid)
            ai_ms = (time.perf_counter() - started) * 1000
            pieces = self.pieces_of(business, reply)
            turn = self._write(call_sid, n, gen, lambda t: self._replied_maybe_done(t, reply, pieces, ai_ms))
        deadline = turn.started + self.rt.settings.turn_deadline_s - DEADLINE_MARGIN_S
        for i, piece in enumerate(turn.pieces or ()):
            if piece.get("url") or piece.get("failed"):
                continue
            made = self.make_clip(business, piece["text"], deadline=deadline)
            turn = self._write(call_sid, n, gen, lambda t, i=i, made=made: self._piece_maybe_done(t, i, made))
        if turn.status == T.RUNNING:
            self._write(call_sid, n, gen, T.complete)

    def _stream(self, business: Business, call_sid: str, n: int, turn: Turn) -> bool:
        """Produce turn N as a stream (see :meth:`produce`); False when nothing was written and the
        plain path should run (an adopted speculation that died before its first piece)."""
        from app.responders.openai import safe_reply, safe_stream
        from app.responders.stream import one_shot
        from app.voice import answer, fillers
        from app.voice.speculation import speculator

        settings = self.rt.settings
        gen = turn.gen
        write = lambda fn: self._write(call_sid, n, gen, fn)  # noqa: E731
        read = lambda: self._still_mine(call_sid, n, gen)  # noqa: E731
        observe = lambda s: fillers.PREDICTOR.observe(business.id, s)  # noqa: E731
        spec_gen = turn.extra.get("speculation_gen")
        if spec_gen:
            head = float(turn.extra.get("head_start_ms") or 0.0) / 1000
            sink = answer.TurnSink(write, (FencedOut,), origin=turn.started - head, on_first_piece=observe,
                                   read=read)
            if speculator(self.rt).follow(call_sid, int(spec_gen), sink):
                return True
            if sink.added:
                raise FencedOut("the adopted speculation stopped part-way")  # the hops <Say> what there is
            log.warning("adopted speculation %s/%d gave nothing; the turn calls the responder itself", call_sid, n)
        call = self.rt.state.get_call(call_sid)
        if call is None:
            raise FencedOut("the call ended")
        history = list(call.get("history", []))[:turn.history_len]
        if settings.llm_stream:
            stream = safe_stream(self.rt.responder, business, history, turn.utterance)
        else:
            stream = one_shot(safe_reply(self.rt.responder, business, history, turn.utterance))
        deadline = turn.started + settings.turn_deadline_s - DEADLINE_MARGIN_S
        sink = answer.TurnSink(write, (FencedOut,), origin=time.time(), on_first_piece=observe, read=read)
        answer.produce(stream, splice=business.splice, sink=sink, synth=answer.synthesis_pool(settings.synth_per_process),
                       per_turn=settings.clips_per_turn, apology=business.prompt("apology"),
                       make_clip=lambda text: self.make_clip(business, text, deadline=deadline),
                       assemble=answer.sentence_assembler(self.rt.synthesizer, business, deadline))
        return True

    @staticmethod
    def _replied_maybe_done(t: Turn, reply: Reply, pieces: list[dict[str, Any]], ai_ms: float) -> Turn:
        t = T.replied(t, reply.text, reply.action, pieces, ai_ms, reply.failure)
        return T.complete(t) if len(t.ready_prefix()) == len(t.pieces or ()) else t

    @staticmethod
    def _piece_maybe_done(t: Turn, i: int, piece: dict[str, Any]) -> Turn:
        t = T.piece_ready(t, i, piece)
        return T.complete(t) if len(t.ready_prefix()) == len(t.pieces or ()) else t

    def _still_mine(self, call_sid: str, n: int, gen: int) -> None:
        """A read: FencedOut unless turn N is still running under generation ``gen`` (no write)."""
        turn = self.get(call_sid, n)
        if turn is None or turn.gen != gen or turn.status != T.RUNNING:
            raise FencedOut(f"turn {call_sid}/{n} is no longer running under generation {gen}")

    def _write(self, call_sid: str, n: int, gen: int, fn: Callable[[Turn], Turn]) -> Turn:
        """A job's write under generation ``gen``: FencedOut unless the turn is still running under it."""
        record = self.rt.state.update_turn(call_sid, n, lambda r: fn(Turn.from_dict(r)).to_dict(), self.ttl,
                                           fence={"gen": gen, "status": T.RUNNING})
        if record is None:
            raise FencedOut("the turn is gone (the call ended, or its state expired)")
        return Turn.from_dict(record)

    # --- the pieces --------------------------------------------------------------------------
    def reply(self, business: Business, history: list[dict[str, Any]], utterance: str, call_sid: str) -> Reply:
        from app.responders.openai import safe_reply

        return safe_reply(self.rt.responder, business, history, utterance)

    def pieces_of(self, business: Business, reply: Reply) -> list[dict[str, Any]]:
        """The reply's pieces (:func:`reply_pieces`), each already filled when its clip is in the index (no network)."""
        return [{**(self.make_clip(business, plan["text"], lookup_only=True) or {}), **plan}
                for plan in reply_pieces(reply, business)]

    def make_clip(self, business: Business, text: str, *, deadline: float | None = None,
                  lookup_only: bool = False) -> dict[str, Any] | None:
        """A piece's clip as a state entry (:func:`app.voice.answer.make_clip` with this engine's runtime)."""
        return make_clip(self.rt, business, text, deadline=deadline, lookup_only=lookup_only)


__all__ = ["DEADLINE_MARGIN_S", "Liveness", "TurnEngine", "process_lease", "reply_pieces"]
