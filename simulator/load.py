"""Load mode: N concurrent simulated calls for M minutes; what the callers heard, errors, latency.

    python -m simulator load --calls 200 --minutes 1                 # starts its own server
    python -m simulator load --calls 150 --minutes 1 --responder llm --voice deepgram
    python -m simulator load --calls 50 --minutes 2 --url http://127.0.0.1:8000 --token T

``--calls`` caller threads each place calls one after another (a fresh CallSid each time) until
``--minutes`` have passed; calls in progress at the deadline are finished, so the run ends
within the deadline plus one call (each call is also bounded by the simulator's own limits).
Thread *i* starts after ``i x ramp / calls`` seconds, so the callers do not all ring at once.

Scripts (seeded): FAQ questions to the sample business -- hours, location and parking, price --
and bookings with a name and a day and time drawn from small pools, so early bookings need live
synthesis and later ones are mostly cache hits. Without ``--url`` the command starts gunicorn
(``--workers`` / ``--threads``, default: the project's gunicorn.conf.py) after warming the fixed
phrases, and also reports the server's turn log (outcomes, fallbacks) and its CPU time. Its
responder is the built-in FAQ responder, or with ``--responder llm`` the real OpenAI-compatible
responder talking to :mod:`simulator.llm_emulator` (answering like the FAQ responder, after
``--llm-ms`` uniform latency, failing ``--llm-fault-rate`` of its requests with HTTP 500). Its
voice is the sample business's Piper, or with ``--voice deepgram`` the real Deepgram provider
talking to :mod:`simulator.deepgram_emulator` (a tone as long as speech, so its CPU stays out of
the server's; the business config is the sample business with that voice, in a temp TOML).

Reported: calls completed and how they ended; simulator failures by Twilio error code (an
"error" is any failure; "fatal" ones are Twilio application errors); caller turns; p50 / p95 /
p99 / max of time to first audio, longest silence, time to answer audio and webhook response
time; and **what the callers heard** as each turn's answer (:class:`simulator.timeline.HeardRule`):
own-voice clips, a fallback voice, a <Say>, the business's apology, or nothing -- plus responder
failures (:func:`responder_failures`: the server's log says so, a timeout included) and LLM requests whose
history was incoherent (:func:`history_problems`: roles out of turn, an agent line the model never
produced for what preceded it -- a turn run twice, a late reply). The last line is a
verdict: ``PASS``, or ``FAIL`` with every threshold exceeded (transport errors, the share of
turns with a caller-heard problem over ``--max-problem-rate``, and the optional p95 limits); the
command exits 1 on FAIL. So a run where every answer is an apology cannot look like "errors 0".

Thread-safe by construction: each caller thread owns its calls and its HTTP client; the Twilio
media cache is shared (it locks).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from simulator.history import RecordingResponses, history_problems, spoken
from simulator.support import host_cpu_shares, host_cpu_ticks, http_client, work_dir
from simulator.watch import Watcher, worst

NAMES = ("Sam Jones", "Priya Patel", "Liam O'Brien", "Mei Chen", "Ava Smith", "Noah Brown", "Zara Ali",
         "Tom Walker", "Ruby Green", "Jack Wilson", "Isla Moore", "Leo Martin")
WHENS = ("Next Tuesday at 3 pm", "Monday at 10 am", "Friday at 2:30 pm", "tomorrow at 9 am",
         "Thursday at 4 pm", "Wednesday morning")
QUESTIONS = ("Hi, what are your opening hours?", "Where are you located, and is there parking?",
             "How much is a check-up and clean?", "Do you take insurance?")
GOODBYE = "No, that's all. Thanks, bye!"
CLIENT_KEEPALIVE_S = 2.0
"""Idle keep-alive connections are dropped after this (gunicorn closes them after 5 s)."""
WATCH_S = 5.0
"""Seconds per window of the run's /metrics and host-CPU watch (``simulator.watch``)."""
LLM_KEY = "load-llm-key"
DEEPGRAM_KEY = "load-deepgram-key"
DEEPGRAM_MODEL = "aura-2-thalia-en"


