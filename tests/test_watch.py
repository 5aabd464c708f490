"""``simulator.watch``: windows of a run from /metrics scrapes and /proc/stat, on fixed texts (no server)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from app.metrics import WEBHOOK_BUCKETS
from simulator.support import host_cpu_ticks
from simulator.watch import Reading, Watcher, parse, quantile, window, worst

STAT = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\n"


def exposition(observations: dict[str, list[float]], in_flight: float) -> str:
    """The text /metrics would serve after these webhook times (the product's own series definitions)."""
    registry = CollectorRegistry()
    seconds = Histogram("warmline_webhook_seconds", "t", ["endpoint"], buckets=WEBHOOK_BUCKETS, registry=registry)
    gauge = Gauge("warmline_webhooks_in_flight", "n", registry=registry)
    for endpoint, xs in observations.items():
        for x in xs:
            seconds.labels(endpoint).observe(x)
    gauge.set(in_flight)
    return generate_latest(registry).decode()


def test_parse_reads_in_flight_and_cumulative_buckets_per_endpoint() -> None:
    in_flight, buckets = parse(exposition({"voice.process": [0.004, 0.02, 0.3]}, 7))
    assert in_flight == 7
    process = dict(buckets["voice.process"])
    assert process[0.005] == 1 and process[0.025] == 2 and process[0.5] == 3 and process[math.inf] == 3
    assert [le for le, _ in buckets["voice.process"]] == sorted(le for le, _ in buckets["voice.process"])


def test_quantile_is_the_upper_bound_of_the_bucket_the_quantile_falls_in_between_two_readings() -> None:
    before = [(0.01, 10.0), (0.1, 10.0), (1.0, 10.0), (math.inf, 10.0)]
    after = [(0.01, 28.0), (0.1, 29.0), (1.0, 30.0), (math.inf, 30.0)]  # 20 new: 18 <= 10 ms, 1 <= 0.1, 1 <= 1
    assert quantile(before, after, 0.9) == 0.01
    assert quantile(before, after, 0.95) == 0.1
    assert quantile(before, after, 1.0) == 1.0
    assert quantile(after, after, 0.95) is None  # nothing observed in between
    assert quantile([], [(0.01, 0.0), (math.inf, 2.0)], 0.5) == math.inf  # slower than the last finite bucket


def test_a_window_has_rates_p95s_in_flight_and_the_hosts_cpu() -> None:
    a_text = exposition({"voice.partial": [0.004] * 10}, 3)
    b_text = exposition({"voice.partial": [0.004] * 10 + [0.004] * 45 + [0.3] * 5, "voice.process": [0.8] * 4}, 12)
    a = Reading(10.0, host_cpu_ticks(STAT.format(user=100, system=0, idle=100, steal=0)), *parse(a_text))
    b = Reading(15.0, host_cpu_ticks(STAT.format(user=160, system=20, idle=110, steal=10)), *parse(b_text))
    row = window(a, b)
    assert row["t_s"] == 15.0 and row["in_flight"] == 12
    assert row["host_cpu"] == {"busy": 0.8, "idle": 0.1, "steal": 0.1}
    assert row["endpoints"]["voice.partial"] == {"n": 50, "per_s": 10.0, "p95_s": 0.5}  # 50 new, 5 of them 0.3 s
    assert row["endpoints"]["voice.process"] == {"n": 4, "per_s": 0.8, "p95_s": 1.0}
    assert row["endpoints"]["voice.tts_ready"] == {"n": 0, "per_s": 0.0, "p95_s": None}


def test_the_watcher_turns_readings_into_windows_and_skips_a_failed_scrape() -> None:
    texts = iter([exposition({}, 0), "not a metrics text {{", exposition({"voice.process": [0.02] * 10}, 5),
                  exposition({"voice.process": [0.02] * 10 + [2.0] * 10}, 40)])
    now = iter([0.0, 5.0, 10.0, 15.0])
    stats = iter([STAT.format(user=0, system=0, idle=0, steal=0),  # the scrape that fails reads no ticks
                  STAT.format(user=50, system=0, idle=40, steal=10),
                  STAT.format(user=120, system=0, idle=50, steal=30)])
    watcher = Watcher("http://unused/metrics", 5.0, fetch=lambda _url: next(texts),
                      host=lambda: host_cpu_ticks(next(stats)), clock=lambda: next(now))
    for _ in range(4):
        watcher.sample()
    assert watcher.failed_scrapes == 1
    rows = watcher.windows()
    assert [r["t_s"] for r in rows] == [10.0, 15.0]
    assert [r["endpoints"]["voice.process"]["p95_s"] for r in rows] == [0.025, 2.5]
    assert [r["host_cpu"] for r in rows] == [{"busy": 0.5, "idle": 0.4, "steal": 0.1},
                                             {"busy": 0.7, "idle": 0.1, "steal": 0.2}]
    assert worst(rows) == {"process_p95_s": 2.5, "partial_p95_s": None, "in_flight": 40.0, "steal": 0.2}
    assert worst([]) is None
