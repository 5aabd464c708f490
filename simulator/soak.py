"""The soak: many concurrent calls for minutes, with TTS faults and worker kills; nothing may be lost.

    python -m simulator.soak --calls 100 --minutes 10 --fault-rate 0.05 --kill-every 60 [--json OUT]

What runs (all on loopback, all started and stopped here):

* **gunicorn** (``simulator.server.GunicornServer``: 2 gthread workers) serving one business
  whose voice is Deepgram (``aura-2-thalia-en``), with the fixed phrases (greeting, fillers,
  prompts) precomputed first, as the nightly job would have.
* **Deepgram**: ``simulator.deepgram_emulator`` with ``--fault-rate`` of requests failing in one of
  its modes (500, 503, 429, a stall mid-body, a truncated body, a non-audio body, a WAV at the
  wrong sample rate), seeded. It speaks a cheap tone (``simulator.bench.ToneSpeaker``) so its CPU
  does not compete with the server.
* **The AI**: ``simulator.llm_emulator`` behind the real OpenAI-compatible responder (300-900 ms),
  answering every turn with a cached opener, a sentence unique to the turn ("Your reference
  number is 4821.") and a cached closer -- so every turn synthesizes live and meets the faults.
  ``--responder faq`` uses the built-in FAQ responder instead (mostly cache hits).
* **Callers**: ``--calls`` threads, each placing calls back to back for ``--minutes`` with
  ``simulator.twilio_client`` (signed webhooks, TwiML executed as Twilio does, a shared media
  cache), three scripted utterances and a goodbye per call. HTTP keep-alive is off, so a request
  lives on exactly one connection to one worker.
* **Kills**: every ``--kill-every`` seconds one worker gets SIGKILL (gunicorn starts a new one).

Bounded in time: no call starts after ``--minutes``; calls in flight then get at most
``--drain`` seconds (each call is also capped at ``MAX_CALL_S`` simulated seconds).

Report (``summary()``), counted after every call has ended:

* ``turns``: caller turns placed; ``caller_heard``: what each turn's answer was, from the caller's
  side (:class:`simulator.timeline.HeardRule`: own-voice clips, a fallback voice, a <Say>, the
  business's apology, nothing); ``responder_failures``: turns whose responder failed, from the
  server's log (``--llm-fault-rate`` makes the LLM emulator fail requests); ``fallback_events``: server turn events with ``fallback: true``;
  p50 / p95 / max of time to answer audio.
* ``application_errors``: calls that ended in Twilio's "application error". Those whose failing
  webhook was a connection lost *while that request was in flight during a SIGKILL* are counted
  apart (``lost_with_killed_worker``): a killed process cannot answer the request it holds; Twilio
  then retries (connection overrides) or requests the Fallback URL. ``application_errors_other``
  must be 0.
* ``invalid_twiml`` (Twilio 12100/12200/12300: must be 0), media fetch failures (and how many
  overlapped a kill), ``p95_longest_silence_s`` (caller turns, simulated seconds).
* ``rss_mb``: VmRSS of every worker at the start and at the end; the longest-lived worker's first
  and last sample.
* ``leftover_calls``: call records still in the shared state after every call ended (status
  callbacks delete them: must be 0, except calls whose status callback was itself lost to a kill,
  counted in ``status_callbacks_lost_with_killed_worker``).
* ``store_objects`` and ``invalid_objects`` (every object under ``tts/`` checked with
  ``cdn.wav.validate_ulaw_wav``: must be 0).

``invariants_ok`` is the conjunction of the "must be 0" figures and of ``apologies + unanswered
<= max_apology_rate x turns`` (default 1 %): Deepgram faults may make a piece a <Say> or another
voice, but a caller should not hear the apology or nothing. The last line printed is the verdict.

Thread safety: one soak per process; it owns its servers, emulators and threads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from simulator.load import RESPONDER_FAILED
from simulator.support import http_client, work_dir
from simulator.timeline import HEARD_KINDS, HeardRule, heard_problems_line
from simulator.twilio_client import FALLBACK_NOTE

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "soak-twilio-auth-token"
DEEPGRAM_KEY = "soak-deepgram-key"
LLM_KEY = "soak-llm-key"
BUSINESS_ID = "soak"
MAX_CALL_S = 300.0
INVALID_TWIML_CODES = frozenset({12100, 12200, 12300})
KILL_SLACK_S = 0.05
UTTERANCES = (
    "Hi, I'd like to book a cleaning.",
    "What are your opening hours?",
    "Where are you located?",
    "How much is a check-up?",
    "Do you take my insurance?",
    "Can I move my appointment to Friday?",
    "I have a toothache, can someone see me today?",
    "Is there parking nearby?",
)
GOODBYE = "That's all, thanks. Bye!"


@dataclass(frozen=True)
class SoakConfig:
    """One soak run. Times in seconds unless named ``minutes``."""

    calls: int = 100
    minutes: float = 10.0
    fault_rate: float = 0.05
    kill_every_s: float = 60.0  # 0: never
    workers: int = 2
    threads: int = 16
    speed: float = 1.0
    seed: int = 0
    utterances: int = 3
    responder: str = "llm"  # "llm" | "faq"
    drain_s: float = 180.0
    work_dir: Path | None = None
    # Twilio's own recovery, configured as a production number would be: the Fallback URL
    # (/voice/fallback/<business>) and a connection-override retry on the status callback.
    fallback_url: bool = True
    status_retries: int = 2
    llm_fault_rate: float = 0.0
    max_apology_rate: float = 0.01

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["work_dir"] = str(self.work_dir) if self.work_dir else None
        return data


def business_toml() -> str:
    return f"""[{BUSINESS_ID}]