def script_for(rng: random.Random) -> tuple[str, ...]:
    """One caller's lines: one or two questions, then a booking (60 %) or a goodbye."""
    lines = rng.sample(QUESTIONS, rng.choice((1, 2)))
    if rng.random() < 0.6:
        return (*lines, "I'd like to book an appointment.", f"It's {rng.choice(NAMES)}.",
                f"{rng.choice(WHENS)}, please.")
    return (*lines, GOODBYE)


@dataclass(frozen=True)
class LoadConfig:
    """Knobs of a load run. ``url=None`` starts a server (see the module docstring).

    ``workers`` / ``threads`` None: the project's gunicorn defaults. ``llm_ms``: the LLM emulator's
    latency, uniform between the two (milliseconds). ``server_env``: extra ``WARMLINE_*`` settings
    for the server started here. ``steady_only``: the turn metrics and what the callers heard count only
    turns that start after the ramp and before the deadline (all N callers active; errors count always).
    Thresholds: ``max_problem_rate`` (share of caller turns whose
    answer was not own-voice clips), ``max_answer_p95_s`` / ``max_silence_p95_s`` (None: no limit).
    """

    calls: int = 200
    minutes: float = 1.0
    url: str | None = None
    business: str = "demo"
    businesses: Path | None = None  # with --url: the server's businesses file (default: the project's)
    token: str = "load-twilio-auth-token"
    speed: float = 1.0
    ramp_s: float = 10.0
    rtt_ms: float = 80.0
    media_fetch_ms: float = 120.0
    workers: int | None = None
    threads: int | None = None
    seed: int = 11
    responder: str = "faq"  # "faq" | "llm"
    llm_ms: tuple[float, float] = (500.0, 1500.0)
    llm_fault_rate: float = 0.0
    voice: str = "piper"  # "piper" | "deepgram"
    deepgram_ttfb_ms: float = 200.0
    deepgram_per_char_ms: float = 4.0
    deepgram_jitter_ms: float = 100.0
    server_env: dict[str, str] = field(default_factory=dict)
    steady_only: bool = False  # count only turns that start after the ramp and before the deadline
    emulator_processes: bool = True  # each emulator in a process of its own (False: threads of this one)
    max_problem_rate: float = 0.01
    max_answer_p95_s: float | None = None
    max_silence_p95_s: float | None = None
    data_dir: Path | None = None  # own server only: keep its data, turn log and gunicorn log here

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["data_dir"] = None if self.data_dir is None else str(self.data_dir)
        data["businesses"] = None if self.businesses is None else str(self.businesses)
        data["llm_ms"] = list(self.llm_ms)
        return data


def pct(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50 / p95 / p99 / max (3 decimals) and the count of ``values``."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": len(values), "p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
            "max": round(float(max(values)), 3)}


def deepgram_business_toml(source: Path, business_id: str, model: str = DEEPGRAM_MODEL) -> str:
    """``source``'s TOML text with ``business_id`` speaking Deepgram ``model`` (every other setting kept)."""
    text = source.read_text(encoding="utf-8")
    table = re.compile(rf"^\[{re.escape(business_id)}\.voice\]\n(?:(?!\[).*\n)*", re.MULTILINE)
    replaced, n = table.subn(f'[{business_id}.voice]\nprovider = "deepgram"\nmodel = "{model}"\n\n', text)
    voice = tomllib.loads(replaced).get(business_id, {}).get("voice", {}) if n == 1 else {}
    if voice != {"provider": "deepgram", "model": model}:
        raise ValueError(f"could not give {business_id!r} in {source} the Deepgram voice")
    return replaced


RESPONDER_FAILED = re.compile(r"responder \w+ failed for business")


def responder_failures(server: Any) -> int | None:
    """Turns whose responder failed, from the log of a server this run started (a timeout, an error status,
    a bad body: ``safe_reply`` logs each); None for someone else's server."""
    if server is None:
        return None
    return len(RESPONDER_FAILED.findall(server.log_tail(10**9)))


