"""Text renderings of a :class:`~app.report.compute.Report`: aligned table, JSON and CSV.

Pure functions of the report; safe from any thread.

- ``table``: for a terminal; sections Targets, By arm, By day, Top missed sentences, Data quality.
- ``json``: ``Report.to_dict()`` (every number, rates as fractions, latencies in ms).
- ``csv``: one row per statistics group: ``section`` is ``total``, ``arm`` or ``day`` (the
  ``arm``/``day`` column is empty where it does not apply); rates as fractions, empty when undefined.
  Targets and top misses are in the table and JSON renderings.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from app.report.compute import Report, Stats

FORMATS = ("table", "json", "csv")
DASH = "-"


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage ('71.6 %'), or '-' when undefined."""
    return DASH if value is None else f"{value * 100:.{digits}f} %"


def ms(value: float | None) -> str:
    """Milliseconds as an integer with thousands separators, or '-'."""
    return DASH if value is None else f"{value:,.0f}"


def money(value: float) -> str:
    """Dollars: cents from $1 up, four decimals below (small windows save fractions of a cent)."""
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:.4f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


STAT_HEADERS = (
    "turns", "hit rate", "full cache", "filler", "fallback", "ttfa p50", "ttfa p95", "ttfa p99",
    "answer p50", "answer p95", "answer p99", "ai p50", "ai p95", "tts p50", "tts p95",
    "chars live", "chars cached", "saved",
)


def _stat_cells(s: Stats) -> list[str]:
    return [
        f"{s.turns:,}", pct(s.hit_rate), pct(s.full_cache_rate), pct(s.filler_rate), pct(s.fallback_rate),
        ms(s.time_to_first_audio.p50), ms(s.time_to_first_audio.p95), ms(s.time_to_first_audio.p99),
        ms(s.time_to_answer.p50), ms(s.time_to_answer.p95), ms(s.time_to_answer.p99),
        ms(s.ai.p50), ms(s.ai.p95), ms(s.tts.p50), ms(s.tts.p95),
        f"{s.chars_live:,}", f"{s.chars_cached:,}", money(s.cost_saved),
    ]


def render_table(report: Report) -> str:
    """An aligned plain-text report for a terminal (latencies in ms)."""
    since = report.since.isoformat() if report.since else DASH
    until = report.until.isoformat() if report.until else DASH
    o = report.overall
    out = [
        f"Warmline cache report {since} .. {until}"
        + (f"  business={report.business_filter}" if report.business_filter else ""),
        (
            f"turns {o.turns:,}  sentence hit rate {pct(o.hit_rate)}  fully cached turns {pct(o.full_cache_rate)}  "
            f"fallback {pct(o.fallback_rate)}  chars cached {o.chars_cached:,} / live {o.chars_live:,}  "
            f"saved {money(o.cost_saved)} at {money(report.price_per_1k_chars)}/1k chars"
        ),
        "",
        "Targets (measured on each target's arm)",
    ]
    rows = []
    for t in report.targets:
        value = DASH if t.value is None else (ms(t.value) + " ms" if t.target.unit == "ms" else pct(t.value))
        verdict = "no data" if t.passed is None else ("PASS" if t.passed else "FAIL")
        rows.append([t.business, t.target.name, t.target.arm or "all", t.target.describe(), value, verdict])
    out += _table(("business", "target", "arm", "goal", "value", "result"), rows, (False, False, False, False, True, False))
    out += ["", "By business and arm"]
    rows = [[r.business, r.arm, *_stat_cells(r.stats)] for r in report.arms]
    out += _table(("business", "arm", *STAT_HEADERS), rows, (False, False) + (True,) * len(STAT_HEADERS))
    out += ["", "By business and day"]
    rows = [[r.business, r.day.isoformat(), *_stat_cells(r.stats)] for r in report.days]
    out += _table(("business", "day", *STAT_HEADERS), rows, (False, False) + (True,) * len(STAT_HEADERS))
    out += ["", "Top missed sentences (precompute candidates)"]
    rows = [
        [m.business, f"{m.count:,}", f"{m.chars:,}", f"{m.chars_total:,}", m.text]
        for misses in report.top_misses.values() for m in misses
    ]
    out += _table(("business", "misses", "chars", "chars total", "text"), rows, (False, True, True, True, False))
    out += [
        "",
        (
            f"Data quality: {report.events_used:,} events used, {report.lines_corrupt:,} corrupt lines, "
            f"{report.lines_truncated:,} truncated lines, {report.events_invalid:,} invalid events (all skipped)"
        ),
    ]
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


CSV_COLUMNS = (
    "section", "business", "arm", "day", "turns", "sentences", "sentences_hit", "hit_rate",
    "turns_with_sentences", "full_cache_turns", "full_cache_rate", "filler_turns", "filler_rate",
    "fallback_turns", "fallback_rate", "ttfa_p50_ms", "ttfa_p95_ms", "ttfa_p99_ms", "tta_p50_ms",
    "tta_p95_ms", "tta_p99_ms", "ai_p50_ms", "ai_p95_ms", "tts_p50_ms", "tts_p95_ms",
    "chars_live", "chars_cached", "cost_saved",
)


def _csv_row(section: str, business: str, arm: str, day: str, s: Stats) -> list[object]:
    def n(v: float | None) -> object:
        return "" if v is None else v

    return [
        section, business, arm, day, s.turns, s.sentences, s.sentences_hit, n(s.hit_rate),
        s.turns_with_sentences, s.full_cache_turns, n(s.full_cache_rate), s.filler_turns, n(s.filler_rate),
        s.fallback_turns, n(s.fallback_rate), n(s.time_to_first_audio.p50), n(s.time_to_first_audio.p95),
        n(s.time_to_first_audio.p99), n(s.time_to_answer.p50), n(s.time_to_answer.p95), n(s.time_to_answer.p99),
        n(s.ai.p50), n(s.ai.p95), n(s.tts.p50), n(s.tts.p95), s.chars_live, s.chars_cached, round(s.cost_saved, 6),
    ]


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for biz, s in report.totals.items():
        w.writerow(_csv_row("total", biz, "", "", s))
    for r in report.arms:
        w.writerow(_csv_row("arm", r.business, r.arm, "", r.stats))
    for r in report.days:
        w.writerow(_csv_row("day", r.business, "", r.day.isoformat(), r.stats))
    return buf.getvalue()


def render(report: Report, fmt: str) -> str:
    """Render ``report`` as one of :data:`FORMATS`; ValueError for anything else."""
    if fmt == "table":
        return render_table(report)
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