name = "Harbourside Dental"
greeting = "Thanks for calling Harbourside Dental. How can I help you today?"
fillers = ["Let me check that for you.", "One moment, please.", "Sure, let me have a look.", "Good question, one second."]
hours = "We're open Monday to Friday from 8 a.m. to 6 p.m."
instant_budget_ms = 300
splice = "sentence"

[{BUSINESS_ID}.voice]
provider = "deepgram"
model = "aura-2-thalia-en"

[{BUSINESS_ID}.say]
voice = "Polly.Joanna-Neural"
language = "en-US"

[[{BUSINESS_ID}.faq]]
keywords = ["where", "located", "parking"]
answer = "We're at 12 Harbour Street, next to the ferry terminal. There's free parking behind the building."

[[{BUSINESS_ID}.faq]]
keywords = ["price", "how much", "check-up", "cleaning"]
answer = "A check-up and clean is $120. If you have insurance, we can claim it for you on the spot."
"""


class SoakLLM:
    """LLM emulator replies: a cached opener, a sentence unique to the turn, a cached closer. Thread-safe."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> str:
        last = next((m["content"] for m in reversed(request["messages"]) if m["role"] == "user"), "")
        if "bye" in last.lower():
            return "Thanks for calling Harbourside Dental. Goodbye! [END]"
        with self._lock:
            number = self._rng.randrange(1000, 10000)
        return (f"Sure, I can help with that. Your reference number is {number}. "
                "Is there anything else I can help you with?")


class KillLog:
    """Monotonic instants of SIGKILLs. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.kills: list[tuple[float, int]] = []

    def add(self, pid: int) -> None:
        with self._lock:
            self.kills.append((time.monotonic(), pid))

    def overlaps(self, start: float, end: float) -> bool:
        with self._lock:
            return any(start - KILL_SLACK_S <= t <= end + KILL_SLACK_S for t, _pid in self.kills)


class WatchedTransport(httpx.BaseTransport):
    """An HTTP transport that remembers each transport error with its monotonic window. One call's thread."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        self.errors: list[tuple[float, float, str, str]] = []  # (start, end, url, exception type)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        start = time.monotonic()
        try:
            return self._inner.handle_request(request)
        except httpx.TransportError as exc:
            self.errors.append((start, time.monotonic(), str(request.url), type(exc).__name__))
            raise

    def close(self) -> None:
        self._inner.close()


@dataclass
class CallOutcome:
    """What one call did, reduced to what the summary needs."""

    call_sid: str
    ended_by: str
    turns: int
    longest_silences: list[float]
    answer_times: list[float]
    heard: dict[str, int]
    fatal_codes: list[int | None]
    fatal_killed: bool
    invalid_twiml: int
    media_failures: int
    media_failures_killed: int
    status_lost: bool
    status_lost_killed: bool
    recovered_by_fallback_url: int = 0
    failures: list[str] = field(default_factory=list)


