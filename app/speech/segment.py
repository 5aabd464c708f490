"""Split answer text into sentences (one clip each) and clauses (natural pauses).

Pure and thread-safe. Splitting happens only *between* whitespace-separated tokens, so nothing
inside a token is ever cut: decimals (3.5), times (11:45, 9.30), prices ($12.50), thousands
(1,200), e-mail addresses and URLs stay whole. Every non-space character of the input appears
in exactly one piece, in order: ``" ".join(pieces) == " ".join(text.split())``.

A token ending in ``.``, ``!`` or ``?`` (optionally followed by closing quotes or brackets)
ends a sentence unless the next token starts with a lower-case letter, or the token is an
abbreviation:

* titles and Latin shorthands that are always followed by more of the sentence (Mr., Mrs.,
  Ms., Prof., vs., e.g., i.e., ...) never end a sentence;
* ambiguous abbreviations (a.m., p.m., U.S., St., Dr., Inc., Ltd., initials like "J.") end a
  sentence only when the next word is a common sentence opener ("We open at 9 a.m. Call us
  then." splits, "9 a.m. Monday to Friday" and "Dr. Smith" do not).

When unsure we do not split: a missed split costs a little cache reuse, a wrong one sounds
like a pause in the middle of a sentence.
"""

from __future__ import annotations

import re

_OPENERS = "\"'\u201c\u2018([{\u00ab"
_CLOSERS = "\"'\u201d\u2019)]}\u00bb"
_TERMINALS = (".", "!", "?", "\u2026")
_CLAUSE_ENDS = (",", ";", ":")
_DASHES = frozenset({"-", "--", "\u2013", "\u2014", "\u2015"})


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Abbreviations (lower case, without the final dot) that never end a sentence.
_NEVER_FINAL = _words(
    """
    mr mrs ms mx messrs mmes prof rev hon capt sgt lt col gen gov sen rep
    vs v viz cf e.g i.e approx incl excl esp
    """
)
# Abbreviations that end a sentence only before a common sentence opener.
_AMBIGUOUS = _words(
    """
    a.m p.m u.s u.k u.s.a n.z e.u d.c ph.d
    dr st mt jr sr inc ltd co corp pty llc plc bros
    ave rd blvd hwy ln pl ct cres tce pde sq dept est no nos tel ph fax ext appt
    jan feb apr jun jul aug sep sept oct nov dec
    mon tue tues thu thur thurs fri
    min mins hr hrs sec secs wk wks yr yrs ca al
    """
)
# Words that commonly open a sentence; a capitalized word that is not one of these after an
# ambiguous abbreviation is taken as part of the same sentence ("9 a.m. Monday", "Dr. Smith").
# Name-like words (Will, May, June, Grace, Bill) are deliberately absent.
_STARTERS = _words(
    """
    I I'm I'll I've I'd We We're We'll We've We'd You You're You'll You've You'd They They're
    They'll He She It It's Its Our Your My Their His Her The This That These Those There Here
    A An And But So Or Also Then Now However Otherwise Unfortunately Fortunately Sorry Yes No
    Sure Okay Ok OK Please Thanks Thank Call Visit Book Ask Come Let Let's Just Feel Give Send
    Email Text See Have Enjoy Bring Check Note Remember Don't Do Does Did Is Are Was Were Can
    Could Would Should Shall If When Where What Why How Which Who Whether While After Before
    Since Because Until Unless As At On In For From To By With Without Each Every All Any
    Some Most Many Both Either Neither
    """
)
_DOTTED = re.compile(r"(?:^|[^A-Za-z.])((?:[A-Za-z]\.){2,})$")
_WORD_ABBREV = re.compile(r"^([A-Za-z][A-Za-z.]*?)\.$")
_INITIAL = re.compile(r"^[A-Z]\.$")
_LEADING_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def _core(token: str) -> str:
    """``token`` without leading opening and trailing closing quotes/brackets."""
    return token.lstrip(_OPENERS).rstrip(_CLOSERS)


def ends_with_terminal(text: str) -> bool:
    """True when ``text`` ends with sentence-final punctuation (``.``, ``!``, ``?``, ``…``), closing
    quotes or brackets allowed after it: the last sentence of a cut-off reply is whole.

    The one reading of "this text's last sentence is finished" (a model's truncated reply, a stream
    cut at its length limit); :func:`split_sentences` uses the same punctuation to split. Not the
    same question as :func:`app.speech.pieces.ends_sentence`, which asks whether a *piece* of a
    sentence plan is followed by a sentence pause.
    """
    return _core(text.rstrip()).endswith(_TERMINALS)