def verdict(summary: dict[str, Any], config: LoadConfig) -> list[str]:
    """Every threshold the run exceeded (empty: PASS)."""
    reasons = []
    if summary["errors"]:
        reasons.append(f"{summary['errors']} errors")
    if summary.get("llm_incoherent_requests"):
        reasons.append(f"{summary['llm_incoherent_requests']} LLM requests with an incoherent history")
    turns = summary["caller_turns"]
    if not turns:
        reasons.append("no caller turn completed")
    elif summary["problem_rate"] > config.max_problem_rate:
        reasons.append(f"caller-heard problems {summary['problem_rate']:.1%} of turns > {config.max_problem_rate:.1%}")
    for key, limit, name in (("time_to_answer_audio_s", config.max_answer_p95_s, "time to answer"),
                             ("longest_silence_s", config.max_silence_p95_s, "longest silence")):
        p95 = summary[key]["p95"]
        if limit is not None and (p95 is None or p95 > limit):
            reasons.append(f"p95 {name} {p95} s > {limit:g} s")
    return reasons


class Emulators:
    """The LLM / Deepgram emulators a run starts (none, one or both); ``stop()`` stops them. One owner."""

    def __init__(self) -> None:
        self.llm: Any = None
        self.deepgram: Any = None

    def stop(self) -> None:
        for emulator in (self.llm, self.deepgram):
            if emulator is not None:
                emulator.stop()


