"""``simulator capacity``: the harness end to end at a tiny size (real gunicorn, both emulators), and its goal rule."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from simulator.bench import read_events
from simulator.capacity import CapacityConfig, format_report, meets_goals, run_capacity

ROW = {"caller_turns": 100, "answer_p95_s": 2.5, "silence_p95_s": 0.7, "errors": 0, "problem_rate": 0.01}


@pytest.mark.parametrize(("change", "meets"), [
    ({}, True),  # exactly at every goal
    ({"answer_p95_s": 2.51}, False),
    ({"silence_p95_s": 0.71}, False),
    ({"errors": 1}, False),
    ({"problem_rate": 0.011}, False),  # fast answers that were <Say> or apologies do not count as carried
    ({"caller_turns": 0, "answer_p95_s": None, "silence_p95_s": None}, False),
])
def test_meets_goals(change: dict, meets: bool) -> None:
    assert meets_goals({**ROW, **change}) is meets


@pytest.mark.slow
def test_a_tiny_capacity_run_measures_both_parts(tmp_path: Path) -> None:
    config = CapacityConfig(calls=(1, 2), minutes=0.1, ramp_s=0.5, speed=10.0, llm_ms=(0.0, 0.0), workers=1,
                            threads=8, cache_threads=2, cache_seconds=0.5, cache_rounds=1, data_dir=tmp_path)
    result = run_capacity(config, out=io.StringIO(), command="test")

    rows = result["sweep"]["rows"]
    assert [r["calls"] for r in rows] == [1, 2]
    for row in rows:
        assert row["caller_turns"] > 0 and row["errors"] == 0 and row["responder_failures"] == 0
        assert (row["say"], row["apology"], row["unanswered"]) == (0, 0, 0)
        assert row["meets_goals"] == meets_goals(row) and len(row["rss_mb_per_worker"]) == 1
        assert row["cpu_s"] > 0
        # the run watched /metrics in windows: every turn's requests are in them, and none is in flight at the end
        windows = row["windows"]
        assert len(windows) >= 1 and windows[-1]["in_flight"] == 0
        assert sum(w["endpoints"]["voice.process"]["n"] for w in windows) >= row["caller_turns"]
        assert row["worst_window"]["process_p95_s"] is not None
        host = row["host_cpu"]  # the host's CPUs over the steady part: shares of all their time
        assert set(host) == {"busy", "idle", "steal"} and abs(sum(host.values()) - 1) <= 0.003 and host["busy"] > 0
    passing = [r["calls"] for r in rows if r["meets_goals"]]
    assert result["sweep"]["largest_meeting_goals"] == max(passing, default=None)
    assert result["sweep"]["server"] == {"workers": 1, "threads": 8}
    # Each point ran its own server with the Deepgram voice: it made Deepgram clips, none in Piper.
    for n in (1, 2):
        slugs = {p.name for p in (tmp_path / f"calls-{n}" / "cdn" / "tts").glob("*/*")}
        assert "deepgram-aura-2-thalia-en" in slugs and not any(slug.startswith("piper") for slug in slugs)

    cache = result["cache_hit"]
    wl, bare = cache["warmline"], cache["bare"]
    assert wl["requests"] > 0 and bare["requests"] > 0
    assert wl["non_2xx"] == bare["non_2xx"] == 0 and wl["transport_errors"] == bare["transport_errors"] == 0
    assert cache["ratio"] == round(wl["requests_per_s"] / bare["requests_per_s"], 3)
    # Every answer the Warmline side gave was served from cache: no sentence was synthesized live.
    events = [e for e in read_events(tmp_path / "cache-hit" / "warmline") if e.get("turn") is not None]
    assert len(events) >= wl["requests"] and all(s["hit"] for e in events for s in e["sentences"])
    text = format_report(result)
    assert "largest N meeting" in text and f"ratio {cache['ratio']}x" in text
    json.loads(json.dumps(result, allow_nan=False))


STAT_A = "cpu  100 5 50 800 10 1 4 30 0 0\ncpu0 50 2 25 400 5 0 2 15 0 0\nintr 1\n"
STAT_B = "cpu  160 5 70 860 10 2 5 90 7 0\ncpu0 80 2 35 430 5 1 2 45 3 0\nintr 2\n"


def test_host_cpu_shares_count_busy_idle_and_stolen_time_of_all_cores() -> None:
    from simulator.support import host_cpu_shares, host_cpu_ticks

    a, b = host_cpu_ticks(STAT_A), host_cpu_ticks(STAT_B)
    assert a == {"user": 100, "nice": 5, "system": 50, "idle": 800, "iowait": 10, "irq": 1, "softirq": 4, "steal": 30}
    # deltas: user 60, system 20, idle 60, irq 1, softirq 1, steal 60 (guest time, already in user, is not read)
    assert host_cpu_shares(a, b) == {"busy": round(82 / 202, 3), "idle": round(60 / 202, 3),
                                     "steal": round(60 / 202, 3)}
    assert host_cpu_shares({}, b) is None and host_cpu_shares(a, a) is None
    assert host_cpu_ticks("intr 1\n") == {}


def test_the_curve_row_says_how_much_of_the_host_was_busy_and_stolen() -> None:
    from simulator.capacity import TABLE_HEADER, format_row

    row = {"calls": 200, "caller_turns": 700, "answer_p50_s": 1.5, "answer_p95_s": 2.4, "silence_p50_s": 0.4,
           "silence_p95_s": 0.6, "silence_max_s": 1.0, "say": 0, "apology": 0, "other_voice": 0, "unanswered": 0,
           "errors": 0, "cpu_s": 60.0, "cpu_cores": 1.0, "rss_mb_per_worker": [330.0], "meets_goals": True,
           "host_cpu": {"busy": 0.61, "idle": 0.12, "steal": 0.27}}
    cells = [c.strip() for c in format_row(row).strip("|").split("|")]
    header = [c.strip() for c in TABLE_HEADER.splitlines()[0].strip("|").split("|")]
    assert len(cells) == len(header) == len(TABLE_HEADER.splitlines()[1].strip("|").split("|"))
    assert cells[header.index("host CPUs busy / stolen")] == "61% / 27%"
    assert format_row({**row, "host_cpu": None}).count("| - |") == 1


def test_simulated_clients_share_one_tls_context() -> None:
    """httpx builds (and loads the CA bundle into) a TLS context per client: ~35 ms of CPU on the measured machine."""
    from simulator.support import http_client

    with http_client() as a, http_client(timeout=3.0) as b:
        # the point of the helper, read where httpcore keeps it
        assert a._transport._pool._ssl_context is b._transport._pool._ssl_context  # noqa: SLF001
        assert not a._trust_env and not b._trust_env  # noqa: SLF001
