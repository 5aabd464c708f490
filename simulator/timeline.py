"""What happened on a simulated call, when, and the per-turn metrics computed from it.

Times are simulated seconds since the call was placed (see :mod:`simulator.clock`).

Event kinds (``Event.kind``):

    webhook   a TwiML request (detail: url, method, via=incoming|redirect|gather|status, status, server_s)
    fetch     a <Play> media fetch (detail: url, cached, status, content_type)
    play      audio played (detail: url, loop, answer, system)
    say       <Say> spoken by Twilio (detail: text, voice, language, loop, answer, system)
    pause     <Pause> (detail: length)
    silence   a <Gather> waiting for speech that never came (detail: reason="no_input")
    speak     the caller speaking one utterance (detail: text)
    dial      <Dial>: the caller is transferred and the simulation ends (detail: number)
    hangup    the call ends (detail: reason)
    failure   something Twilio would report (detail: failure=Failure)

**Turns.** Turn 0 (the greeting) runs from the moment the call is placed; caller turn *n*
starts when the caller stops speaking utterance *n*. A turn's *response phase* ends at the
first of: the caller starting to speak again, a <Gather> starting to wait in silence, audio
Twilio itself plays after an application error, the end of the call.

**Answer audio** (decided by the simulator, which sees the documents, with :func:`is_answer_audio`,
the one rule every report uses, and stored as ``detail["answer"]`` on play/say events): an audio
verb is part of the answer when its document contains a <Gather>, <Hangup> or <Dial>; or when no
<Redirect> follows it in its document; or when the <Redirect> after it moves the ``played`` query
parameter forward (Warmline's ``tts-ready?turn=N&played=K`` counts the answer pieces already
played: a document that plays a ready *prefix* of the answer redirects with a larger ``played``,
a filler or bridge redirects with the same one). So "filler + <Redirect>" is a filler, "ready
prefix + <Redirect>" and "answer + <Gather>" are the answer.

**What the caller heard as the answer** (:class:`HeardRule`, from the answer audio of a turn and
the business's config): ``clips`` (every answer verb a <Play> in the business's own voice),
``other_voice`` (a clip of a fallback voice), ``say`` (a <Say>: a piece or the whole answer
Twilio had to speak), ``apology`` (the business's apology prompt, played or said: the responder
failed or the turn ran out of time with nothing to say), ``unanswered`` (no answer audio at all).

Per turn, from the events in its response phase:

* ``time_to_first_audio_s``: turn start -> the first play/say starts.
* ``time_to_answer_audio_s``: turn start -> the first answer play/say starts.
* ``longest_silence_s``: the longest stretch with no audio between the turn start and the
  end of the last answer audio (or the end of the response phase when no answer played).
  Gaps between consecutive clips, pauses and webhook waits all count.
* ``fillers``: non-answer audio played before the first answer audio.
* ``hops``: <Redirect>s followed.  ``failures``: failures recorded during the turn.

Not thread-safe: a timeline belongs to one call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

AUDIO_KINDS = frozenset({"play", "say"})
EVENT_KINDS = frozenset({"webhook", "fetch", "play", "say", "pause", "silence", "speak", "dial", "hangup", "failure"})
TERMINAL_VERBS = frozenset({"Gather", "Hangup", "Dial"})
HEARD_KINDS = ("clips", "other_voice", "say", "apology", "unanswered")
"""What a turn's answer was, best first (see :class:`HeardRule`)."""
PROBLEM_KINDS = ("other_voice", "say", "apology", "unanswered")
"""The kinds a caller notices as something going wrong."""


def played_count(url: str | None) -> int:
    """The ``played`` query parameter of a Warmline ``tts-ready`` URL (answer pieces already played), else 0."""
    if not url:
        return 0
    try:
        return max(0, int(parse_qs(urlsplit(url).query).get("played", ["0"])[0]))
    except ValueError:
        return 0


def is_answer_audio(tags: Sequence[str], index: int, doc_url: str, redirect_url: str | None) -> bool:
    """Is the audio verb at ``index`` of a document (its verbs' ``tags``) part of the answer?

    The one rule for "answer audio" (see the module docstring): the document ends the turn
    (<Gather>, <Hangup>, <Dial>), or no <Redirect> follows the verb, or the document's
    <Redirect> (``redirect_url``, resolved) has a larger ``played`` than the document's own URL.
    """
    if any(tag in TERMINAL_VERBS for tag in tags):
        return True
    if "Redirect" not in tags[index + 1:]:
        return True
    return played_count(redirect_url) > played_count(doc_url)