def prepare_server(config: LoadConfig, data_dir: Path, emulators: Emulators, out: Any) -> tuple[Any, Path]:
    """Warm the fixed phrases, start the emulators the config asks for and gunicorn; (server, businesses TOML)."""
    from app.business import load_businesses
    from app.config import load_settings
    from simulator.bench import ToneSpeaker
    from simulator.deepgram_emulator import DeepgramEmulator
    from simulator.demo import faq_fixed_phrases, start_server, warm
    from simulator.emulator_process import EmulatorProcess
    from simulator.llm_emulator import LLMEmulator, faq_responses

    toml = Path(load_settings(environ={}).businesses)
    env = {"WARMLINE_TWILIO_AUTH_TOKEN": config.token}
    warm_config: dict[str, Any] = {"env": "testing", "data_dir": data_dir, "twilio_auth_token": config.token}
    speaker = ToneSpeaker()
    data_dir.mkdir(parents=True, exist_ok=True)
    if config.voice == "deepgram":
        toml = data_dir / "businesses.toml"
        toml.write_text(deepgram_business_toml(Path(load_settings(environ={}).businesses), config.business),
                        encoding="utf-8")
        env["WARMLINE_BUSINESSES"] = str(toml)
        with DeepgramEmulator(api_key=DEEPGRAM_KEY, ttfb_ms=0, per_char_ms=0, speaker=speaker) as clean:
            print("warming the fixed phrases (Deepgram emulator) ...", file=out, flush=True)
            warm({**warm_config, "businesses": toml, "deepgram_api_key": DEEPGRAM_KEY, "deepgram_url": clean.base_url},
                 extra=faq_fixed_phrases())
        dg_spec = {"api_key": DEEPGRAM_KEY, "ttfb_ms": config.deepgram_ttfb_ms, "per_char_ms": config.deepgram_per_char_ms,
                   "jitter_ms": config.deepgram_jitter_ms, "seed": config.seed}
        emulators.deepgram = (EmulatorProcess("deepgram", dg_spec) if config.emulator_processes
                              else DeepgramEmulator(speaker=speaker, **dg_spec))
        emulators.deepgram.start()
        env.update({"WARMLINE_DEEPGRAM_URL": emulators.deepgram.base_url, "WARMLINE_DEEPGRAM_API_KEY": DEEPGRAM_KEY})
    else:
        print("warming the fixed phrases ...", file=out, flush=True)
        warm(warm_config, extra=faq_fixed_phrases())
    if config.responder == "llm":
        lo, hi = config.llm_ms
        llm_spec = {"api_key": LLM_KEY, "base_ms": (lo + hi) / 2, "jitter_ms": (hi - lo) / 2, "seed": config.seed,
                    "fault_rate": config.llm_fault_rate, "fault_modes": ["500"]}
        emulators.llm = (EmulatorProcess("llm", {**llm_spec, "businesses": str(toml)}) if config.emulator_processes
                         else LLMEmulator(responses=RecordingResponses(faq_responses(load_businesses(toml))), **llm_spec))
        emulators.llm.start()
        env.update({"WARMLINE_LLM_URL": emulators.llm.base_url, "WARMLINE_LLM_API_KEY": LLM_KEY,
                    "WARMLINE_LLM_MODEL": "load"})
    env.update(config.server_env)
    server = start_server(data_dir, env, workers=config.workers, threads=config.threads)
    return server, toml


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant of it (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def run_load(config: LoadConfig, out: Any = None) -> dict[str, Any]:
    """Run the load (see the module docstring); returns the summary (with ``verdict`` and ``ok``)."""
    from app.business import load_businesses
    from app.config import load_settings
    from simulator.bench import proc_cpu_s, read_events, vm_hwm_mb
    from simulator.timeline import PROBLEM_KINDS, HeardRule
    from simulator.twilio_client import CallConfig, Knobs, MediaCache, run_call

    out = out or sys.stdout
    tmp = None
    server = None
    emulators = Emulators()
    data_dir: Path | None = None
    base_url = config.url
    toml = config.businesses or Path(load_settings(environ={}).businesses)
    try:
        if base_url is None:
            data_dir, tmp = work_dir(config.data_dir, "warmline-load-")
            server, toml = prepare_server(config, data_dir, emulators, out)
            base_url = server.base_url
        business = load_businesses(toml).get(config.business)
        rule = HeardRule.for_business(business) if business is not None else None
        cpu_pids = process_tree(server.proc.pid) if server is not None else []
        cpu_before = sum(proc_cpu_s(p) for p in cpu_pids)
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
            with http_client(limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_S)) as client:
                while time.monotonic() < deadline:
                    call = CallConfig(base_url=base_url, business_id=config.business, auth_token=config.token,
                                      script=script_for(rng), knobs=knobs, speed=config.speed, media_cache=cache)
                    placed = time.monotonic()
                    try:
                        result = run_call(call, client=client)
                    except Exception as exc:  # noqa: BLE001 - a simulator crash is counted and reported as an error
                        with lock:
                            crashes.append(f"{type(exc).__name__}: {exc}")
                        return
                    with lock:
                        results.append((placed, result))

        threads = [threading.Thread(target=caller, args=(i,), name=f"caller-{i}", daemon=True)
                   for i in range(config.calls)]
        # our own server: watch its /metrics and the host's CPU in windows, to see when a stall starts
        watcher = Watcher(f"{base_url}/metrics", WATCH_S).start() if server is not None else None
        for t in threads:
            t.start()
        steady_cpu = None  # CPU cores the server used while all callers were active (after the ramp)
        host_cpu = None  # what the host's CPUs did meanwhile (busy / idle / steal shares)
        if cpu_pids and deadline - started > config.ramp_s:
            time.sleep(max(0.0, started + config.ramp_s - time.monotonic()))
            tree = set(process_tree(server.proc.pid))
            cpu_a, t_a, host_a = sum(proc_cpu_s(p) for p in tree), time.monotonic(), host_cpu_ticks()
            time.sleep(max(0.0, deadline - time.monotonic()))
            tree |= set(process_tree(server.proc.pid))
            steady_cpu = (sum(proc_cpu_s(p) for p in tree) - cpu_a) / max(1e-9, time.monotonic() - t_a)
            host_cpu = host_cpu_shares(host_a, host_cpu_ticks())
        hard_stop = deadline + 300
        for t in threads:
            t.join(max(0.0, hard_stop - time.monotonic()))
        stuck = sum(1 for t in threads if t.is_alive())
        windows = watcher.stop() if watcher is not None else []
        wall = time.monotonic() - started
        if server is not None:  # workers that replaced others during the run count too
            cpu_pids = sorted(set(cpu_pids) | set(process_tree(server.proc.pid)))
        cpu = sum(proc_cpu_s(p) for p in cpu_pids) - cpu_before if cpu_pids else None
        rss = [round(vm_hwm_mb(p), 1) for p in server.worker_pids()] if server is not None else []

        first, silence, answer, server_s = [], [], [], []
        failures: Counter[str] = Counter()
        fatal = 0
        ended: Counter[str] = Counter()
        turns = []
        with lock:
            done = list(results)
        steady = (started + config.ramp_s, deadline)
        for placed, result in done:
            ended[result.ended_by] += 1
            for f in result.failures:
                failures[f"{f.code} {f.where}: {f.message[:60]}"] += 1
                fatal += f.fatal
            for turn in result.turns:
                if config.steady_only and not steady[0] <= placed + turn.start_s / config.speed < steady[1]:
                    continue
                turns.append(turn)
                if turn.time_to_first_audio_s is not None:
                    first.append(turn.time_to_first_audio_s)
                silence.append(turn.longest_silence_s)
                if turn.time_to_answer_audio_s is not None:
                    answer.append(turn.time_to_answer_audio_s)
            server_s += [e.detail["server_s"] for e in result.events
                         if e.kind == "webhook" and e.detail.get("server_s") is not None]
        heard = rule.count(turns) if rule is not None else None
        problems = sum(heard[k] for k in PROBLEM_KINDS) if heard is not None else None
        emulators.stop()  # an emulator in its own process hands over its records when it stops
        llm = emulators.llm
        summary: dict[str, Any] = {
            "config": config.to_dict(),
            "machine": {"nproc": os.cpu_count(), "loadavg_end": list(os.getloadavg()), "host_cpu_steady": host_cpu},
            "server": None if server is None else {"workers": server.workers, "threads": server.threads},
            "wall_s": round(wall, 1),
            "calls_completed": len(done),
            "ended_by": dict(ended),
            "errors": sum(failures.values()) + len(crashes) + stuck,
            "fatal": fatal,
            "failures": dict(failures.most_common(20)),
            "crashes": crashes[:20],
            "stuck_callers": stuck,
            "caller_turns": len(turns),
            "caller_turns_all": sum(len(r.turns) for _p, r in done),
            "caller_heard": heard,
            "caller_heard_problems": problems,
            "problem_rate": round(problems / len(turns), 4) if turns and problems is not None else 0.0,
            "responder_failures": responder_failures(server),
            "llm_requests": None if llm is None else len(llm.requests),  # chat completions (not the doctor's GETs)
            "llm_incoherent_requests": None,
            "webhooks": len(server_s),
            "webhooks_per_s": round(len(server_s) / wall, 1) if wall else None,
            "time_to_first_audio_s": pct(first),
            "longest_silence_s": pct(silence),
            "time_to_answer_audio_s": pct(answer),
            "webhook_response_s": pct(server_s),
            "server_cpu_s": None if cpu is None else round(cpu, 2),
            "server_cpu_share": None if cpu is None or not wall else round(cpu / wall, 3),
            "server_cpu_cores_steady": None if steady_cpu is None else round(steady_cpu, 3),
            "peak_rss_mb_per_worker": rss,
            "windows": windows,
            "worst_window": worst(windows),
        }
        if data_dir is not None:
            events = [e for e in read_events(data_dir) if e.get("turn") is not None]
            summary["server_turn_events"] = len(events)
            summary["outcomes"] = dict(Counter(e.get("outcome") for e in events))
            fallbacks = sum(1 for e in events if e.get("fallback"))
            summary["fallback_rate"] = round(fallbacks / len(events), 4) if events else None
            summary["server_log_errors"] = server.log_tail(200_000).count("Traceback") if server is not None else None
        if llm is not None and business is not None:
            allowed = {spoken(business.prompt(name)) for name in ("apology", "goodbye", "transfer")}
            bad = history_problems(list(llm.requests), llm.responses.produced, allowed)
            summary["llm_incoherent_requests"] = len(bad)
            summary["llm_incoherent_samples"] = bad[:5]
        summary["verdict"] = verdict(summary, config)
        summary["ok"] = not summary["verdict"]
        return summary
    finally:
        if server is not None:
            server.stop()
        emulators.stop()
        if tmp is not None:
            tmp.cleanup()


