"""Cache-hit reports computed from turn events (pure: no Flask, no clock, no I/O but reading files).

:func:`build_report` folds an iterable of turn events (dicts, or raw JSON lines as produced by
:func:`read_events`) into a :class:`Report`. It streams: memory grows with the number of
(business, day, arm, host) groups and distinct missed sentences, never with the number of events.
Latencies go into fixed-bucket histograms (:data:`EDGES`, milliseconds, right-closed) whose
merge is exact, so a day's fold can be saved as a rollup (``app.report.rollup``) and merged with
others later, giving the same figures as folding the raw events of all those days.

What the caller heard decides every rate (``app.events``: each sentence is ``cache``, ``live``,
``fallback_voice`` or ``say``; each turn's reply is the responder's or an ``apology``). Seed (v1)
events without those fields are read from ``hit``/``source``/``outcome``. Rates are ``None``
when their denominator is 0, never a made-up 0:

- *sentence hit rate* = sentences heard from cache **in the business's own voice** / sentences
  of turns the responder answered (an apology served from cache is not a hit: those turns
  count under *apologies*).
- *full-cache rate* = answered turns whose sentences were all own-voice cache hits / answered
  turns with at least one sentence.
- *filler rate* = turns that played a filler / turns.
- *fallback rate* ("Fallback to <Say>") = turns in which the caller heard any ``<Say>`` / turns.
- *fallback-voice rate* = turns with a sentence in a fallback voice / turns.
- *apology rate* = turns whose reply was an apology or error text / turns; *responder
  failures* are those whose cause was the responder. ``failures`` counts turns by first cause
  (``responder: ResponderError``, ``synthesis: SynthesisRejected``, ``deadline``, ...).
- *chars live / cached* = sums of the events' ``chars_live`` / ``chars_cached``;
  *cost saved* = chars cached / 1000 * price per 1k chars.
- *latencies* (milliseconds): time to first audio and time to answer (p50/p95/p99), AI
  (p50/p95), TTS (p50/p95, turns that synthesized live). A percentile is the **nearest-rank**
  one over the histogram: the upper edge of the bucket holding the ceil(p/100 * n)-th sample,
  so it is within one bucket of the exact nearest-rank value of the raw samples (and equal to
  it when samples fall on bucket edges, as whole tens of ms below 1 s do).
- *top missed sentences*: sentences of answered turns not heard from own-voice cache, listed only
  when heard in at least ``min_calls`` distinct calls and never when they hold a value the
  responder marked as a slot (``slot``: names, bookings): no personal data on the page.

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
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from app.events import SAY_OUTCOMES
from app.events import spoken_of as _spoken_of

ARMS = ("warmline", "control")
DEFAULT_TOP_MISSES = 20
DEFAULT_MIN_CALLS = 3
CALLS_CAP = 16
"""Distinct calls are remembered per missed sentence up to this many (``min_calls`` may not exceed it)."""
MIN_PERCENTILE_TURNS = 20
"""A percentile target is judged only on at least max(this, 100 / (100 - p)) samples, else "too few turns"."""
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
_WHITESPACE = b" \t\r\n"
LATENCIES = ("ttfa", "tta", "ai", "tts")


def _edges() -> tuple[float, ...]:
    out: list[float] = []
    for lo, hi, step in ((0, 1000, 10), (1000, 5000, 50), (5000, 20000, 250), (20000, 60000, 1000)):
        out.extend(float(v) for v in range(lo + step, hi + 1, step))
    return tuple(out)


EDGES = _edges()
"""Latency bucket upper edges in ms (right-closed): 10 ms steps to 1 s, 50 ms to 5 s, 250 ms to 20 s,
1 s to 60 s; one more bucket holds anything above 60 s. 281 buckets."""
N_BUCKETS = len(EDGES) + 1

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
    ``percentile`` (e.g. 95) marks a percentile target, judged only on enough samples.
    """

    name: str
    metric: str
    op: str
    threshold: float
    unit: str
    arm: str | None = "warmline"
    short: str = ""  # a column heading for narrow screens; defaults to ``name``
    percentile: int | None = None

    def passes(self, value: float) -> bool:
        return value < self.threshold if self.op == "<" else value > self.threshold

    @property
    def min_samples(self) -> int:
        if self.percentile is None:
            return 1
        return max(MIN_PERCENTILE_TURNS, -(-100 // (100 - self.percentile)))

    def describe(self) -> str:
        if self.unit == "ms":
            return f"{self.op} {self.threshold / 1000:g} s"
        return f"{self.op} {self.threshold * 100:g} %"


#: The targets of the project brief, measured on the Warmline arm (the control arm is the
#: baseline being replaced, so it is expected to miss them). Time to first audio uses p95,
#: the stricter reading of "time to first audio < 0.5 s". The last two make failures visible:
#: a fallback voice or an apology is a failure the caller hears.
DEFAULT_TARGETS: tuple[Target, ...] = (
    Target("Time to first audio (p95)", "ttfa_p95", "<", 500.0, "ms", short="First audio p95", percentile=95),
    Target("Time to TTS response (p95)", "tta_p95", "<", 2000.0, "ms", short="Answer p95", percentile=95),
    Target("TTS cache hit rate", "hit_rate", ">", 0.20, "ratio", short="Hit rate"),
    Target("Fallback to <Say>", "fallback_rate", "<", 0.05, "ratio", short="<Say>"),
    Target("Fallback voice", "fallback_voice_rate", "<", 0.05, "ratio", short="Fallback voice"),
    Target("Apology instead of an answer", "apology_rate", "<", 0.01, "ratio", short="Apologies"),
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
    sentences_answered: int = 0
    say_sentences: int = 0
    fallback_voice_sentences: int = 0
    fallback_voice_turns: int = 0
    apology_turns: int = 0
    responder_failures: int = 0
    synthesis_failures: int = 0
    failures: tuple[tuple[str, int], ...] = ()

    @property
    def hit_rate(self) -> float | None:
        return self.sentences_hit / self.sentences_answered if self.sentences_answered else None

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
    def fallback_voice_rate(self) -> float | None:
        return self.fallback_voice_turns / self.turns if self.turns else None

    @property
    def apology_rate(self) -> float | None:
        return self.apology_turns / self.turns if self.turns else None

    @property
    def ttfa_p95(self) -> float | None:
        return self.time_to_first_audio.p95

    @property
    def tta_p95(self) -> float | None:
        return self.time_to_answer.p95

    def samples(self, metric: str) -> int:
        """How many samples ``metric`` (a target's) was computed on."""
        return {"ttfa_p95": self.time_to_first_audio.count, "tta_p95": self.time_to_answer.count}.get(metric, self.turns)

    RATES = ("hit_rate", "full_cache_rate", "filler_rate", "fallback_rate", "fallback_voice_rate", "apology_rate")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded: rates to 4 decimals, latencies to 0.1 ms, money to 6 decimals."""
        out = asdict(self)
        out["failures"] = dict(self.failures)
        out["cost_saved"] = round(self.cost_saved, 6)
        for name in self.RATES:
            value = getattr(self, name)
            out[name] = None if value is None else round(value, 4)
        for name in ("time_to_first_audio", "time_to_answer", "ai", "tts"):
            out[name] = {k: (None if v is None else round(v, 1)) if k != "count" else v for k, v in out[name].items()}
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
    """A sentence callers heard without an own-voice cache hit ``count`` times in ``calls``+ distinct calls."""

    business: str
    key: str
    text: str
    count: int
    chars: int
    calls: int = 0

    @property
    def chars_total(self) -> int:
        return self.count * self.chars


TOO_FEW = "too few turns"


@dataclass(frozen=True)
class TargetResult:
    """``passed`` is ``None`` when there is nothing to judge: no data, or too few samples for a percentile."""

    business: str
    target: Target
    value: float | None
    passed: bool | None
    samples: int = 0

    @property
    def verdict(self) -> str:
        if self.passed is True:
            return "PASS"
        if self.passed is False:
            return "FAIL"
        return TOO_FEW if self.value is not None else "no data"


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
    hosts: tuple[str, ...] = ()
    host_filter: str | None = None
    by_host: dict[str, Stats] = field(default_factory=dict)
    min_calls: int = DEFAULT_MIN_CALLS
    sources: dict[str, int] = field(default_factory=dict)

    @property
    def day_list(self) -> list[date]:
        return [d for d, _ in self.overall_by_day]

    @property
    def failing(self) -> bool:
        return any(t.passed is False for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings, rates as rounded fractions or null, ms to 0.1)."""
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "business_filter": self.business_filter,
            "host_filter": self.host_filter,
            "businesses": list(self.businesses),
            "hosts": list(self.hosts),
            "price_per_1k_chars": self.price_per_1k_chars,
            "min_calls": self.min_calls,
            "quality": {
                "events_used": self.events_used,
                "lines_corrupt": self.lines_corrupt,
                "lines_truncated": self.lines_truncated,
                "events_invalid": self.events_invalid,
            },
            "sources": dict(self.sources),
            "overall": self.overall.to_dict(),
            "overall_by_arm": {arm: s.to_dict() for arm, s in self.overall_by_arm.items()},
            "overall_by_day": [{"day": d.isoformat(), **s.to_dict()} for d, s in self.overall_by_day],
            "by_host": {h: s.to_dict() for h, s in self.by_host.items()},
            "totals": {biz: s.to_dict() for biz, s in self.totals.items()},
            "days": [{"business": r.business, "day": r.day.isoformat(), **r.stats.to_dict()} for r in self.days],
            "arms": [{"business": r.business, "arm": r.arm, **r.stats.to_dict()} for r in self.arms],
            "targets": [
                {
                    "business": t.business, "target": t.target.name, "metric": t.target.metric,
                    "arm": t.target.arm, "op": t.target.op, "threshold": t.target.threshold,
                    "unit": t.target.unit, "value": None if t.value is None else round(t.value, 4),
                    "samples": t.samples, "passed": t.passed, "verdict": t.verdict,
                }
                for t in self.targets
            ],
            "top_misses": {
                biz: [{"key": m.key, "text": m.text, "count": m.count, "calls": m.calls, "chars": m.chars}
                      for m in misses]
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


def bucket_of(ms: float) -> int:
    """The histogram bucket of a latency in ms (``EDGES[i-1] < ms <= EDGES[i]``)."""
    return bisect_left(EDGES, ms)


def hist_percentile(hist: Sequence[int] | np.ndarray, p: int) -> float | None:
    """The nearest-rank ``p``-th percentile of a histogram: its bucket's upper edge (ms); None when empty."""
    counts = np.asarray(hist, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return None
    rank = max(1, -(-p * n // 100))
    i = int(np.searchsorted(np.cumsum(counts), rank))
    return EDGES[i] if i < len(EDGES) else EDGES[-1]


def _latency(hists: list[np.ndarray], percentiles: Sequence[int]) -> Latency:
    parts = [h for h in hists if h is not None]
    if not parts:
        return Latency()
    total = parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
    n = int(total.sum())
    if n == 0:
        return Latency()
    return Latency(count=n, **{f"p{p}": hist_percentile(total, p) for p in percentiles})


_COUNTERS = ("turns", "sentences", "hit", "with_sentences", "full", "filler", "fallback", "chars_live",
             "chars_cached", "answered", "say_sent", "fv_sent", "fv_turns", "apology", "responder_fail",
             "synth_fail")


class _Group:
    """Mutable counters and latency histograms of one (business, day, arm, host)."""

    __slots__ = (*_COUNTERS, "failures", "hist", "exact", "arrays")

    def __init__(self, exact: bool = False) -> None:
        for name in _COUNTERS:
            setattr(self, name, 0)
        self.failures: dict[str, int] = {}
        # One flat list of counts per latency; numpy only when merging and finishing.
        self.hist: dict[str, list[int]] = {name: [0] * N_BUCKETS for name in LATENCIES}
        self.exact: dict[str, array] | None = {name: array("f") for name in LATENCIES} if exact else None
        self.arrays: dict[str, np.ndarray | None] | None = None  # set by freeze(), once folding is over

    def freeze(self) -> None:
        """Convert the histograms to numpy once (``None`` for an empty one); the group must not change after."""
        self.arrays = {name: (np.asarray(h, dtype=np.int64) if any(h) else None) for name, h in self.hist.items()}

    def merge(self, other: _Group) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.failures.items():
            self.failures[k] = self.failures.get(k, 0) + v
        for name in LATENCIES:
            mine, theirs = self.hist[name], other.hist[name]
            for i, c in enumerate(theirs):
                if c:
                    mine[i] += c
            if self.exact is not None and other.exact is not None:
                self.exact[name].extend(other.exact[name])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        out["failures"] = dict(self.failures)
        out["hist"] = {name: [[i, c] for i, c in enumerate(h) if c] for name, h in self.hist.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Group:
        g = cls()
        get = data.get
        for name in _COUNTERS:
            setattr(g, name, get(name, 0))
        g.failures = dict(get("failures") or {})
        hists = get("hist") or {}
        for name in LATENCIES:
            pairs = hists.get(name)
            if pairs:
                h = g.hist[name]
                for i, c in pairs:
                    h[i] += c
        return g


def _stats(groups: list[_Group], price: float) -> Stats:
    if not groups:
        return Stats()

    def total(name: str) -> int:
        return sum(getattr(g, name) for g in groups)

    failures: dict[str, int] = {}
    for g in groups:
        for k, v in g.failures.items():
            failures[k] = failures.get(k, 0) + v
    cached = total("chars_cached")

    def hists(name: str) -> list[np.ndarray]:
        out = []
        for g in groups:
            if g.arrays is None:
                g.freeze()
            a = g.arrays[name]
            if a is not None:
                out.append(a)
        return out

    return Stats(
        turns=total("turns"),
        sentences=total("sentences"),
        sentences_hit=total("hit"),
        turns_with_sentences=total("with_sentences"),
        full_cache_turns=total("full"),
        filler_turns=total("filler"),
        fallback_turns=total("fallback"),
        chars_live=total("chars_live"),
        chars_cached=cached,
        cost_saved=cached / 1000 * price,
        time_to_first_audio=_latency(hists("ttfa"), (50, 95, 99)),
        time_to_answer=_latency(hists("tta"), (50, 95, 99)),
        ai=_latency(hists("ai"), (50, 95)),
        tts=_latency(hists("tts"), (50, 95)),
        sentences_answered=total("answered"),
        say_sentences=total("say_sent"),
        fallback_voice_sentences=total("fv_sent"),
        fallback_voice_turns=total("fv_turns"),
        apology_turns=total("apology"),
        responder_failures=total("responder_fail"),
        synthesis_failures=total("synth_fail"),
        failures=tuple(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def exact_latency(groups: Iterable[_Group], name: str, percentiles: Sequence[int] = (50, 95, 99)) -> Latency:
    """Exact nearest-rank percentiles from the raw samples of folds built with ``exact=True`` (benchmarks)."""
    arrays = [np.frombuffer(g.exact[name], dtype=np.float32) for g in groups if g.exact is not None and len(g.exact[name])]
    if not arrays:
        return Latency()
    values = np.concatenate(arrays)
    return Latency(count=len(values), **{f"p{p}": nearest_rank(values, p) for p in percentiles})


class _Fold:
    """The streaming state of one report: groups by (business, day, arm, host), misses, counts.

    ``host``: keep only that host's events (``None`` = all). Events are fed per source with the
    source's host (:meth:`feed`). ``exact`` also keeps every latency sample (benchmarks compare).
    """

    def __init__(self, since: date | None, until: date | None, business: str | None,
                 host: str | None = None, exact: bool = False) -> None:
        self.since_s = since.isoformat() if since else None
        self.until_s = until.isoformat() if until else None
        self.business = business
        self.host = host
        self.exact = exact
        self.groups: dict[tuple[str, str, str, str], _Group] = {}
        # misses[biz][key] = [count, set of call ids (capped at CALLS_CAP)]
        self.misses: dict[str, dict[str, list]] = {}
        self.miss_info: dict[str, tuple[str, int]] = {}
        self.used = self.corrupt = self.truncated = self.invalid = 0
        self.sources: dict[str, int] = {}

    def wants(self, host: str) -> bool:
        return self.host is None or host == self.host

    def feed(self, events: Iterable[dict | str | bytes], host: str = "") -> None:
        """Fold ``events`` (all of host ``host``) in. The hot loop of the report: locals, few calls per event."""
        if not self.wants(host):
            return
        since_s, until_s, business = self.since_s, self.until_s, self.business
        groups, misses, miss_info = self.groups, self.misses, self.miss_info
        valid_days: dict[Any, bool] = {}
        corrupt = truncated = invalid = used = 0
        loads = _loads
        say = SAY_OUTCOMES
        ms_types = _MS_TYPES
        spoken_of = _spoken_of
        bucket = bisect_left
        edges = EDGES
        exact = self.exact
        cap = CALLS_CAP
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
                outcome = get("outcome")
                failure = get("failure")
                apology = get("reply") == "apology" or outcome == "apology"
                sentences = get("sentences") or ()
                kinds = [spoken_of(sen) for sen in sentences]
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
                    and (failure is None or type(failure) is dict)
                ):
                    raise TypeError("wrong types")
            except (KeyError, TypeError, AttributeError):
                invalid += 1
                continue

            key = (biz, day, arm, host)
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Group(exact)
            used += 1
            g.turns += 1
            n_sent = len(kinds)
            n_hit = kinds.count("cache")
            n_say = kinds.count("say")
            n_fv = kinds.count("fallback_voice")
            g.sentences += n_sent
            g.say_sent += n_say
            g.fv_sent += n_fv
            if n_fv:
                g.fv_turns += 1
            if n_say or outcome in say:
                g.fallback += 1
            if failure is not None:
                kind = failure.get("kind")
                label = f"{kind}: {failure['error']}" if failure.get("error") else str(kind)
                g.failures[label] = g.failures.get(label, 0) + 1
                if kind == "responder":
                    g.responder_fail += 1
            for sen in sentences:
                if sen.get("error") and (sen.get("spoken") == "say" or sen.get("spoken") == "fallback_voice"):
                    g.synth_fail += 1
            if apology:
                g.apology += 1
            elif n_sent:
                g.answered += n_sent
                g.hit += n_hit
                g.with_sentences += 1
                if n_hit == n_sent:
                    g.full += 1
                else:
                    counts = misses.get(biz)
                    if counts is None:
                        counts = misses[biz] = {}
                    call = get("call")
                    call = call[-12:] if type(call) is str else None
                    for sen, kind in zip(sentences, kinds):
                        if kind == "cache" or sen.get("slot"):
                            continue
                        k = sen.get("key")
                        if type(k) is not str:
                            continue
                        c = counts.get(k)
                        if c is None:
                            counts[k] = [1, {call} if call else set()]
                            if k not in miss_info:
                                miss_info[k] = _miss_info(sen)
                        else:
                            c[0] += 1
                            if call and len(c[1]) < cap:
                                c[1].add(call)
            if get("filler") is not None:
                g.filler += 1
            g.chars_live += live
            g.chars_cached += cached
            hist = g.hist
            if ttfa is not None:
                hist["ttfa"][bucket(edges, ttfa)] += 1
            if tta is not None:
                hist["tta"][bucket(edges, tta)] += 1
            if ai is not None:
                hist["ai"][bucket(edges, ai)] += 1
            if tts is not None and live > 0:
                hist["tts"][bucket(edges, tts)] += 1
            if exact:
                ex = g.exact
                for name, v in (("ttfa", ttfa), ("tta", tta), ("ai", ai)):
                    if v is not None:
                        ex[name].append(v)
                if tts is not None and live > 0:
                    ex["tts"].append(tts)
        self.used += used
        self.corrupt += corrupt
        self.truncated += truncated
        self.invalid += invalid
        self.sources["raw_events"] = self.sources.get("raw_events", 0) + used

    def merge(self, other: _Fold) -> None:
        """Add ``other``'s aggregates into this fold (``other`` must not be used afterwards)."""
        for key, og in other.groups.items():
            g = self.groups.get(key)
            if g is None:
                self.groups[key] = og
            else:
                g.merge(og)
        self._merge_misses(other.misses, other.miss_info)
        self.used += other.used
        self.corrupt += other.corrupt
        self.truncated += other.truncated
        self.invalid += other.invalid
        for k, v in other.sources.items():
            self.sources[k] = self.sources.get(k, 0) + v

    def _merge_misses(self, misses: dict[str, dict[str, list]], info: dict[str, tuple[str, int]]) -> None:
        for biz, ocounts in misses.items():
            counts = self.misses.get(biz)
            if counts is None:
                self.misses[biz] = ocounts
                continue
            for k, (c, calls) in ocounts.items():
                mine = counts.get(k)
                if mine is None:
                    counts[k] = [c, set(calls)]
                else:
                    mine[0] += c
                    for call in calls:
                        if len(mine[1]) >= CALLS_CAP:
                            break
                        mine[1].add(call)
        for k, v in info.items():
            self.miss_info.setdefault(k, v)

    # --- rollups: one host's day, saved and merged later (app.report.rollup does the I/O) ----------
    def to_rollup(self, top: int) -> dict[str, Any]:
        """This fold as a JSON-ready rollup: every group, the ``top`` missed sentences per business."""
        misses = {}
        for biz, counts in self.misses.items():
            best = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
            misses[biz] = [[k, c, sorted(calls), *self.miss_info[k]] for k, (c, calls) in best]
        return {
            "groups": [{"business": b, "day": d, "arm": a, "host": h, **g.to_json()}
                       for (b, d, a, h), g in sorted(self.groups.items())],
            "misses": misses,
            "quality": {"used": self.used, "corrupt": self.corrupt, "truncated": self.truncated,
                        "invalid": self.invalid},
        }

    def add_rollup(self, data: dict[str, Any]) -> None:
        """Merge a rollup (as :meth:`to_rollup` made it) in, applying this fold's filters."""
        used = 0
        for row in data.get("groups", ()):
            b, d, a, h = row["business"], row["day"], row["arm"], row["host"]
            if not self.wants(h) or (self.business is not None and b != self.business):
                continue
            if (self.since_s is not None and d < self.since_s) or (self.until_s is not None and d > self.until_s):
                continue
            og = _Group.from_json(row)
            used += og.turns
            g = self.groups.get((b, d, a, h))
            if g is None:
                self.groups[(b, d, a, h)] = og
            else:
                g.merge(og)
        if used or not data.get("groups"):
            q = data.get("quality") or {}
            self.corrupt += int(q.get("corrupt", 0))
            self.truncated += int(q.get("truncated", 0))
            self.invalid += int(q.get("invalid", 0))
        self.used += used
        self.sources["rollups"] = self.sources.get("rollups", 0) + 1
        if not self.wants(str(data.get("host", ""))):
            return
        info = self.miss_info
        cap = CALLS_CAP
        for biz, rows in (data.get("misses") or {}).items():
            if self.business is not None and biz != self.business:
                continue
            counts = self.misses.get(biz)
            if counts is None:
                counts = self.misses[biz] = {}
            for k, c, calls, text, chars in rows:
                mine = counts.get(k)
                if mine is None:
                    counts[k] = [c, set(calls[:cap])]
                    if k not in info:
                        info[k] = (text, chars)
                else:
                    mine[0] += c
                    seen = mine[1]
                    if len(seen) < cap:
                        seen.update(calls[: cap - len(seen)])


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
    min_calls: int = DEFAULT_MIN_CALLS,
) -> Report:
    """Fold turn events into a :class:`Report` (single pass, streaming).

    ``events`` may mix dicts and raw JSON lines (str or bytes, newline kept as :func:`read_events`
    yields them). ``since``/``until`` bound the UTC day of ``ts`` (inclusive); ``None`` takes the
    first/last day seen. ``business`` keeps one business only. ``businesses`` lists the known
    business ids, which appear in the report with zero rows even without a single turn.
    """
    fold = _Fold(since, until, business)
    fold.feed(events)
    return finish(
        fold, since=since, until=until, business=business, price=price_per_1k_chars,
        targets=targets, known=businesses, top=top_misses, min_calls=min_calls,
    )


def _fold_file(args: tuple[str, date | None, date | None, str | None, str, bool]) -> _Fold:
    """Worker task: fold one file (runs in a child process)."""
    path, since, until, business, host, exact = args
    fold = _Fold(since, until, business, exact=exact)
    fold.feed(read_events([path]), host)
    return fold


def fold_files(
    paths: Sequence[str | Path],
    fold: _Fold,
    *,
    host: str = "",
    workers: int | None = None,
    parallel_min_bytes: int = PARALLEL_MIN_BYTES,
) -> _Fold:
    """Fold JSONL files (all of host ``host``) into ``fold``, in parallel worker processes when large.

    Workers (default: CPU count, at most one per file) are used only when the files hold more
    than ``parallel_min_bytes`` together; they are started with ``spawn`` (safe from a threaded
    server process) and stopped before returning. Parsing JSON is the bottleneck (about 10 µs a
    1 kB event in one process), which is why large reports use every core.
    """
    paths = [str(p) for p in paths]
    if not fold.wants(host):
        return fold
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except FileNotFoundError:
            continue
    n = min(workers or os.cpu_count() or 1, len(paths))
    if n <= 1 or total < parallel_min_bytes:
        fold.feed(read_events(paths), host)
        return fold
    # Largest files first so the pool's tail is short.
    order = sorted(paths, key=lambda p: -os.path.getsize(p) if os.path.exists(p) else 0)
    ctx = multiprocessing.get_context("spawn")
    since = date.fromisoformat(fold.since_s) if fold.since_s else None
    until = date.fromisoformat(fold.until_s) if fold.until_s else None
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        for part in pool.map(_fold_file, [(p, since, until, fold.business, host, fold.exact) for p in order]):
            fold.merge(part)
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
    min_calls: int = DEFAULT_MIN_CALLS,
) -> Report:
    """:func:`build_report` over JSONL files (one host's), folding large sets in parallel (:func:`fold_files`).

    The result is identical to ``build_report(read_events(paths), ...)``.
    """
    fold = fold_files(paths, _Fold(since, until, business), workers=workers, parallel_min_bytes=parallel_min_bytes)
    return finish(
        fold, since=since, until=until, business=business, price=price_per_1k_chars,
        targets=targets, known=businesses, top=top_misses, min_calls=min_calls,
    )


def finish(
    fold: _Fold,
    *,
    since: date | None,
    until: date | None,
    business: str | None,
    price: float,
    targets: Sequence[Target] = DEFAULT_TARGETS,
    known: Iterable[str] = (),
    top: int = DEFAULT_TOP_MISSES,
    min_calls: int = DEFAULT_MIN_CALLS,
    hosts: Iterable[str] = (),
) -> Report:
    """The :class:`Report` of a fold (``hosts``: every host known to have events, listed even when empty)."""
    groups, misses, miss_info = fold.groups, fold.misses, fold.miss_info
    seen_days = sorted({d for (_, d, _, _) in groups})
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
        biz_ids = sorted(set(known) | {b for (b, _, _, _) in groups})
    arms_seen = sorted({a for (_, _, a, _) in groups}, key=lambda a: (ARMS.index(a) if a in ARMS else len(ARMS), a))
    arm_ids = [a for a in ARMS] + [a for a in arms_seen if a not in ARMS]
    host_ids = sorted((set(hosts) if fold.host is None else {fold.host}) | {h for (_, _, _, h) in groups if h})

    by_biz: dict[str, list[_Group]] = {}
    by_biz_day: dict[tuple[str, str], list[_Group]] = {}
    by_biz_arm: dict[tuple[str, str], list[_Group]] = {}
    by_day: dict[str, list[_Group]] = {}
    by_arm: dict[str, list[_Group]] = {}
    by_host: dict[str, list[_Group]] = {}
    for (b, d, a, h), g in groups.items():
        by_biz.setdefault(b, []).append(g)
        by_biz_day.setdefault((b, d), []).append(g)
        by_biz_arm.setdefault((b, a), []).append(g)
        by_day.setdefault(d, []).append(g)
        by_arm.setdefault(a, []).append(g)
        by_host.setdefault(h, []).append(g)

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
            n = stats.samples(t.metric)
            passed = None if value is None or n < t.min_samples else t.passes(value)
            results.append(TargetResult(b, t, value, passed, n))

    top_misses: dict[str, tuple[Miss, ...]] = {}
    for b in biz_ids:
        counts = misses.get(b, {})
        listed = [(k, c, len(calls)) for k, (c, calls) in counts.items() if len(calls) >= min_calls]
        # Most frequent first; ties: longer sentence first (more chars saved), then text, then key.
        best = sorted(listed, key=lambda kv: (-kv[1], -miss_info[kv[0]][1], miss_info[kv[0]][0], kv[0]))[:top]
        top_misses[b] = tuple(Miss(b, k, miss_info[k][0], c, miss_info[k][1], n) for k, c, n in best)

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
        hosts=tuple(host_ids),
        host_filter=fold.host,
        by_host={h: _stats(by_host.get(h, []), price) for h in host_ids},
        min_calls=min_calls,
        sources=dict(fold.sources),
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


def read_lines(data: bytes) -> Iterator[bytes]:
    """The non-blank lines (newline kept) of an in-memory JSONL blob (a shipped chunk)."""
    start = 0
    n = len(data)
    while start < n:
        end = data.find(b"\n", start)
        end = n if end < 0 else end + 1
        line = data[start:end]
        start = end
        if line.strip():
            yield line


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
    "EDGES",
    "bucket_of",
    "finish",
    "fold_files",
    "hist_percentile",
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
    "read_lines",
]
