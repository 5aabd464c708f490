"""A client that plays Twilio's part on one inbound call against a Warmline server.

Nobody can dial Twilio from a test, so this module does what Twilio does with our TwiML:

* The call starts with ``POST <base>/voice/incoming/<business>`` and ends with the status
  callback ``POST <base>/voice/status/<business>`` (CallStatus=completed, CallDuration in whole
  seconds, rounded up), which is sent even after an application error.
* Every webhook carries Twilio's form fields (CallSid, AccountSid, From, To, CallStatus --
  "ringing" on the first request, "in-progress" after, "completed" on the status callback --,
  Direction=inbound, ApiVersion=2010-04-01; a <Gather> action adds SpeechResult and Confidence)
  and ``X-Twilio-Signature`` computed with ``twilio.request_validator.RequestValidator``. A GET
  webhook sends the fields in the query string and signs the full URL with no body params.
* A webhook fails -- Twilio's "application error": the caller hears Twilio's apology and the
  call ends -- on: no answer within ``Knobs.webhook_timeout_s`` (15 s, code 11200), a
  connection failure (11205), a non-2xx status (11200), a Content-Type other than text/xml or
  application/xml (12300), a body that is not XML (12100), a document that is not valid TwiML:
  root not <Response>, an unknown verb, a verb nested where it may not be (12200).
* Verbs: <Play> (loop; loop="0" plays until the caller's patience runs out), <Say> (lasts
  words / 2.7 s, at least 0.5 s; loop), <Pause length> (default 1 s), <Redirect> (POST unless
  ``method``; relative URLs resolved against the current document's URL; later verbs are
  ignored), <Gather> (only Say/Play/Pause may nest; all nested <Play> media are fetched before
  the first one plays; then the caller speaks the next scripted utterance and the action --
  default: the current document URL -- is requested with SpeechResult; with the script used up
  the caller stays silent for ``timeout`` seconds (default 5): actionOnEmptyResult="true" posts
  an empty SpeechResult, otherwise the verbs after the Gather run; after
  ``Knobs.max_unanswered_gathers`` silent gathers the caller hangs up), <Hangup>, <Dial> (the
  caller is transferred; the simulation ends there). The end of a document hangs up. A
  <Gather> without "speech" in its ``input`` (Twilio's default is dtmf) hears nothing: the
  caller speaks, the gather times out, and a non-fatal failure says why. Other Twilio verbs
  (Record, Connect, ...) end the call as "unsupported".
* <Play> media: GET with no call parameters and no signature, following HTTP redirects. A
  non-2xx status or an unreachable URL (11200 / 11205), or a Content-Type Twilio does not
  play (13420; 13325 inside a <Gather>), fails that verb only: Twilio logs it and moves on to
  the next verb, so the call continues. The clip lasts what its WAV header says
  (``app.speech.wav.wav_duration_s``); the simulator decodes only mu-law WAV, so other audio
  is a failure with ``code=None`` (Twilio itself would play a PCM WAV or an MP3).
  Twilio fetches through caching proxies: a URL fetched before, in this call or in any call
  sharing the same :class:`MediaCache`, costs ``Knobs.media_cached_ms`` and no request,
  unless the response said Cache-Control no-store / no-cache / max-age=0.

Partial results, end of speech, gaps, barge-in (knobs, all off by default except as stated):

* A speech <Gather> with ``partialResultCallback`` gets, while the caller speaks, a signed POST
  every ``Knobs.partial_cadence_ms`` of speech (and one when the caller stops) with the call
  parameters plus ``UnstableSpeechResult`` (the words heard so far, spread evenly over the
  utterance), ``StableSpeechResult`` (all but the last ``partial_lag_words`` of them; all of them
  in the partial sent as the caller stops) and ``SequenceNumber`` (1, 2, ...). They are sent in the background (they cost the call no time;
  Twilio ignores the responses) and ``partial_reorder_rate`` swaps a partial with the next one, so
  requests can arrive out of order. ``partial_stability`` is the chance that the running transcript
  ends as the final ``SpeechResult``; otherwise its last word is one the final result revises.
* ``speech_endpoint_ms``: after the caller stops, Twilio's end-of-speech detection
  (``speechTimeout="auto"``) waits this long before requesting the action with ``SpeechResult``.
* ``play_gap_ms``: silence between two consecutive audio verbs (<Play>/<Say>) of a document.
* ``barge_in_after_s``: on a share ``barge_in_rate`` of caller turns (seeded by CallSid and turn),
  the caller starts their next line that many seconds into the answer. Audio nested in a <Gather>
  stops there and the words go to the Gather's action; audio outside a <Gather> is not
  interruptible: the words are lost (a non-fatal failure, where="caller") and the caller says them
  again at the next <Gather>. A cut play event has ``interrupted=True``.

Timing (simulated seconds, see :mod:`simulator.clock`): a webhook costs half the network
round trip, the real HTTP time, and the other half; a first media fetch costs
``media_fetch_ms`` plus the real HTTP time; a cached one ``media_cached_ms``; playing, saying,
pausing, speaking and the speech endpointing delay are simulated waits. Gather media are
fetched one after the other (the conservative reading of Twilio's "all fetched before
playback"). Which audio is "answer" and which "filler" is decided per document as described
in :mod:`simulator.timeline`.

Thread safety: a :class:`SimulatedCall` runs on one thread; run concurrent calls on several
threads, each with its own SimulatedCall (and clock). :class:`MediaCache` and an
``httpx.Client`` may be shared between them.
"""