def format_summary(s: dict[str, Any]) -> str:
    from simulator.timeline import heard_problems_line

    lines = [
        (f"calls completed {s['calls_completed']} in {s['wall_s']:.0f} s ({s['ended_by']}); "
         f"caller turns {s['caller_turns']}"
         + (f" measured (of {s['caller_turns_all']}, steady window only)" if s["config"]["steady_only"] else "")
         + f"; webhooks {s['webhooks']} ({s['webhooks_per_s']}/s)"),
        (f"transport and TwiML failures: {s['errors']} (fatal {s['fatal']}, simulator crashes {len(s['crashes'])}, "
         f"stuck callers {s['stuck_callers']})"),
    ]
    lines += [f"  {n} x {kind}" for kind, n in s["failures"].items()]
    lines += [f"  crash: {c}" for c in s["crashes"]]
    if s["caller_heard"] is not None:
        lines.append(heard_problems_line(s["caller_heard"], s["responder_failures"]))
    if s["llm_incoherent_requests"] is not None:
        lines.append(f"LLM requests {s['llm_requests']}, with an incoherent history {s['llm_incoherent_requests']}"
                     + "".join(f"\n  {x}" for x in s.get("llm_incoherent_samples", [])))
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
        steady = s["server_cpu_cores_steady"]
        lines.append(f"server CPU {s['server_cpu_s']} s ({s['server_cpu_share']:.0%} of one core over the run"
                     + ("" if steady is None else f", {steady:.0%} after the ramp") + "); "
                     f"peak RSS per worker {s['peak_rss_mb_per_worker']} MB")
    if s.get("worst_window"):
        lines.append(worst_window_line(s["worst_window"]))
    host = s["machine"].get("host_cpu_steady")
    if host:
        lines.append(f"host CPUs after the ramp: {host['busy']:.0%} busy, {host['idle']:.0%} idle, "
                     f"{host['steal']:.0%} stolen by the hypervisor ({s['machine']['nproc']} cores)")
    lines.append("verdict: PASS" if s["ok"] else f"verdict: FAIL -- {'; '.join(s['verdict'])}")
    return "\n".join(lines)


