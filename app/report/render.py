"""Text renderings of a :class:`~app.report.compute.Report`: aligned table, JSON and CSV.

Pure functions of the report; safe from any thread.

- ``table``: for a terminal, at most :data:`WIDTH` (120) columns: Targets, What callers heard
  (by business and arm), Failures by cause, By day (all businesses), By host, Top missed
  sentences, Data quality. Every latency carries its unit. ``wide=True`` adds the full
  per-business-and-day and per-arm detail (every percentile, characters, cost): wider than 120.
- ``json``: ``Report.to_dict()`` (rounded: rates to 4 decimals, latencies to 0.1 ms).
- ``csv``: one row per statistics group: ``section`` is ``total``, ``arm``, ``day`` or ``host``
  (the ``arm``/``day``/``host`` column is empty where it does not apply); rates as rounded
  fractions, empty when undefined. Targets and top misses are in the table and JSON renderings.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from app.report.compute import Report, Stats

FORMATS = ("table", "json", "csv")
DASH = "-"
WIDTH = 120


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage ('71.6 %'), or '-' when undefined."""
    return DASH if value is None else f"{value * 100:.{digits}f} %"


def ms(value: float | None) -> str:
    """Milliseconds as an integer with thousands separators, or '-'."""
    return DASH if value is None else f"{value:,.0f}"


def ms_unit(value: float | None) -> str:
    """Milliseconds with the unit ('1,500 ms'), or '-'."""
    return DASH if value is None else f"{value:,.0f} ms"


def pair_ms(a: float | None, b: float | None) -> str:
    """Two latencies sharing one unit ('290 / 320 ms'), or '-'."""
    if a is None and b is None:
        return DASH
    return f"{ms(a)} / {ms(b)} ms"


