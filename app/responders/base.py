"""What a responder is: the AI side of a turn, text in, text (and what to do next) out.

Pure data and a Protocol; no I/O. Everything here is immutable and safe to share across threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from app.business import Business

ACTIONS = ("continue", "end", "transfer")

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