def worst_window_line(bad: dict[str, Any]) -> str:
    """The worst of a run's watch windows in one line (``simulator.watch.worst``)."""
    return (f"worst {WATCH_S:g} s windows: process p95 {_s(bad['process_p95_s'])}, partial results p95 "
            f"{_s(bad['partial_p95_s'])}, {_n(bad['in_flight'])} requests in flight, "
            f"{_pct(bad['steal'])} of the host's CPU stolen (every window: --json)")


def _s(x: float | None) -> str:
    return "-" if x is None else "> 15 s" if x == float("inf") else f"<= {x:g} s"


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("WARMLINE_"):
        raise argparse.ArgumentTypeError(f"expected WARMLINE_NAME=VALUE, got {text!r}")
    return name, value


def _ms_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX in milliseconds, got {text!r}") from None
    if not 0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {text!r}")
    return lo, hi


def add_server_arguments(p: argparse.ArgumentParser, d: LoadConfig, *, choices: bool = True) -> None:
    """The options that shape the server a run starts (shared with ``simulator capacity``, ``choices=False``:
    it always runs the LLM and Deepgram emulators)."""
    p.add_argument("--workers", type=int, default=d.workers, help="gunicorn workers (default: the project's)")
    p.add_argument("--threads", type=int, default=d.threads, help="gunicorn threads per worker (default: the project's)")
    p.add_argument("--llm-ms", type=_ms_range, default=d.llm_ms, metavar="MIN,MAX",
                   help="LLM emulator latency, uniform (default 500,1500)")
    if choices:
        p.add_argument("--responder", choices=("faq", "llm"), default=d.responder,
                       help="the built-in FAQ responder, or the OpenAI-compatible one against the LLM emulator")
        p.add_argument("--llm-fault-rate", type=float, default=d.llm_fault_rate,
                       help="share of LLM requests answered with HTTP 500 (default 0)")
        p.add_argument("--voice", choices=("piper", "deepgram"), default=d.voice,
                       help="the sample business's Piper voice, or Deepgram against the Deepgram emulator")
    p.add_argument("--server-env", type=_env_pair, action="append", default=[], metavar="WARMLINE_X=V",
                   help="an extra server setting (repeatable), e.g. WARMLINE_TURN_WORKERS=2")
    p.add_argument("--emulators-inline", action="store_true",
                   help="run the emulators as threads of this process (default: each in a process of its own)")


