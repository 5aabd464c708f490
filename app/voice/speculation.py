"""Speculative turns: start answering from Twilio's partial results, before the final SpeechResult.

While the caller speaks, Twilio posts partial results (``UnstableSpeechResult``,
``StableSpeechResult``, ``SequenceNumber``) to ``/voice/partial/...``. When the transcript looks
*complete and stable* -- the stable part has caught up with the whole running transcript (the
recognizer settled at the end of speech), or, from a recognizer that reports no stable part at all,
no newer partial came within ``quiet_s`` and the text does not end mid-phrase -- a speculative job starts: responder (streamed) and clips, exactly like a
turn job, but written under the speculation's own record and key (:func:`speech_key`: ``canon()``
of the text without the punctuation at word ends, which Twilio's running and final transcripts
disagree on), never
into a turn, the history or the turn log.

When ``process`` arrives with the final ``SpeechResult`` it calls :meth:`Speculator.settle`: a
speculation whose key equals that of ``SpeechResult`` and that was made for the same history is
*adopted* (same :func:`speech_key`; the turn job follows it with :meth:`Speculator.follow` instead of calling the responder
again); anything else is *discarded*: its job is fenced out at its next write (the stream is closed,
no further clip is started), nothing it made reaches the caller, the history or the turn log; the
clips it already published are ordinary content-addressed clips (a cache entry at worst).

Bounds: one speculation record per call (so at most one live speculation: starting a new one fences
the previous one out), at most ``MAX_PER_TURN`` per turn, a per-business switch
(``speculate``, and ``listen.partial_results``), never for the control arm, and none after the
turn's final result arrived (late or out-of-order partials are ignored by turn number and sequence).

The record lives in the shared call state as turn record ``SLOT`` (0: real turns count from 1), so
any worker can settle or follow a speculation started on another, and it is deleted with the call.
Every write of the job checks, inside the store's atomic update, that the record still carries the
job's generation and was not discarded (:class:`SpeculationDropped` otherwise).

Thread-safe; one :class:`Speculator` per process.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.business import Business
from app.errors import SpeculationDropped, WarmlineError
from app.speech.canon import canon
from app.voice.answer import Piece, Progress, make_clip

log = logging.getLogger("warmline.speculation")

SLOT = 0
MAX_PER_TURN = 2
IDLE, RUNNING, DONE, FAILED = "idle", "running", "done", "failed"
ADOPTED, DISCARDED = "adopted", "discarded"
# A transcript ending in one of these is mid-phrase ("I'd like to book a"): not worth a speculation.
_OPEN_ENDINGS = frozenset(
    """a an the to of for with and or but my your our their his her its at in on from by about into than
    that which who whose if so because is are was were be been am i i'm i'd i'll we you it's this these those
    some any can could would should will shall do does did have has had um uh er like""".split()
)


@dataclass(frozen=True)
class Speculation:
    """The call's speculation record (see the module docstring). Times are epoch seconds."""

    turn: int = 0  # the turn it is for (the call's turn count + 1 when the partials came)
    seq: int = 0  # highest SequenceNumber seen for that turn
    text: str = ""  # the latest running transcript
    stable: str = ""
    heard_at: float = 0.0
    stable_seen: bool = False  # this call's recognizer reports stable parts (kept across turns): no quiet window
    closed: bool = False  # the final result arrived: nothing more starts for this turn
    gen: int = 0  # generation of the current speculation (0: none started yet)
    count: int = 0  # speculations started for this turn
    key: str = ""  # speech_key() (canon() without trailing punctuation) of the text it answers
    utterance: str = ""
    history_len: int = 0
    status: str = IDLE
    fate: str | None = None  # adopted / discarded, once settled
    started: float = 0.0
    pieces: tuple[Piece, ...] = ()
    reply: str | None = None
    action: str | None = None
    ai_ms: float | None = None
    failure: str | None = None  # why the reply is the apology (``Reply.failure``), kept for the adopting turn
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["pieces"] = [dict(p) for p in self.pieces]
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any] | None) -> Speculation:
        if not record:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        values["pieces"] = tuple(dict(p) for p in values.get("pieces") or ())
        values["extra"] = dict(values.get("extra") or {})
        return cls(**values)

    @property
    def live(self) -> bool:
        return self.count > 0 and self.fate is None and self.status in (RUNNING, DONE)


