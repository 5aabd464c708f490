"""Cache-hit reports computed from turn events (pure: no Flask, no clock, no I/O but reading files).

:func:`build_report` folds an iterable of turn events (dicts, or raw JSON lines as produced by
:func:`read_events`) into a :class:`Report`. It streams: memory grows with the number of
(business, day, arm) groups and distinct missed sentences, not with the number of events, except
for four ``float32`` latency samples per turn kept in compact arrays (16 bytes a turn) so that
percentiles are exact.

Definitions (all rates are ``None`` when their denominator is 0, never a made-up 0):

- *sentence hit rate* = sentences served from cache / sentences.
- *full-cache rate* = turns whose sentences were all hits / turns with at least one sentence.
- *filler rate* = turns that played a filler (``filler`` not null) / turns.
- *fallback rate* = turns whose outcome is ``fallback`` or ``apology`` (a ``<Say>``) / turns.
- *chars live / cached* = sums of the events' ``chars_live`` / ``chars_cached``;
  *cost saved* = chars cached / 1000 * price per 1k chars.
- *latencies* (milliseconds): time to first audio and time to answer (p50/p95/p99) over turns
  that report them; AI latency (p50/p95) over turns that report it; TTS latency (p50/p95) over
  turns that synthesized live (``chars_live`` > 0), since a turn served from cache has no TTS time.
- *percentiles* use the **nearest-rank** method: for n sorted samples x[1..n], the p-th
  percentile is x[ceil(p/100 * n)]. It is always an observed value (no interpolation), so
  p95 of [100, 200, 300, 400] is 400 and p50 is 200.

Lines that are not JSON are skipped and counted: a line that ends without a newline is counted as
*truncated* (a partial final write), any other as *corrupt*. JSON that is not a turn event (no
business, bad timestamp, wrong types) is counted as *invalid*. Nothing here raises on bad data.

Thread/process safety: every function is pure over its arguments; a Report is immutable.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("warmline", "control")
SAY_OUTCOMES = frozenset(("fallback", "apology"))
DEFAULT_TOP_MISSES = 20
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
_WHITESPACE = b" \t\r\n"

# A latency sample is null, an int or a float. Floats are always finite: orjson rejects NaN and
# Infinity, and the stdlib fallback is told to (a NaN would break the percentile ordering).
_MS_TYPES = frozenset((int, float, type(None)))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _stdlib_loads(raw: str | bytes) -> Any:
    """``json.loads`` with one reused decoder (passing options to json.loads builds one per call)."""
    return _DECODER.decode(raw.decode("utf-8") if type(raw) is bytes else raw)


try:  # orjson parses turn events two to three times faster; results are identical.
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = _stdlib_loads


@dataclass(frozen=True)
class Target:
    """One service-level target. ``metric`` names a :class:`Stats` attribute or property.

    ``op`` is ``"<"`` or ``">"``; ``arm`` restricts the measurement to one arm (``None`` = all
    turns of the business). Thresholds are in the metric's own unit (ms or a fraction).
    """

    name: str
    metric: str
    op: str
    threshold: float
    unit: str
    arm: str | None = "warmline"
    short: str = ""  # a column heading for narrow screens; defaults to ``name``

    def passes(self, value: float) -> bool:
        return value < self.threshold if self.op == "<" else value > self.threshold

    def describe(self) -> str:
        if self.unit == "ms":
            return f"{self.op} {self.threshold / 1000:g} s"
        return f"{self.op} {self.threshold * 100:g} %"


#: The targets of the project brief, measured on the Warmline arm (the control arm is the
#: baseline being replaced, so it is expected to miss them). Time to first audio uses p95,
#: the stricter reading of "time to first audio < 0.5 s".
DEFAULT_TARGETS: tuple[Target, ...] = (
    Target("Time to first audio (p95)", "ttfa_p95", "<", 500.0, "ms", short="First audio p95"),
    Target("Time to TTS response (p95)", "tta_p95", "<", 2000.0, "ms", short="Answer p95"),
    Target("TTS cache hit rate", "hit_rate", ">", 0.20, "ratio", short="Hit rate"),
    Target("Fallback to <Say>", "fallback_rate", "<", 0.05, "ratio", short="Fallback"),
)


@dataclass(frozen=True)
class Latency:
    """Nearest-rank percentiles in milliseconds over ``count`` samples (``None`` when empty)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True)