def main(argv: Sequence[str] | None = None) -> int:
    d = LoadConfig()
    p = argparse.ArgumentParser(prog="python -m simulator load", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=d.calls, help="concurrent callers")
    p.add_argument("--minutes", type=float, default=d.minutes, help="how long to keep placing calls")
    p.add_argument("--url", help="a running server (default: start one)")
    p.add_argument("--business", default=d.business)
    p.add_argument("--businesses", type=Path, help="with --url: the server's businesses TOML (to tell its apology)")
    p.add_argument("--token", default=None, help="Twilio auth token of the server (with --url)")
    p.add_argument("--speed", type=float, default=d.speed, help="simulated clock speed (1 = real time)")
    p.add_argument("--ramp-s", type=float, default=d.ramp_s, help="spread the callers' first calls over this")
    p.add_argument("--rtt-ms", type=float, default=d.rtt_ms)
    p.add_argument("--media-fetch-ms", type=float, default=d.media_fetch_ms)
    add_server_arguments(p, d)
    p.add_argument("--max-problem-rate", type=float, default=d.max_problem_rate,
                   help="FAIL when more caller turns than this share heard a problem (default 0.01)")
    p.add_argument("--max-answer-p95", type=float, default=None, help="FAIL when p95 time to answer exceeds this (s)")
    p.add_argument("--max-silence-p95", type=float, default=None, help="FAIL when p95 longest silence exceeds this (s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--data-dir", type=Path, help="own server only: keep its data dir (turn log, gunicorn log) here")
    p.add_argument("--json", type=Path, help="write the summary as JSON here")
    a = p.parse_args(argv)
    if a.calls < 1 or not a.minutes > 0 or not a.speed > 0:
        p.error("--calls, --minutes and --speed must be positive")
    if a.url and (a.responder != "faq" or a.voice != "piper" or a.server_env):
        p.error("--responder, --voice and --server-env shape the server this command starts: not with --url")
    if a.token:
        token = a.token
    elif a.url:  # someone else's server: sign as it expects
        token = os.environ.get("WARMLINE_TWILIO_AUTH_TOKEN") or "dev-twilio-auth-token"
    else:  # our own server gets our token
        token = d.token
    config = LoadConfig(calls=a.calls, minutes=a.minutes, url=a.url, business=a.business, businesses=a.businesses,
                        token=token, speed=a.speed, ramp_s=a.ramp_s, rtt_ms=a.rtt_ms, media_fetch_ms=a.media_fetch_ms,
                        workers=a.workers, threads=a.threads, seed=a.seed, responder=a.responder, llm_ms=a.llm_ms,
                        llm_fault_rate=a.llm_fault_rate, voice=a.voice, server_env=dict(a.server_env),
                        max_problem_rate=a.max_problem_rate, max_answer_p95_s=a.max_answer_p95,
                        max_silence_p95_s=a.max_silence_p95, data_dir=a.data_dir,
                        emulator_processes=not a.emulators_inline)
    summary = run_load(config)
    print(format_summary(summary))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0 if summary["ok"] else 1
