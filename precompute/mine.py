"""Mining: which pieces callers hear most, from turn events or from a corpus of dialogues.

Pure apart from the readers, which only read (local files, or a store's ``events/`` objects).
Counts are keyed by ``canon(text)``: every text variant that maps to one content key counts for
that key. Event counts are per voice slug (a clip is per voice); corpus counts have no voice (the
dialogues are text only) and are applied to whichever voice the plan is for.

Event pieces count once per turn they were spoken in (with the distinct calls kept, so a plan can
require a piece heard in several calls); corpus pieces count once per dialogue (a value repeated in
one dialogue is one dialogue's worth). The pieces of every turn are kept too (``turn_sets``), so
:func:`coverage` can tell which pieces complete whole turns: a turn is served fully from cache only
when *every* one of its pieces is cached, and the plan's ``turns`` ranking spends the budget on
pieces that complete turns first (see ``precompute.plan``).

Everything here is thread-safe (no shared state) and returns fresh objects.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.speech.canon import canon, is_speakable
from app.speech.pieces import split_pieces
from cdn.store import EVENTS_PREFIX, AudioStore, is_events_name
from precompute.corpus import Dialogues, load_dialogues

log = logging.getLogger("warmline.precompute")

_DAY_FILE_RE = re.compile(r"turns-(\d{4}-\d{2}-\d{2})\.jsonl$")

Mark = tuple[str, int, int]
CALLS_CAP = 16


class PieceCounts(Counter):
    """Piece counts (canonical text -> occurrences) with ``coverage`` (text -> mined turns it completes).

    A plain ``Counter`` everywhere a Counter is expected; ``coverage`` is empty when unknown.
    """

    def __init__(self, *args: Any, coverage: Counter[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.coverage: Counter[str] = coverage if coverage is not None else Counter()


COVERAGE_MIN_COUNT = 2
"""A turn counts towards its pieces' coverage when every one of its pieces was counted at least
this often: only such turns can be served fully from cache by a plan."""


def coverage(turn_sets: Iterable[tuple[str, ...]], counts: Counter[str], min_count: int = COVERAGE_MIN_COUNT) -> Counter[str]:
    """For each piece, how many of ``turn_sets`` contain it and have every piece counted ``min_count``+ times."""
    out: Counter[str] = Counter()
    for pieces in turn_sets:
        if pieces and all(counts[p] >= min_count for p in pieces):
            out.update(pieces)
    return out


@dataclass
class Mined:
    """Piece counts: ``counts[voice_slug][canon_text] -> occurrences``; ``turns`` read, ``files`` read.

    ``turn_sets[voice_slug]`` holds the distinct pieces of every turn read (for :func:`coverage`).
    ``slot_values[canon_text]`` counts the pieces that were marked slot values (corpus only), so
    a report can tell fixed phrasing from values. Not thread-safe to mutate; merge results instead.
    """

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    turns: int = 0
    files: int = 0
    slot_values: Counter[str] = field(default_factory=Counter)
    # calls[voice_slug][canon_text]: the distinct calls (ids, at most CALLS_CAP) a logged piece was heard in
    calls: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    turn_sets: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    def for_voice(self, slug: str | None, min_calls: int = 1) -> PieceCounts:
        """The counts of ``slug``, plus voice-less (corpus) counts under ``""``, with their coverage.

        ``min_calls`` > 1 keeps only logged pieces heard in at least that many distinct calls (a
        name heard in one call never reaches the plan); corpus counts are not personal and stay.
        """
        return combined([self], slug, min_calls)

    def add(self, slug: str, text: str, n: int = 1) -> str | None:
        """Count ``text`` (canonical) for ``slug``; returns its key (None when nothing speakable)."""
        key = canon(text)
        if not key or not is_speakable(key):
            return None
        self.counts.setdefault(slug, Counter())[key] += n
        return key

    def add_turn(self, slug: str, keys: Iterable[str | None]) -> None:
        """Remember the distinct pieces of one turn (for :func:`coverage`)."""
        distinct = tuple(sorted({k for k in keys if k}))
        if distinct:
            self.turn_sets.setdefault(slug, []).append(distinct)

    def merge(self, other: Mined) -> Mined:
        for slug, counter in other.counts.items():
            self.counts.setdefault(slug, Counter()).update(counter)
        for slug, sets in other.turn_sets.items():
            self.turn_sets.setdefault(slug, []).extend(sets)
        for slug, texts in other.calls.items():
            mine = self.calls.setdefault(slug, {})
            for text, calls in texts.items():
                mine.setdefault(text, set()).update(list(calls)[: max(0, CALLS_CAP - len(mine.get(text, ())))])
        self.turns += other.turns
        self.files += other.files
        self.slot_values.update(other.slot_values)
        return self


def combined(parts: Iterable[Mined], slug: str | None, min_calls: int = 1) -> PieceCounts:
    """The counts of ``slug`` (plus voice-less ones) over several mining results, with their coverage.

    ``min_calls`` as in :meth:`Mined.for_voice` (applied to logged pieces, not to corpus counts).
    """
    out = PieceCounts()
    sets: list[tuple[str, ...]] = []
    for part in parts:
        out.update(part.counts.get("", Counter()))
        sets += part.turn_sets.get("", [])
        if slug:
            calls = part.calls.get(slug, {})
            out.update({text: n for text, n in part.counts.get(slug, Counter()).items()
                        if min_calls <= 1 or len(calls.get(text, ())) >= min_calls})
            sets += part.turn_sets.get(slug, [])
    out.coverage = coverage(sets, out)
    return out


# --- turn events ------------------------------------------------------------------------------


def window_days(days: int, today: dt.date | None = None) -> set[dt.date]:
    """The UTC days of the last ``days`` days, today included."""
    today = today or dt.datetime.now(dt.UTC).date()
    return {today - dt.timedelta(days=i) for i in range(max(0, days))}


def day_of(name: str) -> dt.date | None:
    """The day of a ``turns-YYYY-MM-DD.jsonl`` file or object name (None if it is not one)."""
    match = _DAY_FILE_RE.search(name)
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def parse_lines(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """JSON objects of a JSON-lines stream; blank, corrupt and non-object lines are skipped."""
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            yield event


def local_event_files(directory: Path | str, days: int, today: dt.date | None = None) -> list[Path]:
    """This host's day files (``<directory>/turns-YYYY-MM-DD.jsonl``) inside the window, oldest first."""
    wanted = window_days(days, today)
    return sorted(p for p in Path(directory).glob("turns-*.jsonl") if day_of(p.name) in wanted)