def _reduce(result: Any, transport: WatchedTransport, kills: KillLog, rule: HeardRule) -> CallOutcome:
    def killed(url: str | None) -> bool:
        return any(u == url and kills.overlaps(s, e) for s, e, u, _t in transport.errors)

    fatal = [f for f in result.failures if f.fatal]
    media = [f for f in result.failures if f.where == "media"]
    status = [f for f in result.failures if f.where == "status_callback"]
    return CallOutcome(
        call_sid=result.call_sid,
        ended_by=result.ended_by,
        turns=len(result.turns),
        longest_silences=[t.longest_silence_s for t in result.turns],
        answer_times=[t.time_to_answer_audio_s for t in result.turns if t.time_to_answer_audio_s is not None],
        heard=rule.count(result.turns),
        fatal_codes=[f.code for f in fatal],
        fatal_killed=bool(fatal) and all(killed(f.url) for f in fatal),
        invalid_twiml=sum(1 for f in result.failures if f.code in INVALID_TWIML_CODES),
        media_failures=len(media),
        media_failures_killed=sum(1 for f in media if killed(f.url)),
        status_lost=bool(status),
        status_lost_killed=bool(status) and all(killed(f.url) for f in status),
        recovered_by_fallback_url=sum(1 for f in result.failures if FALLBACK_NOTE in f.message),
        failures=[f"{f.code} {f.where}: {f.message}" for f in result.failures],
    )


def vm_rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of ``values``, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def check_store(data_dir: Path) -> tuple[int, int, list[str]]:
    """(objects, invalid objects, names of the invalid ones) of the local store under ``data_dir``."""
    from app.errors import InvalidAudio
    from cdn.local import LocalStore
    from cdn.wav import validate_ulaw_wav

    store = LocalStore(data_dir / "cdn", "")
    total, bad = 0, []
    for name in store.list("tts/"):
        total += 1
        try:
            validate_ulaw_wav(store.get(name))
        except InvalidAudio:
            bad.append(name)
    return total, len(bad), bad


