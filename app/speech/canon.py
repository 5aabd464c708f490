"""canon(): fold text variants that sound the same to one canonical string.

Pure and thread-safe. What we synthesize is ``canon(text)`` itself, so every variant that maps to
one content key also sounds the same. The rules are versioned by the ``v2`` in the key.

Join marks. A piece cut from inside a sentence where the voice does not pause carries ``~`` on
that side (:data:`JOIN`): ``"booking an appointment on~"``, ``"~march thirteenth~"``,
``"~at one fifteen p.m."``. A provider speaks such a piece as part of a running sentence (see
``app.speech.providers.piper``); the mark is part of the key, so the same words spoken as a
sentence of their own are another clip. A piece that ends at a comma, semicolon or colon keeps it
(no full stop is added): it is spoken with the rising, continuing tone of a comma.
"""

from __future__ import annotations

import functools

import re
import unicodedata

from app.speech.verbalize import verbalize

JOIN = "~"
"""The join mark: a piece side that continues a sentence without a pause."""

_TRANSLATE = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
        "\u2212": "-", "\u2026": "...", "\u00a0": " ",
    }
)
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED = re.compile(r"([!?,;:])\1+")
_DOTS = re.compile(r"\.{4,}")
_MIXED_END = re.compile(r"[!?][!?.]+$")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_FINAL = (".", "!", "?")
_CONTINUING = (",", ";", ":")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


_ACRONYM = re.compile(r"[^\W\d_a-z]{2,}(?:'?s)?", re.UNICODE)  # "US", "ID", "IDs", "FAQs", "NASA's"
_DOTTED = re.compile(r"\b(?:[^\W\d_]\.){2,}", re.UNICODE)  # "U.S.", "a.m."


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    # Acronyms keep their capitals (with a plural or possessive "s"): they are spelled out, not read.
    if _ACRONYM.fullmatch(word) and any(c.isupper() for c in word):
        return word
    return word.lower()


def _fold_words(text: str) -> str:
    # Dotted acronyms ("U.S.", "A.M.") are spelled out whatever their case: fold them to lower case
    # as a whole, consistently; everything else word by word.
    out, pos = [], 0
    for m in _DOTTED.finditer(text):
        out.append(_WORD.sub(_fold_word, text[pos:m.start()]))
        out.append(m.group(0).lower())
        pos = m.end()
    out.append(_WORD.sub(_fold_word, text[pos:]))
    return "".join(out)


@functools.lru_cache(maxsize=16384)
def canon(text: str) -> str:
    """Return the canonical spoken form of ``text`` ('' if nothing is left).

    A pure function of ``text``, memoized per process (the call path folds the same fillers, prompts
    and answer pieces again and again; thread-safe).

    Folds: Unicode NFKC; numbers, times, prices, dates and codes into words
    (:func:`app.speech.verbalize.verbalize`); smart quotes, dashes and the ellipsis character to ASCII; control
    characters dropped; whitespace collapsed; spaces before punctuation removed; repeated
    ``!?,;:`` collapsed and runs of 4+ dots to "..."; a missing final full stop added (not after
    a final ``,;:`` and not on a side marked with :data:`JOIN`, which is kept); and
    case folded except for tokens that are all capitals (acronyms, also with a plural or
    possessive "s": "IDs", "NASA's"). "I" alone becomes "i", and dotted acronyms ("U.S.",
    "A.M.") are folded to lower case whole; both sound the same.
    """
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    text = _CONTROL.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    left, right = text.startswith(JOIN), text.endswith(JOIN)
    text = text.strip(JOIN + " ").replace(JOIN, " ")
    text = _SPACE.sub(" ", verbalize(text)).strip()
    if not text:
        return ""
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED.sub(r"\1", text)
    text = _DOTS.sub("...", text)
    text = _MIXED_END.sub(lambda m: m.group(0)[0], text)
    text = _fold_words(text)
    if right:
        text = text.rstrip(".!?,;: ") or text
    elif text.endswith(_CONTINUING):
        pass  # a clause that continues after a pause keeps its comma (no full stop: no falling tone)
    elif not text.endswith(_FINAL) and not text.endswith(('"', "'", ")")):
        text += "."
    elif text.endswith(('"', "'", ")")) and not text[:-1].endswith(_FINAL):
        text += "."
    return (JOIN if left else "") + text + (JOIN if right else "")


def is_speakable(text: str) -> bool:
    """True when ``text`` holds at least one letter or digit (punctuation and emoji alone are not)."""
    return any(c.isalnum() for c in text)
