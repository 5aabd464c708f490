"""A turn as a typed record: its fields, its lifecycle, and the only functions that move it.

A turn is what happens between one caller utterance and the answer the caller hears. Its record
lives in the shared call state (any worker of any host reads it); this module is its one owner:
other modules ask a transition for a new value and write that, they never edit fields.

Lifecycle of the *job* that produces the answer (``status``)::

    queued ──start──> running ──complete──> done
      │  ^               │ │
      │  └────adopt──────┘ └──fail──> failed
      └──adopt (host gone)
    queued | running ──end (the caller heard something else / the call ended)──> abandoned

- ``queued``: on the pool of process ``host`` since ``queued_at`` (epoch s); nobody runs it yet.
- ``running``: process ``owner`` runs it under generation ``gen``.
- ``gen`` (the fencing token) goes up by one on every acquisition: when a queued job starts, and
  when another process adopts a turn whose runner is gone. Every write a job makes carries the
  ``gen`` it started with and requires ``status == running``; the state store refuses any other
  (:class:`~app.errors.FencedOut`), so a job that lost its turn -- adopted elsewhere, or ended --
  stops at its next write and nothing it produced afterwards lands.

Independently, ``ended`` says the *conversation* turn is over (``instant``, ``filler``,
``fallback``, ``apology``): set once, by the webhook that answered; ``heard`` is the agent line the
caller actually heard (the reply text, or the apology), the only thing that enters the history.
Ending a turn whose job is still queued or running abandons it (cancellation is a transition).

Pieces are JSON objects (``text`` plus, once ready, ``url``/``key``/``hit``/... or ``failed``),
built by :meth:`app.voice.turns.TurnEngine.make_clip`; a running turn's piece list may grow
(:func:`extend`), so a streamed reply fits. Treat them as read-only.

Pure: no I/O, no clock (times are arguments). Values are immutable and safe to share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.speech.canon import JOIN

QUEUED, RUNNING, DONE, FAILED, ABANDONED = "queued", "running", "done", "failed", "abandoned"
STATUSES = (QUEUED, RUNNING, DONE, FAILED, ABANDONED)
JOB_OVER = (DONE, FAILED, ABANDONED)
"""Statuses in which no job runs (and none may write)."""

Piece = Mapping[str, Any]


class IllegalTransition(ValueError):
    """A transition asked of a turn in a status it does not leave from (a bug, not a runtime fault)."""


@dataclass(frozen=True)
class Turn:
    """One turn's record. Times: ``started``/``queued_at`` epoch seconds; ``*_ms`` since ``started``."""

    utterance: str = ""
    started: float = 0.0
    status: str = QUEUED
    gen: int = 0
    host: str | None = None
    queued_at: float | None = None
    owner: str | None = None
    history_len: int = 0
    text: str | None = None
    action: str | None = None
    pieces: tuple[Piece, ...] | None = None
    ai_ms: float | None = None
    tts_ms: float = 0.0
    error: str | None = None
    failure: str | None = None  # the reply is the apology because the responder failed (Reply.failure)
    adopted: int = 0
    # what the webhooks did (any status)
    hops: int = 0
    bridges: tuple[str, ...] = ()
    filler: str | None = None
    filler_ms: float | None = None
    first_audio_ms: float | None = None
    answer_ms: float | None = None
    ended: str | None = None
    heard: str | None = None
    said_from: int | None = None  # with ended == "fallback": the first piece <Say>'d
    extra: Mapping[str, Any] = field(default_factory=dict)

    # --- reading ---------------------------------------------------------------------------------
    @property
    def job_over(self) -> bool:
        return self.status in JOB_OVER

    def ready_prefix(self) -> list[Piece]:
        """The leading pieces that can be spoken now (a clip URL, or a failed piece to <Say>).

        Never ends inside running speech: a ``phrase`` piece marked to run on into the next one
        (a trailing :data:`~app.speech.canon.JOIN`) is held back until that one is ready too, so a
        prefix played before the rest stops where the voice pauses (a comma, a sentence's end),
        not mid-phrase with a hop's round trip as the pause.
        """
        pieces = self.pieces or ()
        ready = []
        for piece in pieces:
            if piece.get("url") or piece.get("failed"):
                ready.append(piece)
            else:
                break
        while ready and len(ready) < len(pieces) and str(ready[-1].get("text", "")).endswith(JOIN):
            ready.pop()
        return ready

    @property
    def complete(self) -> bool:
        """True when the job is done and every piece can be spoken."""
        return self.status == DONE and len(self.ready_prefix()) == len(self.pieces or ())

    @property
    def last_bridge(self) -> str | None:
        return self.bridges[-1] if self.bridges else None

    # --- serialization ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["pieces"] = None if self.pieces is None else [dict(p) for p in self.pieces]
        out["bridges"] = list(self.bridges)
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Turn:
        """The turn of a stored record; unknown keys are ignored, missing ones take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        if values.get("pieces") is not None:
            values["pieces"] = tuple(dict(p) for p in values["pieces"])
        values["bridges"] = tuple(values.get("bridges") or ())
        values["extra"] = dict(values.get("extra") or {})
        if values.get("status") not in STATUSES:
            values["status"] = FAILED
        return cls(**values)


def _require(turn: Turn, allowed: Sequence[str], what: str) -> None:
    if turn.status not in allowed:
        raise IllegalTransition(f"cannot {what} a turn that is {turn.status}")


# --- the job's transitions ---------------------------------------------------------------------
def new(utterance: str, *, started: float, host: str, now: float, history_len: int) -> Turn:
    """A new turn, queued on ``host``'s pool at ``now``."""
    return Turn(utterance=utterance, started=started, status=QUEUED, host=host, queued_at=now,
                history_len=history_len)


