"""Businesses: who answers, in which voice, saying what. Loaded from one TOML file.

Each top-level table is one business, keyed by its id. Loading validates every field and raises
:class:`~app.errors.BusinessConfigError` naming the business and the field. Business objects are
immutable and safe to share across threads.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import BusinessConfigError, ConfigError
from app.speech.canon import is_speakable
from app.speech.fallback import parse_fallback
from app.speech.voices import PROVIDERS, Voice

BUSINESS_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}-[A-Z]{2}$")
SAY_VOICE_RE = re.compile(r"^(?:man|woman|alice|(?:Polly|Google)\.[A-Za-z0-9_-]{1,64})$")
SPLICE_LEVELS = ("sentence", "clause", "slot", "phrase", "whole")
DEFAULT_SPLICE = "phrase"
"""What a business that names no ``splice`` gets: the level that passes the listening benchmark's
gate with the best held-out hit rate (BENCHMARKS.md, issue 14); the others stay available."""
PROMPT_NAMES = ("reprompt", "still_there", "goodbye", "apology", "second_filler", "hold", "sorry_wait", "transfer")
DEFAULT_PROMPTS = {
    "reprompt": "Sorry, I didn't catch that. Could you say it again?",
    "still_there": "Are you still there?",
    "goodbye": "Thanks for calling. Goodbye!",
    "apology": "I'm sorry, I'm having trouble right now. Please call back in a few minutes.",
    "second_filler": "Just a moment.",
    "hold": "Thanks for holding, I'm still pulling that up for you.",
    "sorry_wait": "Sorry for the wait, I'm almost there.",
    "transfer": "Let me put you through to someone who can help.",
}
MAX_CLIP_TEXT = 600
SPEECH_MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
DEFAULT_SPEECH_MODEL = "deepgram_nova-3"
DEFAULT_SHORT_FILLERS = ("Sure.", "Okay.")
MAX_SHORT_FILLER_CHARS = 24


@dataclass(frozen=True)
class Faq:
    """One frequently asked question: any of ``keywords`` matching the utterance selects ``answer``."""

    keywords: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Business:
    """One business's configuration. Immutable."""

    id: str
    name: str
    voice: Voice
    say_voice: str
    language: str
    greeting: str
    fillers: tuple[str, ...]
    prompts: dict[str, str]
    faq: tuple[Faq, ...] = ()
    hours: str = ""
    numbers: tuple[str, ...] = ()
    use_proactive_filler: bool = True
    rollout_percent: int = 100
    instant_budget_ms: int | None = None
    splice: str = "phrase"  # new businesses: the best level that passes the listening gate (issue 14)
    transfer_number: str = ""
    booking: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    voice_fallbacks: tuple[Voice, ...] | None = None  # None = the provider's default chain (see app.speech.fallback)
    # How the <Gather> listens (the [<id>.listen] table; see the README's "Listening" section).
    speech_model: str = DEFAULT_SPEECH_MODEL  # pinned: Twilio otherwise picks one and may change it
    speech_timeout: str = "auto"  # "auto" (end at the first pause) or whole seconds of silence
    partial_results: bool = True  # partialResultCallback on every speech <Gather>
    barge_in: bool = False  # the answer plays nested in the <Gather>: the caller may interrupt it (on per business)
    speculate: bool = True  # start the turn from a stable partial transcript (needs partial_results)
    early_clause: bool = True  # a long first sentence of a streamed reply plays from its opening clauses
    short_fillers: tuple[str, ...] = DEFAULT_SHORT_FILLERS  # when the answer is expected soon

    def prompt(self, name: str) -> str:
        return self.prompts[name]


