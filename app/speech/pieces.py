"""Split an answer into the pieces that become clips, at the business's ``splice`` level.

- ``sentence``: one piece per sentence (the default).
- ``clause``: sentences further split where a spoken pause is natural (``, ; :`` and dashes).
- ``whole``: the whole answer is one clip (the refactoring plan as first written; a baseline).
- ``slot``: clauses, with slot values as pieces of their own: the values the responder marked
  (names, addresses, prices, ...) and every numeric value it did not mark (counts, times such as
  "11:45 am", prices, dates such as "march 2nd", phone numbers), so the fixed phrasing around
  them is one reusable clip and the value another. Sentence-final punctuation right after a
  value stays with the value ("$12." not "$12" + ". Call us").
- ``phrase``: the pieces of ``slot``, spoken as one running sentence. Wherever two pieces meet
  inside a sentence with no punctuation between them (where the voice does not pause), both
  sides carry the join mark ``~`` (``app.speech.canon.JOIN``): "booking an appointment on~",
  "~march 13th~", "~at~", "~1:15 pm." A provider speaks a marked piece as a part of a running
  sentence, not as a sentence of its own, and the answer is served as one clip assembled from
  its pieces (``Synthesizer.assemble``), so the pause at each join is ours, not Twilio's.
  Punctuation that follows a value (", is that right?") stays with the value ("march 6th,").

Pure and thread-safe.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from app.speech.canon import JOIN, is_speakable
from app.speech.segment import split_clauses, split_sentences

Mark = tuple[str, int, int]

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# A numeric value: digits with inner separators ("1,200", "11:45", "650-299-4827", "3.5"), an
# optional month before it, "$", an ordinal suffix ("2nd") and am/pm; never part of a longer word.
_VALUE = re.compile(
    r"(?<![\w$.,:/-])(?:" + _MONTH + r"\.?\s+)?\$?\d+(?:[.,:/-]\d+)*(?:st|nd|rd|th)?"
    r"(?:\s?(?:[ap]\.m\.|[ap]m\b))?(?![\w-]|[.,:/]\d)",
    re.IGNORECASE,
)


def value_marks(text: str) -> list[Mark]:
    """Marks ``("value", start, end)`` for the numeric values in ``text``."""
    return [("value", m.start(), m.end()) for m in _VALUE.finditer(text)]


def _split(text: str, splice: str) -> list[str]:
    return split_clauses(text) if splice == "clause" else split_sentences(text)


def split_pieces(text: str, splice: str = "sentence", marks: Sequence[Mark] = ()) -> list[str]:
    """The pieces of ``text``; every piece holds something speakable, and joined they say all of ``text``.

    Remembered per (text, splice, marks): the same fixed answers are split on every call.
    """
    return list(_split_pieces(text, splice, tuple(tuple(m) for m in marks)))


@functools.lru_cache(maxsize=8192)
def _split_pieces(text: str, splice: str, marks: tuple[Mark, ...]) -> tuple[str, ...]:
    return tuple(_pieces(text, splice, marks))


def _pieces(text: str, splice: str, marks: Sequence[Mark]) -> list[str]:
    if splice == "whole":
        return [text.strip()] if is_speakable(text) else []
    if splice == "phrase":
        return mark_joins(_pieces(text, "slot", marks))
    if splice != "slot":
        return _merge_unspeakable(_split(text, "clause" if splice == "clause" else "sentence"))
    given = [m for m in marks if 0 <= m[1] < m[2] <= len(text)]
    found = [v for v in value_marks(text) if not any(v[1] < m[2] and m[1] < v[2] for m in given)]
    pieces: list[str] = []
    pos = 0
    for _name, start, end in sorted(given + found, key=lambda m: m[1]):
        if start < pos or start >= end:
            continue  # overlapping marks are ignored, never trusted
        end = _through_terminal(text, end)
        pieces.extend(split_clauses(text[pos:start]))
        pieces.append(text[start:end].strip())
        pos = end
    pieces.extend(split_clauses(text[pos:]))
    return _merge_unspeakable([p for p in pieces if p])


_PAUSES = (".", "!", "?", ",", ";", ":", "-", "\u2013", "\u2014", "\u2026")
_CLOSE = "\"')]}\u201d\u2019"


def mark_joins(pieces: Sequence[str]) -> list[str]:
    """``pieces`` with the join mark on both sides of every join where no punctuation (no pause) falls.

    Punctuation that opens a piece (", is that right?") is first moved to the end of the piece
    before it, where it is spoken.
    """
    out: list[str] = []
    for piece in pieces:
        piece = piece.strip()
        if out:
            lead = len(piece) - len(piece.lstrip(",;:"))
            if lead:
                out[-1] += piece[:lead]
                piece = piece[lead:].strip()
        if piece:
            out.append(piece)
    out = _merge_unspeakable(out)
    for i in range(len(out) - 1):
        if not _pause_between(out[i], out[i + 1]):
            out[i] += JOIN
            out[i + 1] = JOIN + out[i + 1]
    return out


def _pause_between(piece: str, following: str) -> bool:
    """True when the voice pauses after ``piece`` (punctuation ends it). A final ``.`` pauses only
    where it ends a sentence: "8 a.m." before "to 6 p.m." runs on (the sentence splitter's call,
    the same one that cut the answer into sentences)."""
    end = piece.rstrip(_CLOSE)
    if not end.endswith(_PAUSES):
        return False
    if not end.endswith(".") or end.endswith(".."):
        return True
    head = piece.strip(JOIN + " ")
    return any(" ".join(split) == head for split in _prefixes(split_sentences(f"{head} {following.strip(JOIN + ' ')}")))


def _prefixes(sentences: list[str]) -> list[list[str]]:
    return [sentences[:k] for k in range(1, len(sentences))]


COMMA_PAUSE_MS = 200
"""Silence added after a piece that ends at ``, ; :`` or a dash (its own 60 ms trim pad and the
next piece's come on top): a natural comma pause (see BENCHMARKS.md, the listening benchmark)."""
SENTENCE_PAUSE_MS = 250
"""Silence added after a piece that ends a sentence (plus both trim pads)."""


def join_pauses(pieces: Sequence[str]) -> list[int]:
    """The silence in ms to put after each piece but the last when ``pieces`` are played as one clip.

    0 after a join-marked end (the pieces were cut from running speech and are crossfaded),
    COMMA_PAUSE_MS after a clause end, SENTENCE_PAUSE_MS after anything else.
    """
    return [_pause_after(piece) for piece in pieces[:-1]]


def _pause_after(piece: str) -> int:
    """0 after a join mark, COMMA_PAUSE_MS after clause punctuation, else SENTENCE_PAUSE_MS."""
    end = piece.rstrip().rstrip(_CLOSE)
    if end.endswith(JOIN):
        return 0
    if end.endswith((",", ";", ":", "-", "\u2013", "\u2014")):
        return COMMA_PAUSE_MS
    return SENTENCE_PAUSE_MS


def ends_sentence(piece: str) -> bool:
    """True when ``piece`` ends a sentence: no join mark and no clause punctuation at its end.

    A question about a piece of a sentence plan (is a sentence pause after it?); whether a reply's
    text ends with a whole sentence is :func:`app.speech.segment.ends_with_terminal`.
    """
    return _pause_after(piece) == SENTENCE_PAUSE_MS


def sentence_runs(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges of ``pieces``, one per sentence (the last one may be unfinished)."""
    runs, start = [], 0
    for i, piece in enumerate(pieces):
        if ends_sentence(piece) or i == len(pieces) - 1:
            runs.append((start, i + 1))
            start = i + 1
    return runs


def plain(piece: str) -> str:
    """A piece's words without its join marks (what ``<Say>`` or a log shows)."""
    return piece.strip().strip(JOIN).strip()


def _through_terminal(text: str, end: int) -> int:
    """``end`` moved past sentence-final punctuation right after a value, if a space or the end follows."""
    stop = end
    while stop < len(text) and text[stop] in ".!?":
        stop += 1
    return stop if stop == len(text) or text[stop].isspace() else end


def _merge_unspeakable(pieces: list[str]) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if not is_speakable(piece) and out:
            out[-1] = out[-1] + piece
        elif is_speakable(piece):
            out.append(piece)
    return out
