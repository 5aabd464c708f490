"""Load mode: N concurrent simulated calls for M minutes; errors and latency percentiles.

    python -m simulator load --calls 200 --minutes 1                 # starts its own server
    python -m simulator load --calls 50 --minutes 2 --url http://127.0.0.1:8000 --token T

``--calls`` caller threads each place calls one after another (a fresh CallSid each time) until
``--minutes`` have passed; calls in progress at the deadline are finished, so the run ends
within the deadline plus one call (each call is also bounded by the simulator's own limits).
Thread *i* starts after ``i x ramp / calls`` seconds, so the callers do not all ring at once.

Scripts (seeded): FAQ questions to the sample business -- hours, location and parking, price --
and bookings with a name and a day and time drawn from small pools, so early bookings need live
synthesis and later ones are mostly cache hits. Without ``--url`` the command starts gunicorn
with the embedded defaults (Piper, FAQ responder, ``demo`` business) after warming its fixed
phrases, and also reports the server's turn log (outcomes, fallbacks) and its CPU time.

Reported: calls completed and how they ended, simulator failures by Twilio error code (an
"error" is any failure; "fatal" ones are Twilio application errors), caller turns, p50 / p95 /
p99 / max of time to first audio, longest silence, time to answer audio and webhook response
time. Thread-safe by construction: each caller thread owns its calls and its HTTP client; the
Twilio media cache is shared (it locks).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from simulator.support import work_dir

NAMES = ("Sam Jones", "Priya Patel", "Liam O'Brien", "Mei Chen", "Ava Smith", "Noah Brown", "Zara Ali",
         "Tom Walker", "Ruby Green", "Jack Wilson", "Isla Moore", "Leo Martin")
WHENS = ("Next Tuesday at 3 pm", "Monday at 10 am", "Friday at 2:30 pm", "tomorrow at 9 am",
         "Thursday at 4 pm", "Wednesday morning")
QUESTIONS = ("Hi, what are your opening hours?", "Where are you located, and is there parking?",
             "How much is a check-up and clean?", "Do you take insurance?")
GOODBYE = "No, that's all. Thanks, bye!"
CLIENT_KEEPALIVE_S = 2.0
"""Idle keep-alive connections are dropped after this (gunicorn closes them after 5 s)."""


def script_for(rng: random.Random) -> tuple[str, ...]:
    """One caller's lines: one or two questions, then a booking (60 %) or a goodbye."""
    lines = rng.sample(QUESTIONS, rng.choice((1, 2)))
    if rng.random() < 0.6:
        return (*lines, "I'd like to book an appointment.", f"It's {rng.choice(NAMES)}.",
                f"{rng.choice(WHENS)}, please.")
    return (*lines, GOODBYE)


@dataclass(frozen=True)
class LoadConfig:
    """Knobs of a load run. ``url=None`` starts a server with the embedded defaults."""

    calls: int = 200
    minutes: float = 1.0
    url: str | None = None
    business: str = "demo"
    token: str = "load-twilio-auth-token"
    speed: float = 1.0
    ramp_s: float = 10.0
    rtt_ms: float = 80.0
    media_fetch_ms: float = 120.0
    workers: int = 2
    threads: int = 8
    seed: int = 11
    data_dir: Path | None = None  # own server only: keep its data, turn log and gunicorn log here


