"""The cache-hit report against hand-computed numbers (tests/fixtures/events, business ``demo``).

Worked by hand, window 2026-11-01..2026-11-03 (turn: arm outcome [sentences] ttfa/tta/ai/tts ms):

    1  warmline instant  [A+ B+]   250 /  250 /  200 /    0   live 0  cached 50
    2  warmline filler   [A+ C-]   300 / 1500 /  800 /  500   live 40 cached 30
    3  warmline filler   [C-]      320 / 1800 /  900 /  600   live 40 cached 0
    4  warmline reprompt []         40 /   40 / null /    0
    5  control  control  [D- B+]  2200 / 2200 / 1000 /  900   live 25 cached 20
    6  warmline fallback [E-]      280 / 8000 / 1200 / 7000   live 35 cached 0
       (2026-11-02: no turns)
    7  warmline instant  [A+]      260 /  260 /  240 /    0   live 0  cached 30
    8  warmline filler   [C- B+]   310 / 1700 /  700 /  650   live 40 cached 20
    9  warmline apology  []        300 / null / null /    0
    10 control  control  [A+]     1100 / 1100 / 1000 /    0   live 0  cached 30
    11 control  fallback [F-]     4200 / 4200 / 1100 / 3000   live 45 cached 0
    12 warmline filler   [D- A+]   290 / 1400 /  600 /  500   live 25 cached 30

Fillers on 2, 3, 6, 8, 9, 12. Sentences 15, hits 8. Turns with sentences 10, all-hit 1, 7, 10.
Say fallbacks 6, 9, 11. Chars live 250, cached 210; at $0.03/1k saved $0.0063.
Misses: C x3 (40 chars), D x2 (25), F x1 (45), E x1 (35) -> order C, D, F, E.
Warmline arm (9 turns): ttfa sorted 40 250 260 280 290 300 300 310 320 -> p50 = x[5] = 290,
p95 = x[ceil(8.55)=9] = 320; tta (8, turn 9 null) 40 250 260 1400 1500 1700 1800 8000 ->
p50 = x[4] = 1400, p95 = x[8] = 8000; ai (7) 200 240 600 700 800 900 1200 -> p50 x[4] = 700,
p95 x[7] = 1200; tts of live turns 500 500 600 650 7000 -> p50 x[3] = 600, p95 x[5] = 7000;
hits 6/11; fallbacks 2/9. Control (3): ttfa 1100 2200 4200 -> p50 2200, p95 4200; hits 2/4.
Day 2026-11-01: 6 turns, hits 4/8, ttfa 40 250 280 300 320 2200 -> p50 280, p95 2200.
Day 2026-11-03: 6 turns, hits 4/7. All 12: ttfa p50 = x[6] = 300, p95 = x[12] = 4200.
Also in the files: one corrupt line, one truncated last line, one JSON object without a
business (invalid), one turn on 2026-10-31 (outside the window).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import numpy as np
import pytest

from app.report.compute import (
    DEFAULT_TARGETS,
    Stats,
    build_report,
    build_report_from_files,
    event_files,
    nearest_rank,
    read_events,
)
from app.report.render import CSV_COLUMNS, render_table
from tests.report_support import FIXTURES, make_app

SINCE, UNTIL = date(2026, 11, 1), date(2026, 11, 3)
FILES = sorted(FIXTURES.glob("*.jsonl"))


def fixture_report(**kw):
    args = {"since": SINCE, "until": UNTIL, "business": None, "price_per_1k_chars": 0.03, "businesses": ["demo", "quiet"]}
    args.update(kw)
    return build_report(read_events(FILES), **args)


@pytest.fixture(scope="module")
def report():
    return fixture_report()


def arm(report, business, name) -> Stats:
    return next(r.stats for r in report.arms if r.business == business and r.arm == name)


def day(report, business, d) -> Stats:
    return next(r.stats for r in report.days if r.business == business and r.day == d)


def test_totals_of_the_business(report):
    s = report.totals["demo"]
    assert (s.turns, s.sentences, s.sentences_hit) == (12, 15, 8)
    assert s.hit_rate == 8 / 15
    assert (s.turns_with_sentences, s.full_cache_turns, s.full_cache_rate) == (10, 3, 3 / 10)
    assert (s.filler_turns, s.filler_rate) == (6, 0.5)
    assert (s.fallback_turns, s.fallback_rate) == (3, 0.25)
    assert (s.chars_live, s.chars_cached) == (250, 210)
    assert s.cost_saved == pytest.approx(0.0063, abs=1e-12)
    assert (s.time_to_first_audio.count, s.time_to_first_audio.p50, s.time_to_first_audio.p95) == (12, 300, 4200)
    assert s.time_to_first_audio.p99 == 4200
    assert report.overall == s  # the only business with turns


def test_per_arm_percentiles_and_rates(report):
    w = arm(report, "demo", "warmline")
    assert (w.turns, w.sentences, w.sentences_hit, w.hit_rate) == (9, 11, 6, 6 / 11)
    assert (w.fallback_turns, w.fallback_rate) == (2, 2 / 9)
    assert (w.time_to_first_audio.count, w.time_to_first_audio.p50, w.time_to_first_audio.p95,
            w.time_to_first_audio.p99) == (9, 290, 320, 320)
    assert (w.time_to_answer.count, w.time_to_answer.p50, w.time_to_answer.p95, w.time_to_answer.p99) == (8, 1400, 8000, 8000)
    assert (w.ai.count, w.ai.p50, w.ai.p95, w.ai.p99) == (7, 700, 1200, None)
    assert (w.tts.count, w.tts.p50, w.tts.p95) == (5, 600, 7000)
    c = arm(report, "demo", "control")
    assert (c.turns, c.hit_rate, c.fallback_rate) == (3, 2 / 4, 1 / 3)
    assert (c.time_to_first_audio.p50, c.time_to_first_audio.p95) == (2200, 4200)
    assert report.overall_by_arm["warmline"] == w


def test_days_include_the_empty_day(report):
    assert report.day_list == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    d1 = day(report, "demo", date(2026, 11, 1))
    assert (d1.turns, d1.sentences_hit, d1.sentences, d1.hit_rate) == (6, 4, 8, 1 / 2)
    assert (d1.time_to_first_audio.p50, d1.time_to_first_audio.p95) == (280, 2200)
    empty = day(report, "demo", date(2026, 11, 2))
    assert empty == Stats()
    assert (empty.turns, empty.hit_rate, empty.fallback_rate, empty.time_to_first_audio.p95) == (0, None, None, None)
    d3 = day(report, "demo", date(2026, 11, 3))
    assert (d3.turns, d3.hit_rate) == (6, 4 / 7)


def test_a_business_without_turns_has_zero_rows(report):
    assert report.businesses == ("demo", "quiet")
    assert report.totals["quiet"] == Stats()
    assert [r.day for r in report.days if r.business == "quiet"] == report.day_list
    assert all(r.stats.turns == 0 for r in report.days if r.business == "quiet")
    assert [(r.arm, r.stats.turns) for r in report.arms if r.business == "quiet"] == [("warmline", 0), ("control", 0)]
    quiet_targets = [t for t in report.targets if t.business == "quiet"]
    assert [(t.value, t.passed) for t in quiet_targets] == [(None, None)] * len(DEFAULT_TARGETS)
    assert report.top_misses["quiet"] == ()


def test_top_misses_in_order(report):
    misses = fixture_report(min_calls=1).top_misses["demo"]
    assert [(m.key[0], m.count, m.chars) for m in misses] == [("c", 3, 40), ("d", 2, 25), ("f", 1, 45), ("e", 1, 35)]
    assert misses[0].text == "We're at 12 Harbour Street, by the ferry."
    assert misses[0].chars_total == 120
    assert [m.key[0] for m in fixture_report(top_misses=2, min_calls=1).top_misses["demo"]] == ["c", "d"]


def test_top_misses_list_only_sentences_heard_in_enough_distinct_calls(report):
    """C was missed in three different calls, D in two: by default (3 calls) only C is listed."""
    assert [(m.key[0], m.count, m.calls) for m in report.top_misses["demo"]] == [("c", 3, 3)]
    assert [m.key[0] for m in fixture_report(min_calls=2).top_misses["demo"]] == ["c", "d"]


def test_bad_lines_are_counted_and_skipped(report):
    assert (report.lines_corrupt, report.lines_truncated, report.events_invalid) == (1, 1, 1)
    assert report.events_used == 12  # the 2026-10-31 turn is outside the window, not an error


def test_targets_pass_and_fail_on_the_warmline_arm(report):
    demo = {t.target.metric: (t.value, t.passed, t.verdict) for t in report.targets if t.business == "demo"}
    assert demo == {
        # 9 and 8 samples: a p95 needs at least 20, so it is shown but not judged.
        "ttfa_p95": (320, None, "too few turns"),
        "tta_p95": (8000, None, "too few turns"),
        "hit_rate": (6 / 11, True, "PASS"),
        "fallback_rate": (2 / 9, False, "FAIL"),
        "fallback_voice_rate": (0.0, True, "PASS"),
        "apology_rate": (1 / 9, False, "FAIL"),  # turn 9
    }


def _turn(i: int, ttfa: int) -> dict:
    return {"ts": "2026-11-05T10:00:00.000Z", "business": "demo", "call": f"CA{i:032x}", "arm": "warmline",
            "outcome": "filler", "sentences": [], "time_to_first_audio_ms": ttfa, "time_to_answer_ms": ttfa}


@pytest.mark.parametrize("n, verdict", [(19, "too few turns"), (20, "FAIL")])
def test_a_percentile_target_is_judged_only_on_enough_turns(n, verdict):
    events = [_turn(i, 300) for i in range(n - 2)] + [_turn(n, 900), _turn(n + 1, 900)]
    r = build_report(events, since=None, until=None, business=None, price_per_1k_chars=0.03)
    (t,) = [t for t in r.targets if t.target.metric == "ttfa_p95"]
    assert (t.value, t.samples, t.verdict) == (900, n, verdict)


def test_window_defaults_to_the_days_seen_and_business_filter():
    r = fixture_report(since=None, until=None)
    assert (r.since, r.until, r.events_used) == (date(2026, 10, 31), date(2026, 11, 3), 13)
    assert len(r.day_list) == 4
    only = fixture_report(business="quiet")
    assert (only.businesses, only.events_used, only.totals["quiet"].turns) == (("quiet",), 0, 0)
    assert only.lines_corrupt == 1  # corrupt lines are counted whatever the filter


def test_dicts_strings_and_bytes_give_the_same_report(report):
    lines = list(read_events(FILES))
    mixed = []
    for i, line in enumerate(lines):
        if i % 3 == 0:
            mixed.append(line)
        elif i % 3 == 1:
            mixed.append(line.decode())
        else:
            try:
                mixed.append(json.loads(line))
            except ValueError:
                mixed.append(line)
    other = build_report(mixed, since=SINCE, until=UNTIL, business=None, price_per_1k_chars=0.03,
                         businesses=["demo", "quiet"])
    assert other == report


@pytest.mark.parametrize(
    "bad",
    [
        {"ts": "2026-11-01T00:00:00Z", "business": "demo", "time_to_first_audio_ms": "300"},
        {"ts": "2026-11-01T00:00:00Z", "business": "demo", "chars_live": 1.5},
        {"ts": "2026-13-01T00:00:00Z", "business": "demo"},
        {"ts": 20261101, "business": "demo"},
        {"ts": "2026-11-01T00:00:00Z", "business": ""},
        {"ts": "2026-11-01T00:00:00Z", "business": "demo", "sentences": [{"text": "no hit flag"}]},
        ["not", "an", "object"],
    ],
)
def test_malformed_events_are_invalid_not_fatal(bad):
    r = build_report([bad, 'NaN\n', '{"ts": "2026-11-01T00:00:00Z", "business": "demo", "ai_ms": NaN}\n'],
                     since=None, until=None, business=None, price_per_1k_chars=0.03)
    assert r.events_used == 0
    assert r.events_invalid + r.lines_corrupt == 3


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([100, 200, 300, 400], 50, 200),
        ([100, 200, 300, 400], 95, 400),
        ([100, 200, 300, 400], 25, 100),
        ([100, 200, 300, 400], 26, 200),
        ([7], 99, 7),
        ([], 50, None),
        (list(range(1, 101)), 95, 95),
        (list(range(100, 0, -1)), 99, 99),
    ],
)
def test_nearest_rank(values, p, expected):
    assert nearest_rank(np.array(values, dtype=np.float32), p) == expected


def test_parallel_fold_equals_serial(report, tmp_path):
    parallel = build_report_from_files(
        FILES, since=SINCE, until=UNTIL, business=None, price_per_1k_chars=0.03,
        businesses=["demo", "quiet"], workers=2, parallel_min_bytes=0,
    )
    assert parallel == report
    assert build_report_from_files(
        [tmp_path / "missing.jsonl"], since=SINCE, until=UNTIL, business=None, price_per_1k_chars=0.03,
    ).events_used == 0


def test_event_files_select_by_name_with_a_day_of_slack(tmp_path):
    for name in ("turns-2026-10-30.jsonl", "turns-2026-10-31.jsonl", "turns-2026-11-04.jsonl",
                 "turns-2026-11-05.jsonl", "shipped-host-b.jsonl", "notes.txt"):
        (tmp_path / name).write_text("")
    names = [p.name for p in event_files(tmp_path, SINCE, UNTIL)]
    assert names == ["shipped-host-b.jsonl", "turns-2026-10-31.jsonl", "turns-2026-11-04.jsonl"]
    assert event_files(tmp_path / "nope", SINCE, UNTIL) == []


def test_table_rendering_mentions_everything(report):
    text = render_table(report)
    assert "Warmline cache report 2026-11-01 .. 2026-11-03" in text
    assert "hit rate (own voice, from cache) 53.3 %" in text
    assert "1 corrupt lines  1 truncated lines  1 invalid events" in text
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 120
    target_rows = [ln for ln in lines if ln.startswith("demo ") and " warmline  <" in ln or " warmline  >" in ln]
    assert [ln.rsplit("  ", 1)[-1].strip() for ln in target_rows if ln.startswith("demo")] == [
        "too few turns", "too few turns", "PASS", "FAIL", "PASS", "FAIL"]
    heard = next(ln for ln in lines if ln.startswith("demo ") and " warmline " in ln and "ms" in ln and "%" in ln)
    assert heard.split() == ["demo", "warmline", "9", "54.5", "%", "22.2", "%", "0.0", "%", "11.1", "%", "66.7", "%",
                             "290", "/", "320", "ms", "1,400", "/", "8,000", "ms"]
    wide = render_table(report, wide=True)
    assert "ttfa p99 ms" in wide and max(len(ln) for ln in wide.splitlines()) > 120


# ---- the CLI -------------------------------------------------------------------------------------

WINDOW = ["--since", "2026-11-01", "--until", "2026-11-03"]


@pytest.fixture()
def runner(tmp_path):
    return make_app(tmp_path).test_cli_runner()


def test_cli_json(runner):
    result = runner.invoke(args=["report", *WINDOW, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["since"], data["until"], data["businesses"]) == ("2026-11-01", "2026-11-03", ["demo", "quiet"])
    assert data["totals"]["demo"]["hit_rate"] == round(8 / 15, 4)  # rounded figures, no float noise
    assert data["totals"]["demo"]["time_to_first_audio"] == {"count": 12, "p50": 300.0, "p95": 4200.0, "p99": 4200.0}
    assert data["quality"] == {"events_used": 12, "lines_corrupt": 1, "lines_truncated": 1, "events_invalid": 1}
    assert [(m["count"], m["calls"]) for m in data["top_misses"]["demo"]] == [(3, 3)]
    assert [(t["business"], t["metric"], t["passed"], t["verdict"]) for t in data["targets"]][:6] == [
        ("demo", "ttfa_p95", None, "too few turns"), ("demo", "tta_p95", None, "too few turns"),
        ("demo", "hit_rate", True, "PASS"), ("demo", "fallback_rate", False, "FAIL"),
        ("demo", "fallback_voice_rate", True, "PASS"), ("demo", "apology_rate", False, "FAIL"),
    ]
    empty_day = [d for d in data["days"] if d["business"] == "demo" and d["day"] == "2026-11-02"]
    assert [(d["turns"], d["hit_rate"]) for d in empty_day] == [(0, None)]


def test_cli_csv(runner):
    result = runner.invoke(args=["report", *WINDOW, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert tuple(rows[0]) == CSV_COLUMNS
    # 2 totals + 2 businesses x 2 arms + 2 businesses x 3 days + this host
    assert [r["section"] for r in rows] == ["total"] * 2 + ["arm"] * 4 + ["day"] * 6 + ["host"]
    demo_total = rows[0]
    assert (demo_total["business"], demo_total["turns"], demo_total["sentences_hit"]) == ("demo", "12", "8")
    assert demo_total["hit_rate"] == "0.5333"  # rounded: no float noise
    assert float(demo_total["cost_saved"]) == pytest.approx(0.0063)
    warm = next(r for r in rows if r["section"] == "arm" and r["business"] == "demo" and r["arm"] == "warmline")
    assert (float(warm["ttfa_p50_ms"]), float(warm["ttfa_p95_ms"]), float(warm["tta_p95_ms"])) == (290, 320, 8000)
    empty = next(r for r in rows if r["section"] == "day" and r["business"] == "demo" and r["day"] == "2026-11-02")
    assert (empty["turns"], empty["hit_rate"], empty["ttfa_p95_ms"]) == ("0", "", "")


def test_cli_table_and_business_filter(runner):
    result = runner.invoke(args=["report", *WINDOW, "--business", "demo"])
    assert result.exit_code == 0, result.output
    assert "business=demo" in result.output
    assert "We're at 12 Harbour Street, by the ferry." in result.output
    assert "quiet" not in result.output
    by_day = result.output.split("By day")[1].split("Top missed")[0]
    assert [ln.split()[0] for ln in by_day.strip().splitlines()[3:]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert max(len(ln) for ln in result.output.splitlines()) <= 120
    wide = runner.invoke(args=["report", *WINDOW, "--business", "demo", "--wide"]).output
    by_day = wide.split("By business and day (every figure)")[1].split("Data quality")[0]
    assert [ln.split()[1] for ln in by_day.strip().splitlines()[2:]] == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_cli_rejects_bad_arguments(runner):
    assert runner.invoke(args=["report", "--business", "nobody"]).exit_code == 2
    assert runner.invoke(args=["report", "--since", "2026-11-05", "--until", "2026-11-01"]).exit_code == 2
    assert runner.invoke(args=["report", "--since", "yesterday"]).exit_code == 2
    assert runner.invoke(args=["report", "--format", "xml"]).exit_code == 2


def test_the_stdlib_parser_gives_the_same_report(report, monkeypatch):
    """orjson is optional: without it the stdlib decoder must produce the identical report."""
    from app.report import compute

    monkeypatch.setattr(compute, "_loads", compute._stdlib_loads)
    assert fixture_report() == report
    bad = build_report(['{"ts": "2026-11-01T00:00:00Z", "business": "demo", "ai_ms": NaN}\n', b"\xff\xfe{}\n"],
                       since=None, until=None, business=None, price_per_1k_chars=0.03)
    assert (bad.lines_corrupt, bad.events_used) == (2, 0)