@dataclass(frozen=True)
class Settled:
    """What :meth:`Speculator.settle` decided for a turn: ``gen`` to follow when adopted (else None),
    ``started`` speculations for this turn (each one a responder call), ``outcome`` for the turn log."""

    gen: int | None
    started: int
    outcome: str  # "adopted" | "discarded" | "none"
    head_start_ms: float | None = None  # how long the adopted speculation had been running


_TRAILING_PUNCT = ",.;:!?\u2026"


def speech_key(text: str) -> str:
    """The speculation key of a transcript: ``canon(text)`` with the punctuation at word ends dropped.

    Twilio's running transcripts and its final SpeechResult differ in punctuation ("book a cleaning
    please" / "Book a cleaning, please."); the words, their order and canon()'s folding (case, numbers
    spoken as words) must match exactly. Deterministic, not fuzzy.
    """
    return " ".join(w for w in (t.rstrip(_TRAILING_PUNCT) for t in canon(text).split()) if w)


def looks_complete(text: str) -> bool:
    """A running transcript that could be the whole utterance: two words or more, not ending mid-phrase."""
    words = canon(text).rstrip(".!?").split()
    return len(words) >= 2 and words[-1].strip(",;:") not in _OPEN_ENDINGS


def complete_and_stable(unstable: str, stable: str) -> bool:
    """Twilio's stable part has caught up with the running transcript, which looks complete."""
    return bool(stable.strip()) and speech_key(stable) == speech_key(unstable) and looks_complete(unstable)


def _for_turn(spec: Speculation, turn: int) -> Speculation:
    """The record for ``turn``: a fresh one when it still holds an older turn's (its new generation
    fences out any job of the old one)."""
    return spec if spec.turn == turn else Speculation(turn=turn, gen=spec.gen + 1, stable_seen=spec.stable_seen)


def _heard(spec: Speculation, seq: int, unstable: str, stable: str, now: float) -> Speculation:
    """``spec`` with partial result ``seq`` recorded (a stable part, once seen, is remembered for the call)."""
    return dataclasses.replace(spec, seq=seq, text=unstable, stable=stable, heard_at=now,
                               stable_seen=spec.stable_seen or bool(stable.strip()))


