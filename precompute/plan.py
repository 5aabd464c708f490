"""The precompute plan: which clips to synthesize before callers ask for them. Pure.

For each business, in its voice:

1. **Fixed** pieces, always planned first: every filler variant, the greeting, the fixed prompts
   (as whole clips, the way the call flow plays them), and every FAQ answer and the opening
   hours split into pieces at the business's ``splice`` level (the way the call flow splits an
   answer), plus any ``extra_fixed`` texts (a responder's fixed phrasing).
2. **Mined** pieces: the counts of pieces callers heard (per voice, from the turn log or a corpus),
   kept when seen at least ``min_count`` times; for ``splice = "slot"`` and ``"phrase"``
   businesses, common slot values (times of day, dates, small numbers; for ``phrase`` in their
   mid-sentence and sentence-final forms, "~three p.m.~" and "~three p.m.") join as candidates
   with a prior count of ``min_count``, so they fill what the budget leaves after the frequent pieces.
3. Anything already published (``is_published(key)``) is skipped; a key is planned once per run.
4. Mined candidates are ranked and the plan is cut at ``budget_chars`` (and/or ``max_clips``).

Ranking. ``rank="turns"`` (the default) puts first the pieces that complete the most mined turns
(their ``coverage``: turns whose every piece was heard in 2+ calls, see ``precompute.mine``), then
orders by count: a turn is only served without synthesis when *all* its pieces are cached, and a
piece heard often but only beside one-off names completes none. Without coverage (a plain Counter)
it is the same as ``rank="count"``. Each item's expected *benefit* is occurrences x estimated
audio seconds (the audio callers will hear from cache instead of waiting for). Under a character
budget the best order for total benefit is benefit per character spent, which is the occurrence
count itself (``rank="count"``: occurrences, then shorter first — cheaper for the same count —
then text).
``rank="benefit"`` orders by the raw benefit instead (it favours long pieces; on the corpus
benchmark it serves fewer turns *and* fewer characters from cache at every budget).

Audio length is estimated from the text (no audio exists yet): ``PAD_S + chars / CHARS_PER_S``.
Everything here is pure and thread-safe; inputs are not modified.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from app.business import PROMPT_NAMES, Business
from app.speech.canon import canon, is_speakable
from app.speech.keys import content_key
from app.speech.pieces import sentence_runs, split_pieces
from app.speech.voices import Voice

CHARS_PER_S = 15.0
"""Speaking rate used to estimate audio length: ~150 words a minute."""
PAD_S = 0.12
"""The fixed silence pad of every trimmed clip (both ends), in seconds."""
FIXED_KINDS = ("filler", "greeting", "prompt", "faq", "hours", "responder")
RANKS = ("turns", "count", "benefit")


def estimate_seconds(text: str) -> float:
    """Estimated audio length of ``text`` in seconds."""
    return PAD_S + len(text) / CHARS_PER_S


@dataclass(frozen=True)
class PlanItem:
    """One clip to make: ``text`` is canonical (what gets synthesized), ``key`` its content key.

    ``kind``: filler | greeting | prompt | faq | hours | responder | mined | slot_value.
    ``count``: occurrences mined (0 for fixed items); ``covers``: mined turns it helps complete.
    ``chars`` bills; ``est_seconds`` estimated.
    """

    business: str
    voice: Voice
    kind: str
    text: str
    key: str
    count: int = 0
    covers: int = 0

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def est_seconds(self) -> float:
        return estimate_seconds(self.text)

    @property
    def benefit(self) -> float:
        """Expected audio seconds served from cache: occurrences x estimated length."""
        return self.count * self.est_seconds

    @property
    def fixed(self) -> bool:
        return self.kind in FIXED_KINDS


@dataclass(frozen=True)
class Plan:
    """What a run will synthesize, and why the rest is not in it (counts of candidates)."""

    items: tuple[PlanItem, ...]
    candidates: int = 0
    below_min_count: int = 0
    already_published: int = 0
    cut_by_budget: int = 0
    budget_chars: int | None = None
    max_clips: int | None = None

    @property
    def chars(self) -> int:
        return sum(item.chars for item in self.items)

    @property
    def fixed(self) -> tuple[PlanItem, ...]:
        return tuple(item for item in self.items if item.fixed)

    @property
    def mined(self) -> tuple[PlanItem, ...]:
        return tuple(item for item in self.items if not item.fixed)

    def est_cost(self, price_per_1k_chars: float) -> float:
        """Estimated provider cost of synthesizing every item, in the price's currency."""
        return estimated_cost(self.chars, price_per_1k_chars)

    def keys(self) -> set[str]:
        return {item.key for item in self.items}


