"""Producing an answer: the reply read as it streams, each piece's clip started at once, several at a time.

:func:`produce` is the body of a turn job (and of a speculative one): it iterates a reply stream
(:func:`app.responders.openai.safe_stream`), cuts each completed sentence into the business's pieces,
reports the new pieces to a :class:`Sink` and starts their clips on a shared synthesis pool -- at most
``per_turn`` of this answer's clips at once (the pool itself is sized to the TTS provider's
concurrency) -- so the first sentence's clip is being made while the model still writes the rest,
and a reply's later pieces are made side by side rather than one after another. Where they are
played is the hops' business: they play the *ready prefix* in order.

The sink is where the answer goes: the turn record (the engine's transitions, fenced by the job's
generation) or a speculation's record. A sink method raises one of the exception types it names in
``Sink.stops`` when the answer is no longer wanted (the turn ended, another job took it, the
speculation was dropped): the producer then closes the stream (the HTTP request to the model is
abandoned), starts no more clips and returns False; clips already being made finish on the pool
(content-addressed and published, so harmless) but their results are not written.

``sentence`` and ``clause`` cut each sentence into pieces as it completes; so do ``slot`` and
``phrase`` when the stream is a model's (``stream.streamed``: a model's reply carries no responder
marks, and its values are found sentence by sentence exactly as in the whole text). A one-shot
reply (a responder that marks values) and ``whole`` are cut from the whole reply at the end.

Thread-safety: one call of :func:`produce` runs on one thread; clip completions call
``Sink.piece_ready`` from the synthesis pool's threads, so a sink must be thread-safe (the state
store's atomic updates are).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from app import metrics
from app.errors import InvalidText, WarmlineError
from app.speech.fallback import chain_for
from app.speech.pieces import sentence_runs, split_pieces

log = logging.getLogger("warmline.answer")

Piece = dict[str, Any]
INCREMENTAL_SPLICES = ("sentence", "clause")
STREAMED_SPLICES = ("slot", "phrase")
"""Levels cut sentence by sentence only when the reply streams from a model (no responder marks)."""


@dataclass(frozen=True)
class Progress:
    """What an answer did since it was last written, handed to :meth:`Sink.progress` in one step:
    ``added`` piece texts (appended in order, not yet playable), ``ready`` (index, piece) entries
    (a ``make_clip`` entry: a clip, or a ``failed`` piece to <Say>), and once every piece is ready
    the ``reply`` (text, action, ai_ms from request to last token, ``Reply.failure``) with ``done``."""

    added: tuple[str, ...] = ()
    ready: tuple[tuple[int, Piece], ...] = ()
    reply: tuple[str, str, float, str | None] | None = None
    done: bool = False


class Sink(Protocol):
    """Where a produced answer goes (see the module docstring). Thread-safe."""

    stops: tuple[type[BaseException], ...]

    def progress(self, step: Progress) -> None:
        """Apply ``step`` in one write (raise one of ``stops`` when the answer is no longer wanted)."""

    def check(self) -> None:
        """Raise one of ``stops`` when the answer is no longer wanted (a read, no write)."""


class ReplyStreamLike(Protocol):
    reply: Any

    def __iter__(self) -> Any: ...

    def __next__(self) -> str: ...

    def close(self) -> None: ...


def produce(stream: ReplyStreamLike, *, splice: str, make_clip: Callable[[str], Piece], sink: Sink,
            synth: Executor, per_turn: int = 3, apology: str = "",
            assemble: Callable[[Sequence[str]], Any] | None = None,
            clock: Callable[[], float] = time.perf_counter) -> bool:
    """Read ``stream``, feed ``sink``, make clips on ``synth``; True when the whole answer landed.

    ``make_clip(text)`` returns a piece entry and never raises for a synthesis failure (it returns a
    ``failed`` piece instead). ``apology`` is spoken when the reply has no piece at all. The stream is
    read as fast as the model writes, whatever the synthesis backlog (a model's own deadline must not
    run out while clips queue): pieces wait in order for one of the answer's ``per_turn`` slots.

    Writes: one :class:`Progress` per piece that becomes playable (carrying the texts added since
    the last write), the last one also carrying the reply and ``done`` when the reply is known by
    then -- about one state write per piece, where adding, filling, replying and finishing were one
    each. Pieces not yet playable are not written (nothing can play them); between writes each new
    sentence checks (a read) that the answer is still wanted, so a dropped one stops the model early.

    ``assemble(texts)``, when given, is called with a sentence's piece texts once all of them have a
    clip in the business's own voice, on the clip thread that completed them and before that piece
    is written: the ``phrase`` level plays a sentence as one clip assembled from its pieces, and
    making it here puts the store upload on the answer's way, not inside a webhook's wait (the
    webhook then finds it in the index). Its failure is logged; the webhook assembles or plays the
    pieces one by one.
    """
    if per_turn < 1:
        raise ValueError("per_turn must be at least 1")
    started = clock()
    lock = threading.Condition()
    emit_lock = threading.Lock()  # the answer's writes, one at a time and in order
    waiting: deque[tuple[int, str]] = deque()
    state: dict[str, Any] = {"in_flight": 0, "count": 0, "written": 0, "reply": None, "done": False}
    pending: list[str] = []  # texts added since the last write
    stopped = threading.Event()
    run_of: dict[int, tuple[int, int]] = {}  # piece index -> its sentence's [start, end)
    made: dict[int, Piece] = {}

    def assemble_if_whole(i: int, piece: Piece) -> None:
        """Assemble piece ``i``'s sentence when ``piece`` was the last of its clips to be made."""
        with lock:
            made[i] = piece
            start, end = run_of.get(i, (i, i + 1))
            if end - start < 2 or any(j not in made for j in range(start, end)):
                return
            run = [made[j] for j in range(start, end)]
        if all(p.get("url") and not p.get("voice") and not p.get("failed") for p in run):
            try:
                assemble([str(p["text"]) for p in run])
            except Exception as exc:  # noqa: BLE001 - the webhook assembles or plays the pieces one by one
                log.warning("assembling a sentence of %d pieces failed: %s", len(run), exc)

    def emit(ready: tuple[tuple[int, Piece], ...]) -> None:
        """Write what is new (under emit_lock); the reply and ``done`` ride along once everything is ready."""
        with lock:
            reply = state["reply"]
            done = reply is not None and state["written"] + len(ready) == state["count"]
            if not (ready or done):
                return  # nothing playable yet: the added texts wait for the next write
            added = tuple(pending)
            pending.clear()
        sink.progress(Progress(added=added, ready=ready, reply=reply if done else None, done=done))
        with lock:
            state["written"] += len(ready)
            if done:
                state["done"] = True
            lock.notify_all()

    def clip(i: int, text: str) -> None:
        try:
            if not stopped.is_set():
                try:
                    piece = make_clip(text)
                except sink.stops:
                    raise
                except Exception as exc:  # a bug, not a synthesis failure: <Say> the piece, keep the answer going
                    log.exception("making the clip of piece %d failed", i)
                    piece = {"text": text, "failed": f"{type(exc).__name__}: {exc}"}
                if assemble is not None and not stopped.is_set():
                    assemble_if_whole(i, piece)
                if not stopped.is_set():
                    with emit_lock:
                        emit(((i, piece),))
        except sink.stops:
            stopped.set()
        finally:
            with lock:
                state["in_flight"] -= 1
                lock.notify_all()
            pump()

    def pump() -> None:
        """Start waiting clips while this answer has free slots (called by the reader and by each clip's end)."""
        while True:
            with lock:
                if stopped.is_set() or not waiting or state["in_flight"] >= per_turn:
                    return
                i, text = waiting.popleft()
                state["in_flight"] += 1
            try:
                synth.submit(clip, i, text)
            except RuntimeError:  # the pool is shut down (the process is stopping)
                stopped.set()
                with lock:
                    state["in_flight"] -= 1
                    lock.notify_all()
                return

    def add(texts: Iterable[str]) -> None:
        texts = [t for t in texts if t.strip()]
        if not texts:
            return
        with lock:
            first = state["count"]
            state["count"] += len(texts)
            pending.extend(texts)
            waiting.extend((first + j, t) for j, t in enumerate(texts))
            for start, end in sentence_runs(texts) if assemble is not None else ():
                for j in range(start, end):
                    run_of[first + j] = (first + start, first + end)
        pump()

    try:
        incremental = False  # known once the stream is open (a wrapper learns whether its source streams)
        for sentence in stream:
            incremental = splice in INCREMENTAL_SPLICES or (splice in STREAMED_SPLICES
                                                            and bool(getattr(stream, "streamed", False)))
            if incremental:
                sink.check()
                add(split_pieces(sentence, splice))
            if stopped.is_set():
                break  # never ask the model for more once the answer is not wanted
        if stopped.is_set():
            stream.close()
            return False
        reply = stream.reply
        ai_ms = (clock() - started) * 1000
        if not incremental:
            add(split_pieces(reply.text, splice, reply.marks))
        with lock:
            empty = state["count"] == 0
        if empty:
            add([apology or reply.text])
        if stopped.is_set():
            return False
        with emit_lock:
            with lock:
                state["reply"] = (reply.text, reply.action, ai_ms, reply.failure)
            emit(())  # every clip already written: the reply and done now; else the last clip carries them
        with lock:
            lock.wait_for(lambda: stopped.is_set() or state["done"])
        return bool(state["done"])
    except sink.stops:
        stopped.set()
        stream.close()
        return False