def _next_starts_lower(token: str) -> bool:
    head = token.lstrip(_OPENERS)
    return bool(head) and head[0].islower()


def _is_starter(token: str) -> bool:
    match = _LEADING_WORD.match(token.lstrip(_OPENERS))
    return match is not None and match.group(0) in _STARTERS


def _abbreviation_kind(core: str) -> str | None:
    """'never', 'ambiguous' or None for a token core that ends with a single dot."""
    if core.endswith(".."):
        return None
    if _INITIAL.match(core):
        return "ambiguous"
    dotted = _DOTTED.search(core)
    if dotted is not None:
        stem = dotted.group(1)[:-1].lower()
        return "never" if stem in _NEVER_FINAL else "ambiguous"
    word = _WORD_ABBREV.match(core)
    if word is None:
        return None
    stem = word.group(1).lower()
    if stem in _NEVER_FINAL:
        return "never"
    if stem in _AMBIGUOUS:
        return "ambiguous"
    return None


def _ends_sentence(token: str, following: str) -> bool:
    core = _core(token)
    if not core.endswith(_TERMINALS):
        return False
    if _next_starts_lower(following):
        return False
    if core.endswith(".") and not core.endswith(".."):
        kind = _abbreviation_kind(core.lstrip(_OPENERS))
        if kind == "never":
            return False
        if kind == "ambiguous":
            return _is_starter(following)
    return True


def _speakable(piece: str) -> bool:
    return any(c.isalnum() for c in piece)


def _merge_unspeakable(pieces: list[str]) -> list[str]:
    """Attach pieces without a letter or digit ("...", "!!") to a neighbour."""
    out: list[str] = []
    for piece in pieces:
        if out and (not _speakable(piece) or not _speakable(out[-1])):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, whitespace collapsed; ``[]`` for blank text.

    Joining the result with single spaces gives back the input with its whitespace collapsed.
    A piece holding no letter or digit is merged into its neighbour.
    """
    tokens = text.split()
    pieces: list[str] = []
    start = 0
    for i in range(len(tokens) - 1):
        if _ends_sentence(tokens[i], tokens[i + 1]):
            pieces.append(" ".join(tokens[start : i + 1]))
            start = i + 1
    if start < len(tokens):
        pieces.append(" ".join(tokens[start:]))
    return _merge_unspeakable(pieces)


def _ends_clause(token: str) -> bool:
    if token in _DASHES:
        return True
    core = _core(token)
    if not core.endswith(_CLAUSE_ENDS):
        return False
    stem = core.rstrip(",;:")
    if not stem:
        return False
    # "e.g.," and "i.e.," introduce what follows; no pause after them.
    return not (stem.endswith(".") and _abbreviation_kind(stem.lstrip(_OPENERS)) == "never")


def _clauses_of(sentence: str) -> list[str]:
    tokens = sentence.split()
    pieces: list[str] = []
    start = 0
    for i in range(len(tokens) - 1):
        if _ends_clause(tokens[i]):
            pieces.append(" ".join(tokens[start : i + 1]))
            start = i + 1
    if start < len(tokens):
        pieces.append(" ".join(tokens[start:]))
    return pieces


def _merge_short(pieces: list[str], min_chars: int) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        if out and (len(out[-1]) < min_chars or not _speakable(out[-1]) or not _speakable(piece)):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    if len(out) >= 2 and len(out[-1]) < min_chars:
        last = out.pop()
        out[-1] = f"{out[-1]} {last}"
    return out


def split_clauses(text: str, min_chars: int = 12) -> list[str]:
    """Split ``text`` into sentences, then each sentence at natural pauses.

    Pauses are after a token ending in ``,``, ``;`` or ``:`` and after a spaced dash
    (" - ", " -- ", " \u2013 ", " \u2014 "); never inside a token, so "1,200" and "11:45" stay whole.
    Within a sentence, a clause shorter than ``min_chars`` characters is merged with its
    neighbour (the next one, or the previous one at the end of the sentence); clauses never
    span two sentences. Joining the result with single spaces gives back the collapsed input.
    """
    out: list[str] = []
    for sentence in split_sentences(text):
        out.extend(_merge_short(_clauses_of(sentence), min_chars))
    return out
