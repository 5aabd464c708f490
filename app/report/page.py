"""The HTML report page: headline numbers, targets, server-rendered inline SVG charts, tables.

No script, no web font, no external request: the stylesheet (``static/report.css``) is inlined
and every chart is an ``<svg>`` with a ``viewBox`` so it scales to the screen. Each plotted
series carries ``data-series`` (and lines ``data-points``) so tests and curious readers can find
the data in the DOM. All text is HTML-escaped. Pure functions of a Report; thread-safe.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from markupsafe import escape

from app.report.compute import Report, Stats
from app.report.render import DASH, money, ms, pct

STATIC = Path(__file__).resolve().parent / "static"
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
ARM_COLOURS = {"warmline": "#0072B2", "control": "#D55E00"}

# Chart geometry in viewBox units (the SVG scales to the column width).
W, H = 480, 220
PAD_L, PAD_R, PAD_T, PAD_B = 44, 10, 12, 34


@functools.cache
def stylesheet() -> str:
    return (STATIC / "report.css").read_text(encoding="utf-8")


def _e(value: object) -> str:
    return str(escape(str(value)))


def _nice_max(value: float, *, ratio: bool = False) -> float:
    """A round axis maximum at or above ``value`` whose quarters are round too."""
    if ratio:
        return next((m for m in (0.1, 0.2, 0.4, 0.8, 1.0) if value <= m), 1.0)
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 2, 4, 5, 8, 10) if value <= m * magnitude)


def line_chart(
    chart_id: str,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    y_max: float,
    y_fmt,
    reference: tuple[float, str] | None = None,
) -> str:
    """An SVG line chart. ``series`` = (name, colour, values); ``None`` values leave a gap.

    ``reference`` = (value, label) draws a dashed target line.
    """
    n = len(x_labels)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(i: int) -> float:
        return PAD_L + (plot_w * (i + 0.5) / n if n else 0)

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - min(v, y_max) / y_max)

    parts = [
        (
            f'<svg class="chart" data-chart="{_e(chart_id)}" viewBox="0 0 {W} {H}" role="img" '
            f'aria-labelledby="{_e(chart_id)}-t" preserveAspectRatio="xMidYMid meet">'
        ),
        f'<title id="{_e(chart_id)}-t">{_e(title)}</title>',
    ]
    for k in range(5):
        v = y_max * k / 4
        yy = y(v)
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(f'<text class="axis" x="{PAD_L - 6}" y="{yy + 4:.1f}" text-anchor="end">{_e(y_fmt(v))}</text>')
    if reference is not None:
        rv, rlabel = reference
        parts.append(
            f'<line class="target" data-target="{rv:g}" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(rv):.1f}" y2="{y(rv):.1f}"/>'
            f'<text class="target-label" x="{W - PAD_R - 2}" y="{y(rv) - 4:.1f}" text-anchor="end">{_e(rlabel)}</text>'
        )
    step = max(1, -(-n // 6))  # at most ~6 date labels
    for i, label in enumerate(x_labels):
        if i % step == 0 or i == n - 1 and n <= 7:
            parts.append(f'<text class="axis" x="{x(i):.1f}" y="{H - 12}" text-anchor="middle">{_e(label)}</text>')
    for name, colour, values in series:
        d, points = [], 0
        pen_up = True
        for i, v in enumerate(values):
            if v is None:
                pen_up = True
                continue
            d.append(f"{'M' if pen_up else 'L'}{x(i):.1f},{y(v):.1f}")
            pen_up = False
            points += 1
        parts.append(
            f'<path class="series" data-series="{_e(name)}" data-points="{points}" d="{" ".join(d)}" '
            f'fill="none" stroke="{colour}" stroke-width="2.5" stroke-linejoin="round"/>'
        )
        for i, v in enumerate(values):
            # Dots on short series, and always on isolated points (a path of one point is invisible).
            lonely = (i == 0 or values[i - 1] is None) and (i == n - 1 or values[i + 1] is None)
            if v is not None and (n <= 14 or lonely):
                parts.append(
                    f'<circle class="dot" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                    f"<title>{_e(name)} {_e(x_labels[i])}: {_e(y_fmt(v))}</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    chart_id: str,
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    y_fmt,
    sections: Sequence[tuple[str, int]] = (),
) -> str:
    """An SVG grouped bar chart: one group per label in ``groups``, one bar per series.

    ``sections`` = (label, number of groups) adds a second row of labels under runs of groups.
    """
    values = [v for _, _, vs in series for v in vs if v is not None]
    y_max = _nice_max(max(values) if values else 1.0)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    n, k = len(groups), max(1, len(series))
    group_w = plot_w / max(1, n)
    bar_w = group_w * 0.8 / k

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - v / y_max)

    parts = [
        (
            f'<svg class="chart" data-chart="{_e(chart_id)}" viewBox="0 0 {W} {H}" role="img" '
            f'aria-labelledby="{_e(chart_id)}-t" preserveAspectRatio="xMidYMid meet">'
        ),
        f'<title id="{_e(chart_id)}-t">{_e(title)}</title>',
    ]
    for step in range(5):
        v = y_max * step / 4
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        parts.append(f'<text class="axis" x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_e(y_fmt(v))}</text>')
    label_y = H - 20 if sections else H - 12
    for gi, label in enumerate(groups):
        cx = PAD_L + group_w * (gi + 0.5)
        parts.append(f'<text class="axis" x="{cx:.1f}" y="{label_y}" text-anchor="middle">{_e(label)}</text>')
    first = 0
    for label, count in sections:
        cx = PAD_L + group_w * (first + count / 2)
        parts.append(f'<text class="section" x="{cx:.1f}" y="{H - 3}" text-anchor="middle">{_e(label)}</text>')
        first += count
    for si, (name, colour, vals) in enumerate(series):
        parts.append(f'<g class="series" data-series="{_e(name)}" fill="{colour}">')
        for gi, v in enumerate(vals):
            if v is None:
                continue
            bx = PAD_L + group_w * gi + group_w * 0.1 + bar_w * si
            parts.append(
                f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{bar_w - 2:.1f}" height="{PAD_T + plot_h - y(v):.1f}" '
                f'data-value="{v:g}"><title>{_e(name)} {_e(groups[gi])}: {_e(y_fmt(v))}</title></rect>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<ul class="legend">' + "".join(
        f'<li><span class="swatch" style="background:{c}"></span>{_e(name)}</li>' for name, c in items
    ) + "</ul>"


def _ms_axis(v: float) -> str:
    return f"{v / 1000:g} s"


def _pct_axis(v: float) -> str:
    return f"{v * 100:g}%"


def _card(label: str, value: str, note: str = "", state: str = "") -> str:
    cls = f"card {state}".strip()
    return (
        f'<div class="{cls}"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>'
        + (f'<div class="note">{_e(note)}</div>' if note else "")
        + "</div>"
    )


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _verdict(passed: bool | None, verdict: str = "no data") -> str:
    if passed is None:
        return f'<span class="badge none">{_e(verdict)}</span>'
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _target_value(value: float | None, unit: str) -> str:
    if value is None:
        return DASH
    return f"{value / 1000:.2f} s" if unit == "ms" else pct(value)


def render_page(
    report: Report, *, business_ids: Sequence[str], json_href: str = "report.json", title: str = "Warmline cache report"
) -> str:
    """The whole page as an HTML string."""
    o = report.overall
    warm = report.overall_by_arm.get("warmline", Stats())
    since = report.since.isoformat() if report.since else ""
    until = report.until.isoformat() if report.until else ""
    days: list[date] = report.day_list
    day_labels = [d.strftime("%b %-d") for d in days]
    target_rows = report.targets
    failing = sum(1 for t in target_rows if t.passed is False)
    judged = sum(1 for t in target_rows if t.passed is not None)

    biz_colours = {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(report.businesses)}
    hit_series, fb_series = [], []
    for b in report.businesses:
        rows = [r for r in report.days if r.business == b]
        hit_series.append((b, biz_colours[b], [r.stats.hit_rate for r in rows]))
        fb_series.append((b, biz_colours[b], [r.stats.fallback_rate for r in rows]))
    fb_values = [v for _, _, vs in fb_series for v in vs if v is not None]
    heard_series = [
        ("<Say>", "#D55E00", [st.fallback_rate for _, st in report.overall_by_day]),
        ("fallback voice", "#E69F00", [st.fallback_voice_rate for _, st in report.overall_by_day]),
        ("apology", "#CC79A7", [st.apology_rate for _, st in report.overall_by_day]),
    ]
    heard_values = [v for _, _, vs in heard_series for v in vs if v is not None]
    legend_biz = [(b if report.totals[b].turns else f"{b} (no turns)", biz_colours[b]) for b in report.businesses]
    arms = [a for a, s in report.overall_by_arm.items() if s.turns] or list(report.overall_by_arm)
    lat_groups = ["p50", "p95", "p99", "p50", "p95", "p99"]
    lat_series = []
    for a in arms:
        s = report.overall_by_arm[a]
        lat_series.append((a, ARM_COLOURS.get(a, "#555"), [
            s.time_to_first_audio.p50, s.time_to_first_audio.p95, s.time_to_first_audio.p99,
            s.time_to_answer.p50, s.time_to_answer.p95, s.time_to_answer.p99,
        ]))

    h: list[str] = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{stylesheet()}</style></head><body><main>",
        f"<header><h1>{_e(title)}</h1><p class=\"range\">{_e(since)} to {_e(until)} (UTC)"
        + (f" &middot; business <b>{_e(report.business_filter)}</b>" if report.business_filter else " &middot; all businesses")
        + "</p>",
        '<form class="filters" method="get" action="">',
        f'<label>From <input type="date" name="since" value="{_e(since)}"></label>',
        f'<label>To <input type="date" name="until" value="{_e(until)}"></label>',
        '<label>Business <select name="business"><option value="">all</option>'
        + "".join(
            f'<option value="{_e(b)}"{" selected" if b == report.business_filter else ""}>{_e(b)}</option>'
            for b in business_ids
        )
        + "</select></label>"
        + '<label>Host <select name="host"><option value="">all</option>'
        + "".join(
            f'<option value="{_e(h)}"{" selected" if h == report.host_filter else ""}>{_e(h)}</option>'
            for h in report.hosts
        )
        + "</select></label><button type=\"submit\">Show</button></form></header>",
        '<section class="cards" id="headline">',
        _card("Sentence cache hit rate", pct(o.hit_rate), f"{o.sentences_hit:,} of {o.sentences:,} sentences"),
        _card("Turns", f"{o.turns:,}", f"{_plural(len(days), 'day')}, "
              f"{_plural(sum(1 for t in report.totals.values() if t.turns), 'business', 'businesses')}"),
        _card("Turns fully from cache", pct(o.full_cache_rate), f"{o.full_cache_turns:,} of {o.turns_with_sentences:,} turns"),
        _card("First audio p95 (Warmline)", _target_value(warm.time_to_first_audio.p95, "ms"),
              f"p50 {_target_value(warm.time_to_first_audio.p50, 'ms')}"),
        _card("Answer audio p95 (Warmline)", _target_value(warm.time_to_answer.p95, "ms"),
              f"p50 {_target_value(warm.time_to_answer.p50, 'ms')}"),
        _card("Heard a <Say>", pct(o.fallback_rate), f"{o.fallback_turns:,} of {o.turns:,} turns",
              "bad" if o.fallback_turns else ""),
        _card("Fallback voice", pct(o.fallback_voice_rate), f"{o.fallback_voice_turns:,} of {o.turns:,} turns",
              "bad" if o.fallback_voice_turns else ""),
        _card("Apologies", pct(o.apology_rate),
              f"{_plural(o.apology_turns, 'turn')}, {_plural(o.responder_failures, 'responder failure')}",
              "bad" if o.apology_turns else ""),
        _card("TTS cost saved", money(o.cost_saved), f"{o.chars_cached:,} chars cached, {o.chars_live:,} live"),
        _card("Targets met", f"{judged - failing} of {judged}" if judged else DASH,
              "measured on the Warmline arm", "bad" if failing else "good" if judged else ""),
        "</section>",
        (
            '<section><h2>Targets <small>Warmline arm</small></h2><div class="scroll">'
            '<table class="targets"><thead><tr><th>Business</th>'
        ),
    ]
    target_defs = list(dict.fromkeys(t.target for t in target_rows))
    h.append(
        "".join(
            f'<th title="{_e(t.name)}">{_e(t.short or t.name)}<br><span class="goal">{_e(t.describe())}</span></th>'
            for t in target_defs
        )
        + "</tr></thead><tbody>"
    )
    for b in report.businesses:
        cells = {t.target: t for t in target_rows if t.business == b}
        h.append(f"<tr><td>{_e(b)}</td>")
        for target in target_defs:
            t = cells[target]
            h.append(
                f'<td class="num" data-metric="{_e(target.metric)}" '
                f'data-passed="{"" if t.passed is None else str(t.passed).lower()}">'
                f"{_e(_target_value(t.value, target.unit))}<br>{_verdict(t.passed, t.verdict)}</td>"
            )
        h.append("</tr>")
    h.append("</tbody></table></div></section>")
    h += [
        '<section class="charts"><figure><figcaption>Sentence cache hit rate by day</figcaption>',
        line_chart(
            "hit-rate", "Sentence cache hit rate by day", day_labels, hit_series, y_max=1.0, y_fmt=_pct_axis,
            reference=(0.20, "target 20%"),
        ),
        _legend(legend_biz),
        "</figure>",
        "<figure><figcaption>Latency percentiles by arm (all businesses in view)</figcaption>",
        bar_chart(
            "latency", "Latency percentiles by arm", lat_groups, lat_series, y_fmt=_ms_axis,
            sections=(("time to first audio", 3), ("time to answer audio", 3)),
        ),
        _legend([(a, c) for a, c, _ in lat_series]),
        "</figure>",
        "<figure><figcaption>Fallback to &lt;Say&gt; by day</figcaption>",
        line_chart(
            "fallback-rate", "Fallback rate by day", day_labels, fb_series,
            y_max=_nice_max(max(fb_values + [0.05]), ratio=True), y_fmt=_pct_axis, reference=(0.05, "target 5%"),
        ),
        _legend(legend_biz),
        "</figure>",
        "<figure><figcaption>What callers heard instead of the answer, by day (all businesses)</figcaption>",
        line_chart(
            "failures", "<Say>, fallback voice and apology rates by day", day_labels, heard_series,
            y_max=_nice_max(max(heard_values + [0.05]), ratio=True), y_fmt=_pct_axis, reference=(0.05, "target 5%"),
        ),
        _legend([(n, c) for n, c, _ in heard_series]),
        "</figure></section>",
    ]
    h.append(
        '<section><h2>Failures <small>turns by first cause</small></h2><div class="scroll">'
        '<table class="failures"><thead><tr><th>Business</th><th>Cause</th><th>Turns</th></tr></thead><tbody>'
    )
    causes = [(b, c, n) for b, st in report.totals.items() for c, n in st.failures]
    for b, c, n in causes:
        h.append(f'<tr><td>{_e(b)}</td><td>{_e(c)}</td><td class="num">{n:,}</td></tr>')
    if not causes:
        h.append('<tr><td colspan="3">No failures in this window.</td></tr>')
    h.append("</tbody></table></div></section>")
    h.append(
        '<section><h2>By business and arm</h2><div class="scroll"><table class="arms"><thead><tr>'
        "<th>Business</th><th>Arm</th><th>Turns</th><th>Hit rate</th><th>Full cache</th><th>Filler</th>"
        "<th>&lt;Say&gt;</th><th>Fallback voice</th><th>Apology</th><th>First audio p50/p95/p99 ms</th><th>Answer p50/p95/p99 ms</th><th>AI p50/p95 ms</th>"
        "<th>TTS p50/p95 ms</th><th>Chars live</th><th>Chars cached</th><th>Saved</th></tr></thead><tbody>"
    )
    for r in report.arms:
        s = r.stats
        h.append(
            f"<tr><td>{_e(r.business)}</td><td>{_e(r.arm)}</td><td class=\"num\">{s.turns:,}</td>"
            f'<td class="num">{pct(s.hit_rate)}</td><td class="num">{pct(s.full_cache_rate)}</td>'
            f'<td class="num">{pct(s.filler_rate)}</td><td class="num">{pct(s.fallback_rate)}</td>'
            f'<td class="num">{pct(s.fallback_voice_rate)}</td><td class="num">{pct(s.apology_rate)}</td>'
            f'<td class="num">{ms(s.time_to_first_audio.p50)} / {ms(s.time_to_first_audio.p95)} / {ms(s.time_to_first_audio.p99)}</td>'
            f'<td class="num">{ms(s.time_to_answer.p50)} / {ms(s.time_to_answer.p95)} / {ms(s.time_to_answer.p99)}</td>'
            f'<td class="num">{ms(s.ai.p50)} / {ms(s.ai.p95)}</td><td class="num">{ms(s.tts.p50)} / {ms(s.tts.p95)}</td>'
            f'<td class="num">{s.chars_live:,}</td><td class="num">{s.chars_cached:,}</td>'
            f'<td class="num">{_e(money(s.cost_saved))}</td></tr>'
        )
    h.append("</tbody></table></div></section>")
    h.append(
        '<section><h2>Top missed sentences <small>precompute candidates, heard in at least '
        f'{report.min_calls} calls; never a slot value</small></h2><div class="scroll">'
        '<table class="misses"><thead><tr><th>Business</th><th>Misses</th><th>Calls</th><th>Chars</th>'
        "<th>Sentence</th></tr>"
        "</thead><tbody>"
    )
    any_miss = False
    for misses in report.top_misses.values():
        for m in misses:
            any_miss = True
            h.append(
                f'<tr><td>{_e(m.business)}</td><td class="num">{m.count:,}</td><td class="num">{m.calls:,}</td>'
                f'<td class="num">{m.chars:,}</td>'
                f'<td class="text">{_e(m.text)}</td></tr>'
            )
    if not any_miss:
        h.append('<tr><td colspan="5">No missed sentences in this window.</td></tr>')
    h.append("</tbody></table></div></section>")
    h.append(
        f'<footer><p>{report.events_used:,} turn events; skipped {report.lines_corrupt:,} corrupt and '
        f"{report.lines_truncated:,} truncated lines and {report.events_invalid:,} invalid events. "
        f"Cost saved at {_e(money(report.price_per_1k_chars))} per 1,000 characters. Percentiles are "
        "nearest-rank over fixed buckets (10 ms below 1 s); time to first audio and answer audio are measured from the "
        "webhook's arrival; a percentile target on fewer than 20 turns is marked too few turns. "
        f"Hosts: {_e(', '.join(report.hosts) or '-')}. "
        f'JSON: <a href="{_e(json_href)}">report.json</a>.</p></footer>'
    )
    h.append("</main></body></html>")
    return "\n".join(h)