@dataclass(frozen=True)
class Failure:
    """Something Twilio would log in its debugger, with a Twilio-like error ``code``.

    ``where``: "webhook" | "twiml" | "media" | "status_callback" | "simulator".
    ``fatal``: the call ended because of it (Twilio's "application error").
    ``code`` is None where Twilio has no such error (a limit of the simulator itself).
    """

    t: float
    code: int | None
    where: str
    message: str
    url: str | None = None
    fatal: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """One thing that happened: starts at ``t`` and lasts ``duration_s`` simulated seconds."""

    t: float
    kind: str
    duration_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> float:
        """When it ended, simulated seconds."""
        return self.t + self.duration_s

    @property
    def is_audio(self) -> bool:
        """Audio the caller hears (play or say)."""
        return self.kind in AUDIO_KINDS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (a Failure in the detail becomes a dict)."""
        detail = {k: (v.to_dict() if isinstance(v, Failure) else v) for k, v in self.detail.items()}
        return {"t": round(self.t, 6), "kind": self.kind, "duration_s": round(self.duration_s, 6), "detail": detail}


class AudioSegment(NamedTuple):
    """What the caller heard from ``start_s``: kind "play" with the WAV bytes, or "say" with the text."""

    start_s: float
    kind: str
    data: bytes | str


class TranscriptLine(NamedTuple):
    """One heard item: ``who`` is "caller" or "twilio"; ``kind`` speak/play/say; ``text`` words or URL."""

    t: float
    end: float
    who: str
    kind: str
    text: str


@dataclass(frozen=True)
class TurnMetrics:
    """The metrics of one turn; see the module docstring. Times in simulated seconds."""

    index: int
    utterance: str | None
    start_s: float
    end_s: float
    time_to_first_audio_s: float | None
    time_to_answer_audio_s: float | None
    longest_silence_s: float
    fillers: tuple[str, ...]
    hops: int
    failures: tuple[Failure, ...]
    heard: tuple[str, ...]
    answer_audio: tuple[tuple[str, str], ...] = ()
    """(kind, label) of each answer play/say: ("play", url) or ("say", text)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["fillers"] = list(self.fillers)
        data["heard"] = list(self.heard)
        data["answer_audio"] = [list(a) for a in self.answer_audio]
        data["failures"] = [f.to_dict() for f in self.failures]
        return data


def _audio_label(event: Event) -> str:
    if event.kind == "play":
        return str(event.detail.get("url", ""))
    return str(event.detail.get("text", ""))


class Timeline:
    """An append-only list of events of one call, and the turn metrics computed from it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, t: float, kind: str, duration_s: float = 0.0, **detail: Any) -> Event:
        """Record an event that started at ``t`` and lasted ``duration_s``."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        event = Event(t=t, kind=kind, duration_s=duration_s, detail=detail)
        self.events.append(event)
        return event

    def add_failure(self, failure: Failure) -> Event:
        """Record a failure at its own time."""
        return self.add(failure.t, "failure", failure=failure)

    @property
    def failures(self) -> list[Failure]:
        """Every failure, in the order recorded."""
        return [e.detail["failure"] for e in self.events if e.kind == "failure"]

    def _call_events(self) -> list[Event]:
        """The events up to (not including) the hang-up event."""
        for i, event in enumerate(self.events):
            if event.kind == "hangup":
                return self.events[:i]
        return self.events

    def end_time(self) -> float:
        """When the call ended: the hangup event, else the end of the last event."""
        for event in self.events:
            if event.kind == "hangup":
                return event.t
        return max((e.end for e in self.events), default=0.0)

    def transcript(self) -> list[TranscriptLine]:
        """What was said and played, in order."""
        lines = []
        for e in self.events:
            if e.kind == "speak":
                lines.append(TranscriptLine(e.t, e.end, "caller", "speak", str(e.detail.get("text", ""))))
            elif e.is_audio:
                lines.append(TranscriptLine(e.t, e.end, "twilio", e.kind, _audio_label(e)))
        return lines

    def turns(self) -> list[TurnMetrics]:
        """Turn 0 (the greeting) followed by one turn per caller utterance."""
        speaks = [e for e in self.events if e.kind == "speak"]
        call_end = self.end_time()
        bounds: list[tuple[int, str | None, float, float]] = []
        starts = [(0, None, 0.0)] + [(i + 1, str(s.detail.get("text", "")), s.end) for i, s in enumerate(speaks)]
        for n, (index, utterance, start) in enumerate(starts):
            stop = speaks[n].t if n < len(speaks) else call_end
            bounds.append((index, utterance, start, max(start, stop)))
        return [self._turn(index, utterance, start, stop) for index, utterance, start, stop in bounds]

    def _turn(self, index: int, utterance: str | None, start: float, stop: float) -> TurnMetrics:
        # An event belongs to the turn when it starts in [start, stop); the last turn also takes
        # events at exactly the hang-up (a limit failure recorded as the call ends). Events after
        # the hang-up event (the status callback) belong to no turn.
        call = self._call_events()
        last = stop >= self.end_time()
        inside = [e for e in call if start <= e.t < stop or (last and e.t == stop)]
        phase_end = stop
        for e in inside:
            no_input = e.kind == "silence" and e.detail.get("reason") == "no_input"
            if no_input or (e.is_audio and e.detail.get("system")):
                phase_end = min(phase_end, e.t)
                break
        audio = [e for e in inside if e.is_audio and not e.detail.get("system") and e.t < phase_end]
        answers = [e for e in audio if e.detail.get("answer")]
        first = audio[0].t - start if audio else None
        first_answer = answers[0].t - start if answers else None
        silence_end = answers[-1].end if answers else phase_end
        longest = 0.0
        cursor = start
        for e in audio:
            if e.t >= silence_end:
                break
            longest = max(longest, e.t - cursor)
            cursor = max(cursor, e.end)
        longest = max(longest, silence_end - cursor)
        fillers = tuple(
            _audio_label(e) for e in audio if not e.detail.get("answer") and (not answers or e.t < answers[0].t)
        )
        hops = sum(1 for e in inside if e.kind == "webhook" and e.detail.get("via") == "redirect")
        failures = tuple(e.detail["failure"] for e in inside if e.kind == "failure")
        return TurnMetrics(
            index=index,
            utterance=utterance,
            start_s=start,
            end_s=phase_end,
            time_to_first_audio_s=first,
            time_to_answer_audio_s=first_answer,
            longest_silence_s=longest,
            fillers=fillers,
            hops=hops,
            failures=failures,
            heard=tuple(_audio_label(e) for e in audio),
            answer_audio=tuple((e.kind, _audio_label(e)) for e in answers),
        )