class _Timers:
    """One daemon thread running delayed calls (the quiet-window checks). Thread-safe; per process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._n = 0
        self._thread: threading.Thread | None = None

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        with self._cond:
            self._n += 1
            heapq.heappush(self._heap, (time.monotonic() + delay_s, self._n, fn))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="speculation-timers", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # noqa: BLE001 - a timer thread must survive one bad check; logged
                log.exception("speculation check failed")


class Speculator:
    """Starts, settles and follows the speculations of this process's calls (see the module docstring).

    ``start_job(fn, *args)`` runs a speculation job on the process's turn pool (returns False when the
    pool refused it; :func:`start_on_pool` refuses unless threads are spare, so real turns keep theirs); ``produce_job(business, call_sid, gen, history, text, sink)`` is the job's body
    (responder stream -> pieces -> clips, see :func:`app.voice.answer.produce`). ``quiet_s``: a
    transcript unchanged this long (and looking complete) starts a speculation even when Twilio's
    stable part never caught up.
    """

    def __init__(self, *, state: Any, ttl_s: float, start_job: Callable[..., bool],
                 produce_job: Callable[[Business, str, int, list[dict[str, Any]], str, Any], bool],
                 quiet_s: float = 0.35, clock: Callable[[], float] = time.time,
                 timers: _Timers | None = None) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self.start_job = start_job
        self.produce_job = produce_job
        self.quiet_s = quiet_s
        self.clock = clock
        self.timers = timers or _Timers()
        self.enabled = True  # False: partial results are noted, no speculation starts (settle still closes turns)

    # --- records ---------------------------------------------------------------------------------
    def get(self, call_sid: str) -> Speculation:
        return Speculation.from_dict(self.state.get_turn(call_sid, SLOT))

    def _update(self, call_sid: str, fn: Callable[[Speculation], Speculation]) -> Speculation:
        record = self.state.update_turn(call_sid, SLOT, lambda r: fn(Speculation.from_dict(r)).to_dict(), self.ttl_s)
        return Speculation.from_dict(record)

    # --- partial results -------------------------------------------------------------------------
    def on_partial(self, business: Business, call: Mapping[str, Any] | None, call_sid: str, *, turn: int | None,
                   unstable: str, stable: str, seq: int) -> str:
        """Take one partial result; returns what was done ("off", "stale", "noted", "started", ...).

        Most partials change nothing: they are read against the record and dropped ("noted"), with no
        write. A partial is written only when it starts a speculation (the note and the start are one
        write) or, from a recognizer that reports no stable part, to arm the quiet window (every such
        partial is recorded, so a newer one fences the older one's timer).
        """
        if not (business.speculate and business.partial_results) or not call or call.get("arm") == "control":
            return "off"
        upcoming = int(call.get("turn") or 0) + 1
        if (turn is not None and turn != upcoming) or not unstable.strip():
            return "stale"
        seen = self.get(call_sid)
        if seen.turn == upcoming and (seen.closed or seq <= seen.seq):
            return "stale"
        history = list(call.get("history") or [])
        if not self.enabled:
            return "noted"
        if complete_and_stable(unstable, stable):
            if seen.turn == upcoming and seen.live and seen.key == speech_key(unstable):
                return "already"  # the live speculation answers this text: nothing to write
            return self._maybe_start(business, call_sid, upcoming, seq, history, heard=(unstable, stable))
        if stable.strip() and not seen.stable_seen:
            # The first stable part of the call: from now on only Twilio's stable part starts a
            # speculation (recorded once; it also fences a quiet window armed by an earlier short partial).
            return self._note(call_sid, upcoming, seq, unstable, stable)
        if not stable.strip() and looks_complete(unstable) and not seen.stable_seen:
            # A recognizer that reports no stable part at all: a transcript left unchanged for the quiet
            # window stands in for it. Where Twilio reports one, only its catching up starts a speculation
            # (a late partial on a loaded network must not start one mid-sentence).
            if self._note(call_sid, upcoming, seq, unstable, stable) == "stale":
                return "stale"
            self.timers.call_later(self.quiet_s, lambda: self._maybe_start(business, call_sid, upcoming, seq, history))
            return "waiting"
        if not stable.strip() and seen.turn == upcoming and seen.seq and not seen.stable:
            # Not complete, without a stable part, after a complete-looking one armed the quiet window:
            # recorded, so that it fences that partial's timer (the caller is still speaking).
            return self._note(call_sid, upcoming, seq, unstable, stable)
        return "noted"

    def _note(self, call_sid: str, turn: int, seq: int, unstable: str, stable: str) -> str:
        """Record partial ``seq`` as the latest of ``turn`` ("stale" when a newer one or the final result came)."""
        box: dict[str, bool] = {}
        now = self.clock()

        def note(spec: Speculation) -> Speculation:
            spec = _for_turn(spec, turn)
            if spec.closed or seq <= spec.seq:
                box["stale"] = True
                return spec
            return _heard(spec, seq, unstable, stable, now)

        self._update(call_sid, note)
        return "stale" if box.get("stale") else "noted"

    def _maybe_start(self, business: Business, call_sid: str, turn: int, seq: int,
                     history: list[dict[str, Any]], *, heard: tuple[str, str] | None = None) -> str:
        """Start a speculation on the transcript of partial ``seq`` if it is still the latest and worth one.

        ``heard`` (unstable, stable): the partial itself, recorded by this same write (it must be newer
        than any recorded); without it, the partial was recorded before (the quiet window's check) and
        must still be the latest.
        """
        box: dict[str, Any] = {}
        now = self.clock()

        def start(spec: Speculation) -> Speculation:
            spec = _for_turn(spec, turn)
            if spec.closed or (seq <= spec.seq if heard is not None else spec.seq != seq):
                box["why"] = "stale"
                return spec
            if heard is not None:
                spec = _heard(spec, seq, heard[0], heard[1], now)
            key = speech_key(spec.text)
            if spec.live and spec.key == key:
                box["why"] = "already"
                return spec
            if spec.count >= MAX_PER_TURN:
                box["why"] = "limit"
                return spec
            box["why"] = "started"
            return dataclasses.replace(
                spec, gen=spec.gen + 1, count=spec.count + 1, key=key, utterance=spec.text,
                history_len=len(history), status=RUNNING, fate=None, started=self.clock(), pieces=(), reply=None,
                action=None, ai_ms=None, failure=None, error=None)

        spec = self._update(call_sid, start)
        if box["why"] != "started":
            return box["why"]
        if not self.start_job(self._run, business, call_sid, spec.gen, history, spec.utterance):
            self._update(call_sid, lambda s: dataclasses.replace(s, status=FAILED, error="pool full")
                         if s.gen == spec.gen else s)
            return "refused"
        return "started"

    def _run(self, business: Business, call_sid: str, gen: int, history: list[dict[str, Any]], text: str) -> None:
        sink = SpeculationSink(self, call_sid, gen)
        try:
            self.produce_job(business, call_sid, gen, history, text, sink)
        except SpeculationDropped:
            pass
        except Exception as exc:  # the pool thread's boundary: record it for a follower, keep the process
            log.exception("speculation %s/%d failed", call_sid, gen)
            try:
                sink.write(lambda s: dataclasses.replace(s, status=FAILED, error=f"{type(exc).__name__}: {exc}"))
            except (SpeculationDropped, WarmlineError):
                pass

    # --- the final result ------------------------------------------------------------------------
    def settle(self, call_sid: str, turn: int, final: str, history_len: int) -> Settled:
        """The final SpeechResult of ``turn`` arrived: adopt the speculation that means the same, else drop it.

        Closes the turn for speculation either way. Adopted = the live speculation's key equals
        ``speech_key(final)`` and it was made for a history of ``history_len`` items.
        """
        key = speech_key(final)
        box: dict[str, Any] = {}
        now = self.clock()

        def decide(spec: Speculation) -> Speculation:
            if spec.turn != turn:
                box["settled"] = Settled(None, 0, "none")
                return Speculation(turn=turn, closed=True, gen=spec.gen + 1)
            if spec.live and spec.key == key and spec.history_len == history_len:
                box["settled"] = Settled(spec.gen, spec.count, ADOPTED, round((now - spec.started) * 1000, 1))
                return dataclasses.replace(spec, closed=True, fate=ADOPTED)
            box["settled"] = Settled(None, spec.count, DISCARDED if spec.count else "none")
            fate = DISCARDED if spec.count else None
            return dataclasses.replace(spec, closed=True, fate=fate)

        self._update(call_sid, decide)
        return box["settled"]

    def follow(self, call_sid: str, gen: int, sink: Any, *, stall_s: float = 3.0) -> bool:
        """Copy the adopted speculation ``gen`` into ``sink`` (a turn's) as it progresses; True when it completed.

        Each wake-up hands everything new to ``sink.progress`` at once (:class:`Progress`: one state
        write for a :class:`~app.voice.answer.TurnSink`), so a speculation that finished before it was
        adopted is copied in one write. False when it failed, was replaced, or made no progress for
        ``stall_s`` seconds (its process died): the caller then decides (nothing copied: run the turn
        itself).
        """
        copied = 0
        ready: set[int] = set()
        last = time.monotonic()

        def progressed(record: Mapping[str, Any] | None) -> bool:
            spec = Speculation.from_dict(record)
            if spec.gen != gen or spec.status != RUNNING:
                return True
            return len(spec.pieces) > copied or any(
                i not in ready and (p.get("url") or p.get("failed")) for i, p in enumerate(spec.pieces))

        while True:
            record = self.state.wait_turn(call_sid, SLOT, progressed, timeout_s=max(0.05, stall_s / 4))
            spec = Speculation.from_dict(record)
            if spec.gen != gen or spec.status == FAILED:
                return False
            added = tuple(p["text"] for p in spec.pieces[copied:])
            now_ready = tuple((i, dict(p)) for i, p in enumerate(spec.pieces)
                              if i not in ready and (p.get("url") or p.get("failed")))
            finished = spec.status == DONE and len(ready) + len(now_ready) == len(spec.pieces)
            reply = (spec.reply or "", spec.action or "continue", float(spec.ai_ms or 0.0), spec.failure) if finished else None
            if added or now_ready or finished:
                sink.progress(Progress(added=added, ready=now_ready, reply=reply, done=finished))
                copied = len(spec.pieces)
                ready.update(i for i, _ in now_ready)
                last = time.monotonic()
            if finished:
                return True
            if time.monotonic() - last > stall_s:
                log.warning("adopted speculation %s/%d made no progress for %.1f s", call_sid, gen, stall_s)
                return False


def spare_reserve(workers: int) -> int:
    """Turn threads a speculation must leave idle: a quarter of the pool, at least one."""
    return max(1, workers // 4)


def start_on_pool(pool: Any, fn: Callable[..., Any], *args: Any) -> bool:
    """Run ``fn(*args)`` on a turn pool; False when a bounded pool refused it (admission control).

    A speculation is optional work: on a pool that offers ``try_submit_spare`` (:class:`BoundedPool`)
    it starts only on a thread that is idle now with :func:`spare_reserve` more idle threads left for
    real turns -- it never waits in the queue (ahead of a final turn) and never takes the last threads.
    """
    try_spare = getattr(pool, "try_submit_spare", None)
    if try_spare is not None:
        return try_spare(fn, *args, reserve=spare_reserve(pool.workers)) is not None
    try_submit = getattr(pool, "try_submit", None)
    if try_submit is not None:
        return try_submit(fn, *args) is not None
    pool.submit(fn, *args)
    return True


def answer_job(rt: Any) -> Callable[..., bool]:
    """The body of an answer job for ``rt``: stream the reply, cut pieces, make clips in parallel, feed the sink."""
    from app.responders.openai import safe_stream
    from app.voice.answer import produce, sentence_assembler, synthesis_pool

    def job(business: Business, call_sid: str, gen: int, history: list[dict[str, Any]], text: str,
            sink: Any) -> bool:
        settings = rt.settings
        deadline = time.time() + settings.turn_deadline_s
        stream = safe_stream(rt.responder, business, history, text)
        return produce(stream, splice=business.splice, sink=sink, synth=synthesis_pool(settings.synth_per_process),
                       per_turn=settings.clips_per_turn, apology=business.prompt("apology"),
                       make_clip=lambda t: make_clip(rt, business, t, deadline=deadline),
                       assemble=sentence_assembler(rt.synthesizer, business, deadline))

    return job


def speculator(rt: Any) -> Speculator:
    """This runtime's Speculator (made once per runtime; shares the runtime's state and pools)."""
    found = rt.__dict__.get("speculator")
    if found is None:
        found = rt.__dict__["speculator"] = Speculator(
            state=rt.state, ttl_s=rt.settings.call_ttl_s, quiet_s=rt.settings.speculate_quiet_s,
            start_job=lambda fn, *args: start_on_pool(rt.pool, fn, *args),
            produce_job=answer_job(rt))
    return found


class SpeculationSink:
    """A :class:`app.voice.answer.Sink` writing into the speculation record, fenced by generation."""

    stops = (SpeculationDropped,)

    def __init__(self, speculator: Speculator, call_sid: str, gen: int) -> None:
        self.speculator = speculator
        self.call_sid = call_sid
        self.gen = gen

    def write(self, fn: Callable[[Speculation], Speculation]) -> Speculation:
        def fenced(spec: Speculation) -> Speculation:
            self._require(spec)
            return fn(spec)

        return self.speculator._update(self.call_sid, fenced)

    def _require(self, spec: Speculation) -> None:
        if spec.gen != self.gen or spec.fate == DISCARDED:
            raise SpeculationDropped(f"speculation {self.call_sid}/{self.gen} was dropped")

    def check(self) -> None:
        self._require(self.speculator.get(self.call_sid))

    def progress(self, step: Progress) -> None:
        def apply(s: Speculation) -> Speculation:
            pieces = list(s.pieces) + [{"text": t} for t in step.added]
            for i, piece in step.ready:
                pieces[i] = dict(piece)
            s = dataclasses.replace(s, pieces=tuple(pieces))
            if step.reply is not None:
                text, action, ai_ms, failure = step.reply
                s = dataclasses.replace(s, reply=text, action=action, ai_ms=round(ai_ms, 1), failure=failure)
            return dataclasses.replace(s, status=DONE) if step.done else s

        self.write(apply)


__all__ = ["MAX_PER_TURN", "SLOT", "Settled", "Speculation", "SpeculationDropped", "SpeculationSink", "Speculator",
           "answer_job", "complete_and_stable", "looks_complete", "spare_reserve", "speculator", "speech_key",
           "start_on_pool"]