def server_events(data_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((data_dir / "events").glob("turns-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    return events


def run_soak(config: SoakConfig, out: Any = None, *, command: str | None = None) -> dict[str, Any]:
    """Run the soak (see the module docstring) and return its summary."""
    from app.state import open_state
    from simulator.bench import ToneSpeaker
    from simulator.deepgram_emulator import DeepgramEmulator
    from simulator.demo import start_server, warm
    from simulator.llm_emulator import LLMEmulator
    from simulator.twilio_client import CallConfig, Knobs, MediaCache, run_call

    out = out or sys.stdout

    def say(msg: str) -> None:
        print(msg, file=out, flush=True)

    work, tmp = work_dir(config.work_dir, "warmline-soak-")
    data_dir = work / "var"
    toml = work / "businesses.toml"
    toml.write_text(business_toml(), encoding="utf-8")
    from app.business import load_businesses

    rule = HeardRule.for_business(load_businesses(toml).get(BUSINESS_ID))
    started = time.monotonic()
    speaker = ToneSpeaker()
    stoppables: list[Any] = []
    server = None
    try:
        llm = None
        if config.responder == "llm":
            llm = LLMEmulator(api_key=LLM_KEY, responses=SoakLLM(config.seed), base_ms=600, jitter_ms=300, seed=config.seed,
                              fault_rate=config.llm_fault_rate, fault_modes=("500",))
            llm.start()
            stoppables.append(llm)
        with DeepgramEmulator(api_key=DEEPGRAM_KEY, ttfb_ms=0, per_char_ms=0, speaker=speaker) as clean_dg:
            summary = warm({"env": "testing", "data_dir": data_dir, "businesses": toml, "twilio_auth_token": TOKEN,
                            "deepgram_api_key": DEEPGRAM_KEY, "deepgram_url": clean_dg.base_url})
        say(f"precomputed {summary['new']} fixed clips ({summary['failed']} failed)")
        dg = DeepgramEmulator(api_key=DEEPGRAM_KEY, ttfb_ms=150, per_char_ms=1.0, jitter_ms=100,
                              failure_rate=config.fault_rate, seed=config.seed, speaker=speaker)
        dg.start()
        stoppables.append(dg)
        env = {"WARMLINE_BUSINESSES": str(toml), "WARMLINE_TWILIO_AUTH_TOKEN": TOKEN,
               "WARMLINE_DEEPGRAM_URL": dg.base_url, "WARMLINE_DEEPGRAM_API_KEY": DEEPGRAM_KEY}
        if llm is not None:
            env.update({"WARMLINE_LLM_URL": llm.base_url, "WARMLINE_LLM_API_KEY": LLM_KEY, "WARMLINE_LLM_MODEL": "soak"})
        server = start_server(data_dir, env, workers=config.workers, threads=config.threads)
        rss_start = {pid: vm_rss_mb(pid) for pid in server.worker_pids()}
        samples: dict[int, list[tuple[float, float]]] = {}
        kills = KillLog()
        stop = threading.Event()
        window_s = config.minutes * 60
        window_end = time.monotonic() + window_s

        def sample() -> None:
            while not stop.wait(2.0):
                for pid in server.worker_pids():
                    rss = vm_rss_mb(pid)
                    if rss is not None:
                        samples.setdefault(pid, []).append((time.monotonic(), rss))

        def killer() -> None:
            rng = random.Random(config.seed)
            while config.kill_every_s > 0 and not stop.wait(config.kill_every_s):
                if time.monotonic() >= window_end:
                    return
                pids = server.worker_pids()
                if pids:
                    pid = rng.choice(pids)
                    kills.add(pid)
                    os.kill(pid, signal.SIGKILL)
                    say(f"  {time.monotonic() - started:7.1f} s  SIGKILL worker {pid}")

        helpers = [threading.Thread(target=sample, name="soak-rss", daemon=True),
                   threading.Thread(target=killer, name="soak-killer", daemon=True)]
        for t in helpers:
            t.start()
        cache = MediaCache()
        knobs = Knobs(max_call_s=MAX_CALL_S, status_callback_retries=config.status_retries)
        fallback = f"/voice/fallback/{BUSINESS_ID}" if config.fallback_url else None
        outcomes: list[CallOutcome] = []
        lock = threading.Lock()
        counter = iter(range(10**9))

        def caller(slot: int) -> None:
            time.sleep(slot * min(0.1, 5.0 / max(1, config.calls)))  # stagger the first wave
            while time.monotonic() < window_end:
                with lock:
                    n = next(counter)
                rng = random.Random(config.seed * 1_000_003 + n)
                script = [*rng.sample(UTTERANCES, k=min(config.utterances, len(UTTERANCES))), GOODBYE]
                transport = WatchedTransport()
                with http_client(transport=transport) as client:
                    result = run_call(CallConfig(base_url=server.base_url, business_id=BUSINESS_ID, auth_token=TOKEN,
                                                 script=script, knobs=knobs, speed=config.speed, media_cache=cache,
                                                 fallback_url=fallback),
                                      client=client)
                outcome = _reduce(result, transport, kills, rule)
                with lock:
                    outcomes.append(outcome)

        kills_text = f"a worker SIGKILL every {config.kill_every_s:g} s" if config.kill_every_s > 0 else "no kills"
        say(f"{config.calls} concurrent callers for {config.minutes:g} min, Deepgram faults {config.fault_rate:.0%}, "
            f"{kills_text}")
        pool = ThreadPoolExecutor(max_workers=config.calls, thread_name_prefix="soak-call")
        futures = [pool.submit(caller, i) for i in range(config.calls)]
        deadline = window_end + config.drain_s
        unfinished = 0
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                unfinished += 1
        pool.shutdown(wait=unfinished == 0, cancel_futures=True)
        stop.set()
        for t in helpers:
            t.join(timeout=5)
        time.sleep(1.0)  # the last status callbacks' background work (turn events) lands
        state = open_state(str(data_dir / "state"))
        try:
            leftover = state.count_calls()
        finally:
            state.close()
        rss_end = {pid: vm_rss_mb(pid) for pid in server.worker_pids()}
        objects, invalid, invalid_names = check_store(data_dir)
        log_text = server.log_tail(10**9)
        dg_stats = dg.stats()
        events = server_events(data_dir)
    finally:
        if server is not None:
            server.stop()
        for s in stoppables:
            s.stop()
    longest = [s for o in outcomes for s in o.longest_silences]
    answers = [a for o in outcomes for a in o.answer_times]
    heard = {k: sum(o.heard[k] for o in outcomes) for k in HEARD_KINDS}
    turns = sum(o.turns for o in outcomes)
    hard = heard["apology"] + heard["unanswered"]
    lived = max(samples.items(), key=lambda kv: kv[1][-1][0] - kv[1][0][0], default=None)
    app_errors = [o for o in outcomes if o.fatal_codes]
    lost_killed = sum(1 for o in app_errors if o.fatal_killed)
    status_lost = sum(1 for o in outcomes if o.status_lost)
    status_lost_killed = sum(1 for o in outcomes if o.status_lost_killed)
    result = {
        "config": config.to_dict(),
        "command": command,
        "wall_s": round(time.monotonic() - started, 1),
        "calls": len(outcomes),
        "calls_unfinished": unfinished,
        "turns": turns,
        "caller_heard": heard,
        "responder_failures": len(RESPONDER_FAILED.findall(log_text)),
        "fallback_events": sum(1 for e in events if e.get("fallback")),
        "server_turn_events": len(events),
        "application_errors": len(app_errors),
        "lost_with_killed_worker": lost_killed,
        "application_errors_other": len(app_errors) - lost_killed,
        "application_error_samples": [o.failures for o in app_errors if not o.fatal_killed][:5],
        "webhooks_recovered_by_fallback_url": sum(o.recovered_by_fallback_url for o in outcomes),
        "invalid_twiml": sum(o.invalid_twiml for o in outcomes),
        "media_failures": sum(o.media_failures for o in outcomes),
        "media_failures_with_killed_worker": sum(o.media_failures_killed for o in outcomes),
        "p50_longest_silence_s": _round(percentile(longest, 50)),
        "p95_longest_silence_s": _round(percentile(longest, 95)),
        "max_longest_silence_s": _round(max(longest, default=None)),
        "p50_time_to_answer_s": _round(percentile(answers, 50)),
        "p95_time_to_answer_s": _round(percentile(answers, 95)),
        "max_time_to_answer_s": _round(max(answers, default=None)),
        "kills": len(kills.kills),
        "rss_mb": {
            "start": {str(k): _round(v, 1) for k, v in rss_start.items()},
            "end": {str(k): _round(v, 1) for k, v in rss_end.items()},
            "longest_lived": None if lived is None else {
                "pid": lived[0], "lived_s": round(lived[1][-1][0] - lived[1][0][0], 1),
                "first_mb": _round(lived[1][0][1], 1), "last_mb": _round(lived[1][-1][1], 1),
                "max_mb": _round(max(v for _t, v in lived[1]), 1),
                # (seconds since its first sample, MB) every ~30 s: a plateau or a slope
                "series": [(round(t - lived[1][0][0]), _round(v, 1)) for t, v in lived[1][::15]]},
            "max_any_worker": _round(max((v for s in samples.values() for _t, v in s), default=None), 1),
        },
        "leftover_calls": leftover,
        "status_callbacks_lost": status_lost,
        "status_callbacks_lost_with_killed_worker": status_lost_killed,
        "store_objects": objects,
        "invalid_objects": invalid,
        "invalid_object_names": invalid_names[:5],
        "server_exceptions": log_text.count("Traceback (most recent call last)"),
        "deepgram": {k: dg_stats[k] for k in ("requests_total", "by_status", "failures", "max_in_flight")},
    }
    result["invariants"] = {
        # With the Fallback URL configured (as in production) even a request lost with a killed
        # worker is recovered; without it, only those may end in an application error.
        ("application_errors == 0" if config.fallback_url else "application_errors_other == 0"):
            (len(app_errors) if config.fallback_url else result["application_errors_other"]) == 0,
        "invalid_twiml == 0": result["invalid_twiml"] == 0,
        ("leftover_calls == 0" if config.status_retries else
         "leftover_calls == status callbacks lost with a killed worker"):
            leftover == 0 if config.status_retries else (leftover <= status_lost_killed and status_lost == status_lost_killed),
        "invalid_objects == 0": invalid == 0,
        "calls_unfinished == 0": unfinished == 0,
        f"apologies + unanswered <= {config.max_apology_rate:.0%} of turns": hard <= config.max_apology_rate * turns,
    }
    result["invariants_ok"] = all(result["invariants"].values())
    if tmp is not None:
        tmp.cleanup()
    return result


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def format_summary(s: dict[str, Any]) -> str:
    rss = s["rss_mb"]
    ll = rss["longest_lived"] or {}
    lines = [
        f"calls {s['calls']} ({s['calls_unfinished']} unfinished), caller turns {s['turns']}, wall {s['wall_s']} s",
        (f"application errors {s['application_errors']}: {s['lost_with_killed_worker']} lost with a SIGKILLed worker, "
        f"{s['application_errors_other']} other (must be 0); webhooks recovered by the Fallback URL "
        f"{s['webhooks_recovered_by_fallback_url']}"),
        f"invalid TwiML {s['invalid_twiml']} (must be 0)",
        heard_problems_line(s["caller_heard"], s["responder_failures"]) + f"; server fallback events {s['fallback_events']}",
        (f"longest silence per turn: p50 {s['p50_longest_silence_s']} s, p95 {s['p95_longest_silence_s']} s, "
        f"max {s['max_longest_silence_s']} s"),
        (f"time to answer audio: p50 {s['p50_time_to_answer_s']} s, p95 {s['p95_time_to_answer_s']} s, "
        f"max {s['max_time_to_answer_s']} s"),
        f"media fetch failures {s['media_failures']} ({s['media_failures_with_killed_worker']} with a killed worker)",
        (f"kills {s['kills']}; worker RSS MB start {list(rss['start'].values())} end {list(rss['end'].values())}; "
        f"longest-lived worker {ll.get('lived_s')} s: {ll.get('first_mb')} -> {ll.get('last_mb')} MB "
        f"(max {ll.get('max_mb')}); max any worker {rss['max_any_worker']} MB"),
        (f"leftover call-state entries {s['leftover_calls']} (status callbacks lost with a killed worker: "
        f"{s['status_callbacks_lost_with_killed_worker']} of {s['status_callbacks_lost']})"),
        f"store objects {s['store_objects']}, invalid {s['invalid_objects']} (must be 0)",
        f"server tracebacks {s['server_exceptions']}; deepgram {s['deepgram']}",
        f"invariants {'OK' if s['invariants_ok'] else 'FAILED'}: {s['invariants']}",
        "verdict: PASS" if s["invariants_ok"] else
        "verdict: FAIL -- " + "; ".join(name for name, ok in s["invariants"].items() if not ok),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="concurrent callers (default 100)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long new calls are placed (fractions allowed)")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="Deepgram requests that fail (default 0.05)")
    parser.add_argument("--kill-every", type=float, default=60.0, help="SIGKILL a worker every N s (0: never)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16, help="gthread threads per worker")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated clock speed of the callers")
    parser.add_argument("--utterances", type=int, default=3, help="questions per call (then a goodbye)")
    parser.add_argument("--responder", choices=("llm", "faq"), default="llm")
    parser.add_argument("--llm-fault-rate", type=float, default=0.0, help="LLM requests answered with HTTP 500")
    parser.add_argument("--max-apology-rate", type=float, default=0.01,
                        help="FAIL when more turns than this share heard the apology or nothing (default 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drain", type=float, default=180.0, help="max seconds for calls in flight after the window")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the data here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary as JSON")
    parser.add_argument("--no-fallback-url", action="store_true",
                        help="place calls as a number with no Fallback URL (a lost request is an application error)")
    parser.add_argument("--status-retries", type=int, default=2,
                        help="connection-override retries of the status callback (Twilio's #rc=N; default 2)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = SoakConfig(calls=args.calls, minutes=args.minutes, fault_rate=args.fault_rate, kill_every_s=args.kill_every,
                        workers=args.workers, threads=args.threads, speed=args.speed, seed=args.seed,
                        utterances=args.utterances, responder=args.responder, drain_s=args.drain,
                        work_dir=args.work_dir, fallback_url=not args.no_fallback_url,
                        status_retries=args.status_retries, llm_fault_rate=args.llm_fault_rate,
                        max_apology_rate=args.max_apology_rate)
    argv = sys.argv[1:] if argv is None else argv
    summary = run_soak(config, command="python -m simulator.soak " + " ".join(argv))
    print(format_summary(summary), flush=True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if summary["invariants_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
