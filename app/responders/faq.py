"""The embedded default responder: FAQ, opening hours, a short booking dialogue, goodbye, transfer.

Driven entirely by the business file (:class:`~app.business.Business`): FAQ keyword matching,
``hours``, ``booking`` and ``transfer_number``. Deterministic, no I/O, thread-safe (no mutable
state). Dialogue memory comes from the history alone: a booking in progress is recognised from
the agent's last line, so any worker can answer any turn of a call.

Booking: "I'd like to book" -> "Sure, I can book that for you. May I have your name, please?"
-> "Sam Jones" -> "Thanks, Sam Jones. What day and time would suit you?" -> "Tuesday at 3 pm"
-> "Great, Sam Jones, you're booked for Tuesday at 3 p.m. We'll send a reminder. Goodbye!"
(action ``end``; marks ``name`` and ``time``). Fixed phrasing is kept identical across calls so
its sentences are cache hits; only the marked values vary.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from app.business import Business
from app.responders.base import Mark, Reply, prior_history

ANYTHING_ELSE = "Is there anything else I can help you with?"
ASK_NAME_Q = "May I have your name, please?"
BOOK_START = f"Sure, I can book that for you. {ASK_NAME_Q}"
NAME_AGAIN = f"Sorry, I didn't catch your name. {ASK_NAME_Q}"
ASK_TIME_Q = "What day and time would suit you?"
BOOKING_CANCELLED = f"No problem, I won't book anything. {ANYTHING_ELSE}"
NO_BOOKING = f"I'm sorry, I can't make bookings over the phone. {ANYTHING_ELSE}"
MESSAGE_Q = "What would you like me to pass on?"
TAKE_MESSAGE = f"I can't put you through right now, but I can take a message. {MESSAGE_Q}"
MESSAGE_TAKEN = f"Thanks, I've passed that on and someone will call you back soon. {ANYTHING_ELSE}"
WELCOME = f"You're welcome. {ANYTHING_ELSE}"

GOODBYE_PHRASES = (
    "bye", "goodbye", "good bye", "bye bye", "that's all", "that is all", "that's it", "that is it",
    "no thanks", "no thank you", "nothing else", "hang up", "i'm done", "i'm good thanks",
)
CANCEL_PHRASES = ("never mind", "nevermind", "cancel", "forget it", "don't book", "do not book")
HUMAN_PHRASES = (
    "human", "person", "someone", "somebody", "reception", "receptionist", "operator", "staff",
    "put me through", "transfer me", "speak to a", "talk to a",
)
BOOKING_WORDS = ("book", "booking", "appointment", "appointments", "schedule", "reserve", "reservation")
HOURS_WORDS = ("open", "opening", "hours", "close", "closed", "closing", "when")
GREETING_WORDS = frozenset("hi hello hey hiya good morning afternoon evening there".split())
THANKS_WORDS = frozenset("thanks thank you so much very great ok okay cheers lovely".split())
NEGATIVE_FIRST = frozenset({"no", "nope", "nah"})
AFFIRMATIVE_FIRST = frozenset({"yes", "yeah", "yep", "yup", "sure", "please", "ok", "okay", "absolutely"})

_FILLER_WORDS = frozenset("um uh er erm ah oh well yes yeah sure ok okay hi hello so".split())
_NAME_STOP = frozenset("and please thanks thank calling here speaking from".split())
_NOT_NAMES = frozenset(
    """i i'm i'd i'll you me my the a an to for what why how when where no not don't dont know can could would
    like want need book appointment is it's its that this yes yeah""".split()
)
_NAME_INTRO = re.compile(
    r"\b(?:my name is|my name's|the name is|the name's|name is|it's|it is|this is|i'm|i am|call me)\s+(.+)",
    re.IGNORECASE,
)
_NAME_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")

_DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_MONTHS = "january february march april may june july august september october november december".split()
_DAY_RE = re.compile(r"\b(?:(next|this)\s+)?(today|tomorrow|" + "|".join(_DAYS) + r")\b")
_DATE_RE = re.compile(
    r"\b(?:(" + "|".join(_MONTHS) + r")\s+(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?"
    r"|(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?\s+of\s+(" + "|".join(_MONTHS) + r"))\b"
)
_CLOCK_RE = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(a\.?\s?m\b\.?|p\.?\s?m\b\.?)")
_HHMM_RE = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_AT_HOUR_RE = re.compile(r"\bat\s+(\d{1,2})\b(?!\s*(?:st|nd|rd|th|of)\b)")
_PART_OF_DAY = (("noon", "noon"), ("midday", "noon"), ("morning", "in the morning"),
                ("afternoon", "in the afternoon"), ("evening", "in the evening"))
_ASK_TIME_NAME = re.compile(r"^(?:Thanks, (?P<a>[^.,]+)\. |Sorry, (?P<b>[^.,]+), I didn't catch)")
_NOT_WORD_RE = re.compile(r"[^a-z0-9'\-:. ]+")
_SENTENCE_DOT_RE = re.compile(r"(?<![a-z0-9])\.|\.(?![a-z0-9])")


def _norm(text: str) -> str:
    """Lower case, curly quotes folded, punctuation (except ' - :) to spaces, spaces collapsed."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    text = _NOT_WORD_RE.sub(" ", text)
    text = _SENTENCE_DOT_RE.sub(" ", text)  # sentence dots, not "p.m" or "3.30"
    return " ".join(text.split())


@functools.lru_cache(maxsize=4096)
def _phrase_re(phrase: str) -> re.Pattern[str]:
    """``phrase`` as a whole-word pattern, compiled once (the phrases come from code and business files)."""
    return re.compile(r"(?<![a-z0-9'])" + re.escape(phrase) + r"(?![a-z0-9'])")


def _has(norm: str, phrase: str) -> bool:
    return _phrase_re(phrase).search(norm) is not None


@functools.lru_cache(maxsize=4096)
def _norm_keyword(keyword: str) -> str:
    """:func:`_norm` of a business file's FAQ keyword (pure, so remembered)."""
    return _norm(keyword)


def _has_any(norm: str, phrases: tuple[str, ...]) -> bool:
    return any(_has(norm, p) for p in phrases)


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def extract_name(utterance: str) -> str | None:
    """A caller's name from "My name is sam jones" / "it's Sam" / "Sam Jones"; None if unsure.

    At most three words, each capitalised if it was all lower case ("mary-jane" -> "Mary-Jane").
    """
    text = utterance.replace("\u2019", "'").strip()
    match = _NAME_INTRO.search(text)
    candidate = match.group(1) if match else text
    words = _NAME_WORD.findall(candidate)
    while words and words[0].lower() in _FILLER_WORDS:
        words.pop(0)
    name: list[str] = []
    for word in words:
        if word.lower() in _NAME_STOP:
            break
        name.append(word)
    if not name or len(name) > 3 or (not match and len(words) > 3):
        return None
    if any(w.lower() in _NOT_NAMES for w in name):
        return None
    return " ".join(_capitalize(w) for w in name)


def _capitalize(word: str) -> str:
    """"mary-jane" -> "Mary-Jane", "o'brien" -> "O'Brien"; words with a capital are kept as said."""
    if not word.islower():
        return word
    parts = []
    for part in word.split("-"):
        head, sep, tail = part.partition("'")
        if sep and len(head) == 1:
            parts.append(head.upper() + sep + tail[:1].upper() + tail[1:])
        else:
            parts.append(part[:1].upper() + part[1:])
    return "-".join(parts)