def pct(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50 / p95 / p99 / max (3 decimals) and the count of ``values``."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": len(values), "p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "max": round(float(max(values)), 3)}


def run_load(config: LoadConfig, out: Any = None) -> dict[str, Any]:
    """Run the load (see the module docstring); returns the summary."""
    from app.business import load_businesses
    from app.config import load_settings
    from simulator.bench import answer_times, filler_keys, proc_cpu_s, read_events, vm_hwm_mb
    from simulator.demo import faq_fixed_phrases, start_server, warm
    from simulator.twilio_client import CallConfig, Knobs, MediaCache, run_call

    out = out or sys.stdout
    tmp = None
    server = None
    data_dir: Path | None = None
    base_url = config.url
    try:
        if base_url is None:
            data_dir, tmp = work_dir(config.data_dir, "warmline-load-")
            print("warming the fixed phrases ...", file=out, flush=True)
            warm({"env": "testing", "data_dir": data_dir, "twilio_auth_token": config.token},
                 extra=faq_fixed_phrases())
            server = start_server(data_dir, {"WARMLINE_TWILIO_AUTH_TOKEN": config.token}, workers=config.workers,
                                  threads=config.threads)
            base_url = server.base_url
        business = load_businesses(load_settings(environ={}).businesses).get(config.business)
        keys, texts = filler_keys(business) if business is not None else (set(), set())
        pids = [server.proc.pid, *server.worker_pids()] if server is not None else []
        cpu_before = sum(proc_cpu_s(p) for p in pids)
        knobs = Knobs(network_rtt_ms=config.rtt_ms, media_fetch_ms=config.media_fetch_ms)
        cache = MediaCache()
        lock = threading.Lock()
        results: list[Any] = []
        crashes: list[str] = []
        started = time.monotonic()
        deadline = started + config.minutes * 60
        print(f"{config.calls} concurrent callers for {config.minutes:g} min against {base_url} "
              f"(ramp {config.ramp_s:g} s, clock {config.speed:g}x) ...", file=out, flush=True)

        def caller(i: int) -> None:
            rng = random.Random(f"{config.seed}|{i}")
            time.sleep(i * config.ramp_s / max(1, config.calls))
            # Keep-alive shorter than gunicorn's 5 s, so a request never races the server closing an idle
            # connection (an artifact of reusing a client between a call's webhooks, not a server error).
            with httpx.Client(trust_env=False, limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_S)) as client:
                while time.monotonic() < deadline:
                    call = CallConfig(base_url=base_url, business_id=config.business, auth_token=config.token,
                                      script=script_for(rng), knobs=knobs, speed=config.speed, media_cache=cache)
                    try:
                        result = run_call(call, client=client)
                    except Exception as exc:  # noqa: BLE001 - a simulator crash is counted and reported as an error
                        with lock:
                            crashes.append(f"{type(exc).__name__}: {exc}")
                        return
                    with lock:
                        results.append(result)

        threads = [threading.Thread(target=caller, args=(i,), name=f"caller-{i}", daemon=True)
                   for i in range(config.calls)]
        for t in threads:
            t.start()
        hard_stop = deadline + 300
        for t in threads:
            t.join(max(0.0, hard_stop - time.monotonic()))
        stuck = sum(1 for t in threads if t.is_alive())
        wall = time.monotonic() - started
        cpu = sum(proc_cpu_s(p) for p in pids) - cpu_before if pids else None
        rss = [round(vm_hwm_mb(p), 1) for p in server.worker_pids()] if server is not None else []

        first, silence, answer, server_s = [], [], [], []
        failures: Counter[str] = Counter()
        fatal = 0
        ended: Counter[str] = Counter()
        turns = 0
        with lock:
            done = list(results)
        for result in done:
            ended[result.ended_by] += 1
            for f in result.failures:
                failures[f"{f.code} {f.where}: {f.message[:60]}"] += 1
                fatal += f.fatal
            answers = answer_times(result, keys, texts) if keys else [t.time_to_answer_audio_s for t in result.turns]
            for turn, to_answer in zip(result.turns, answers):
                turns += 1
                if turn.time_to_first_audio_s is not None:
                    first.append(turn.time_to_first_audio_s)
                silence.append(turn.longest_silence_s)
                if to_answer is not None:
                    answer.append(to_answer)
            server_s += [e.detail["server_s"] for e in result.events
                         if e.kind == "webhook" and e.detail.get("server_s") is not None]
        summary: dict[str, Any] = {
            "config": {**config.__dict__, "data_dir": None if config.data_dir is None else str(config.data_dir)},
            "machine": {"nproc": os.cpu_count(), "loadavg_end": list(os.getloadavg())},
            "wall_s": round(wall, 1),
            "calls_completed": len(done),
            "ended_by": dict(ended),
            "errors": sum(failures.values()) + len(crashes) + stuck,
            "fatal": fatal,
            "failures": dict(failures.most_common(20)),
            "crashes": crashes[:20],
            "stuck_callers": stuck,
            "caller_turns": turns,
            "webhooks": len(server_s),
            "webhooks_per_s": round(len(server_s) / wall, 1) if wall else None,
            "time_to_first_audio_s": pct(first),
            "longest_silence_s": pct(silence),
            "time_to_answer_audio_s": pct(answer),
            "webhook_response_s": pct(server_s),
            "server_cpu_s": None if cpu is None else round(cpu, 2),
            "peak_rss_mb_per_worker": rss,
        }
        if data_dir is not None:
            events = [e for e in read_events(data_dir) if e.get("turn") is not None]
            summary["server_turn_events"] = len(events)
            summary["outcomes"] = dict(Counter(e.get("outcome") for e in events))
            fallbacks = sum(1 for e in events if e.get("fallback"))
            summary["fallback_rate"] = round(fallbacks / len(events), 4) if events else None
            summary["server_log_errors"] = server.log_tail(200_000).count("Traceback") if server is not None else None
        return summary
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        (f"calls completed {s['calls_completed']} in {s['wall_s']:.0f} s ({s['ended_by']}); "
         f"caller turns {s['caller_turns']}; webhooks {s['webhooks']} ({s['webhooks_per_s']}/s)"),
        (f"errors {s['errors']} (fatal {s['fatal']}, simulator crashes {len(s['crashes'])}, "
         f"stuck callers {s['stuck_callers']})"),
    ]
    lines += [f"  {n} x {kind}" for kind, n in s["failures"].items()]
    lines += [f"  crash: {c}" for c in s["crashes"]]
    lines.append(f"{'':<24} {'n':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}  (s)")
    for key, name in (("time_to_first_audio_s", "time to first audio"), ("longest_silence_s", "longest silence"),
                      ("time_to_answer_audio_s", "time to answer audio"), ("webhook_response_s", "webhook response")):
        p = s[key]
        cells = " ".join(f"{'-' if p[q] is None else format(p[q], '.3f'):>7}" for q in ("p50", "p95", "p99", "max"))
        lines.append(f"{name:<24} {p['n']:>6} {cells}")
    if "outcomes" in s:
        lines.append(f"server: {s['server_turn_events']} turn events {s['outcomes']}, fallback rate "
                     f"{s['fallback_rate']}, tracebacks in the log {s['server_log_errors']}")
    if s["server_cpu_s"] is not None:
        lines.append(f"server CPU {s['server_cpu_s']} s; peak RSS per worker {s['peak_rss_mb_per_worker']} MB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    d = LoadConfig()
    p = argparse.ArgumentParser(prog="python -m simulator load", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=d.calls, help="concurrent callers")
    p.add_argument("--minutes", type=float, default=d.minutes, help="how long to keep placing calls")
    p.add_argument("--url", help="a running server (default: start one with the embedded defaults)")
    p.add_argument("--business", default=d.business)
    p.add_argument("--token", default=None, help="Twilio auth token of the server (with --url)")
    p.add_argument("--speed", type=float, default=d.speed, help="simulated clock speed (1 = real time)")
    p.add_argument("--ramp-s", type=float, default=d.ramp_s, help="spread the callers' first calls over this")
    p.add_argument("--rtt-ms", type=float, default=d.rtt_ms)
    p.add_argument("--media-fetch-ms", type=float, default=d.media_fetch_ms)
    p.add_argument("--workers", type=int, default=d.workers, help="gunicorn workers (own server only)")
    p.add_argument("--threads", type=int, default=d.threads, help="gunicorn threads per worker (own server only)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--data-dir", type=Path, help="own server only: keep its data dir (turn log, gunicorn log) here")
    p.add_argument("--json", type=Path, help="write the summary as JSON here")
    a = p.parse_args(argv)
    if a.calls < 1 or not a.minutes > 0 or not a.speed > 0:
        p.error("--calls, --minutes and --speed must be positive")
    if a.token:
        token = a.token
    elif a.url:  # someone else's server: sign as it expects
        token = os.environ.get("WARMLINE_TWILIO_AUTH_TOKEN") or "dev-twilio-auth-token"
    else:  # our own server gets our token
        token = d.token
    config = LoadConfig(calls=a.calls, minutes=a.minutes, url=a.url, business=a.business, token=token, speed=a.speed,
                        ramp_s=a.ramp_s, rtt_ms=a.rtt_ms, media_fetch_ms=a.media_fetch_ms, workers=a.workers,
                        threads=a.threads, seed=a.seed, data_dir=a.data_dir)
    summary = run_load(config)
    print(format_summary(summary))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0 if summary["errors"] == 0 else 1