from __future__ import annotations

import math
import random
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from app.errors import InvalidAudio
from app.ids import new_call_sid
from app.speech.wav import wav_duration_s
from simulator.clock import Clock
from simulator.support import http_client
from simulator.timeline import (
    AudioSegment,
    CallResult,
    Failure,
    Timeline,
    TurnMetrics,
    format_transcript,
    is_answer_audio,
)

__all__ = [
    "CallConfig",
    "CallResult",
    "Failure",
    "Knobs",
    "Media",
    "MediaCache",
    "SimulatedCall",
    "TurnMetrics",
    "format_transcript",
    "new_call_sid",
    "run_call",
    "say_duration_s",
]

API_VERSION = "2010-04-01"
USER_AGENT = "TwilioProxy/1.1"
WORDS_PER_SECOND = 2.7
MIN_SAY_S = 0.5
APPLICATION_ERROR_TEXT = "We are sorry, an application error has occurred. Goodbye."
FALLBACK_NOTE = "(recovered: Twilio requested the Fallback URL)"

# Content types Twilio plays (NOTES-APIS); the simulator decodes the WAV ones.
PLAYABLE_TYPES = frozenset(
    {
        "audio/mpeg",
        "audio/wav",
        "audio/wave",
        "audio/x-wav",
        "audio/aiff",
        "audio/x-aifc",
        "audio/x-aiff",
        "audio/x-gsm",
        "audio/gsm",
        "audio/ulaw",
    }
)
WAV_TYPES = frozenset({"audio/wav", "audio/wave", "audio/x-wav"})
TWIML_TYPES = frozenset({"text/xml", "application/xml"})

SIMULATED_VERBS = frozenset({"Say", "Play", "Pause", "Redirect", "Gather", "Hangup", "Dial"})
UNSIMULATED_VERBS = frozenset(
    {
        "Record",
        "Enqueue",
        "Leave",
        "Reject",
        "Sms",
        "Message",
        "Connect",
        "Refer",
        "Pay",
        "Prompt",
        "Start",
        "Stop",
        "Echo",
        "Queue",
    }
)
GATHER_CHILDREN = frozenset({"Say", "Play", "Pause"})

# Twilio error codes used here.
HTTP_RETRIEVAL_FAILURE = 11200
HTTP_CONNECTION_FAILURE = 11205
INVALID_URL = 11100
DOCUMENT_PARSE_FAILURE = 12100
SCHEMA_VALIDATION = 12200
INVALID_CONTENT_TYPE = 12300
PLAY_INVALID_CONTENT_TYPE = 13420
GATHER_PLAY_INVALID_CONTENT_TYPE = 13325


def say_duration_s(text: str) -> float:
    """Estimated speaking time of ``text``: words / 2.7 per second, at least 0.5 s."""
    return max(MIN_SAY_S, len(text.split()) / WORDS_PER_SECOND)


@dataclass(frozen=True)
class Knobs:
    """Latency and behaviour knobs. Milliseconds where the name says ms, else seconds.

    Defaults are plausible for a caller and a server in the same region; tests set them.
    ``caller_speaking_s=None`` estimates each utterance like a <Say> (words / 2.7 s).
    ``speech_endpoint_ms`` is Twilio's end-of-speech detection delay between the caller
    falling silent and the Gather action being requested (it counts in time to first audio).
    ``caller_patience_s`` is how long the caller listens to endless audio (loop="0").
    ``max_documents`` and ``max_call_s`` stop runaway calls (redirect loops).
    """

    network_rtt_ms: float = 80.0
    media_fetch_ms: float = 120.0
    media_cached_ms: float = 5.0
    caller_speaking_s: float | None = None
    speech_endpoint_ms: float = 0.0
    confidence: float = 0.92
    webhook_timeout_s: float = 15.0
    media_timeout_s: float = 15.0
    max_unanswered_gathers: int = 2
    caller_patience_s: float = 30.0
    max_documents: int = 200
    max_call_s: float = 3600.0
    status_callback_retries: int = 0  # Twilio's connection override ``#rc=N`` on the status callback URL
    partial_cadence_ms: float = 300.0  # a partial result every this much of the caller's speech
    partial_lag_words: int = 2  # StableSpeechResult trails UnstableSpeechResult by this many words
    partial_stability: float = 0.9  # chance the running transcript ends as the final SpeechResult
    partial_reorder_rate: float = 0.1  # chance a partial is sent after the next one
    play_gap_ms: float = 0.0  # silence between consecutive audio verbs (Twilio's own gap; unpublished)
    barge_in_after_s: float | None = None  # the caller talks over the answer this far in (None: never)
    barge_in_rate: float = 1.0  # share of caller turns in which they do