def estimated_cost(chars: int, price_per_1k_chars: float) -> float:
    return round(chars / 1000.0 * price_per_1k_chars, 4)


def _speakable_canon(text: str) -> str | None:
    spoken = canon(text)
    return spoken if spoken and is_speakable(spoken) else None


def fixed_pieces(business: Business, extra: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(kind, text) of every fixed piece of ``business``, in play order, duplicates removed.

    Fillers, greeting and prompts are whole clips (the flow plays them whole); FAQ answers,
    hours and ``extra`` texts are split at the business's splice level, as answers are.
    """
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(kind: str, text: str) -> None:
        spoken = _speakable_canon(text)
        if spoken is not None and spoken not in seen:
            seen.add(spoken)
            out.append((kind, spoken))

    for filler in (*business.fillers, *business.short_fillers):
        add("filler", filler)
    add("greeting", business.greeting)
    for name in PROMPT_NAMES:
        if name in business.prompts:
            add("prompt", business.prompts[name])
    for kind, text in _fixed_answers(business, extra):
        for piece in split_pieces(text, business.splice):
            add(kind, piece)
    return out


def _fixed_answers(business: Business, extra: Iterable[str]) -> list[tuple[str, str]]:
    """(kind, text) of the fixed texts a business answers with: FAQ answers, hours, ``extra``."""
    return ([("faq", faq.answer) for faq in business.faq] + ([("hours", business.hours)] if business.hours else [])
            + [("responder", text) for text in extra])


def fixed_sentences(business: Business, extra: Iterable[str] = ()) -> list[tuple[str, ...]]:
    """The sentences of ``business``'s fixed answers (FAQ answers, hours, ``extra``) that the phrase
    level plays as ONE clip assembled from two or more pieces: each as its piece texts in order,
    duplicates removed. Other levels play their pieces as they are: ``[]``."""
    if business.splice != "phrase":
        return []
    out: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for _kind, text in _fixed_answers(business, extra):
        pieces = split_pieces(text, "phrase")
        for start, end in sentence_runs(pieces):
            run = tuple(pieces[start:end])
            if len(run) >= 2 and run not in seen:
                seen.add(run)
                out.append(run)
    return out


_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def common_slot_values() -> list[str]:
    """Slot values worth precomputing for ``slot`` businesses, canonical, in a stable order.

    Times of day on the quarter hour in "3 pm" / "3:15 pm" form, weekdays, today/tomorrow,
    dates ("march 2nd", "the 2nd"), and the numbers 0-100 (party sizes, counts, ratings).
    """
    values: list[str] = []
    for suffix in ("am", "pm"):
        for hour in range(1, 13):
            values.append(f"{hour} {suffix}")
            values.extend(f"{hour}:{minute:02d} {suffix}" for minute in (15, 30, 45))
    values.extend(_DAYS)
    values.extend(("today", "tomorrow", "noon", "midnight"))
    values.extend(f"{month} {_ordinal(day)}" for month in _MONTHS for day in range(1, 32))
    values.extend(f"the {_ordinal(day)}" for day in range(1, 32))
    values.extend(str(n) for n in range(101))
    seen: set[str] = set()
    out = []
    for value in values:
        spoken = _speakable_canon(value)
        if spoken is not None and spoken not in seen:
            seen.add(spoken)
            out.append(spoken)
    return out


@dataclass
class _Builder:
    is_published: Callable[[str], bool]
    items: list[PlanItem] = field(default_factory=list)
    planned: set[str] = field(default_factory=set)
    already_published: int = 0

    def take(self, item: PlanItem) -> bool:
        if item.key in self.planned:
            return False
        self.planned.add(item.key)
        if self.is_published(item.key):
            self.already_published += 1
            return False
        self.items.append(item)
        return True


def _rank_key(rank: str) -> Callable[[PlanItem], tuple]:
    if rank == "turns":
        return lambda item: (-item.covers, -item.count, item.est_seconds, item.text)
    if rank == "count":
        return lambda item: (-item.count, item.est_seconds, item.text)
    if rank == "benefit":
        return lambda item: (-item.benefit, -item.count, item.text)
    raise ValueError(f"rank must be one of {RANKS}, not {rank!r}")


def build_plan(
    businesses: Sequence[Business],
    mined: Callable[[Voice], Counter[str]] | None = None,
    *,
    is_published: Callable[[str], bool] = lambda key: False,
    min_count: int = 3,
    budget_chars: int | None = None,
    max_clips: int | None = None,
    fixed_only: bool = False,
    include_fixed: bool = True,
    extra_fixed: Callable[[Business], Iterable[str]] | None = None,
    rank: str = "turns",
) -> Plan:
    """The plan for ``businesses`` (see the module docstring).

    ``mined(voice)`` returns piece counts (canonical text -> occurrences) for a voice; it is
    called once per distinct voice. ``budget_chars`` / ``max_clips`` bound the whole plan (fixed
    items included; fixed items are never cut, mined ones fill what is left). ``None`` = no bound.
    ``include_fixed=False`` plans mined pieces only (the hit-rate benchmark).
    """
    order = _rank_key(rank)
    builder = _Builder(is_published)
    for business in businesses if include_fixed else ():
        extra = list(extra_fixed(business)) if extra_fixed is not None else []
        for kind, text in fixed_pieces(business, extra):
            builder.take(PlanItem(business.id, business.voice, kind, text, content_key(text, business.voice)))
    if fixed_only or mined is None:
        return Plan(tuple(builder.items), already_published=builder.already_published,
                    budget_chars=budget_chars, max_clips=max_clips)

    candidates: list[PlanItem] = []
    below = 0
    seen_voices: set[Voice] = set()
    for business in businesses:
        if business.voice in seen_voices:
            continue
        seen_voices.add(business.voice)
        counts = mined(business.voice)
        covers = getattr(counts, "coverage", None) or {}
        seen_text: set[str] = set()
        for text, count in counts.items():
            spoken = _speakable_canon(text)
            if spoken is None or spoken in seen_text:
                continue
            seen_text.add(spoken)
            if count < min_count:
                below += 1
                continue
            candidates.append(PlanItem(business.id, business.voice, "mined", spoken,
                                       content_key(spoken, business.voice), count, covers.get(text, 0)))
        levels = {b.splice for b in businesses if b.voice == business.voice}
        values = common_slot_values() if "slot" in levels else []
        if "phrase" in levels:
            values += [f"~{v.rstrip('.')}~" for v in common_slot_values()] + [f"~{v}" for v in common_slot_values()]
        for value in values:
            value = canon(value)
            if value not in seen_text:
                seen_text.add(value)
                candidates.append(PlanItem(business.id, business.voice, "slot_value", value,
                                           content_key(value, business.voice), max(1, min_count)))
    candidates.sort(key=order)

    chars = sum(item.chars for item in builder.items)
    cut = 0
    for item in candidates:
        if item.key in builder.planned:
            continue
        over_chars = budget_chars is not None and chars + item.chars > budget_chars
        over_clips = max_clips is not None and len(builder.items) >= max_clips
        if over_chars or over_clips:
            if not builder.is_published(item.key):
                cut += 1
            else:
                builder.already_published += 1
            builder.planned.add(item.key)
            continue
        if builder.take(item):
            chars += item.chars
    return Plan(
        tuple(builder.items), candidates=len(candidates), below_min_count=below,
        already_published=builder.already_published, cut_by_budget=cut,
        budget_chars=budget_chars, max_clips=max_clips,
    )
