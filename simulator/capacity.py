"""Capacity of one host: the calls it carries within the latency goals, and what a cache hit costs.

    python -m simulator capacity                       # both parts, ~9 minutes
    python -m simulator capacity --calls 50,100 --minutes 0.5 --no-cache-hit

**The curve** (``run_sweep``). For each N in ``--calls``: a fresh data directory and a real
gunicorn at the project's defaults (gunicorn.conf.py; ``--server-env`` adds settings), the real
OpenAI-compatible responder talking to the LLM emulator (uniform ``--llm-ms``, 500-1500 ms;
it answers like the FAQ responder, so the scripted bookings work) and the real Deepgram provider
talking to the Deepgram emulator (200 ms + 4 ms per character + 0-100 ms; a tone as long as
speech, so its CPU stays out of the server's; the sample business with that voice, in a temp
TOML). Then ``simulator load``: N callers placing calls back to back for ``--minutes`` (starts
spread over ``--ramp-s``; calls in progress at the end are finished, but only turns that start
after the ramp and before the end -- all N callers in a call -- are measured). Per N: p50 / p95 time to
answer audio, p50 / p95 / max longest silence, what the callers heard (<Say>, apologies, fallback
voice, nothing), transport/TwiML failures, CPU of the gunicorn process tree (seconds over the
whole run, and cores used from the end of the ramp to the end) and peak RSS per worker. An N *meets the goals* when p95 time to answer
<= 2.5 s, p95 longest silence <= 0.7 s, no transport/TwiML failure and at most 1 % of turns
with a caller-heard problem; the report names the largest N that does.

**Cache-hit throughput** (``run_cache_hit``). Two gunicorns with the same settings (the
project's defaults): Warmline (FAQ responder, the answers precomputed, so every answer is a cache
hit) and :mod:`simulator.bare_app` (one Flask endpoint that parses the form and returns a constant
TwiML document). One client, ``--cache-threads`` threads (16), each with its own keep-alive
``httpx.Client``, sends signed POSTs back to back: to ``/voice/process`` (a FAQ question on a
call created beforehand; a call takes at most ``TURNS_PER_CALL`` questions) or to ``/bare``.
The two alternate in ``--cache-rounds`` slices of ``--cache-seconds`` each, so drift on a shared
machine hits both. Reported per side: requests/s, latency p50 / p95 / p99 (client-side wall time
of one request), non-2xx responses, and for Warmline the share answered at once (an answer with
a <Gather> and no <Redirect>); then the ratio Warmline / bare (goal >= 0.5, and p95 <= 100 ms).

Everything runs on this machine: the callers and the emulators compete with the server for its
cores. Each run records the load average before and after (``os.getloadavg``). One run per
process (it owns its servers, emulators and threads).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from simulator.load import Emulators, LoadConfig, add_server_arguments, prepare_server, run_load, worst_window_line
from simulator.support import http_client, work_dir

ANSWER_P95_GOAL_S = 2.5
SILENCE_P95_GOAL_S = 0.7
PROBLEM_RATE_GOAL = 0.01
CACHE_RATIO_GOAL = 0.5
CACHE_P95_GOAL_S = 0.100
TURNS_PER_CALL = 6
CACHE_QUESTIONS = ("What are your opening hours?", "Where are you located?", "How much is a check-up?",
                   "Is there parking?")
ACCOUNT_SID = "AC" + "0" * 32


@dataclass(frozen=True)
class CapacityConfig:
    """Knobs of a capacity run (see the module docstring). Times in seconds unless named."""

    calls: tuple[int, ...] = (50, 100, 150, 200, 250)
    minutes: float = 0.75
    ramp_s: float = 10.0
    speed: float = 1.0
    llm_ms: tuple[float, float] = (500.0, 1500.0)
    workers: int | None = None
    threads: int | None = None
    server_env: dict[str, str] = field(default_factory=dict)
    emulator_processes: bool = True  # each emulator in a process of its own (the load's default)
    seed: int = 11
    sweep: bool = True
    cache_hit: bool = True
    cache_threads: int = 16
    cache_seconds: float = 10.0
    cache_rounds: int = 2
    data_dir: Path | None = None  # keep every run's data (turn logs, gunicorn logs) under here

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["calls"] = list(self.calls)
        data["llm_ms"] = list(self.llm_ms)
        data["data_dir"] = None if self.data_dir is None else str(self.data_dir)
        return data


def meets_goals(row: dict[str, Any]) -> bool:
    """p95 answer <= 2.5 s, p95 longest silence <= 0.7 s, no transport failure, <= 1 % caller-heard problems."""
    answer, silence = row["answer_p95_s"], row["silence_p95_s"]
    return (row["caller_turns"] > 0 and answer is not None and answer <= ANSWER_P95_GOAL_S
            and silence is not None and silence <= SILENCE_P95_GOAL_S and row["errors"] == 0
            and row["problem_rate"] <= PROBLEM_RATE_GOAL)


def curve_row(n: int, s: dict[str, Any]) -> dict[str, Any]:
    """One row of the curve from a :func:`simulator.load.run_load` summary."""
    heard = s["caller_heard"] or {}
    row = {
        "calls": n,
        "calls_completed": s["calls_completed"],
        "caller_turns": s["caller_turns"],
        "answer_p50_s": s["time_to_answer_audio_s"]["p50"],
        "answer_p95_s": s["time_to_answer_audio_s"]["p95"],
        "silence_p50_s": s["longest_silence_s"]["p50"],
        "silence_p95_s": s["longest_silence_s"]["p95"],
        "silence_max_s": s["longest_silence_s"]["max"],
        "say": heard.get("say", 0),
        "apology": heard.get("apology", 0),
        "other_voice": heard.get("other_voice", 0),
        "unanswered": heard.get("unanswered", 0),
        "problem_rate": s["problem_rate"],
        "responder_failures": s["responder_failures"],
        "errors": s["errors"],
        "webhook_p95_s": s["webhook_response_s"]["p95"],
        "cpu_s": s["server_cpu_s"],
        "cpu_cores": s["server_cpu_cores_steady"],
        "rss_mb_per_worker": s["peak_rss_mb_per_worker"],
        "outcomes": s.get("outcomes"),
        "tracebacks": s.get("server_log_errors"),
        "wall_s": s["wall_s"],
        "loadavg_end": s["machine"]["loadavg_end"],
        "host_cpu": s["machine"].get("host_cpu_steady"),
        "worst_window": s.get("worst_window"),
        "windows": s.get("windows") or [],
    }
    row["meets_goals"] = meets_goals(row)
    return row


def run_sweep(config: CapacityConfig, out: Any = None) -> dict[str, Any]:
    """The curve: one ``simulator load`` run per N (LLM emulator + Deepgram emulator, project defaults)."""
    out = out or sys.stdout
    rows = []
    server = None
    for n in config.calls:
        print(f"--- {n} concurrent callers ({time.strftime('%H:%M:%S')}, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})", file=out, flush=True)
        load = LoadConfig(calls=n, minutes=config.minutes, ramp_s=config.ramp_s, speed=config.speed,
                          workers=config.workers, threads=config.threads, seed=config.seed, responder="llm",
                          llm_ms=config.llm_ms, voice="deepgram", server_env=dict(config.server_env), steady_only=True,
                          emulator_processes=config.emulator_processes,
                          data_dir=None if config.data_dir is None else config.data_dir / f"calls-{n}")
        summary = run_load(load, out=out)
        server = summary["server"]
        row = curve_row(n, summary)
        rows.append(row)
        print(format_row(row), file=out, flush=True)
        if row["worst_window"]:
            print(worst_window_line(row["worst_window"]), file=out, flush=True)
    passing = [r["calls"] for r in rows if r["meets_goals"]]
    return {"rows": rows, "server": server, "largest_meeting_goals": max(passing, default=None),
            "goals": {"answer_p95_s": ANSWER_P95_GOAL_S, "silence_p95_s": SILENCE_P95_GOAL_S,
                      "problem_rate": PROBLEM_RATE_GOAL, "errors": 0}}


def _q(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 4), "p95": round(float(p95), 4), "p99": round(float(p99), 4)}


def _form(call_sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "From": "+15551230000", "To": "+15005550006",
            "CallStatus": status, "Direction": "inbound", "ApiVersion": "2010-04-01", **extra}


class _Side:
    """What one side (Warmline or bare) measured. Thread-safe (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.non_2xx = 0
        self.instant = 0
        self.transport_errors = 0
        self.inline_setups = 0  # calls the client had to create inside a measured slice (Warmline only)
        self.wall_s = 0.0

    def summary(self) -> dict[str, Any]:
        n = len(self.latencies)
        return {"requests": n, "wall_s": round(self.wall_s, 2),
                "requests_per_s": round(n / self.wall_s, 1) if self.wall_s else None,
                "latency_s": _q(self.latencies), "non_2xx": self.non_2xx, "transport_errors": self.transport_errors,
                "instant_share": round(self.instant / n, 4) if n else None, "inline_call_setups": self.inline_setups}


def _is_instant(body: str) -> bool:
    return "<Gather" in body and "<Redirect" not in body


def run_cache_hit(config: CapacityConfig, out: Any = None) -> dict[str, Any]:
    """Cache-hit ``process`` throughput beside a bare Flask endpoint, same gunicorn settings, same client."""
    from twilio.request_validator import RequestValidator

    from app.ids import new_call_sid
    from simulator.server import GunicornServer

    out = out or sys.stdout
    base, tmp = work_dir(None if config.data_dir is None else config.data_dir / "cache-hit", "warmline-cachehit-")
    load = LoadConfig(calls=config.cache_threads, workers=config.workers, threads=config.threads, responder="faq",
                      voice="deepgram", server_env=dict(config.server_env), seed=config.seed,
                      emulator_processes=config.emulator_processes)
    emulators = Emulators()
    warmline = bare = None
    try:
        warmline, _toml = prepare_server(load, base / "warmline", emulators, out)
        bare = GunicornServer(base / "bare", env={**config.server_env}, workers=config.workers, threads=config.threads,
                              app="simulator.bare_app:app").start(timeout=60.0)
        validator = RequestValidator(load.token)
        sides = {"warmline": _Side(), "bare": _Side()}
        loadavg_start = list(os.getloadavg())

        def post(client: httpx.Client, url: str, form: dict[str, str]) -> httpx.Response:
            return client.post(url, data=form, headers={"X-Twilio-Signature": validator.compute_signature(url, form)})

        def new_calls(client: httpx.Client, count: int) -> list[str]:
            sids = []
            for _ in range(count):
                sid = new_call_sid()
                post(client, f"{warmline.base_url}/voice/incoming/{load.business}", _form(sid, "ringing"))
                sids.append(sid)
            return sids

        clients = [http_client(timeout=15.0) for _ in range(config.cache_threads)]
        calls: list[list[str]] = [[] for _ in clients]
        turns = [0] * len(clients)

        def slice_(side_name: str, seconds: float) -> None:
            side = sides[side_name]
            stop_at = time.monotonic() + seconds

            def worker(i: int) -> None:
                client = clients[i]
                n = 0
                while time.monotonic() < stop_at:
                    if side_name == "warmline":
                        if not calls[i] or turns[i] >= TURNS_PER_CALL:
                            calls[i] = calls[i][1:] if calls[i] else []
                            turns[i] = 0
                            if not calls[i]:  # ran out of prepared calls: make one now (counted apart)
                                calls[i] = new_calls(client, 1)
                                with side.lock:
                                    side.inline_setups += 1
                        sid = calls[i][0]
                        turns[i] += 1
                        url = f"{warmline.base_url}/voice/process/{load.business}/{sid}"
                        form = _form(sid, "in-progress", SpeechResult=CACHE_QUESTIONS[n % len(CACHE_QUESTIONS)],
                                     Confidence="0.9")
                    else:
                        sid = "CA" + "0" * 32
                        url = f"{bare.base_url}/bare"
                        form = _form(sid, "in-progress", SpeechResult=CACHE_QUESTIONS[n % len(CACHE_QUESTIONS)],
                                     Confidence="0.9")
                    n += 1
                    started = time.perf_counter()
                    try:
                        response = post(client, url, form)
                    except httpx.TransportError:
                        with side.lock:
                            side.transport_errors += 1
                        continue
                    elapsed = time.perf_counter() - started
                    with side.lock:
                        side.latencies.append(elapsed)
                        side.non_2xx += not response.is_success
                        side.instant += _is_instant(response.text)

            threads = [threading.Thread(target=worker, args=(i,), name=f"cache-{side_name}-{i}", daemon=True)
                       for i in range(len(clients))]
            began = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            side.wall_s += time.monotonic() - began

        def prepare(per_thread: int) -> None:
            def make(i: int) -> None:
                calls[i] = calls[i] + new_calls(clients[i], per_thread)

            threads = [threading.Thread(target=make, args=(i,), daemon=True) for i in range(len(clients))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        print(f"cache hits: {config.cache_threads} client threads, {config.cache_rounds} x "
              f"({config.cache_seconds:g} s Warmline process, {config.cache_seconds:g} s bare endpoint)",
              file=out, flush=True)
        slice_("warmline", min(2.0, config.cache_seconds))  # warm both sides up (connections, imports); not counted
        slice_("bare", min(2.0, config.cache_seconds))
        # Enough prepared calls for twice the warm-up's rate over a slice (more are made inline, and counted).
        rate = len(sides["warmline"].latencies) / sides["warmline"].wall_s if sides["warmline"].wall_s else 100.0
        per_thread = math.ceil(max(50.0, 2 * rate) * config.cache_seconds / TURNS_PER_CALL / config.cache_threads)
        sides = {"warmline": _Side(), "bare": _Side()}
        for _ in range(config.cache_rounds):
            prepare(per_thread)
            slice_("warmline", config.cache_seconds)
            slice_("bare", config.cache_seconds)
        for client in clients:
            client.close()
        wl, bs = sides["warmline"].summary(), sides["bare"].summary()
        ratio = (round(wl["requests_per_s"] / bs["requests_per_s"], 3)
                 if wl["requests_per_s"] and bs["requests_per_s"] else None)
        p95 = wl["latency_s"]["p95"]
        return {"warmline": wl, "bare": bs, "ratio": ratio, "server": {"workers": warmline.workers,
                                                                        "threads": warmline.threads},
                "client_threads": config.cache_threads, "loadavg_start": loadavg_start,
                "loadavg_end": list(os.getloadavg()),
                "goals": {"ratio": CACHE_RATIO_GOAL, "p95_s": CACHE_P95_GOAL_S},
                "meets_goals": bool(ratio is not None and ratio >= CACHE_RATIO_GOAL and p95 is not None
                                    and p95 <= CACHE_P95_GOAL_S and wl["instant_share"] == 1.0
                                    and wl["non_2xx"] == 0 and wl["transport_errors"] == 0)}
    finally:
        for server in (warmline, bare):
            if server is not None:
                server.stop()
        emulators.stop()
        if tmp is not None:
            tmp.cleanup()


def format_row(r: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    rss = "/".join(f"{mb:.0f}" for mb in r["rss_mb_per_worker"])
    host = r.get("host_cpu")
    host_cpu = f"{host['busy']:.0%} / {host['steal']:.0%}" if host else "-"
    return (f"| {r['calls']} | {r['caller_turns']} | {f(r['answer_p50_s'])} / {f(r['answer_p95_s'])} | "
            f"{f(r['silence_p50_s'])} / {f(r['silence_p95_s'])} / {f(r['silence_max_s'])} | "
            f"{r['say']} / {r['apology']} / {r['other_voice']} / {r['unanswered']} | {r['errors']} | "
            f"{f(r['cpu_s'])} ({f(r['cpu_cores'])}) | {host_cpu} | {rss} | {'yes' if r['meets_goals'] else 'no'} |")


TABLE_HEADER = ("| calls | caller turns | answer p50 / p95 (s) | longest silence p50 / p95 / max (s) | "
                "<Say> / apology / other voice / unanswered | transport failures | server CPU s (cores) | "
                "host CPUs busy / stolen | peak RSS per worker (MB) | meets goals |\n"
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")


def format_report(result: dict[str, Any]) -> str:
    lines = [f"load average at start {result['loadavg_start']}, at end {result['loadavg_end']} "
             f"({result['machine']['nproc']} cores, shared)", f"server settings {result.get('server_settings')}"]
    sweep = result.get("sweep")
    if sweep:
        srv = sweep["server"] or {}
        lines += ["", f"capacity curve (gunicorn {srv.get('workers')} workers x {srv.get('threads')} threads, "
                      "LLM emulator + Deepgram emulator):", TABLE_HEADER]
        lines += [format_row(r) for r in sweep["rows"]]
        largest = sweep["largest_meeting_goals"]
        lines.append(f"largest N meeting p95 answer <= {ANSWER_P95_GOAL_S} s, p95 longest silence <= "
                     f"{SILENCE_P95_GOAL_S} s, no failures, <= {PROBLEM_RATE_GOAL:.0%} problems: "
                     f"{largest if largest is not None else 'none of ' + str([r['calls'] for r in sweep['rows']])}")
    cache = result.get("cache_hit")
    if cache:
        wl, bs = cache["warmline"], cache["bare"]
        lines += ["", f"cache-hit throughput ({cache['client_threads']} client threads, gunicorn "
                      f"{cache['server']['workers']} x {cache['server']['threads']}):"]
        for name, s in (("Warmline process (all cached)", wl), ("bare Flask endpoint", bs)):
            q = s["latency_s"]
            lines.append(f"  {name:<30} {s['requests_per_s']} req/s  p50 {_ms(q['p50'])}  p95 {_ms(q['p95'])}  "
                         f"p99 {_ms(q['p99'])}  ({s['requests']} requests, {s['non_2xx']} non-2xx, "
                         f"{s['transport_errors']} transport errors)")
        lines.append(f"  answered at once: {wl['instant_share']:.1%}; calls set up inline {wl['inline_call_setups']}")
        lines.append(f"  ratio {cache['ratio']}x (goal >= {CACHE_RATIO_GOAL}x, p95 <= {CACHE_P95_GOAL_S * 1000:.0f} ms): "
                     f"{'met' if cache['meets_goals'] else 'NOT met'}")
    return "\n".join(lines)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


SETTINGS_SHOWN = ("turn_workers", "turn_queue", "lease_s", "hop_s", "silence_budget_s", "turn_deadline_s",
                  "instant_budget_ms", "llm_timeout_s")


def server_settings(server_env: dict[str, str]) -> dict[str, Any]:
    """The turn-engine settings the servers run with (the project's defaults plus ``server_env``)."""
    from dataclasses import asdict

    from app.config import load_settings

    settings = asdict(load_settings(environ=dict(server_env)))
    return {k: settings[k] for k in SETTINGS_SHOWN if k in settings}


def run_capacity(config: CapacityConfig, out: Any = None, *, command: str | None = None) -> dict[str, Any]:
    """The sweep and/or the cache-hit comparison; returns everything as one JSON-ready dict."""
    out = out or sys.stdout
    started = time.monotonic()
    result: dict[str, Any] = {"command": command, "config": config.to_dict(),
                              "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": {"nproc": os.cpu_count()}, "loadavg_start": list(os.getloadavg()),
                              "server_settings": server_settings(config.server_env)}
    if config.cache_hit:
        result["cache_hit"] = run_cache_hit(config, out)
    if config.sweep:
        result["sweep"] = run_sweep(config, out)
    result["loadavg_end"] = list(os.getloadavg())
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    d = CapacityConfig()
    p = argparse.ArgumentParser(prog="python -m simulator capacity", description=__doc__.split("\n")[0])
    p.add_argument("--calls", default=",".join(map(str, d.calls)), help="concurrent callers per point (comma list)")
    p.add_argument("--minutes", type=float, default=d.minutes, help="how long each point places calls")
    p.add_argument("--ramp-s", type=float, default=d.ramp_s)
    p.add_argument("--speed", type=float, default=d.speed, help="simulated clock speed of the callers (1 = real time)")
    add_server_arguments(p, LoadConfig(llm_ms=d.llm_ms), choices=False)
    p.add_argument("--no-sweep", action="store_true", help="skip the capacity curve")
    p.add_argument("--no-cache-hit", action="store_true", help="skip the cache-hit throughput comparison")
    p.add_argument("--cache-threads", type=int, default=d.cache_threads)
    p.add_argument("--cache-seconds", type=float, default=d.cache_seconds, help="length of each measured slice")
    p.add_argument("--cache-rounds", type=int, default=d.cache_rounds)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--data-dir", type=Path, help="keep every run's data dir (turn logs, gunicorn logs) here")
    p.add_argument("--json", type=Path, help="write the whole result as JSON here")
    a = p.parse_args(argv)
    try:
        calls = tuple(int(x) for x in a.calls.split(",") if x.strip())
    except ValueError:
        p.error("--calls takes a comma-separated list of whole numbers")
    if not calls or min(calls) < 1 or not a.minutes > 0 or not a.speed > 0:
        p.error("--calls, --minutes and --speed must be positive")
    config = replace(d, calls=calls, minutes=a.minutes, ramp_s=a.ramp_s, speed=a.speed, llm_ms=a.llm_ms,
                     workers=a.workers, threads=a.threads, server_env=dict(a.server_env), seed=a.seed,
                     sweep=not a.no_sweep, cache_hit=not a.no_cache_hit, cache_threads=a.cache_threads,
                     cache_seconds=a.cache_seconds, cache_rounds=a.cache_rounds, data_dir=a.data_dir,
                     emulator_processes=not a.emulators_inline)
    command = "python -m simulator capacity " + " ".join(sys.argv[2:] if argv is None else argv)
    result = run_capacity(config, command=command.strip())
    print(format_report(result))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0