class TurnSink:
    """A :class:`Sink` writing a turn's record through the engine's fenced job writes.

    ``write(fn)`` is the engine's ``_write(call_sid, n, gen, fn)``, returning the turn as written
    (FencedOut once the turn ended or moved to another generation); ``check()`` calls ``read()``, which raises the same when the turn
    is no longer this job's; the transitions are :mod:`app.voice.turn`'s. ``on_first_piece`` is
    called once, with the seconds from ``origin`` (epoch) to the moment the answer could first be
    played (its first piece, or at the phrase level its first run of pieces up to a pause); the write
    that makes it playable also records it in the turn (``first_playable_ms`` from the turn's start,
    by ``clock``, epoch seconds).
    Its methods are called one at a time (:func:`produce` writes under one lock).
    """

    def __init__(self, write: Callable[[Callable[[Any], Any]], Any], stops: tuple[type[BaseException], ...], *,
                 origin: float, on_first_piece: Callable[[float], None] | None = None,
                 read: Callable[[], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._write = write
        self.clock = clock
        self._read = read
        self.stops = stops
        self.origin = origin
        self.on_first_piece = on_first_piece
        self.added = 0
        self._first = threading.Event()

    def check(self) -> None:
        if self._read is not None:
            self._read()

    def progress(self, step: Progress) -> None:
        """``step`` in one write: pieces added, pieces ready, and when it finished the reply and ``done``."""
        from app.voice import turn as T

        def apply(t: Any) -> Any:
            playable = bool(t.ready_prefix())
            if step.added:
                t = T.extend(t, [{"text": x} for x in step.added])
            for i, piece in step.ready:
                t = T.piece_ready(t, i, piece)
            if step.reply is not None:
                text, action, ai_ms, failure = step.reply
                t = T.replied(t, text, action, t.pieces or (), ai_ms, failure)
            if not playable and t.ready_prefix():
                t = T.first_playable(t, (self.clock() - t.started) * 1000)
            return T.complete(t) if step.done else t

        written = self._write(apply)
        self.added += len(step.added)
        if not self._first.is_set() and written.ready_prefix():
            self._first.set()
            if self.on_first_piece is not None:
                self.on_first_piece(self.clock() - self.origin)


def make_clip(rt: Any, business: Any, text: str, *, deadline: float | None = None,
              lookup_only: bool = False) -> Piece | None:
    """A piece's clip as a state entry; a failure becomes a piece to <Say> instead. Thread-safe.

    ``deadline`` (epoch seconds) bounds retries, fallback voices, locks and the provider; the
    default is the control arm's synthesis timeout from now (every caller is a live call). The
    business's fallback voices (``app.speech.fallback.chain_for``) speak when its own voice
    cannot in time. ``lookup_only``: the indexed clip or None, never synthesizing.
    """
    if lookup_only:
        try:
            clip = rt.synthesizer.lookup(text, business.voice)
        except InvalidText as exc:
            return {"text": text, "failed": f"InvalidText: {exc}", "skip": True}
        if clip is None:
            return None
    else:
        if deadline is None:
            deadline = time.time() + rt.settings.control_tts_timeout_s
        try:
            clip = rt.synthesizer.clip(text, business.voice, deadline=deadline, fallbacks=chain_for(business))
        except InvalidText as exc:
            return {"text": text, "failed": f"InvalidText: {exc}", "skip": True}
        except WarmlineError as exc:
            log.warning("synthesis failed, piece will be <Say>'d: %s: %s", type(exc).__name__, exc)
            metrics.record_synthesis_error(business.voice.provider, exc)
            return {"text": text, "failed": f"{type(exc).__name__}: {exc}"}
    piece = {
        "text": text, "url": clip.url, "key": clip.key, "hit": clip.hit, "source": clip.source,
        "duration_s": round(clip.duration_s, 3), "synth_ms": round(clip.synth_ms, 1), "chars": clip.chars,
    }
    if clip.fallback:
        piece["voice"] = clip.voice  # spoken by a fallback voice
        piece["own_error"] = clip.own_error or None  # why the own voice could not (reports, metrics)
        if clip.own_error:
            metrics.record_synthesis_error(business.voice.provider, clip.own_error)
    if clip.spooled:
        piece["spooled"] = True  # served from this host's edge until the store takes it
    return piece


def sentence_assembler(synthesizer: Any, business: Any, deadline: float) -> Callable[[Sequence[str]], Any] | None:
    """The ``assemble`` hook of :func:`produce` for ``business``: its sentences as one clip each at the
    ``phrase`` level (where the webhook plays them so), bounded by ``deadline`` (epoch s); None otherwise."""
    if business.splice != "phrase":
        return None
    return lambda texts: synthesizer.assemble_texts(list(texts), business.voice, deadline=deadline)


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def synthesis_pool(workers: int) -> ThreadPoolExecutor:
    """This process's pool for clip synthesis (made lazily, again after a fork). Thread-safe.

    ``workers`` bounds the syntheses in flight across all answers of the process; size it to the
    TTS provider's concurrency (Deepgram: about 15 per project).
    """
    key = (os.getpid(), workers)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth")
        return pool


__all__ = ["INCREMENTAL_SPLICES", "STREAMED_SPLICES", "Piece", "Progress", "Sink", "TurnSink", "make_clip", "produce",
           "sentence_assembler", "synthesis_pool"]
