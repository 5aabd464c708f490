"""TwiML builders: pure functions from what to say to a TwiML document (a ``str``).

Built with twilio's ``VoiceResponse`` so every text is escaped by the library. Only ``<Say>``,
``<Play>`` and ``<Pause>`` are ever nested in ``<Gather>``. Safe to call from any thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from twilio.twiml.voice_response import Gather, VoiceResponse

SAY_MAX_CHARS = 3000  # Polly's limit for one <Say>
EMPTY = str(VoiceResponse())
"""The empty document: the answer to webhooks whose body Twilio ignores (partial results, status callbacks)."""
# What a <Say> must never carry: characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates,
# U+FFFE/U+FFFF; one makes the whole document unparsable, Twilio error 12100), C1 controls and
# invisible bidi/format controls. Replaced by a space.
_UNSAYABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
                        "\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class Speak:
    """One thing to say: a clip to ``<Play>`` (``url``) or, failing that, ``text`` to ``<Say>``."""

    url: str | None = None
    text: str = ""

    def __post_init__(self) -> None:
        if not self.url and not self.text.strip():
            raise ValueError("Speak needs a url or text")


@dataclass(frozen=True)
class SayVoice:
    """The business's native Twilio voice, e.g. ``Polly.Joanna-Neural`` in ``en-US``."""

    voice: str
    language: str


@dataclass(frozen=True)
class Listen:
    """How to listen for the caller's next words and what to do when they say nothing."""

    action: str
    language: str
    still_there: Speak
    goodbye: Speak
    timeout_s: int = 6
    partial: str | None = None  # partialResultCallback: Twilio posts the running transcript here
    speech_model: str | None = None  # pinned speechModel (None: Twilio picks)
    speech_timeout: str = "auto"
    barge_in: bool = False  # nest what is said before listening in the first <Gather> (interruptible)


def say_text(text: str) -> str:
    """``text`` as a <Say> can carry it: XML-safe, whitespace collapsed, at most SAY_MAX_CHARS ('' if nothing is left)."""
    return _clip_text(" ".join(_UNSAYABLE.sub(" ", text).split()))


def _clip_text(text: str) -> str:
    text = text.strip()
    if len(text) <= SAY_MAX_CHARS:
        return text
    cut = text[:SAY_MAX_CHARS]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > 0 else cut


def _add(node: VoiceResponse | Gather, items: Sequence[Speak], say: SayVoice) -> None:
    for item in items:
        if item.url:
            node.play(item.url)
        elif text := say_text(item.text):
            node.say(text, voice=say.voice, language=say.language)


def _gather(response: VoiceResponse, listen: Listen) -> Gather:
    extra = {}
    if listen.partial:
        extra["partial_result_callback"] = listen.partial
        extra["partial_result_callback_method"] = "POST"
    if listen.speech_model:
        extra["speech_model"] = listen.speech_model
    return response.gather(
        input="speech",
        action=listen.action,
        method="POST",
        speech_timeout=listen.speech_timeout,
        timeout=listen.timeout_s,
        language=listen.language,
        **extra,
    )


def speak_then_listen(items: Sequence[Speak], listen: Listen, say: SayVoice) -> str:
    """Say ``items``, gather speech; on silence ask "still there?", gather again, then say goodbye and hang up.

    With ``listen.barge_in`` the items play *inside* the first <Gather>: Twilio stops playing them when
    the caller starts talking, and the words go to the Gather's action. Twilio fetches every nested
    clip before it plays the first, so of several items the first plays outside, at once, and the
    rest are nested. Without it they all play before the Gather and cannot be interrupted.
    """
    response = VoiceResponse()
    if listen.barge_in:
        # The first item plays at once, outside: Twilio fetches every clip nested in a <Gather> before it
        # plays the first, so nesting the lead would put all the other fetches in front of the answer.
        lead, rest = (list(items[:1]), list(items[1:])) if len(items) > 1 else ([], list(items))
        _add(response, lead, say)
        _add(_gather(response, listen), rest, say)
    else:
        _add(response, items, say)
        _gather(response, listen)
    _add(response, [listen.still_there], say)
    _gather(response, listen)
    _add(response, [listen.goodbye], say)
    response.hangup()
    return str(response)


def speak_then_hangup(items: Sequence[Speak], say: SayVoice) -> str:
    """Say ``items`` then hang up (the call is done: booking confirmed, caller said goodbye)."""
    response = VoiceResponse()
    _add(response, items, say)
    response.hangup()
    return str(response)


def speak_then_dial(items: Sequence[Speak], number: str, say: SayVoice) -> str:
    """Say ``items`` then transfer the call to ``number``."""
    response = VoiceResponse()
    _add(response, items, say)
    response.dial(number)
    return str(response)


def speak_then_redirect(items: Sequence[Speak], url: str, say: SayVoice) -> str:
    """Say ``items`` (a filler, or a ready prefix of the answer) then POST to ``url`` for more."""
    response = VoiceResponse()
    _add(response, items, say)
    response.redirect(url, method="POST")
    return str(response)
