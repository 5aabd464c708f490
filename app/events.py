"""Turn events: the typed record of what a caller heard on one turn, and the append-only turn log.

**The record.** A :class:`TurnEvent` holds, per answer sentence, a :class:`SentenceOutcome`
saying *how it was spoken* (``spoken``):

    cache            the business's own voice, a clip already published (no synthesis)
    live             the business's own voice, synthesized during the turn
    fallback_voice   a clip in a fallback voice (the own voice failed); ``voice`` names it
    say              Twilio ``<Say>`` of the text (synthesis failed, or the deadline passed)

and per turn whether the reply was the responder's (``reply = "responder"``) or an
apology/error text (``"apology"``), with the first cause of anything the caller did not hear as
intended in ``failure`` (a :class:`Failure`; ``kind`` is ``responder``, ``error`` (the turn job
crashed), ``synthesis`` or ``deadline``, ``error`` the exception class). A sentence that
contains a value the responder marked as a slot (a name, a booking) carries ``slot = True``:
reports and the precompute plan never list it. Everything in the seed schema (``hit``,
``source``, ``fallback``, ``outcome``, the latency fields, the ``*_latency_ms`` aliases) stays.

**The log.** :class:`EventLog` appends one JSON line per turn to
``<directory>/turns-YYYY-MM-DD.jsonl`` (UTC day of the write). Safe with many workers and
threads: each line is written with a single ``write`` on a file opened with O_APPEND while
holding an exclusive ``flock``, so lines never interleave.

Records are frozen dataclasses (safe to share across threads); the builders are pure.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENT_VERSION = 2
SPOKEN = ("cache", "live", "fallback_voice", "say")
REPLIES = ("responder", "apology")
FAILURE_KINDS = ("responder", "error", "synthesis", "deadline")
SAY_OUTCOMES = frozenset(("fallback", "apology"))
DETAIL_CHARS = 160


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


# --- the typed record ------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Why a turn's caller did not hear the responder's reply in the business's own voice.

    ``kind``: one of :data:`FAILURE_KINDS`; ``error``: the exception class (``ResponderError``,
    ``SynthesisRejected``, ...) or ``None`` for a deadline; ``detail``: the first
    :data:`DETAIL_CHARS` characters of its message (the events store is private).
    """

    kind: str
    error: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"failure kind must be one of {FAILURE_KINDS}, got {self.kind!r}")

    @classmethod
    def from_text(cls, kind: str, text: str | None) -> Failure:
        """From ``"ErrorClass: message"`` (how turn records keep an error)."""
        text = str(text or "")
        error, sep, detail = text.partition(": ")
        if not sep or not error.isidentifier():
            return cls(kind, None, text[:DETAIL_CHARS] or None)
        return cls(kind, error, detail[:DETAIL_CHARS] or None)

    @property
    def label(self) -> str:
        """``kind`` or ``kind: Error`` (what reports count failures by)."""
        return f"{self.kind}: {self.error}" if self.error else self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "error": self.error, "detail": self.detail}


@dataclass(frozen=True)
class SentenceOutcome:
    """One sentence (piece) of an answer and how the caller heard it (``spoken``, see the module doc).

    ``hit``/``source`` are the seed fields: no synthesis was needed / where the clip came from
    (``index``, ``store``, ``spool``, ``synth``; ``say`` for a ``<Say>``). ``error``: the
    synthesis error class that made it a ``<Say>`` or a fallback voice. ``chars`` counts the text.
    """

    text: str
    spoken: str
    key: str | None = None
    hit: bool = False
    source: str = "say"
    chars: int = 0
    duration_s: float | None = None
    voice: str | None = None
    error: str | None = None
    slot: bool = False

    def __post_init__(self) -> None:
        if self.spoken not in SPOKEN:
            raise ValueError(f"spoken must be one of {SPOKEN}, got {self.spoken!r}")

    @property
    def own_voice(self) -> bool:
        return self.spoken in ("cache", "live")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "text": self.text, "hit": self.hit, "source": self.source,
                               "spoken": self.spoken, "chars": self.chars, "duration_s": self.duration_s}
        if self.voice:
            out["voice"] = self.voice
        if self.error:
            out["error"] = self.error
        if self.slot:
            out["slot"] = True
        return out