def extract_time(utterance: str) -> str | None:
    """A day and/or time from "next tuesday at 3 pm" -> "next Tuesday at 3 p.m."; None if none found."""
    norm = _norm(utterance)
    day: str | None = None
    date = _DATE_RE.search(norm)
    if date:
        month = date.group(1) or date.group(4)
        number = int(date.group(2) or date.group(3))
        if 1 <= number <= 31:
            day = f"{month.capitalize()} {_ordinal(number)}"
    if day is None:
        found = _DAY_RE.search(norm)
        if found:
            word = found.group(2)
            word = word if word in ("today", "tomorrow") else word.capitalize()
            day = f"{found.group(1)} {word}" if found.group(1) else word
    clock: str | None = None
    found = _CLOCK_RE.search(norm)
    if found and 1 <= int(found.group(1)) <= 12:
        minutes = found.group(2)
        meridiem = "a.m." if found.group(3).startswith("a") else "p.m."
        hour = str(int(found.group(1)))
        clock = f"{hour}:{minutes} {meridiem}" if minutes and minutes != "00" else f"{hour} {meridiem}"
    if clock is None:
        found = _HHMM_RE.search(norm)
        if found and int(found.group(1)) <= 23 and int(found.group(2)) <= 59:
            clock = f"{int(found.group(1))}:{found.group(2)}"
    if clock is None:
        found = _AT_HOUR_RE.search(norm)
        if found and 1 <= int(found.group(1)) <= 12:
            clock = f"{int(found.group(1))} o'clock"
    if clock is None:
        for word, spoken in _PART_OF_DAY:
            if _has(norm, word):
                clock = spoken
                break
    if day and clock:
        return f"{day} {clock}" if clock.startswith("in the ") else f"{day} at {clock}"
    return day or clock


def _compose(*parts: tuple[str, str | None]) -> tuple[str, tuple[Mark, ...]]:
    """Concatenate (text, slot-name-or-None) parts; returns the text and exact marks."""
    text = ""
    marks: list[Mark] = []
    for chunk, slot in parts:
        if slot is not None:
            marks.append((slot, len(text), len(text) + len(chunk)))
        text += chunk
    return text, tuple(marks)


def ask_time(name: str) -> Reply:
    text, marks = _compose(("Thanks, ", None), (name, "name"), (f". {ASK_TIME_Q}", None))
    return Reply(text, "continue", marks)


def ask_time_again(name: str) -> Reply:
    text, marks = _compose(("Sorry, ", None), (name, "name"), (f", I didn't catch a day or time. {ASK_TIME_Q}", None))
    return Reply(text, "continue", marks)


def confirm_booking(name: str, when: str) -> Reply:
    text, marks = _compose(
        ("Great, ", None), (name, "name"), (", you're booked for ", None), (when, "time"),
        # "3 p.m." already ends the sentence: no second full stop
        (" We'll send a reminder. Goodbye!" if when.endswith(".") else ". We'll send a reminder. Goodbye!", None),
    )
    return Reply(text, "end", marks)


def _with_follow_up(answer: str) -> str:
    return answer if answer.rstrip().endswith("?") else f"{answer} {ANYTHING_ELSE}"