_CLIP_URL = re.compile(r"/tts/v[0-9]+/([a-z0-9_-]{1,80})/[0-9a-f]{2}/([0-9a-f]{64})\.wav(?:$|[?#])")


@dataclass(frozen=True)
class HeardRule:
    """Tells what kind of answer a turn got (:data:`HEARD_KINDS`), from the client side only.

    ``voice_slug``: the business's own voice (clip URLs are ``.../tts/v1/<slug>/<xx>/<key>.wav``).
    ``apology_keys``: content keys of the apology prompt (whole, and each piece the call flow may
    split it into) in every voice that may speak it. ``apology_texts``: the same texts, canonical.
    A <Play> of a URL that is not a clip URL counts as the business's own audio. Immutable;
    safe from any thread.
    """

    voice_slug: str
    apology_keys: frozenset[str] = frozenset()
    apology_texts: frozenset[str] = frozenset()

    @classmethod
    def for_business(cls, business: Any) -> HeardRule:
        """The rule for a :class:`app.business.Business` (its voice, fallback voices, apology, splice level)."""
        from app.speech.canon import canon
        from app.speech.fallback import chain_for
        from app.speech.keys import content_key
        from app.speech.pieces import split_pieces

        apology = business.prompt("apology")
        texts = {canon(apology), *(canon(p) for p in split_pieces(apology, business.splice))}
        voices = (business.voice, *chain_for(business))
        return cls(voice_slug=business.voice.slug, apology_texts=frozenset(texts),
                   apology_keys=frozenset(content_key(t, v) for t in texts for v in voices))

    def _is_apology(self, kind: str, label: str) -> bool:
        if kind == "play":
            match = _CLIP_URL.search(label)
            return bool(match and match.group(2) in self.apology_keys)
        from app.speech.canon import canon

        said = canon(label) if label.strip() else ""
        # Final punctuation aside ("now." and "now!" are the same words), any apology text inside counts.
        return any(text.rstrip(".!?") in said for text in self.apology_texts)

    def classify(self, turn: TurnMetrics) -> str:
        """The kind of answer ``turn`` got: one of :data:`HEARD_KINDS` (the worst that applies)."""
        if not turn.answer_audio:
            return "unanswered"
        if any(self._is_apology(kind, label) for kind, label in turn.answer_audio):
            return "apology"
        if any(kind == "say" for kind, _label in turn.answer_audio):
            return "say"
        for kind, label in turn.answer_audio:
            match = _CLIP_URL.search(label)
            if match and match.group(1) != self.voice_slug:
                return "other_voice"
        return "clips"

    def count(self, turns: Iterable[TurnMetrics]) -> dict[str, int]:
        """How many of ``turns`` got each kind of answer (every kind present, zeros included)."""
        counts = dict.fromkeys(HEARD_KINDS, 0)
        for turn in turns:
            counts[self.classify(turn)] += 1
        return counts