def start(turn: Turn, owner: str) -> Turn:
    """queued -> running: ``owner`` runs it now under a new generation (its fencing token)."""
    _require(turn, (QUEUED,), "start")
    return dataclasses.replace(turn, status=RUNNING, gen=turn.gen + 1, owner=owner, host=owner)


def adopt(turn: Turn, host: str, now: float) -> Turn:
    """queued | running -> queued on ``host``: its runner is gone; a new generation fences the old one out."""
    _require(turn, (QUEUED, RUNNING), "adopt")
    return dataclasses.replace(turn, status=QUEUED, gen=turn.gen + 1, host=host, owner=None, queued_at=now,
                               adopted=turn.adopted + 1)


def replied(turn: Turn, text: str, action: str, pieces: Sequence[Piece], ai_ms: float,
            failure: str | None = None) -> Turn:
    """The responder's reply and the pieces to speak (running only); ``failure``: why it is the apology."""
    _require(turn, (RUNNING,), "record the reply of")
    return dataclasses.replace(turn, text=text, action=action, pieces=tuple(dict(p) for p in pieces),
                               ai_ms=round(ai_ms, 1), failure=failure)


def extend(turn: Turn, pieces: Sequence[Piece]) -> Turn:
    """More pieces at the end (a streamed reply grows while running)."""
    _require(turn, (RUNNING,), "extend")
    return dataclasses.replace(turn, pieces=tuple(turn.pieces or ()) + tuple(dict(p) for p in pieces))


def piece_ready(turn: Turn, i: int, piece: Piece) -> Turn:
    """Piece ``i`` has its clip (or failed and will be <Say>'d); what the plan said of it (``slot``) stays."""
    _require(turn, (RUNNING,), "fill a piece of")
    pieces = list(turn.pieces or ())
    if not 0 <= i < len(pieces):
        raise IllegalTransition(f"piece {i} of {len(pieces)}")
    pieces[i] = {**pieces[i], **piece}
    return dataclasses.replace(turn, pieces=tuple(pieces), tts_ms=round(turn.tts_ms + float(piece.get("synth_ms") or 0.0), 1))


def complete(turn: Turn) -> Turn:
    """running -> done."""
    _require(turn, (RUNNING,), "complete")
    return dataclasses.replace(turn, status=DONE)


def fail(turn: Turn, error: str) -> Turn:
    """queued | running -> failed (the hops will <Say> what there is, or apologise)."""
    _require(turn, (QUEUED, RUNNING), "fail")
    return dataclasses.replace(turn, status=FAILED, error=error[:500])


# --- the webhooks' transitions (any status) ----------------------------------------------------
def speculated(turn: Turn, outcome: str, started: int, gen: int | None, head_start_ms: float | None) -> Turn:
    """What speculation did for this turn (``adopted`` / ``discarded`` / ``none``), how many speculative
    responder calls it made, the adopted speculation's generation (the job follows it) and its head start."""
    return dataclasses.replace(turn, extra={**turn.extra, "speculation": outcome, "speculative_calls": started,
                                            "speculation_gen": gen, "head_start_ms": head_start_ms})


def first_playable(turn: Turn, elapsed_ms: float) -> Turn:
    """The answer could first be played ``elapsed_ms`` after the turn started (kept once: the first time).

    Against ``answer_ms`` (when a webhook handed it to Twilio) it is what the answer waited for the
    schedule Twilio imposes: a filler or bridge to end, the next hop."""
    if "first_playable_ms" in turn.extra:
        return turn
    return dataclasses.replace(turn, extra={**turn.extra, "first_playable_ms": round(max(0.0, elapsed_ms), 1)})


def hopped(turn: Turn) -> Turn:
    return dataclasses.replace(turn, hops=turn.hops + 1)


def filler_played(turn: Turn, filler: str, elapsed_ms: float) -> Turn:
    return dataclasses.replace(turn, filler=filler, filler_ms=elapsed_ms, first_audio_ms=turn.first_audio_ms or elapsed_ms)


def bridged(turn: Turn, phrase: str) -> Turn:
    return dataclasses.replace(turn, bridges=turn.bridges + (phrase,))


def answer_started(turn: Turn, elapsed_ms: float) -> Turn:
    return dataclasses.replace(turn, answer_ms=turn.answer_ms or elapsed_ms,
                               first_audio_ms=turn.first_audio_ms or elapsed_ms)


def end(turn: Turn, outcome: str, heard: str, *, said_from: int | None = None) -> Turn:
    """The caller has been answered (``heard`` is what they heard); a job still queued or running is abandoned.

    Idempotent in effect: ending an ended turn raises, so exactly one webhook logs it and
    commits ``heard`` to the history.
    """
    if turn.ended is not None:
        raise IllegalTransition(f"turn already ended ({turn.ended})")
    status = ABANDONED if turn.status in (QUEUED, RUNNING) else turn.status
    return dataclasses.replace(turn, ended=outcome, heard=heard, status=status, said_from=said_from)


__all__ = [
    "ABANDONED", "DONE", "FAILED", "JOB_OVER", "QUEUED", "RUNNING", "STATUSES", "IllegalTransition", "Turn",
    "adopt", "answer_started", "bridged", "complete", "end", "extend", "fail", "filler_played", "first_playable",
    "hopped", "new",
    "piece_ready", "replied", "speculated", "start",
]
