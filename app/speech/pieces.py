"""Split an answer into the pieces that become clips, at the business's ``splice`` level.

- ``sentence``: one piece per sentence (the default).
- ``clause``: sentences further split where a spoken pause is natural (``, ; :`` and dashes).
- ``whole``: the whole answer is one clip (the refactoring plan as first written; a baseline).
- ``slot``: slot values marked by the responder (names, times, prices, ...) become pieces of their
  own, so the fixed phrasing around them is one reusable clip and the value another.

Pure and thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.speech.canon import is_speakable
from app.speech.segment import split_clauses, split_sentences

Mark = tuple[str, int, int]


def _split(text: str, splice: str) -> list[str]:
    return split_clauses(text) if splice == "clause" else split_sentences(text)


def split_pieces(text: str, splice: str = "sentence", marks: Sequence[Mark] = ()) -> list[str]:
    """The pieces of ``text``; every piece holds something speakable, and joined they say all of ``text``."""
    if splice == "whole":
        return [text.strip()] if is_speakable(text) else []
    if splice != "slot" or not marks:
        return _merge_unspeakable(_split(text, "clause" if splice == "clause" else "sentence"))
    pieces: list[str] = []
    pos = 0
    for _name, start, end in sorted(marks, key=lambda m: m[1]):
        if start < pos or end > len(text) or start >= end:
            continue  # overlapping or out-of-range marks are ignored, never trusted
        pieces.extend(split_sentences(text[pos:start]))
        pieces.append(text[start:end].strip())
        pos = end
    pieces.extend(split_sentences(text[pos:]))
    return _merge_unspeakable([p for p in pieces if p])


def _merge_unspeakable(pieces: list[str]) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if not is_speakable(piece) and out:
            out[-1] = out[-1] + piece
        elif is_speakable(piece):
            out.append(piece)
    return out
