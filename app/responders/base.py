"""What a responder is: the AI side of a turn, text in, text (and what to do next) out.

Pure data, a Protocol and pure functions on replies; no I/O. Everything here is immutable and safe
to share across threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.speech.segment import split_sentences

if TYPE_CHECKING:
    from app.business import Business

ACTIONS = ("continue", "end", "transfer")
MAX_REPLY_CHARS = 600
"""The longest reply a caller is read (a model's longer reply is cut at a sentence boundary)."""

Mark = tuple[str, int, int]


@dataclass(frozen=True)
class Reply:
    """One answer to speak.

    ``action``: ``continue`` (gather the next utterance), ``end`` (hang up after speaking) or
    ``transfer`` (dial the business's transfer number after speaking).
    ``marks``: slot spans ``(name, start, end)`` — character offsets into ``text``, end exclusive,
    so ``text[start:end]`` is the slot's value (a name, a time). The audio layer may speak a
    marked value as its own clip so the fixed phrasing around it stays a cache hit.
    ``failure``: set (``"ErrorClass: message"``) when this is not the responder's answer but the
    apology spoken because the responder failed; reports count it as a responder failure.
    """

    text: str
    action: str = "continue"
    marks: tuple[Mark, ...] = ()
    failure: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {self.action!r}")
        for mark in self.marks:
            name, start, end = mark
            if not (isinstance(name, str) and 0 <= start < end <= len(self.text)):
                raise ValueError(f"mark {mark!r} is not a span of the text ({len(self.text)} characters)")

    def marked(self) -> dict[str, str]:
        """Slot name -> the text it marks (the last mark wins for a repeated name)."""
        return {name: self.text[start:end] for name, start, end in self.marks}


class Responder(Protocol):
    """Writes the agent's next line of a call.

    ``history`` is the call so far, oldest first, *without* the current utterance: a list of
    ``{"role": "caller" | "agent", "text": str}``. (Responders tolerate a history whose last
    item is the current utterance itself, so callers may append before or after.) Dialogue memory
    (a booking in progress) is derived from the history, so any worker on any host can answer
    any turn. Implementations must be safe to call from several threads at once and raise only
    :class:`~app.errors.ResponderError` for their own failures.
    """

    def reply(self, business: Business, history: list[dict[str, Any]], utterance: str) -> Reply: ...


def prior_history(history: list[dict[str, Any]], utterance: str) -> list[dict[str, Any]]:
    """``history`` without a trailing caller item equal to ``utterance`` (appended before the call)."""
    items = list(history or [])
    if items and items[-1].get("role") == "caller" and str(items[-1].get("text", "")).strip() == utterance.strip():
        items.pop()
    return items


def trim_reply(reply: Reply, max_chars: int = MAX_REPLY_CHARS) -> Reply:
    """``reply`` cut to at most ``max_chars`` at a sentence boundary (a word boundary if one sentence is longer).

    The result is a prefix of the text (plus a final "." when a sentence had to be cut), so
    marks inside it stay valid; marks past the cut are dropped.
    """
    text = reply.text
    if len(text) <= max_chars:
        return reply
    cut = 0
    consumed = 0  # non-space characters of the text covered by the sentences so far
    for sentence in split_sentences(text):
        consumed += sum(1 for ch in sentence if not ch.isspace())
        end = _position_after(text, consumed)
        if end > max_chars:
            break
        cut = end
    if cut:
        new = text[:cut]
    else:  # the first sentence alone is too long: cut at a word boundary
        head = text[: max_chars - 1]
        space = head.rfind(" ")
        new = (head[:space] if space > 0 else head).rstrip(" ,;:-") + "."
    limit = len(new) if cut else len(new) - 1
    return Reply(new, reply.action, tuple(m for m in reply.marks if m[2] <= limit))


def _position_after(text: str, nonspace: int) -> int:
    """The index just after the ``nonspace``-th non-space character of ``text``."""
    seen = 0
    for i, ch in enumerate(text):
        if not ch.isspace():
            seen += 1
            if seen == nonspace:
                return i + 1
    return len(text)