@dataclass(frozen=True)
class Media:
    """A fetched <Play> clip: its URL, Content-Type (without parameters), bytes, duration in s."""

    url: str
    content_type: str
    data: bytes
    duration_s: float


class MediaCache:
    """Twilio's media cache, keyed by URL; share one between calls to model a warm cache.

    Thread-safe (one lock). Counts ``hits`` and ``misses`` (a miss is a fetch that was needed).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Media] = {}
        self.hits = 0
        self.misses = 0

    def get(self, url: str) -> Media | None:
        """The cached clip for ``url``, counting a hit or a miss."""
        with self._lock:
            media = self._items.get(url)
            if media is None:
                self.misses += 1
            else:
                self.hits += 1
            return media

    def put(self, media: Media) -> None:
        """Remember ``media`` under its URL."""
        with self._lock:
            self._items[media.url] = media

    def __contains__(self, url: object) -> bool:
        with self._lock:
            return url in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@dataclass(frozen=True)
class CallConfig:
    """One call to place. ``script`` holds the caller's utterances, in order.

    ``call_sid=None`` draws a random one. ``speed`` is the clock speed (1.0 = real time).
    ``media_cache=None`` gives the call a cache of its own (cold).
    """

    base_url: str
    business_id: str
    auth_token: str
    call_sid: str | None = None
    from_: str = "+15551230000"
    to: str = "+15005550006"
    script: Sequence[str] = ()
    account_sid: str = "AC" + "0" * 32
    knobs: Knobs = field(default_factory=Knobs)
    speed: float = 1.0
    media_cache: MediaCache | None = None
    fallback_url: str | None = None  # the number's Fallback URL (relative to base_url, or absolute); None = none set

    def __post_init__(self) -> None:
        if self.call_sid is None:
            object.__setattr__(self, "call_sid", new_call_sid())
        object.__setattr__(self, "script", tuple(self.script))
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))


class _Fatal(Exception):
    """Internal: the document cannot run (raised with the failure already built)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(frozen=True)
class _Document:
    url: str
    root: ET.Element


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def _cacheable(headers: httpx.Headers) -> bool:
    directives = {d.strip().lower() for d in headers.get("cache-control", "").split(",")}
    return not directives & {"no-store", "no-cache", "max-age=0"}