class FaqResponder:
    """The business file's FAQ, hours and booking flow as a deterministic responder. Thread-safe."""

    instant = True
    """Answers in microseconds without I/O: the turn engine may run its turns in the request thread."""

    def fixed_texts(self, business: Business) -> list[str]:
        """The phrasing this responder speaks whatever the caller says (precompute makes these ahead)."""
        texts = [ANYTHING_ELSE, ASK_NAME_Q, ASK_TIME_Q, "We'll send a reminder.", "Goodbye!"]
        if business.booking:
            texts += [BOOK_START, NAME_AGAIN, BOOKING_CANCELLED]
        else:
            texts.append(NO_BOOKING)
        texts += [TAKE_MESSAGE, MESSAGE_TAKEN, WELCOME]
        return texts

    def reply(self, business: Business, history: list[dict[str, Any]], utterance: str) -> Reply:
        norm = _norm(utterance)
        if not re.search(r"[a-z0-9]", norm):
            return Reply(business.prompt("reprompt"))
        items = prior_history(history, utterance)
        last_agent = next((str(h.get("text", "")) for h in reversed(items) if h.get("role") == "agent"), "")

        staged = self._booking_stage(business, last_agent, utterance, norm)
        if staged is not None:
            return staged
        if _has_any(norm, GOODBYE_PHRASES):
            return self.goodbye(business)
        words = norm.split()
        if last_agent.endswith(ANYTHING_ELSE) and words[0] in NEGATIVE_FIRST and len(words) <= 5:
            return self.goodbye(business)
        if (words[0] in AFFIRMATIVE_FIRST and last_agent.endswith("?") and "book" in last_agent.rsplit(".", 1)[-1]
                and business.booking):
            return Reply(BOOK_START)
        if _has_any(norm, HUMAN_PHRASES):
            return self.human(business)
        if _has_any(norm, BOOKING_WORDS):
            return Reply(BOOK_START if business.booking else NO_BOOKING)
        answer = self.faq_answer(business, norm)
        if answer is not None:
            return Reply(_with_follow_up(answer))
        if business.hours and _has_any(norm, HOURS_WORDS):
            return Reply(_with_follow_up(business.hours))
        if set(words) <= GREETING_WORDS:
            return Reply(f"Hello, you've reached {business.name}. How can I help you today?")
        if set(words) <= THANKS_WORDS and {"thanks", "thank", "cheers"} & set(words):
            return Reply(WELCOME)
        return Reply(self.fallback_text(business))

    # --- pieces --------------------------------------------------------------------------------
    def _booking_stage(self, business: Business, last_agent: str, utterance: str, norm: str) -> Reply | None:
        """The reply when the agent's last line asked for a name, a time or a message; else None."""
        if last_agent.endswith(MESSAGE_Q):
            return Reply(MESSAGE_TAKEN)
        asked_name = last_agent.endswith(ASK_NAME_Q)
        asked_time = last_agent.endswith(ASK_TIME_Q)
        if not (asked_name or asked_time):
            return None
        if _has_any(norm, GOODBYE_PHRASES):
            return self.goodbye(business)
        if _has_any(norm, CANCEL_PHRASES):
            return Reply(BOOKING_CANCELLED)
        if _has_any(norm, HUMAN_PHRASES):
            return self.human(business)
        if asked_name:
            name = extract_name(utterance)
            return ask_time(name) if name else Reply(NAME_AGAIN)
        found = _ASK_TIME_NAME.match(last_agent)
        if found is None:  # not our phrasing (history edited?): start the booking again
            return Reply(BOOK_START)
        name = found.group("a") or found.group("b")
        when = extract_time(utterance)
        return confirm_booking(name, when) if when else ask_time_again(name)

    @staticmethod
    def goodbye(business: Business) -> Reply:
        return Reply(business.prompt("goodbye"), "end")

    @staticmethod
    def human(business: Business) -> Reply:
        if business.transfer_number:
            return Reply(business.prompt("transfer"), "transfer")
        return Reply(TAKE_MESSAGE)

    @staticmethod
    def faq_answer(business: Business, norm: str) -> str | None:
        """The answer of the FAQ with most matching keywords (the first on a tie), or None."""
        best, best_hits = None, 0
        for faq in business.faq:
            hits = sum(1 for kw in faq.keywords if _has(norm, _norm_keyword(kw)))
            if hits > best_hits:
                best, best_hits = faq.answer, hits
        return best

    @staticmethod
    def fallback_text(business: Business) -> str:
        """What the responder can do for this business, as one helpful sentence and a question."""
        can = []
        if business.hours:
            can.append("tell you our opening hours")
        if business.faq:
            can.append("answer common questions")
        if business.booking:
            can.append("book an appointment")
        can.append("put you through to someone" if business.transfer_number else "take a message")
        listed = can[0] if len(can) == 1 else ", ".join(can[:-1]) + " or " + can[-1]
        return f"Sorry, I can't help with that. I can {listed}. What would you like to do?"