def store_event_names(store: AudioStore, days: int, today: dt.date | None = None) -> list[str]:
    """Every host's shipped day files (``events/<host>/turns-YYYY-MM-DD.jsonl``) inside the window."""
    wanted = window_days(days, today)
    return sorted(n for n in store.list(EVENTS_PREFIX) if is_events_name(n) and day_of(n) in wanted)


def read_files(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """The events of JSON-lines files, file after file."""
    for path in paths:
        with Path(path).open("rb") as fh:
            yield from parse_lines(fh)


def read_local_events(directory: Path | str, days: int, today: dt.date | None = None) -> Iterator[dict[str, Any]]:
    """This host's events of the last ``days`` days."""
    return read_files(local_event_files(directory, days, today))


def read_store_events(store: AudioStore, days: int, today: dt.date | None = None) -> Iterator[dict[str, Any]]:
    for name in store_event_names(store, days, today):
        yield from parse_lines(store.get(name).splitlines())


def mine_events(events: Iterable[dict[str, Any]]) -> Mined:
    """Count every spoken piece of every turn event, per voice slug.

    A piece counts once per turn it was spoken in (hit or miss: a published piece is skipped
    by the plan, not here), and the distinct calls it was heard in are kept (up to CALLS_CAP).
    Pieces without text, pieces holding a responder-marked slot value (``slot``: a name, a
    booking), and events without a voice are ignored. Each turn's pieces are kept for :func:`coverage`.
    """
    mined = Mined()
    for event in events:
        voice = event.get("voice")
        sentences = event.get("sentences")
        if not isinstance(voice, str) or not voice or not isinstance(sentences, list):
            continue
        mined.turns += 1
        call = event.get("call") if isinstance(event.get("call"), str) else None
        keys = []
        for sentence in sentences:
            if not isinstance(sentence, dict) or sentence.get("slot"):
                continue
            text = sentence.get("text")
            if isinstance(text, str) and text.strip():
                key = mined.add(voice, text)
                keys.append(key)
                if call and key:
                    seen = mined.calls.setdefault(voice, {}).setdefault(key, set())
                    if len(seen) < CALLS_CAP:
                        seen.add(call)
        mined.add_turn(voice, keys)
    return mined


# --- corpus files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusTurn:
    """One agent line of a corpus dialogue with its slot spans (``text[start:end]`` is a value)."""

    dialogue: str
    text: str
    marks: tuple[Mark, ...] = ()


def read_corpus(path: Path | str) -> Dialogues:
    """The usable dialogues of a JSONL corpus file, in file order (:mod:`precompute.corpus` parses them).

    Malformed lines are skipped (:func:`precompute.corpus.load_dialogues` counts them). Raises OSError.
    """
    return load_dialogues(path)


def agent_turns(dialogues: Iterable[Any]) -> Iterator[CorpusTurn]:
    """The system (agent) turns of ``dialogues`` (:class:`precompute.corpus.Dialogue`), slot spans as marks."""
    for dialogue in dialogues:
        for turn in dialogue.system_turns():
            yield CorpusTurn(dialogue.id, turn.text, tuple(turn.slots))


def turn_pieces(turn: CorpusTurn, splice: str) -> list[str]:
    """The canonical pieces of ``turn`` as the live path splits them; ``"whole"`` = one piece."""
    if splice == "whole":
        raw = [turn.text]
    else:
        raw = split_pieces(turn.text, splice, turn.marks)
    out = []
    for piece in raw:
        key = canon(piece)
        if key and is_speakable(key):
            out.append(key)
    return out


def mine_corpus(turns: Iterable[CorpusTurn], splice: str) -> Mined:
    """Count the pieces of corpus agent turns, once per dialogue (voice-less: under ``""``)."""
    mined = Mined()
    counter: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    sets: list[tuple[str, ...]] = []
    for turn in turns:
        mined.turns += 1
        pieces = turn_pieces(turn, splice)
        fresh = [p for p in dict.fromkeys(pieces) if (turn.dialogue, p) not in seen]
        seen.update((turn.dialogue, p) for p in fresh)
        counter.update(fresh)
        if pieces:
            sets.append(tuple(sorted(set(pieces))))
        if splice in ("slot", "phrase") and turn.marks:
            values = {canon(turn.text[s:e].strip()).strip("~").rstrip(".!?,;:") for _n, s, e in turn.marks}
            mined.slot_values.update(p for p in pieces if p.strip("~").rstrip(".!?,;:") in values)
    mined.counts[""] = counter
    mined.turn_sets[""] = sets
    mined.files = 1
    return mined