def _req(biz: str, table: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in table:
        raise BusinessConfigError(biz, name, "is required")
    value = table[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise BusinessConfigError(biz, name, f"must be {getattr(typ, '__name__', typ)}, got {type(value).__name__}")
    return value


def _text(biz: str, fieldname: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BusinessConfigError(biz, fieldname, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    if not is_speakable(value):
        raise BusinessConfigError(biz, fieldname, "must hold speakable text")
    if len(value) > MAX_CLIP_TEXT:
        raise BusinessConfigError(biz, fieldname, f"is {len(value)} characters; at most {MAX_CLIP_TEXT}")
    return value


def parse_business(biz: str, table: Any) -> Business:
    """Validate one business table; raise BusinessConfigError naming the field on any problem."""
    if not BUSINESS_ID_RE.match(biz):
        raise BusinessConfigError(biz, "id", "must be 1-40 of a-z, 0-9, '-', '_' starting with a letter or digit")
    if not isinstance(table, dict):
        raise BusinessConfigError(biz, "(table)", "must be a table")
    known = {
        "name", "voice", "say", "greeting", "fillers", "prompts", "faq", "hours", "numbers", "rollout",
        "instant_budget_ms", "splice", "transfer_number", "booking", "extra", "listen", "speculate", "short_fillers",
        "early_clause",
    }
    for key in table:
        if key not in known:
            raise BusinessConfigError(biz, key, "is not a known field")
    name = _req(biz, table, "name", str)
    vt = _req(biz, table, "voice", dict)
    provider = _req(biz, vt, "provider", str, "voice.")
    if provider not in PROVIDERS:
        raise BusinessConfigError(biz, "voice.provider", f"must be one of {', '.join(PROVIDERS)}")
    model = _req(biz, vt, "model", str, "voice.")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", model):
        raise BusinessConfigError(biz, "voice.model", "must be 1-64 of letters, digits, '.', '_', '-'")
    speed = vt.get("speed", 1.0)
    if not isinstance(speed, (int, float)) or not 0.5 <= float(speed) <= 2.0:
        raise BusinessConfigError(biz, "voice.speed", "must be a number from 0.5 to 2.0")
    voice = Voice(provider=provider, model=model, speed=float(speed))
    voice_fallbacks = parse_fallback(biz, vt)
    st = _req(biz, table, "say", dict)
    say_voice = _req(biz, st, "voice", str, "say.")
    if not SAY_VOICE_RE.match(say_voice):
        raise BusinessConfigError(biz, "say.voice", "must be a Twilio voice like 'Polly.Joanna-Neural' or 'Google.en-US-Neural2-C'")
    language = _req(biz, st, "language", str, "say.")
    if not LANGUAGE_RE.match(language):
        raise BusinessConfigError(biz, "say.language", "must look like 'en-US'")
    greeting = _text(biz, "greeting", _req(biz, table, "greeting", str))
    fillers_raw = _req(biz, table, "fillers", list)
    if not fillers_raw:
        raise BusinessConfigError(biz, "fillers", "needs at least one filler")
    fillers = tuple(_text(biz, f"fillers[{i}]", f) for i, f in enumerate(fillers_raw))
    prompts_raw = table.get("prompts", {})
    if not isinstance(prompts_raw, dict):
        raise BusinessConfigError(biz, "prompts", "must be a table")
    for key in prompts_raw:
        if key not in PROMPT_NAMES:
            raise BusinessConfigError(biz, f"prompts.{key}", f"is not one of {', '.join(PROMPT_NAMES)}")
    prompts = {k: _text(biz, f"prompts.{k}", prompts_raw.get(k, v)) for k, v in DEFAULT_PROMPTS.items()}
    faq_raw = table.get("faq", [])
    if not isinstance(faq_raw, list):
        raise BusinessConfigError(biz, "faq", "must be an array of tables")
    faq = []
    for i, item in enumerate(faq_raw):
        if not isinstance(item, dict):
            raise BusinessConfigError(biz, f"faq[{i}]", "must be a table")
        kws = _req(biz, item, "keywords", list, f"faq[{i}].")
        if not kws or not all(isinstance(k, str) and k.strip() for k in kws):
            raise BusinessConfigError(biz, f"faq[{i}].keywords", "must be non-empty strings")
        answer = _text(biz, f"faq[{i}].answer", _req(biz, item, "answer", str, f"faq[{i}]."))
        faq.append(Faq(tuple(k.strip().lower() for k in kws), answer))
    numbers_raw = table.get("numbers", [])
    if not isinstance(numbers_raw, list) or not all(isinstance(n, str) and PHONE_RE.match(n) for n in numbers_raw):
        raise BusinessConfigError(biz, "numbers", "must be E.164 numbers like '+15005550006'")
    rt = table.get("rollout", {})
    if not isinstance(rt, dict):
        raise BusinessConfigError(biz, "rollout", "must be a table")
    use_filler = rt.get("use_proactive_filler", True)
    if not isinstance(use_filler, bool):
        raise BusinessConfigError(biz, "rollout.use_proactive_filler", "must be true or false")
    percent = rt.get("rollout_percent", 100)
    if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
        raise BusinessConfigError(biz, "rollout.rollout_percent", "must be an integer from 0 to 100")
    budget = table.get("instant_budget_ms")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or not 0 <= budget <= 3000):
        raise BusinessConfigError(biz, "instant_budget_ms", "must be an integer from 0 to 3000")
    splice = table.get("splice", DEFAULT_SPLICE)
    if splice not in SPLICE_LEVELS:
        raise BusinessConfigError(biz, "splice", f"must be one of {', '.join(SPLICE_LEVELS)}")
    transfer = table.get("transfer_number", "")
    if transfer and not (isinstance(transfer, str) and PHONE_RE.match(transfer)):
        raise BusinessConfigError(biz, "transfer_number", "must be an E.164 number")
    hours = table.get("hours", "")
    if hours:
        hours = _text(biz, "hours", hours)
    booking = table.get("booking", True)
    if not isinstance(booking, bool):
        raise BusinessConfigError(biz, "booking", "must be true or false")
    extra = table.get("extra", {})
    listen = _listen(biz, table.get("listen", {}))
    speculate = table.get("speculate", True)
    if not isinstance(speculate, bool):
        raise BusinessConfigError(biz, "speculate", "must be true or false")
    early = table.get("early_clause", True)
    if not isinstance(early, bool):
        raise BusinessConfigError(biz, "early_clause", "must be true or false")
    shorts_raw = table.get("short_fillers", list(DEFAULT_SHORT_FILLERS))
    if not isinstance(shorts_raw, list) or not shorts_raw:
        raise BusinessConfigError(biz, "short_fillers", "must be a non-empty array of short phrases")
    shorts = tuple(_text(biz, f"short_fillers[{i}]", f) for i, f in enumerate(shorts_raw))
    for i, phrase in enumerate(shorts):
        if len(phrase) > MAX_SHORT_FILLER_CHARS:
            raise BusinessConfigError(biz, f"short_fillers[{i}]", f"is {len(phrase)} characters; a short filler has at "
                                      f"most {MAX_SHORT_FILLER_CHARS} (it must end before the answer is ready)")
    return Business(
        id=biz, name=name, voice=voice, say_voice=say_voice, language=language, greeting=greeting,
        fillers=fillers, prompts=prompts, faq=tuple(faq), hours=hours, numbers=tuple(numbers_raw),
        use_proactive_filler=use_filler, rollout_percent=percent, instant_budget_ms=budget,
        splice=splice, transfer_number=transfer, booking=booking, extra=dict(extra),
        voice_fallbacks=voice_fallbacks, speculate=speculate, early_clause=early, short_fillers=shorts, **listen,
    )


def _listen(biz: str, table: Any) -> dict[str, Any]:
    """The ``[<id>.listen]`` table: speech_model, speech_timeout, partial_results, barge_in."""
    if not isinstance(table, dict):
        raise BusinessConfigError(biz, "listen", "must be a table")
    for key in table:
        if key not in ("speech_model", "speech_timeout", "partial_results", "barge_in"):
            raise BusinessConfigError(biz, f"listen.{key}", "is not a known field")
    model = table.get("speech_model", DEFAULT_SPEECH_MODEL)
    if not isinstance(model, str) or not SPEECH_MODEL_RE.match(model):
        raise BusinessConfigError(biz, "listen.speech_model", "must be a Twilio speechModel like 'deepgram_nova-3'")
    timeout = table.get("speech_timeout", "auto")
    if isinstance(timeout, int) and not isinstance(timeout, bool) and 1 <= timeout <= 10:
        timeout = str(timeout)
    elif timeout != "auto":
        raise BusinessConfigError(biz, "listen.speech_timeout", "must be \"auto\" or whole seconds from 1 to 10")
    if model == "default" and timeout == "auto":
        # Twilio warning 13335: speechTimeout "auto" cannot be used with model "default".
        raise BusinessConfigError(biz, "listen.speech_timeout", "\"auto\" cannot be used with speech_model "
                                  "\"default\" (Twilio warning 13335); use whole seconds")
    out: dict[str, Any] = {"speech_model": model, "speech_timeout": timeout}
    for key, default in (("partial_results", True), ("barge_in", False)):
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise BusinessConfigError(biz, f"listen.{key}", "must be true or false")
        out[key] = value
    return out


class Businesses:
    """All businesses of one file, by id and by phone number. Immutable after load; thread-safe."""

    def __init__(self, businesses: dict[str, Business]) -> None:
        self._by_id = dict(businesses)
        self._by_number: dict[str, Business] = {}
        for biz in self._by_id.values():
            for number in biz.numbers:
                if number in self._by_number:
                    raise BusinessConfigError(biz.id, "numbers", f"{number} is also {self._by_number[number].id}'s")
                self._by_number[number] = biz

    def get(self, business_id: str) -> Business | None:
        return self._by_id.get(business_id)

    def by_number(self, number: str) -> Business | None:
        return self._by_number.get(number)

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def ids(self) -> list[str]:
        return sorted(self._by_id)


def load_businesses(path: Path) -> Businesses:
    """Load and validate every business in the TOML file at ``path``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"WARMLINE_BUSINESSES: no such file {path}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"WARMLINE_BUSINESSES: {path} is not valid TOML: {exc}") from exc
    if not data:
        raise ConfigError(f"WARMLINE_BUSINESSES: {path} defines no business")
    return Businesses({biz: parse_business(biz, table) for biz, table in data.items()})