@dataclass(frozen=True)
class TurnEvent:
    """One turn as the caller experienced it. Times in milliseconds from the webhook's arrival."""

    business: str
    call: str
    turn: int | None
    arm: str
    voice: str
    outcome: str
    reply: str = "responder"
    failure: Failure | None = None
    action: str = "continue"
    sentences: tuple[SentenceOutcome, ...] = ()
    filler: str | None = None
    hops: int = 0
    ai_ms: float | None = None
    tts_ms: float = 0.0
    time_to_first_audio_ms: float | None = None
    time_to_answer_ms: float | None = None
    time_to_filler_ms: float | None = None
    host: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reply not in REPLIES:
            raise ValueError(f"reply must be one of {REPLIES}, got {self.reply!r}")

    @property
    def said(self) -> bool:
        """True when the caller heard any ``<Say>`` (the seed ``fallback`` field)."""
        return any(s.spoken == "say" for s in self.sentences) or self.outcome in SAY_OUTCOMES

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines record (seed fields kept; latencies rounded to 0.1 ms)."""
        sentences = [s.to_dict() for s in self.sentences]
        synthesized = [s for s in self.sentences if s.spoken in ("live", "fallback_voice") and not s.hit]
        cached = [s for s in self.sentences if s.spoken in ("cache", "fallback_voice") and s.hit]
        out: dict[str, Any] = {
            "host": self.host or None, "business": self.business, "call": self.call, "turn": self.turn,
            "arm": self.arm, "voice": self.voice, "outcome": self.outcome, "reply": self.reply,
            "failure": self.failure.to_dict() if self.failure else None, "action": self.action,
            "sentences": sentences, "filler": self.filler, "hops": self.hops, "ai_ms": _r(self.ai_ms),
            "tts_ms": _r(self.tts_ms) or 0.0, "time_to_first_audio_ms": _r(self.time_to_first_audio_ms),
            "time_to_answer_ms": _r(self.time_to_answer_ms), "time_to_filler_ms": _r(self.time_to_filler_ms),
            "fallback": self.said,
            "chars_live": sum(s.chars for s in synthesized), "chars_cached": sum(s.chars for s in cached),
        }
        out.update(self.extra)
        out.update({
            "ai_latency_ms": out["ai_ms"], "tts_latency_ms": out["tts_ms"], "total_latency_ms": out["time_to_answer_ms"],
            "tts_cached": bool(self.sentences) and all(s.spoken == "cache" for s in self.sentences),
        })
        return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


# --- builders: from a turn record (the call state's dict) to outcomes ---------------------------


def _error_class(failed: str | None) -> str | None:
    head = str(failed or "").partition(":")[0].strip()
    return head if head.isidentifier() else (head or None)


def sentence_outcomes(pieces: Sequence[Mapping[str, Any]], *, said_from: int | None = None) -> list[SentenceOutcome]:
    """How each piece was heard. Pieces at index ``said_from`` and after were ``<Say>``'d as one text
    (the deadline passed); skipped pieces (nothing speakable) are left out."""
    out = []
    for i, piece in enumerate(pieces):
        if piece.get("skip"):
            continue
        text = str(piece.get("text") or "")
        error = _error_class(piece.get("failed")) if piece.get("failed") else None
        if piece.get("url") and (said_from is None or i < said_from):
            fallback_voice = piece.get("voice")
            spoken = "fallback_voice" if fallback_voice else ("cache" if piece.get("hit") else "live")
            out.append(SentenceOutcome(
                text=text, spoken=spoken, key=piece.get("key"), hit=bool(piece.get("hit")),
                source=str(piece.get("source") or "synth"), chars=int(piece.get("chars") or len(text)),
                duration_s=piece.get("duration_s"), voice=fallback_voice, error=piece.get("own_error"),
                slot=bool(piece.get("slot")),
            ))
        else:
            out.append(SentenceOutcome(text=text, spoken="say", key=piece.get("key"), source="say", chars=len(text),
                                       error=error, slot=bool(piece.get("slot"))))
    return out


def turn_failure(record: Mapping[str, Any], sentences: Sequence[SentenceOutcome], outcome: str) -> Failure | None:
    """The first cause, in causal order: the responder, a crashed job, a synthesis error, the deadline."""
    if record.get("failure"):
        return Failure.from_text("responder", record["failure"])
    if record.get("error"):
        return Failure.from_text("error", record["error"])
    for s in sentences:
        if (s.error and s.spoken == "say") or s.spoken == "fallback_voice":
            return Failure("synthesis", s.error)
    if outcome in SAY_OUTCOMES or any(s.spoken == "say" for s in sentences):
        return Failure("deadline")
    return None


def reply_kind(record: Mapping[str, Any], outcome: str) -> str:
    """``apology`` when the responder failed, the job crashed, or nothing could be said but the apology."""
    if record.get("failure") or record.get("error") or outcome == "apology":
        return "apology"
    return "responder"


def marked_in(text: str, values: Sequence[str]) -> bool:
    """True when ``text`` contains one of the responder-marked slot ``values`` (a name, a booking)."""
    return any(v and v.strip() and v.strip() in text for v in values)


# --- the log ------------------------------------------------------------------------------------


class EventLog:
    """Appends turn events to ``<directory>/turns-YYYY-MM-DD.jsonl``. Thread- and process-safe.

    ``host``: this host's id, written into every event that has none (reports filter by it).
    """

    def __init__(self, directory: Path | str, host: str = "") -> None:
        self.directory = Path(directory)
        self.host = host

    def path_for(self, day: dt.date) -> Path:
        return self.directory / f"turns-{day.isoformat()}.jsonl"

    def append(self, event: TurnEvent | dict[str, Any], *, when: dt.datetime | None = None) -> Path:
        """Write ``event`` (with ``v``, ``ts`` and ``host`` filled in) as one line; return the day file's path."""
        when = when or utc_now()
        body = event.to_dict() if isinstance(event, TurnEvent) else dict(event)
        if self.host and not body.get("host"):
            body["host"] = self.host
        record = {"v": EVENT_VERSION, "ts": iso(when), **body}
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        path = self.path_for(when.date())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the first event (or the directory was removed): make it once
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)
        return path

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("turns-*.jsonl"))

    def read(self) -> Iterator[dict[str, Any]]:
        """Every well-formed event in every day file (corrupt lines are skipped)."""
        for path in self.files():
            with path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue


def spoken_of(sentence: dict[str, Any]) -> str:
    """How a logged sentence was heard; seed (v1) events without ``spoken`` are read from hit/source/voice.

    A seed sentence without ``hit`` raises KeyError (the report counts such a line as malformed).
    """
    spoken = sentence.get("spoken")
    if spoken in SPOKEN:
        return spoken
    if sentence.get("source") == "say":
        return "say"
    if sentence.get("voice"):
        return "fallback_voice"
    return "cache" if sentence["hit"] is True else "live"


def answer_wait_s(event: Mapping[str, Any]) -> float | None:
    """Seconds a turn's answer waited from being playable (``first_playable_ms``) to its hand-over to
    Twilio (``time_to_answer_ms``): a filler or bridge ending, the next hop. None when either is missing."""
    playable, answered = event.get("first_playable_ms"), event.get("time_to_answer_ms")
    if not (isinstance(playable, (int, float)) and isinstance(answered, (int, float)) and answered > 0):
        return None
    return max(0.0, answered - playable) / 1000