def heard_problems_line(counts: dict[str, int], responder_failures: int | None = None) -> str:
    """One line a reader cannot mistake for "all was well": the caller-heard problems and their total."""
    total = sum(counts.get(k, 0) for k in PROBLEM_KINDS)
    turns = sum(counts.values())
    parts = [f"{counts.get('apology', 0)} apologies", f"{counts.get('say', 0)} <Say>",
             f"{counts.get('other_voice', 0)} fallback voice", f"{counts.get('unanswered', 0)} unanswered"]
    tail = "" if responder_failures is None else f"; responder failures {responder_failures}"
    share = f" ({total / turns:.1%} of {turns} turns)" if turns else ""
    return f"caller-heard problems: {total}{share}: {', '.join(parts)}; own-voice clips {counts.get('clips', 0)}{tail}"


@dataclass
class CallResult:
    """The outcome of one simulated call.

    ``ended_by``: "hangup" (<Hangup>), "end_of_document", "caller_hangup" (the caller gave up
    after unanswered gathers or endless audio), "transferred" (<Dial>), "application_error",
    "unsupported" (a TwiML verb the simulator does not play), "limit" (the simulator's own
    safety limits). ``greeting`` is turn 0; ``turns`` holds one entry per caller utterance.
    ``duration_s`` runs from placing the call to the hang-up (the status callback is after it).
    In :meth:`to_dict` an infinite ``speed`` (no sleeping) becomes null, so the dict is strict JSON.
    """

    call_sid: str
    business_id: str
    speed: float
    ended_by: str
    duration_s: float
    events: list[Event]
    greeting: TurnMetrics
    turns: list[TurnMetrics]
    transcript: list[TranscriptLine]
    failures: list[Failure]
    audio_segments: list[AudioSegment]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; audio bytes are replaced by their length."""
        return {
            "call_sid": self.call_sid,
            "business_id": self.business_id,
            "speed": None if math.isinf(self.speed) else self.speed,
            "ended_by": self.ended_by,
            "duration_s": round(self.duration_s, 6),
            "greeting": self.greeting.to_dict(),
            "turns": [t.to_dict() for t in self.turns],
            "transcript": [line._asdict() for line in self.transcript],
            "failures": [f.to_dict() for f in self.failures],
            "events": [e.to_dict() for e in self.events],
            "audio_segments": [
                {"start_s": s.start_s, "kind": s.kind, "bytes": len(s.data)}
                if isinstance(s.data, bytes)
                else {"start_s": s.start_s, "kind": s.kind, "text": s.data}
                for s in self.audio_segments
            ],
        }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def format_transcript(result: CallResult) -> str:
    """A human-readable account of the call: what was heard, hops, failures, per-turn metrics."""
    header = (
        f"call {result.call_sid}  business {result.business_id}  speed {result.speed:g}x  "
        f"duration {result.duration_s:.3f} s  ended by {result.ended_by}"
    )
    out = [header]
    for e in result.events:
        d = e.detail
        if e.kind == "webhook":
            line = f"-> {d.get('method')} {d.get('url')}  {d.get('status') or 'no response'}  ({d.get('via')})"
        elif e.kind == "fetch":
            line = f"   fetch {d.get('url')}  {'cached' if d.get('cached') else d.get('status') or 'failed'}"
        elif e.kind == "play":
            tag = "twilio" if d.get("system") else ("answer" if d.get("answer") else "filler")
            loop = f" x{d.get('loop')}" if d.get("loop", 1) != 1 else ""
            line = f"   PLAY [{tag}] {d.get('url')}{loop}"
        elif e.kind == "say":
            tag = "twilio" if d.get("system") else ("answer" if d.get("answer") else "filler")
            line = f"   SAY  [{tag}] {d.get('text')!r} ({d.get('voice') or 'default voice'})"
        elif e.kind == "speak":
            line = f"CALLER  {d.get('text')!r}"
        elif e.kind == "pause":
            line = f"   pause {d.get('length')} s"
        elif e.kind == "silence":
            line = "   (silence: no input)"
        elif e.kind == "dial":
            line = f"   DIAL {d.get('number')}"
        elif e.kind == "hangup":
            line = f"   hangup ({d.get('reason')})"
        else:
            f: Failure = d["failure"]
            line = f"!! failure {f.code} [{f.where}{', fatal' if f.fatal else ''}] {f.message}"
        dur = f"  {e.duration_s:.3f} s" if e.duration_s else ""
        out.append(f"{e.t:9.3f}  {line}{dur}")
    out.append("")
    for turn in [result.greeting, *result.turns]:
        name = "greeting" if turn.index == 0 else f"turn {turn.index} {turn.utterance!r}"
        out.append(
            f"{name}: first audio {_ms(turn.time_to_first_audio_s)}, answer {_ms(turn.time_to_answer_audio_s)}, "
            f"longest silence {_ms(turn.longest_silence_s)}, fillers {len(turn.fillers)}, hops {turn.hops}, "
            f"failures {len(turn.failures)}"
        )
    return "\n".join(out)