class Stats:
    """Aggregates of one group of turns. Counts are exact integers; latencies in ms."""

    turns: int = 0
    sentences: int = 0
    sentences_hit: int = 0
    turns_with_sentences: int = 0
    full_cache_turns: int = 0
    filler_turns: int = 0
    fallback_turns: int = 0
    chars_live: int = 0
    chars_cached: int = 0
    cost_saved: float = 0.0
    time_to_first_audio: Latency = field(default_factory=Latency)
    time_to_answer: Latency = field(default_factory=Latency)
    ai: Latency = field(default_factory=Latency)
    tts: Latency = field(default_factory=Latency)

    @property
    def hit_rate(self) -> float | None:
        return self.sentences_hit / self.sentences if self.sentences else None

    @property
    def full_cache_rate(self) -> float | None:
        return self.full_cache_turns / self.turns_with_sentences if self.turns_with_sentences else None

    @property
    def filler_rate(self) -> float | None:
        return self.filler_turns / self.turns if self.turns else None

    @property
    def fallback_rate(self) -> float | None:
        return self.fallback_turns / self.turns if self.turns else None

    @property
    def ttfa_p95(self) -> float | None:
        return self.time_to_first_audio.p95

    @property
    def tta_p95(self) -> float | None:
        return self.time_to_answer.p95

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("hit_rate", "full_cache_rate", "filler_rate", "fallback_rate"):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class DayRow:
    business: str
    day: date
    stats: Stats


@dataclass(frozen=True)
class ArmRow:
    business: str
    arm: str
    stats: Stats


@dataclass(frozen=True)
class Miss:
    """A sentence that was synthesized live ``count`` times: a precompute candidate."""

    business: str
    key: str
    text: str
    count: int
    chars: int

    @property
    def chars_total(self) -> int:
        return self.count * self.chars


@dataclass(frozen=True)
class TargetResult:
    """``passed`` is ``None`` when there is no data to judge (no turns on the target's arm)."""

    business: str
    target: Target
    value: float | None
    passed: bool | None