class SimulatedCall:
    """One inbound call, played against ``config.base_url`` by :meth:`run` (once).

    ``clock`` defaults to ``Clock(config.speed)``; ``client`` to a fresh ``httpx.Client``
    (closed at the end; a client passed in is left open). One thread only.
    """

    def __init__(self, config: CallConfig, *, clock: Clock | None = None, client: httpx.Client | None = None) -> None:
        self.config = config
        self.knobs = config.knobs
        self.clock = clock or Clock(config.speed)
        self.cache = config.media_cache if config.media_cache is not None else MediaCache()
        self.timeline = Timeline()
        self.audio_segments: list[AudioSegment] = []
        self._client = client
        self._validator = RequestValidator(config.auth_token)
        self._script_pos = 0
        self._unanswered = 0
        self._ended_by: str | None = None
        self._ran = False
        self._last_audio_end = -1.0
        self._partials: ThreadPoolExecutor | None = None
        self._partial_futures: list[tuple[float, str, Future]] = []
        self._barge: tuple[int, float | None] = (-1, None)  # (script position, point in the answer) decided
        self._answer_heard = 0.0  # answer audio played so far in this turn (seconds)
        self._answer_pos = -1
        self._lost: set[int] = set()
        self.partials_sent = 0
        self.interrupted = 0
        self.lost_utterances = 0

    # ---- the call -------------------------------------------------------------------------

    def run(self) -> CallResult:
        """Place the call, follow the TwiML until it ends, send the status callback."""
        if self._ran:
            raise RuntimeError("a SimulatedCall runs once; make a new one")
        self._ran = True
        owns_client = self._client is None
        if owns_client:
            # Drop idle connections well before gunicorn's 5 s keep-alive closes them (a request
            # racing that close fails like Twilio's 11205, which Twilio itself would retry).
            self._client = http_client(limits=httpx.Limits(keepalive_expiry=2.0))
        try:
            return self._run()
        finally:
            if self._partials is not None:
                self._partials.shutdown(wait=True)
            if owns_client and self._client is not None:
                self._client.close()

    def _run(self) -> CallResult:
        cfg = self.config
        documents = 0
        doc = self._request_twiml(f"{cfg.base_url}/voice/incoming/{cfg.business_id}", "POST", {}, via="incoming")
        while doc is not None:
            documents += 1
            if documents > self.knobs.max_documents:
                self._fail(None, "simulator", f"more than {self.knobs.max_documents} TwiML documents", fatal=True)
                self._ended_by = "limit"
                break
            doc = self._execute(doc)
        ended_by = self._ended_by or "end_of_document"
        duration = self.clock.now()
        self._collect_partials()
        self.timeline.add(duration, "hangup", reason=ended_by)
        self._status_callback(duration)
        turns = self.timeline.turns()
        return CallResult(
            call_sid=str(cfg.call_sid),
            business_id=cfg.business_id,
            speed=self.clock.speed,
            ended_by=ended_by,
            duration_s=duration,
            events=list(self.timeline.events),
            greeting=turns[0],
            turns=turns[1:],
            transcript=self.timeline.transcript(),
            failures=self.timeline.failures,
            audio_segments=list(self.audio_segments),
        )

    def _execute(self, doc: _Document) -> _Document | None:
        """Run one document's verbs; return the next document, or None when the call ends."""
        verbs = list(doc.root)
        tags = [v.tag for v in verbs]
        redirect = next((v for v in verbs if v.tag == "Redirect"), None)
        redirect_url = urljoin(doc.url, (redirect.text or "").strip()) if redirect is not None else None
        for i, verb in enumerate(verbs):
            if self.clock.now() >= self.knobs.max_call_s:
                self._fail(None, "simulator", f"call longer than {self.knobs.max_call_s} s", fatal=True)
                self._ended_by = "limit"
                return None
            answer = is_answer_audio(tags, i, doc.url, redirect_url)
            tag = verb.tag
            if tag == "Play":
                self._play_verb(verb, doc, answer=answer)
                self._talk_over(answer)
            elif tag == "Say":
                self._say(verb, answer=answer)
                self._talk_over(answer)
            elif tag == "Pause":
                self._pause(verb)
            elif tag == "Redirect":
                return self._redirect(verb, doc)
            elif tag == "Gather":
                nxt = self._gather(verb, doc)
                if nxt is not None or self._ended_by is not None:
                    return nxt
            elif tag == "Hangup":
                self._ended_by = "hangup"
                return None
            elif tag == "Dial":
                number = "".join(verb.itertext()).strip()
                self.timeline.add(self.clock.now(), "dial", number=number)
                self._ended_by = "transferred"
                return None
            else:
                self._fail(None, "simulator", f"<{tag}> is valid TwiML but not simulated", url=doc.url, fatal=True)
                self._ended_by = "unsupported"
                return None
            if self._ended_by is not None:
                return None
        return None

    # ---- verbs ----------------------------------------------------------------------------

    def _loop(self, verb: ET.Element, default: int = 1) -> int:
        raw = verb.get("loop")
        if raw is None:
            return default
        try:
            loop = int(raw)
        except ValueError:
            loop = -1
        if loop < 0:
            self._fail(SCHEMA_VALIDATION, "twiml", f"<{verb.tag} loop={raw!r}> is not a whole number >= 0")
            return default
        return loop

    def _media_url(self, verb: ET.Element, doc: _Document, *, in_gather: bool) -> str | None:
        target = (verb.text or "").strip()
        url = urljoin(doc.url, target) if target else ""
        if urlsplit(url).scheme not in ("http", "https"):
            where = "Gather->Play" if in_gather else "Play"
            self._fail(INVALID_URL, "twiml", f"{where} has no usable URL: {target!r}", url=doc.url)
            return None
        return url

    def _play_verb(self, verb: ET.Element, doc: _Document, *, answer: bool) -> None:
        url = self._media_url(verb, doc, in_gather=False)
        if url is None:
            return
        loop = self._loop(verb)
        media = self._fetch(url, in_gather=False)
        if media is not None:
            self._play(media, loop, answer=answer)

    def _gap(self) -> None:
        """Twilio's silence between two consecutive audio verbs."""
        if self.knobs.play_gap_ms and abs(self.clock.now() - self._last_audio_end) < 1e-9:
            self.clock.sleep(self.knobs.play_gap_ms / 1000)

    def _play(self, media: Media, loop: int, *, answer: bool, cut_s: float | None = None) -> None:
        """Play ``media``; ``cut_s`` stops it that far in (the caller barged in)."""
        self._gap()
        endless = loop == 0
        each = media.duration_s
        if endless:
            total = self.knobs.caller_patience_s
            count = math.ceil(total / each) if each > 0 else 1
        else:
            total = each * loop
            count = loop
        interrupted = cut_s is not None and cut_s < total
        if interrupted:
            total = max(0.0, cut_s)
            count = max(1, math.ceil(total / each)) if each > 0 else 1
            endless = False
        start = self.clock.now()
        extra = {"interrupted": True} if interrupted else {}
        self.timeline.add(start, "play", total, url=media.url, loop=loop, clip_s=each, answer=answer, system=False,
                          **extra)
        self.audio_segments.extend(AudioSegment(start + k * each, "play", media.data) for k in range(count))
        self.clock.sleep(total)
        self._last_audio_end = self.clock.now()
        if endless:
            self._ended_by = "caller_hangup"

    def _say(self, verb: ET.Element, *, answer: bool, system: bool = False, cut_s: float | None = None) -> None:
        text = " ".join("".join(verb.itertext()).split())
        loop = self._loop(verb)
        self._speak_twilio(text, verb.get("voice"), verb.get("language"), loop, answer=answer, system=system,
                           cut_s=cut_s)

    def _speak_twilio(
        self, text: str, voice: str | None, language: str | None, loop: int, *, answer: bool, system: bool,
        cut_s: float | None = None,
    ) -> None:
        if not system:
            self._gap()
        each = say_duration_s(text)
        endless = loop == 0
        total = self.knobs.caller_patience_s if endless else each * loop
        count = math.ceil(total / each) if endless else loop
        interrupted = cut_s is not None and cut_s < total
        if interrupted:
            total, count, endless = max(0.0, cut_s), 1, False
        start = self.clock.now()
        extra = {"interrupted": True} if interrupted else {}
        self.timeline.add(
            start, "say", total, text=text, voice=voice, language=language, loop=loop, answer=answer, system=system,
            **extra,
        )
        self.audio_segments.extend(AudioSegment(start + k * each, "say", text) for k in range(count))
        self.clock.sleep(total)
        self._last_audio_end = self.clock.now()
        if endless:
            self._ended_by = "caller_hangup"

    def _seconds(self, verb: ET.Element, attribute: str, default: float) -> float:
        """A verb's attribute in seconds; a malformed one is a TwiML failure and counts as ``default``."""
        raw = verb.get(attribute, f"{default:g}")
        try:
            value = float(raw)
            if not 0 <= value < math.inf:
                raise ValueError(raw)
        except ValueError:
            self._fail(SCHEMA_VALIDATION, "twiml", f"<{verb.tag} {attribute}={raw!r}> is not a number of seconds")
            value = default
        return value

    def _pause(self, verb: ET.Element) -> None:
        length = self._seconds(verb, "length", 1.0)
        self.timeline.add(self.clock.now(), "pause", length, length=length)
        self.clock.sleep(length)

    def _redirect(self, verb: ET.Element, doc: _Document) -> _Document | None:
        target = (verb.text or "").strip()
        method = verb.get("method", "POST").upper()
        if not target or method not in ("GET", "POST"):
            self._application_error(
                Failure(
                    self.clock.now(),
                    SCHEMA_VALIDATION,
                    "twiml",
                    f"<Redirect method={method!r}>{target}</Redirect> is not valid",
                    url=doc.url,
                    fatal=True,
                )
            )
            return None
        return self._request_twiml(urljoin(doc.url, target), method, {}, via="redirect")

    # ---- barge-in -------------------------------------------------------------------------

    def _barge_point(self) -> float | None:
        """How far into this turn's answer the caller starts talking, or None (decided once per turn, seeded)."""
        pos = self._script_pos
        if self._barge[0] != pos:
            point = None
            after = self.knobs.barge_in_after_s
            if after is not None and 0 < pos < len(self.config.script):
                rng = random.Random(f"{self.config.call_sid}|barge|{pos}")
                if rng.random() < self.knobs.barge_in_rate:
                    point = after
            self._barge = (pos, point)
        if self._answer_pos != pos:
            self._answer_pos, self._answer_heard = pos, 0.0
        return self._barge[1]

    def _talk_over(self, answer: bool) -> None:
        """After top-level answer audio: if the caller started talking during it, their words were lost."""
        if not answer or self._ended_by is not None:
            return
        point = self._barge_point()
        last = self.timeline.events[-1] if self.timeline.events else None
        if last is None or not last.is_audio:
            return
        self._answer_heard += last.duration_s
        pos = self._script_pos
        if point is not None and self._answer_heard > point and pos not in self._lost:
            self._lost.add(pos)
            self.lost_utterances += 1
            self._fail(None, "caller", f"the caller spoke {self.config.script[pos]!r} over an answer that is not in a "
                       "<Gather>: the words were lost; they will say it again")

    # ---- partial results ------------------------------------------------------------------

    def _speak(self, utterance: str, speaking: float, partial_url: str | None) -> None:
        """The caller speaks for ``speaking`` seconds; partial results go to ``partial_url`` meanwhile."""
        if not partial_url:
            self.clock.sleep(speaking)
            return
        k = self.knobs
        words = utterance.split()
        rng = random.Random(f"{self.config.call_sid}|partial|{self._script_pos}")
        if words and rng.random() >= k.partial_stability:
            last = words[-1]
            words[-1] = last[:-1] if len(last) > 3 else last + "s"  # the final result revises this word
        cadence = max(0.05, k.partial_cadence_ms / 1000)
        moments = [t for t in (cadence * i for i in range(1, 10_000)) if t < speaking - 1e-9][:200] + [speaking]
        held: list[dict[str, str]] = []
        elapsed = 0.0
        for seq, t in enumerate(moments, start=1):
            self.clock.sleep(t - elapsed)
            elapsed = t
            heard = min(len(words), max(1, math.ceil(len(words) * t / speaking))) if words else 0
            last = seq == len(moments)  # the caller stopped: the recognizer settles on what it heard
            stable = heard if last else max(0, heard - k.partial_lag_words)
            params = {"UnstableSpeechResult": " ".join(words[:heard]),
                      "StableSpeechResult": " ".join(words[:stable]),
                      "SequenceNumber": str(seq)}
            if seq < len(moments) and rng.random() < k.partial_reorder_rate:
                held.append(params)  # sent after the next one
                continue
            self._post_partial(partial_url, params)
            for late in held:
                self._post_partial(partial_url, late)
            held.clear()
        for late in held:
            self._post_partial(partial_url, late)

    def _post_partial(self, url: str, extra: dict[str, str]) -> None:
        params = self._params("in-progress")
        params.update(extra)
        if self._partials is None:
            self._partials = ThreadPoolExecutor(max_workers=2, thread_name_prefix="partial")
        self.partials_sent += 1
        self.timeline.add(self.clock.now(), "webhook", url=url, method="POST", via="partial", status=None,
                          server_s=None, sequence=int(extra["SequenceNumber"]))
        self._partial_futures.append((self.clock.now(), url, self._partials.submit(
            lambda: self._send(url, "POST", params, self.knobs.webhook_timeout_s, detached=True))))

    def _collect_partials(self) -> None:
        """Twilio ignores partial-result responses but logs failures: record them (non-fatal)."""
        for t, url, future in self._partial_futures:
            try:
                response, _, _ = future.result()
            except _Fatal as fatal:
                self.timeline.add_failure(Failure(t, fatal.failure.code, "partial", fatal.failure.message, url=url))
                continue
            if not response.is_success:
                self.timeline.add_failure(Failure(t, HTTP_RETRIEVAL_FAILURE, "partial",
                                                  f"HTTP {response.status_code} from the partial result callback",
                                                  url=url))
        self._partial_futures.clear()

    def _gather(self, verb: ET.Element, doc: _Document) -> _Document | None:
        """Run a <Gather>; a document to continue with, or None to fall through (or end)."""
        children = list(verb)
        prefetched: dict[int, Media | None] = {}
        for idx, child in enumerate(children):
            if child.tag == "Play":
                url = self._media_url(child, doc, in_gather=True)
                prefetched[idx] = self._fetch(url, in_gather=True) if url else None
        point = self._barge_point() if children else None
        interrupted = False
        for idx, child in enumerate(children):
            cut = None if point is None else max(0.0, point - self._answer_heard)
            before = self.clock.now()
            if child.tag == "Play":
                media = prefetched[idx]
                if media is not None:
                    self._play(media, self._loop(child), answer=True, cut_s=cut)
            elif child.tag == "Say":
                self._say(child, answer=True, cut_s=cut)
            else:
                self._pause(child)
            if self._ended_by is not None:
                return None
            if child.tag in ("Play", "Say"):
                self._answer_heard += self.clock.now() - before
            last = self.timeline.events[-1] if self.timeline.events else None
            if last is not None and last.detail.get("interrupted"):
                interrupted = True
                self.interrupted += 1
                break
        action = urljoin(doc.url, verb.get("action")) if verb.get("action") else doc.url
        method = verb.get("method", "POST").upper()
        if method not in ("GET", "POST"):
            self._application_error(
                Failure(
                    self.clock.now(),
                    SCHEMA_VALIDATION,
                    "twiml",
                    f"<Gather method={method!r}> is not valid",
                    url=doc.url,
                    fatal=True,
                )
            )
            return None
        timeout = self._gather_timeout(verb)
        hears_speech = "speech" in verb.get("input", "dtmf").lower().split()
        utterance = self._next_utterance()
        if utterance is not None:
            speaking = self.knobs.caller_speaking_s
            speaking = say_duration_s(utterance) if speaking is None else speaking
            detail = {"barge_in": True} if interrupted else {}
            self.timeline.add(self.clock.now(), "speak", speaking, text=utterance, **detail)
            partial = verb.get("partialResultCallback") if hears_speech else None
            self._speak(utterance, speaking, urljoin(doc.url, partial) if partial else None)
            if hears_speech:
                self.clock.sleep(self.knobs.speech_endpoint_ms / 1000)
                params = {"SpeechResult": utterance, "Confidence": f"{self.knobs.confidence:g}"}
                return self._request_twiml(action, method, params, via="gather")
            self._fail(
                None,
                "twiml",
                f"<Gather input={verb.get('input', 'dtmf')!r}> does not listen to speech; {utterance!r} was not heard",
                url=doc.url,
            )
        self.timeline.add(self.clock.now(), "silence", timeout, reason="no_input")
        self.clock.sleep(timeout)
        self._unanswered += 1
        if self._unanswered >= self.knobs.max_unanswered_gathers:
            self._ended_by = "caller_hangup"
            return None
        if verb.get("actionOnEmptyResult", "false").strip().lower() == "true":
            return self._request_twiml(action, method, {"SpeechResult": ""}, via="gather")
        return None

    def _gather_timeout(self, verb: ET.Element) -> float:
        return self._seconds(verb, "timeout", 5.0)

    def _next_utterance(self) -> str | None:
        script = self.config.script
        if self._script_pos >= len(script):
            return None
        self._script_pos += 1
        return script[self._script_pos - 1]

    # ---- HTTP -----------------------------------------------------------------------------

    def _params(self, call_status: str) -> dict[str, str]:
        cfg = self.config
        return {
            "CallSid": str(cfg.call_sid),
            "AccountSid": cfg.account_sid,
            "From": cfg.from_,
            "To": cfg.to,
            "CallStatus": call_status,
            "Direction": "inbound",
            "ApiVersion": API_VERSION,
        }

    def _signed(self, url: str, method: str, params: dict[str, str]) -> tuple[str, dict[str, str] | None, str]:
        """(URL to request, form body or None, signature) the way Twilio signs ``method``."""
        if method == "GET":
            full = _with_query(url, params)
            return full, None, self._validator.compute_signature(full, {})
        return url, params, self._validator.compute_signature(url, params)

    def _send(
        self, url: str, method: str, params: dict[str, str], timeout_s: float, *, detached: bool = False
    ) -> tuple[httpx.Response, float, str]:
        """Send one signed webhook, timed in real seconds. Raises _Fatal (11200/11205) on transport errors.

        ``detached``: sent beside the call (a partial result, on another thread): its time is not the
        call's, so the call's clock is left alone.
        """
        target, body, signature = self._signed(url, method, params)
        headers = {"X-Twilio-Signature": signature, "User-Agent": USER_AGENT}
        timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        assert self._client is not None
        with (Clock(math.inf).real() if detached else self.clock.real()) as watch:
            try:
                response = self._client.request(method, target, data=body, headers=headers, timeout=timeout)
            except httpx.TimeoutException as exc:
                failure = Failure(
                    0.0,
                    HTTP_RETRIEVAL_FAILURE,
                    "webhook",
                    f"no response within {timeout_s:g} s ({type(exc).__name__})",
                    url=target,
                    fatal=True,
                )
                raise _Fatal(failure) from exc
            except httpx.HTTPError as exc:
                failure = Failure(
                    0.0, HTTP_CONNECTION_FAILURE, "webhook", f"HTTP connection failure: {exc}", url=target, fatal=True
                )
                raise _Fatal(failure) from exc
        return response, watch.elapsed_s, target

    def _request_twiml(self, url: str, method: str, extra: dict[str, str], *, via: str) -> _Document | None:
        """Request a TwiML document the way Twilio does; None (after an application error) on failure."""
        params = self._params("ringing" if via == "incoming" else "in-progress")
        params.update(extra)
        half_rtt = self.knobs.network_rtt_ms / 2000
        limit = self.knobs.webhook_timeout_s
        start = self.clock.now()
        self.clock.sleep(half_rtt)
        status: int | None = None
        server_s: float | None = None
        target = url
        try:
            response, server_s, target = self._send(url, method, params, limit)
            status = response.status_code
            self.clock.sleep(half_rtt)
            doc: _Document | None = self._parse_twiml(response, target, server_s, limit)
            failure = None
        except _Fatal as fatal:
            doc, failure = None, fatal.failure
            target = failure.url or target
        self._record_webhook(start, target, method, via, status, server_s)
        if failure is None:
            return doc
        if self.config.fallback_url and via != "fallback":
            # Twilio requests the number's Fallback URL at once, with ErrorCode and ErrorUrl.
            self._fail(failure.code, failure.where, f"{failure.message} {FALLBACK_NOTE}", url=target)
            fallback = urljoin(self.config.base_url.rstrip("/") + "/", self.config.fallback_url.lstrip("/"))
            return self._request_twiml(fallback, "POST", {"ErrorCode": str(failure.code or ""), "ErrorUrl": target},
                                       via="fallback")
        self._application_error(Failure(self.clock.now(), failure.code, failure.where, failure.message, url=target,
                                        fatal=True))
        return None

    def _parse_twiml(self, response: httpx.Response, url: str, server_s: float, limit: float) -> _Document:
        def fatal(code: int, where: str, message: str) -> _Fatal:
            return _Fatal(Failure(0.0, code, where, message, url=url, fatal=True))

        if server_s > limit:
            raise fatal(
                HTTP_RETRIEVAL_FAILURE, "webhook", f"response took {server_s:.3f} s, over the {limit:g} s limit"
            )
        if not response.is_success:
            raise fatal(HTTP_RETRIEVAL_FAILURE, "webhook", f"HTTP {response.status_code} from the webhook")
        content_type = _media_type(response.headers.get("content-type"))
        if content_type not in TWIML_TYPES:
            raise fatal(INVALID_CONTENT_TYPE, "webhook", f"Content-Type {content_type or '(none)'!r} is not TwiML")
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise fatal(DOCUMENT_PARSE_FAILURE, "twiml", f"document parse failure: {exc}") from exc
        problem = _schema_problem(root)
        if problem:
            raise fatal(SCHEMA_VALIDATION, "twiml", problem)
        return _Document(url=url, root=root)

    def _fetch(self, url: str, *, in_gather: bool) -> Media | None:
        """Fetch a <Play> clip like Twilio's media proxy; None (after a non-fatal failure) if unusable."""
        start = self.clock.now()
        cached = self.cache.get(url)
        if cached is not None:
            self.clock.sleep(self.knobs.media_cached_ms / 1000)
            self.timeline.add(
                start,
                "fetch",
                self.clock.now() - start,
                url=url,
                cached=True,
                status=None,
                content_type=cached.content_type,
                bytes=len(cached.data),
            )
            return cached
        self.clock.sleep(self.knobs.media_fetch_ms / 1000)
        timeout = httpx.Timeout(self.knobs.media_timeout_s, connect=min(10.0, self.knobs.media_timeout_s))
        assert self._client is not None
        response: httpx.Response | None = None
        error: Failure | None = None
        with self.clock.real():
            try:
                response = self._client.get(
                    url, headers={"User-Agent": USER_AGENT}, timeout=timeout, follow_redirects=True
                )
            except httpx.TimeoutException as exc:
                error = Failure(0.0, HTTP_RETRIEVAL_FAILURE, "media", f"media fetch timed out ({type(exc).__name__})")
            except httpx.HTTPError as exc:
                error = Failure(0.0, HTTP_CONNECTION_FAILURE, "media", f"media fetch failed: {exc}")
        content_type = _media_type(response.headers.get("content-type")) if response is not None else None
        self.timeline.add(
            start,
            "fetch",
            self.clock.now() - start,
            url=url,
            cached=False,
            status=response.status_code if response is not None else None,
            content_type=content_type,
            bytes=len(response.content) if response is not None else 0,
        )
        if error is not None:
            self._fail(error.code, "media", error.message, url=url)
            return None
        assert response is not None and content_type is not None
        if not response.is_success:
            self._fail(HTTP_RETRIEVAL_FAILURE, "media", f"HTTP {response.status_code} fetching media", url=url)
            return None
        if content_type not in PLAYABLE_TYPES:
            code = GATHER_PLAY_INVALID_CONTENT_TYPE if in_gather else PLAY_INVALID_CONTENT_TYPE
            self._fail(code, "media", f"Content-Type {content_type or '(none)'!r} is not audio Twilio plays", url=url)
            return None
        data = response.content
        try:
            if content_type not in WAV_TYPES and not data.startswith(b"RIFF"):
                raise InvalidAudio(f"{content_type} is not a WAV")
            duration = wav_duration_s(data)
        except InvalidAudio as exc:
            self._fail(None, "media", f"simulator decodes only mu-law WAV: {exc}", url=url)
            return None
        media = Media(url=url, content_type=content_type, data=data, duration_s=duration)
        if _cacheable(response.headers):
            self.cache.put(media)
        return media

    def _status_callback(self, duration: float) -> None:
        cfg = self.config
        url = f"{cfg.base_url}/voice/status/{cfg.business_id}"
        params = self._params("completed")
        params["CallDuration"] = str(math.ceil(duration))
        for attempt in range(self.knobs.status_callback_retries + 1):
            start = self.clock.now()
            try:
                response, server_s, target = self._send(url, "POST", params, self.knobs.webhook_timeout_s)
                break
            except _Fatal as fatal:
                self._record_webhook(start, url, "POST", "status", None, None)
                if attempt < self.knobs.status_callback_retries:
                    continue  # the connection override retries a failed connection at once
                self._fail(fatal.failure.code, "status_callback", fatal.failure.message, url=url)
                return
        status = response.status_code
        self._record_webhook(start, target, "POST", "status", status, server_s)
        if not response.is_success:
            self._fail(HTTP_RETRIEVAL_FAILURE, "status_callback", f"HTTP {status} from the status callback", url=url)

    def _record_webhook(self, start: float, url: str, method: str, via: str, status: int | None,
                        server_s: float | None) -> None:
        """One webhook exchange on the timeline, from ``start`` (simulated s) until now."""
        self.timeline.add(start, "webhook", self.clock.now() - start, url=url, method=method, via=via, status=status,
                          server_s=server_s)

    # ---- failures -------------------------------------------------------------------------

    def _fail(self, code: int | None, where: str, message: str, *, url: str | None = None, fatal: bool = False) -> None:
        self.timeline.add_failure(Failure(self.clock.now(), code, where, message, url=url, fatal=fatal))

    def _application_error(self, failure: Failure) -> None:
        """Twilio's application error: log the failure, apologise to the caller, end the call."""
        self.timeline.add_failure(failure)
        self._ended_by = "application_error"
        self._speak_twilio(APPLICATION_ERROR_TEXT, None, None, 1, answer=False, system=True)


def _schema_problem(root: ET.Element) -> str | None:
    """Why ``root`` is not a TwiML document the simulator can run, or None."""
    if root.tag != "Response":
        return f"root element is <{root.tag}>, not <Response>"
    for verb in root:
        if verb.tag not in SIMULATED_VERBS | UNSIMULATED_VERBS:
            return f"<{verb.tag}> is not a TwiML verb"
        if verb.tag == "Gather":
            for child in verb:
                if child.tag not in GATHER_CHILDREN:
                    return f"<{child.tag}> may not nest in <Gather> (only Say, Play, Pause)"
                if child.tag != "Say" and len(child):
                    return f"<{child[0].tag}> may not nest in <Gather><{child.tag}>"
        elif verb.tag in ("Play", "Pause", "Redirect", "Hangup") and len(verb):
            return f"<{verb[0].tag}> may not nest in <{verb.tag}>"
    return None


def run_call(config: CallConfig, *, clock: Clock | None = None, client: httpx.Client | None = None) -> CallResult:
    """Place one simulated call and return what happened (see :class:`SimulatedCall`)."""
    return SimulatedCall(config, clock=clock, client=client).run()
