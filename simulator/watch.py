"""What the server and its host did over a load run, window by window.

A run's percentiles say *whether* callers waited; the windows say *when*, and beside what: every
``interval_s`` the :class:`Watcher` scrapes the server's ``/metrics`` (requests in flight, the
webhook-time histogram per endpoint) and reads the host's ``/proc/stat`` (busy and stolen CPU), and
:func:`window` turns two readings into one row -- requests a second and p95 time per endpoint,
requests in flight at the end, the host's busy / stolen shares. A stall that starts with a burst of
steal, or with the thread pools filling up, shows as such.

The p95 of a window is read off the histogram's buckets (the upper bound of the bucket the 95th
percentile falls in: an upper bound, as coarse as ``app.metrics.WEBHOOK_BUCKETS``). Thread-safe:
one thread samples, :meth:`Watcher.windows` copies under a lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from simulator.support import host_cpu_shares, host_cpu_ticks, http_client

ENDPOINTS = ("voice.partial", "voice.process", "voice.tts_ready", "voice.incoming", "voice.status")


@dataclass(frozen=True)
class Reading:
    """One scrape: seconds since the watcher started, the host's CPU ticks, requests in flight, and each
    endpoint's cumulative histogram buckets ``{endpoint: [(le, count), ...]}`` (``le`` ascending, +Inf last)."""

    t_s: float
    host: Mapping[str, int]
    in_flight: float | None
    buckets: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)


def parse(text: str) -> tuple[float | None, dict[str, list[tuple[float, float]]]]:
    """(requests in flight, cumulative buckets per endpoint) from a ``/metrics`` exposition text."""
    in_flight = None
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "warmline_webhooks_in_flight":
                in_flight = s.value
            elif s.name == "warmline_webhook_seconds_bucket":
                buckets.setdefault(s.labels["endpoint"], []).append((float(s.labels["le"]), s.value))
    return in_flight, {e: sorted(b) for e, b in buckets.items()}


def quantile(before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of the observations between two cumulative bucket readings (the upper bound of
    its bucket; ``inf`` past the last finite one), or None when nothing was observed in between."""
    prior = dict(before)
    counts = [(le, n - prior.get(le, 0.0)) for le, n in after]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    for le, n in counts:
        if n >= q * total:
            return le
    return math.inf


def window(a: Reading, b: Reading) -> dict[str, Any]:
    """One row from two consecutive readings: seconds, host CPU shares, requests in flight at ``b``,
    and per endpoint the requests (``n``, and a second) and the p95 of their time (None: none)."""
    span = max(1e-9, b.t_s - a.t_s)
    endpoints = {}
    for endpoint in ENDPOINTS:
        after = b.buckets.get(endpoint) or []
        before = a.buckets.get(endpoint) or []
        n = (after[-1][1] if after else 0.0) - (before[-1][1] if before else 0.0)
        endpoints[endpoint] = {"n": int(n), "per_s": round(n / span, 1), "p95_s": quantile(before, after, 0.95)}
    return {"t_s": round(b.t_s, 1), "host_cpu": host_cpu_shares(dict(a.host), dict(b.host)),
            "in_flight": b.in_flight, "endpoints": endpoints}


class Watcher:
    """Scrapes ``metrics_url`` and ``/proc/stat`` every ``interval_s`` on a thread of its own until
    :meth:`stop`. A failed scrape skips its window (the run goes on). ``fetch`` (the /metrics text),
    ``host`` (the host's CPU ticks) and ``clock`` are injectable for tests."""

    def __init__(self, metrics_url: str, interval_s: float = 5.0, *,
                 fetch: Callable[[str], str] | None = None, host: Callable[[], Mapping[str, int]] = host_cpu_ticks,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics_url = metrics_url
        self.interval_s = interval_s
        self._fetch = fetch or _http_get
        self._host = host
        self._clock = clock
        self._t0 = clock()
        self._readings: list[Reading] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed_scrapes = 0

    def sample(self) -> None:
        """Take one reading now (the thread calls this every ``interval_s``)."""
        try:
            in_flight, buckets = parse(self._fetch(self.metrics_url))
        except (httpx.HTTPError, ValueError):
            self.failed_scrapes += 1
            return
        reading = Reading(self._clock() - self._t0, self._host(), in_flight, buckets)
        with self._lock:
            self._readings.append(reading)

    def start(self) -> Watcher:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="watch-metrics", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> list[dict[str, Any]]:
        """Stop sampling (after one last reading) and return the windows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 30)
            self.sample()
        return self.windows()

    def windows(self) -> list[dict[str, Any]]:
        with self._lock:
            readings = list(self._readings)
        return [window(a, b) for a, b in zip(readings, readings[1:])]


def _http_get(url: str) -> str:
    with http_client(timeout=10.0) as client:  # the shared TLS context: no CA bundle loaded per scrape
        response = client.get(url)
    response.raise_for_status()
    return response.text


def worst(windows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The most telling figures over the windows: the largest p95 of ``process`` and of partial results,
    the most requests in flight, the most stolen CPU (None without a window)."""
    if not windows:
        return None

    def top(values: Sequence[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    return {
        "process_p95_s": top([w["endpoints"]["voice.process"]["p95_s"] for w in windows]),
        "partial_p95_s": top([w["endpoints"]["voice.partial"]["p95_s"] for w in windows]),
        "in_flight": top([w["in_flight"] for w in windows]),
        "steal": top([(w["host_cpu"] or {}).get("steal") for w in windows]),
    }


__all__ = ["ENDPOINTS", "Reading", "Watcher", "parse", "quantile", "window", "worst"]