@dataclass(frozen=True)
class Report:
    """A whole report. ``days`` holds one row per business per day in [since, until] (zeros included)."""

    since: date | None
    until: date | None
    business_filter: str | None
    businesses: tuple[str, ...]
    price_per_1k_chars: float
    totals: dict[str, Stats]
    overall: Stats
    overall_by_arm: dict[str, Stats]
    days: tuple[DayRow, ...]
    overall_by_day: tuple[tuple[date, Stats], ...]
    arms: tuple[ArmRow, ...]
    targets: tuple[TargetResult, ...]
    top_misses: dict[str, tuple[Miss, ...]]
    events_used: int
    lines_corrupt: int
    lines_truncated: int
    events_invalid: int

    @property
    def day_list(self) -> list[date]:
        return [d for d, _ in self.overall_by_day]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings, rates as floats or null)."""
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "business_filter": self.business_filter,
            "businesses": list(self.businesses),
            "price_per_1k_chars": self.price_per_1k_chars,
            "quality": {
                "events_used": self.events_used,
                "lines_corrupt": self.lines_corrupt,
                "lines_truncated": self.lines_truncated,
                "events_invalid": self.events_invalid,
            },
            "overall": self.overall.to_dict(),
            "overall_by_arm": {arm: s.to_dict() for arm, s in self.overall_by_arm.items()},
            "overall_by_day": [{"day": d.isoformat(), **s.to_dict()} for d, s in self.overall_by_day],
            "totals": {biz: s.to_dict() for biz, s in self.totals.items()},
            "days": [{"business": r.business, "day": r.day.isoformat(), **r.stats.to_dict()} for r in self.days],
            "arms": [{"business": r.business, "arm": r.arm, **r.stats.to_dict()} for r in self.arms],
            "targets": [
                {
                    "business": t.business, "target": t.target.name, "metric": t.target.metric,
                    "arm": t.target.arm, "op": t.target.op, "threshold": t.target.threshold,
                    "unit": t.target.unit, "value": t.value, "passed": t.passed,
                }
                for t in self.targets
            ],
            "top_misses": {
                biz: [{"key": m.key, "text": m.text, "count": m.count, "chars": m.chars} for m in misses]
                for biz, misses in self.top_misses.items()
            },
        }


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def nearest_rank(sorted_or_not: np.ndarray, p: int) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of the samples; ``None`` when empty."""
    n = len(sorted_or_not)
    if n == 0:
        return None
    rank = max(1, -(-p * n // 100))  # ceil(p * n / 100) in integer arithmetic
    return float(np.partition(sorted_or_not, rank - 1)[rank - 1])


def _latency(parts: list[array], percentiles: Sequence[int]) -> Latency:
    arrays = [np.frombuffer(a, dtype=np.float32) for a in parts if len(a)]
    if not arrays:
        return Latency()
    values = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    pct = {f"p{p}": nearest_rank(values, p) for p in percentiles}
    return Latency(count=len(values), **pct)


class _Group:
    """Mutable counters and latency samples of one (business, day, arm)."""

    __slots__ = (
        "ai",
        "chars_cached",
        "chars_live",
        "fallback",
        "filler",
        "full",
        "hit",
        "sentences",
        "tta",
        "ttfa",
        "tts",
        "turns",
        "with_sentences",
    )

    def __init__(self) -> None:
        self.turns = self.sentences = self.hit = self.with_sentences = self.full = 0
        self.filler = self.fallback = self.chars_live = self.chars_cached = 0
        self.ttfa = array("f")
        self.tta = array("f")
        self.ai = array("f")
        self.tts = array("f")


def _stats(groups: list[_Group], price: float) -> Stats:
    if not groups:
        return Stats()
    cached = sum(g.chars_cached for g in groups)
    return Stats(
        turns=sum(g.turns for g in groups),
        sentences=sum(g.sentences for g in groups),
        sentences_hit=sum(g.hit for g in groups),
        turns_with_sentences=sum(g.with_sentences for g in groups),
        full_cache_turns=sum(g.full for g in groups),
        filler_turns=sum(g.filler for g in groups),
        fallback_turns=sum(g.fallback for g in groups),
        chars_live=sum(g.chars_live for g in groups),
        chars_cached=cached,
        cost_saved=cached / 1000 * price,
        time_to_first_audio=_latency([g.ttfa for g in groups], (50, 95, 99)),
        time_to_answer=_latency([g.tta for g in groups], (50, 95, 99)),
        ai=_latency([g.ai for g in groups], (50, 95)),
        tts=_latency([g.tts for g in groups], (50, 95)),
    )


class _Fold:
    """Partial aggregates of a stream of events; mergeable, picklable (sent back from workers).

    Not thread-safe: one fold per thread or process, merged at the end.
    """

    def __init__(self, since: date | None, until: date | None, business: str | None) -> None:
        self.since_s = since.isoformat() if since else None
        self.until_s = until.isoformat() if until else None
        self.business = business
        self.groups: dict[tuple[str, str, str], _Group] = {}
        self.misses: dict[str, dict[str, int]] = {}
        self.miss_info: dict[str, tuple[str, int]] = {}
        self.used = self.corrupt = self.truncated = self.invalid = 0

    def feed(self, events: Iterable[dict | str | bytes]) -> None:
        """Fold ``events`` in. The hot loop of the report: locals, no helper calls per event."""
        since_s, until_s, business = self.since_s, self.until_s, self.business
        groups, misses, miss_info = self.groups, self.misses, self.miss_info
        valid_days: dict[Any, bool] = {}
        corrupt = truncated = invalid = used = 0
        loads = _loads
        say = SAY_OUTCOMES
        ms_types = _MS_TYPES
        for item in events:
            if type(item) is dict:
                ev = item
            elif type(item) is not bytes and type(item) is not str:
                invalid += 1
                continue
            else:
                try:
                    ev = loads(item)
                except ValueError:  # JSONDecodeError and UnicodeDecodeError
                    if item.endswith(b"\n" if type(item) is bytes else "\n"):
                        corrupt += 1
                    else:
                        truncated += 1
                    continue
            try:
                biz = ev["business"]
                day = ev["ts"][:10]
                ok = valid_days.get(day)
                if ok is None:
                    ok = valid_days[day] = _valid_day(day)
                if not ok or type(biz) is not str or not biz:
                    raise TypeError("no business or bad ts")
                if business is not None and biz != business:
                    continue
                if (since_s is not None and day < since_s) or (until_s is not None and day > until_s):
                    continue
                get = ev.get
                arm = get("arm") or "warmline"
                sentences = get("sentences") or ()
                n_sent = n_hit = 0
                for sen in sentences:
                    n_sent += 1
                    if sen["hit"] is True:
                        n_hit += 1
                ttfa = get("time_to_first_audio_ms")
                tta = get("time_to_answer_ms")
                ai = get("ai_ms")
                tts = get("tts_ms")
                live = get("chars_live") or 0
                cached = get("chars_cached") or 0
                if not (
                    type(arm) is str and type(live) is int and type(cached) is int
                    and type(ttfa) in ms_types and type(tta) in ms_types
                    and type(ai) in ms_types and type(tts) in ms_types
                ):
                    raise TypeError("wrong types")
            except (KeyError, TypeError, AttributeError):
                invalid += 1
                continue

            key = (biz, day, arm)
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Group()
            used += 1
            g.turns += 1
            if n_sent:
                g.sentences += n_sent
                g.hit += n_hit
                g.with_sentences += 1
                if n_hit == n_sent:
                    g.full += 1
                else:
                    counts = misses.get(biz)
                    if counts is None:
                        counts = misses[biz] = {}
                    for sen in sentences:
                        if sen["hit"] is not True:
                            k = sen.get("key")
                            if type(k) is not str:
                                continue
                            c = counts.get(k)
                            if c is None:
                                counts[k] = 1
                                if k not in miss_info:
                                    miss_info[k] = _miss_info(sen)
                            else:
                                counts[k] = c + 1
            if get("filler") is not None:
                g.filler += 1
            if get("outcome") in say:
                g.fallback += 1
            g.chars_live += live
            g.chars_cached += cached
            if ttfa is not None:
                g.ttfa.append(ttfa)
            if tta is not None:
                g.tta.append(tta)
            if ai is not None:
                g.ai.append(ai)
            if tts is not None and live > 0:
                g.tts.append(tts)
        self.used += used
        self.corrupt += corrupt
        self.truncated += truncated
        self.invalid += invalid

    def merge(self, other: _Fold) -> None:
        """Add ``other``'s aggregates into this fold (``other`` must not be used afterwards)."""
        for key, og in other.groups.items():
            g = self.groups.get(key)
            if g is None:
                self.groups[key] = og
                continue
            for name in ("turns", "sentences", "hit", "with_sentences", "full", "filler", "fallback",
                         "chars_live", "chars_cached"):
                setattr(g, name, getattr(g, name) + getattr(og, name))
            for name in ("ttfa", "tta", "ai", "tts"):
                getattr(g, name).extend(getattr(og, name))
        for biz, ocounts in other.misses.items():
            counts = self.misses.get(biz)
            if counts is None:
                self.misses[biz] = ocounts
                continue
            for k, c in ocounts.items():
                counts[k] = counts.get(k, 0) + c
        for k, info in other.miss_info.items():
            self.miss_info.setdefault(k, info)
        self.used += other.used
        self.corrupt += other.corrupt
        self.truncated += other.truncated
        self.invalid += other.invalid


def _valid_day(day: Any) -> bool:
    if type(day) is not str or not _DAY_RE.match(day):
        return False
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return True


def _miss_info(sentence: dict) -> tuple[str, int]:
    text = sentence.get("text")
    text = text if type(text) is str else ""
    chars = sentence.get("chars")
    return text, chars if type(chars) is int else len(text)


def build_report(
    events: Iterable[dict | str | bytes],
    *,
    since: date | None,
    until: date | None,
    business: str | None,
    price_per_1k_chars: float,
    targets: Sequence[Target] = DEFAULT_TARGETS,
    businesses: Iterable[str] = (),
    top_misses: int = DEFAULT_TOP_MISSES,
) -> Report:
    """Fold turn events into a :class:`Report` (single pass, streaming).

    ``events`` may mix dicts and raw JSON lines (str or bytes, newline kept as :func:`read_events`
    yields them). ``since``/``until`` bound the UTC day of ``ts`` (inclusive); ``None`` takes the
    first/last day seen. ``business`` keeps one business only. ``businesses`` lists the known
    business ids, which appear in the report with zero rows even without a single turn.
    """
    fold = _Fold(since, until, business)
    fold.feed(events)
    return _finish(
        fold, since=since, until=until, business=business, price=price_per_1k_chars,
        targets=targets, known=businesses, top=top_misses,
    )


def _fold_file(args: tuple[str, date | None, date | None, str | None]) -> _Fold:
    """Worker task: fold one file (runs in a child process)."""
    path, since, until, business = args
    fold = _Fold(since, until, business)
    fold.feed(read_events([path]))
    return fold


def build_report_from_files(
    paths: Sequence[str | Path],
    *,
    since: date | None,
    until: date | None,
    business: str | None,
    price_per_1k_chars: float,
    targets: Sequence[Target] = DEFAULT_TARGETS,
    businesses: Iterable[str] = (),
    top_misses: int = DEFAULT_TOP_MISSES,
    workers: int | None = None,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> Report:
    """:func:`build_report` over JSONL files, folding files in parallel worker processes.

    The result is identical to ``build_report(read_events(paths), ...)``. Workers (default: CPU
    count, at most one per file) are used only when the files hold more than
    ``parallel_min_bytes`` together; they are started with ``spawn`` (safe from a threaded
    server process) and stopped before returning. Parsing JSON is the bottleneck (about 10 µs a
    1 kB event in one process), which is why large reports use every core.
    """
    paths = [str(p) for p in paths]
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except FileNotFoundError:
            continue
    n = min(workers or os.cpu_count() or 1, len(paths))
    fold = _Fold(since, until, business)
    if n <= 1 or total < parallel_min_bytes:
        fold.feed(read_events(paths))
    else:
        # Largest files first so the pool's tail is short.
        order = sorted(paths, key=lambda p: -os.path.getsize(p) if os.path.exists(p) else 0)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            for part in pool.map(_fold_file, [(p, since, until, business) for p in order]):
                fold.merge(part)
    return _finish(
        fold, since=since, until=until, business=business, price=price_per_1k_chars,
        targets=targets, known=businesses, top=top_misses,
    )


def _finish(
    fold: _Fold,
    *,
    since: date | None,
    until: date | None,
    business: str | None,
    price: float,
    targets: Sequence[Target],
    known: Iterable[str],
    top: int,
) -> Report:
    groups, misses, miss_info = fold.groups, fold.misses, fold.miss_info
    seen_days = sorted({d for (_, d, _) in groups})
    first = since or (date.fromisoformat(seen_days[0]) if seen_days else None)
    last = until or (date.fromisoformat(seen_days[-1]) if seen_days else None)
    if first and not last:
        last = first
    if last and not first:
        first = last
    days: list[date] = []
    if first and last:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    day_keys = [d.isoformat() for d in days]

    if business is not None:
        biz_ids = [business]
    else:
        biz_ids = sorted(set(known) | {b for (b, _, _) in groups})
    arms_seen = sorted({a for (_, _, a) in groups}, key=lambda a: (ARMS.index(a) if a in ARMS else len(ARMS), a))
    arm_ids = [a for a in ARMS] + [a for a in arms_seen if a not in ARMS]

    by_biz: dict[str, list[_Group]] = {}
    by_biz_day: dict[tuple[str, str], list[_Group]] = {}
    by_biz_arm: dict[tuple[str, str], list[_Group]] = {}
    by_day: dict[str, list[_Group]] = {}
    by_arm: dict[str, list[_Group]] = {}
    for (b, d, a), g in groups.items():
        by_biz.setdefault(b, []).append(g)
        by_biz_day.setdefault((b, d), []).append(g)
        by_biz_arm.setdefault((b, a), []).append(g)
        by_day.setdefault(d, []).append(g)
        by_arm.setdefault(a, []).append(g)

    totals = {b: _stats(by_biz.get(b, []), price) for b in biz_ids}
    day_rows = tuple(
        DayRow(b, d, _stats(by_biz_day.get((b, k), []), price)) for b in biz_ids for d, k in zip(days, day_keys)
    )
    arm_rows = tuple(ArmRow(b, a, _stats(by_biz_arm.get((b, a), []), price)) for b in biz_ids for a in arm_ids)
    arm_stats = {(r.business, r.arm): r.stats for r in arm_rows}

    results = []
    for b in biz_ids:
        for t in targets:
            stats = totals[b] if t.arm is None else arm_stats.get((b, t.arm), Stats())
            value = getattr(stats, t.metric)
            results.append(TargetResult(b, t, value, None if value is None else t.passes(value)))

    top_misses: dict[str, tuple[Miss, ...]] = {}
    for b in biz_ids:
        counts = misses.get(b, {})
        # Most frequent first; ties: longer sentence first (more chars saved), then text, then key.
        best = sorted(counts.items(), key=lambda kv: (-kv[1], -miss_info[kv[0]][1], miss_info[kv[0]][0], kv[0]))[:top]
        top_misses[b] = tuple(Miss(b, k, miss_info[k][0], c, miss_info[k][1]) for k, c in best)

    used, corrupt, truncated, invalid = fold.used, fold.corrupt, fold.truncated, fold.invalid
    return Report(
        since=first,
        until=last,
        business_filter=business,
        businesses=tuple(biz_ids),
        price_per_1k_chars=price,
        totals=totals,
        overall=_stats(list(groups.values()), price),
        overall_by_arm={a: _stats(by_arm.get(a, []), price) for a in arm_ids},
        days=day_rows,
        overall_by_day=tuple((d, _stats(by_day.get(k, []), price)) for d, k in zip(days, day_keys)),
        arms=arm_rows,
        targets=tuple(results),
        top_misses=top_misses,
        events_used=used,
        lines_corrupt=corrupt,
        lines_truncated=truncated,
        events_invalid=invalid,
    )


def read_events(paths: Iterable[str | Path]) -> Iterator[bytes]:
    """Yield the raw lines (bytes, newline kept) of each JSONL file in ``paths``, in order.

    Parsing is left to :func:`build_report`, which counts corrupt and truncated lines; blank
    lines are skipped here. A file that vanishes between listing and reading is skipped (the
    turn log rotates), any other OSError propagates.
    """
    for path in paths:
        try:
            with open(path, "rb", buffering=1 << 20) as fh:
                for line in fh:
                    if line[0] in _WHITESPACE and not line.strip():  # no copy for normal lines
                        continue
                    yield line
        except FileNotFoundError:
            continue


def event_files(events_dir: str | Path, since: date | None = None, until: date | None = None) -> list[Path]:
    """The ``*.jsonl`` files of ``events_dir`` that may hold turns of days in [since, until].

    Files named ``turns-YYYY-MM-DD.jsonl`` are selected by name with one day of slack on each
    side (a writer near midnight); files with any other name are always included (the events'
    own timestamps decide). Sorted by name.
    """
    root = Path(events_dir)
    if not root.is_dir():
        return []
    lo = since - timedelta(days=1) if since else None
    hi = until + timedelta(days=1) if until else None
    out = []
    for path in sorted(root.glob("*.jsonl")):
        m = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        if m and _valid_day(m.group(1)):
            d = date.fromisoformat(m.group(1))
            if (lo and d < lo) or (hi and d > hi):
                continue
        out.append(path)
    return out


def default_window(today: date, days: int = 14) -> tuple[date, date]:
    """The default report window: the ``days`` days ending with ``today`` (inclusive)."""
    return today - timedelta(days=days - 1), today


__all__ = [
    "ARMS",
    "DEFAULT_TARGETS",
    "ArmRow",
    "DayRow",
    "Latency",
    "Miss",
    "Report",
    "Stats",
    "Target",
    "TargetResult",
    "build_report",
    "build_report_from_files",
    "default_window",
    "event_files",
    "nearest_rank",
    "read_events",
]