def money(value: float) -> str:
    """Dollars: cents from $1 up, four decimals below (small windows save fractions of a cent)."""
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:.4f}"


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in '...' when cut."""
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _wrap(words: Sequence[str], width: int = WIDTH) -> list[str]:
    """Join ``words`` with two spaces into lines of at most ``width`` characters."""
    lines, current = [], ""
    for w in words:
        if current and len(current) + 2 + len(w) > width:
            lines.append(current)
            current = w
        else:
            current = f"{current}  {w}" if current else w
    if current:
        lines.append(current)
    return lines


BIZ = 18  # business and host ids are cut to this many characters in the narrow table

HEARD_HEADERS = ("business", "arm", "turns", "hit rate", "<Say>", "fb voice", "apology", "filler",
                 "first audio p50/p95", "answer p50/p95")


def _heard_cells(s: Stats) -> list[str]:
    return [
        f"{s.turns:,}", pct(s.hit_rate), pct(s.fallback_rate), pct(s.fallback_voice_rate), pct(s.apology_rate),
        pct(s.filler_rate), pair_ms(s.time_to_first_audio.p50, s.time_to_first_audio.p95),
        pair_ms(s.time_to_answer.p50, s.time_to_answer.p95),
    ]


WIDE_HEADERS = (
    "turns", "hit rate", "full cache", "filler", "<Say>", "fb voice", "apology", "resp fail", "synth fail",
    "ttfa p50 ms", "ttfa p95 ms", "ttfa p99 ms", "answer p50 ms", "answer p95 ms", "answer p99 ms",
    "ai p50 ms", "ai p95 ms", "tts p50 ms", "tts p95 ms", "chars live", "chars cached", "saved",
)


def _wide_cells(s: Stats) -> list[str]:
    return [
        f"{s.turns:,}", pct(s.hit_rate), pct(s.full_cache_rate), pct(s.filler_rate), pct(s.fallback_rate),
        pct(s.fallback_voice_rate), pct(s.apology_rate), f"{s.responder_failures:,}", f"{s.synthesis_failures:,}",
        ms(s.time_to_first_audio.p50), ms(s.time_to_first_audio.p95), ms(s.time_to_first_audio.p99),
        ms(s.time_to_answer.p50), ms(s.time_to_answer.p95), ms(s.time_to_answer.p99),
        ms(s.ai.p50), ms(s.ai.p95), ms(s.tts.p50), ms(s.tts.p95),
        f"{s.chars_live:,}", f"{s.chars_cached:,}", money(s.cost_saved),
    ]


def _target_value(value: float | None, unit: str) -> str:
    if value is None:
        return DASH
    return ms_unit(value) if unit == "ms" else pct(value)


def render_table(report: Report, *, wide: bool = False) -> str:
    """An aligned plain-text report for a terminal: at most 120 columns unless ``wide``."""
    since = report.since.isoformat() if report.since else DASH
    until = report.until.isoformat() if report.until else DASH
    o = report.overall
    title = f"Warmline cache report {since} .. {until}"
    if report.business_filter:
        title += f"  business={report.business_filter}"
    title += f"  host={report.host_filter}" if report.host_filter else f"  hosts: {', '.join(report.hosts) or DASH}"
    out = _wrap([clip(title, WIDTH)])
    out += _wrap([
        f"turns {o.turns:,}", f"hit rate (own voice, from cache) {pct(o.hit_rate)}",
        f"heard <Say> {pct(o.fallback_rate)}", f"fallback voice {pct(o.fallback_voice_rate)}",
        f"apologies {pct(o.apology_rate)} ({o.responder_failures:,} responder failures)",
        f"chars cached {o.chars_cached:,} / live {o.chars_live:,}",
        f"saved {money(o.cost_saved)} at {money(report.price_per_1k_chars)}/1k chars",
    ])
    failing = sum(1 for t in report.targets if t.passed is False)
    out += ["", f"Targets (measured on each target's arm): {failing} failing" if failing else
            "Targets (measured on each target's arm)"]
    rows = [[clip(t.business, BIZ), t.target.name, t.target.arm or "all", t.target.describe(),
             _target_value(t.value, t.target.unit), f"{t.samples:,}", t.verdict] for t in report.targets]
    out += _table(("business", "target", "arm", "goal", "value", "turns", "result"), rows,
                  (False, False, False, False, True, True, False))

    out += ["", "What callers heard, by business and arm (hit rate: own-voice clips from cache, answered turns)"]
    rows = [[clip(r.business, BIZ), r.arm, *_heard_cells(r.stats)] for r in report.arms]
    out += _table(HEARD_HEADERS, rows, (False, False) + (True,) * 8)

    out += ["", "Failures by first cause (turns)"]
    rows = [[clip(b, BIZ), cause, f"{n:,}"] for b, s in report.totals.items() for cause, n in s.failures]
    out += _table(("business", "cause", "turns"), rows, (False, False, True)) if rows else ["none"]

    out += ["", "By day (all businesses in view)"]
    rows = [[d.isoformat(), *_heard_cells(s)] for d, s in report.overall_by_day]
    out += _table(("day", *HEARD_HEADERS[2:]), rows, (False,) + (True,) * 8)

    if len(report.by_host) > 1 or wide:
        out += ["", "By host"]
        rows = [[clip(h, BIZ), *_heard_cells(s)] for h, s in report.by_host.items()]
        out += _table(("host", *HEARD_HEADERS[2:]), rows, (False,) + (True,) * 8)

    out += ["", f"Top missed sentences (precompute candidates; heard in at least {report.min_calls} calls, "
                "no slot values)"]
    misses = [m for ms_ in report.top_misses.values() for m in ms_]
    head = ("business", "misses", "calls", "chars", "text")
    cells = [[clip(m.business, BIZ), f"{m.count:,}", f"{m.calls:,}{'+' if m.calls >= 16 else ''}", f"{m.chars:,}", m.text]
             for m in misses]
    if not wide and cells:
        fixed = sum(max(len(h), *(len(r[i]) for r in cells)) + 2 for i, h in enumerate(head[:-1]))
        for r in cells:
            r[-1] = clip(r[-1], max(20, WIDTH - fixed))
    out += _table(head, cells, (False, True, True, True, False)) if cells else ["none"]

    if wide:
        out += ["", "By business and arm (every figure)"]
        rows = [[r.business, r.arm, *_wide_cells(r.stats)] for r in report.arms]
        out += _table(("business", "arm", *WIDE_HEADERS), rows, (False, False) + (True,) * len(WIDE_HEADERS))
        out += ["", "By business and day (every figure)"]
        rows = [[r.business, r.day.isoformat(), *_wide_cells(r.stats)] for r in report.days]
        out += _table(("business", "day", *WIDE_HEADERS), rows, (False, False) + (True,) * len(WIDE_HEADERS))
    out += [""]
    out += _wrap([
        f"Data quality: {report.events_used:,} events used", f"{report.lines_corrupt:,} corrupt lines",
        f"{report.lines_truncated:,} truncated lines", f"{report.events_invalid:,} invalid events (all skipped)",
    ])
    if not wide:
        out += ["Every percentile, characters and cost per business and day: --wide; one business: --business ID."]
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


CSV_COLUMNS = (
    "section", "business", "arm", "day", "host", "turns", "sentences", "sentences_hit", "sentences_answered",
    "hit_rate", "turns_with_sentences", "full_cache_turns", "full_cache_rate", "filler_turns", "filler_rate",
    "fallback_turns", "fallback_rate", "fallback_voice_turns", "fallback_voice_rate", "apology_turns",
    "apology_rate", "responder_failures", "synthesis_failures", "ttfa_p50_ms", "ttfa_p95_ms", "ttfa_p99_ms",
    "tta_p50_ms", "tta_p95_ms", "tta_p99_ms", "ai_p50_ms", "ai_p95_ms", "tts_p50_ms", "tts_p95_ms",
    "chars_live", "chars_cached", "cost_saved",
)


def _csv_row(section: str, business: str, arm: str, day: str, host: str, s: Stats) -> list[object]:
    def rate(v: float | None) -> object:
        return "" if v is None else round(v, 4)

    def lat(v: float | None) -> object:
        return "" if v is None else round(v, 1)

    return [
        section, business, arm, day, host, s.turns, s.sentences, s.sentences_hit, s.sentences_answered,
        rate(s.hit_rate), s.turns_with_sentences, s.full_cache_turns, rate(s.full_cache_rate), s.filler_turns,
        rate(s.filler_rate), s.fallback_turns, rate(s.fallback_rate), s.fallback_voice_turns,
        rate(s.fallback_voice_rate), s.apology_turns, rate(s.apology_rate), s.responder_failures,
        s.synthesis_failures, lat(s.time_to_first_audio.p50), lat(s.time_to_first_audio.p95),
        lat(s.time_to_first_audio.p99), lat(s.time_to_answer.p50), lat(s.time_to_answer.p95),
        lat(s.time_to_answer.p99), lat(s.ai.p50), lat(s.ai.p95), lat(s.tts.p50), lat(s.tts.p95),
        s.chars_live, s.chars_cached, round(s.cost_saved, 6),
    ]


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for biz, s in report.totals.items():
        w.writerow(_csv_row("total", biz, "", "", "", s))
    for r in report.arms:
        w.writerow(_csv_row("arm", r.business, r.arm, "", "", r.stats))
    for r in report.days:
        w.writerow(_csv_row("day", r.business, "", r.day.isoformat(), "", r.stats))
    for host, s in report.by_host.items():
        w.writerow(_csv_row("host", "", "", "", host, s))
    return buf.getvalue()


def render(report: Report, fmt: str, *, wide: bool = False) -> str:
    """Render ``report`` as one of :data:`FORMATS`; ValueError for anything else."""
    if fmt == "table":
        return render_table(report, wide=wide)
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
