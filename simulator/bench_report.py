"""Benchmark the cache-hit report: generate synthetic turn events, time build_report, measure peak RSS.

    python -m simulator.bench_report --days 30 --per-day 50000      # 1.5 M events

Events are generated (seeded, reproducible) into one ``turns-YYYY-MM-DD.jsonl`` file per day in a
temporary directory, in parallel across CPUs. The report is then built in a *fresh* child
interpreter (``--measure DIR``), so its peak resident set size (``ru_maxrss``) is the report's own
and not the generator's. Prints the wall time of ``build_report(read_events(...))`` and peak MB.

Distributions (per business, per day): traffic shares 40/30/20/10 %; 90 % of calls on the
Warmline arm; 1-4 sentences per answer (3 % reprompts with none); sentences drawn from a
Zipf-like pool of 3,000 per business plus 12 % one-off sentences with slot values (times,
names), so hits concentrate on the head of the pool and misses form a long tail; AI latency
log-normal around 800 ms; live TTS around 350 ms a sentence; the control arm blocks on both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import numpy as np

BUSINESSES = (("demo", 0.4), ("northside-dental", 0.3), ("luigis-pizza", 0.2), ("hale-law", 0.1))
POOL = 3000
START = date(2026, 10, 1)
WORDS = ["appointment", "clinic", "parking", "insurance", "Tuesday", "morning", "emergency", "booking", "available", "doctor", "cleaning", "price", "invoice", "delivery", "order", "pickup", "consultation", "review", "lawyer", "family", "weekend"]
NAMES = ("Ava", "Ben", "Chloe", "Dan", "Ella", "Finn", "Grace", "Hugo", "Isla", "Jack")


def _pool(biz: str) -> list[tuple[str, str]]:
    rng = np.random.default_rng(int(hashlib.sha256(biz.encode()).hexdigest()[:8], 16))
    out = []
    for i in range(POOL):
        words = rng.choice(WORDS, size=int(rng.integers(5, 14)))
        text = f"{' '.join(words).capitalize()} number {i}."
        out.append((hashlib.sha256(f"{biz}|{text}".encode()).hexdigest(), text))
    return out


def _generate_day(args: tuple[str, int, int, int]) -> int:
    """Write one day's file; return the number of events written."""
    out_dir, day_index, per_day, seed = args
    rng = np.random.default_rng([seed, day_index])
    day = START + timedelta(days=day_index)
    pools = {biz: _pool(biz) for biz, _ in BUSINESSES}
    n = per_day
    biz_idx = rng.choice(len(BUSINESSES), size=n, p=[w for _, w in BUSINESSES])
    warm = rng.random(n) < 0.9
    n_sent = rng.choice([0, 1, 2, 3, 4], size=n, p=[0.03, 0.29, 0.39, 0.19, 0.10])
    ai = rng.lognormal(np.log(800), 0.35, n)
    secs = np.sort(rng.integers(0, 86400, n))
    total = int(n_sent.sum())
    ranks = (rng.zipf(1.3, total) - 1) % POOL
    one_off = rng.random(total) < 0.12
    hit_roll = rng.random(total)
    tts_one = rng.lognormal(np.log(350), 0.4, total)
    slot_name = rng.integers(0, len(NAMES), total)
    slot_hour = rng.integers(8, 18, total)
    slot_min = rng.choice([0, 15, 30, 45], total)
    fallback_roll = rng.random(n)
    filler_ttfa = rng.lognormal(np.log(260), 0.3, n)
    # Plain Python values from here on (json cannot encode numpy scalars; lists index faster).
    biz_idx, warm, n_sent, ai, secs = biz_idx.tolist(), warm.tolist(), n_sent.tolist(), ai.tolist(), secs.tolist()
    ranks, one_off, hit_roll, tts_one = ranks.tolist(), one_off.tolist(), hit_roll.tolist(), tts_one.tolist()
    slot_name, slot_hour, slot_min = slot_name.tolist(), slot_hour.tolist(), slot_min.tolist()
    fallback_roll, filler_ttfa = fallback_roll.tolist(), filler_ttfa.tolist()
    lines = []
    j = 0
    for i in range(n):
        biz = BUSINESSES[biz_idx[i]][0]
        pool = pools[biz]
        sents = []
        live = cached = 0
        tts = 0.0
        for _ in range(n_sent[i]):
            if one_off[j]:
                text = f"{NAMES[slot_name[j]]}, you're booked at {slot_hour[j]}:{slot_min[j]:02d} on {day:%A}."
                key = hashlib.sha256(f"{biz}|{text}".encode()).hexdigest()
                hit = False
            else:
                key, text = pool[ranks[j]]
                hit = hit_roll[j] < (0.92 if ranks[j] < 200 else 0.55 if ranks[j] < 1000 else 0.15)
            chars = len(text)
            if hit:
                cached += chars
            else:
                live += chars
                tts += tts_one[j]
            sents.append({"key": key, "text": text, "hit": hit, "source": "index" if hit else "synth",
                          "chars": chars, "duration_s": round(chars / 15, 2)})
            j += 1
        arm = "warmline" if warm[i] else "control"
        ai_ms = int(ai[i])
        if not sents:
            outcome, filler, ttfa, tta = "reprompt", None, 40, 40
        elif arm == "control":
            tta = int(ai_ms + tts + 250)
            outcome = "fallback" if fallback_roll[i] < 0.04 or tta > 4000 else "control"
            filler, ttfa = None, tta
        elif live == 0 and ai_ms < 300:
            outcome, filler, ttfa, tta = "instant", None, ai_ms + 20, ai_ms + 20
        else:
            filler, ttfa = "Let me check that for you.", int(filler_ttfa[i])
            tta = int(ai_ms + tts + 120)
            outcome = "apology" if fallback_roll[i] < 0.004 else "fallback" if fallback_roll[i] < 0.02 else "filler"
        ts = f"{day.isoformat()}T{secs[i] // 3600:02d}:{secs[i] // 60 % 60:02d}:{secs[i] % 60:02d}.000Z"
        lines.append(json.dumps({
            "v": 1, "ts": ts, "business": biz, "call": f"CA{i:032x}", "turn": 1, "arm": arm,
            "voice": "piper-en_us-joe-medium", "outcome": outcome, "action": "continue", "sentences": sents,
            "filler": filler, "hops": 1, "ai_ms": ai_ms, "tts_ms": int(tts), "time_to_first_audio_ms": ttfa,
            "time_to_answer_ms": tta, "fallback": outcome in ("fallback", "apology"), "chars_live": live,
            "chars_cached": cached, "ai_latency_ms": ai_ms, "time_to_filler_ms": ttfa if filler else None,
            "tts_latency_ms": int(tts), "total_latency_ms": tta, "tts_cached": live == 0,
        }))
    path = Path(out_dir) / f"turns-{day.isoformat()}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n


def generate(out_dir: Path, days: int, per_day: int, seed: int = 7, workers: int | None = None) -> int:
    """Generate ``days`` files of ``per_day`` events into ``out_dir``; return the event count."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return sum(pool.map(_generate_day, [(str(out_dir), d, per_day, seed) for d in range(days)]))


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def measure(events_dir: Path, workers: int | None) -> dict:
    """Build the report over every file in ``events_dir``; return timings and peak RSS.

    ``peak_mb`` is an upper bound of the memory the report held at once: this process's peak plus
    ``workers`` times the largest worker's peak (``ru_maxrss`` of RUSAGE_CHILDREN is a maximum).
    """
    from app.report.compute import build_report_from_files, event_files

    files = event_files(events_dir)
    before = _cpu_s()
    started = time.perf_counter()
    report = build_report_from_files(
        files, since=None, until=None, business=None, price_per_1k_chars=0.03,
        businesses=[b for b, _ in BUSINESSES], workers=workers,
    )
    seconds = time.perf_counter() - started
    cpu_s = _cpu_s() - before
    n_workers = min(workers or os.cpu_count() or 1, len(files))
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "events": report.events_used, "seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2), "workers": n_workers,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "parent_peak_mb": round(self_mb, 1), "worker_peak_mb": round(child_mb, 1),
        "peak_mb": round(self_mb + (n_workers * child_mb if n_workers > 1 else 0), 1),
        "hit_rate": report.overall.hit_rate, "ttfa_p95_ms": report.overall.time_to_first_audio.p95,
        "distinct_top_miss": report.top_misses["demo"][0].text if report.top_misses["demo"] else None,
        "invalid": report.events_invalid + report.lines_corrupt + report.lines_truncated,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=None, help="report worker processes (default: CPUs)")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it (reused if complete)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers)))
        return 0
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="warmline-bench-"))
    try:
        started = time.perf_counter()
        if args.keep and len(list(tmp.glob("turns-*.jsonl"))) == args.days:
            n = args.days * args.per_day  # reuse a kept data set
        else:
            n = generate(tmp, args.days, args.per_day, args.seed)
        size = sum(p.stat().st_size for p in tmp.glob("*.jsonl")) / 1e6
        print(f"generated {n:,} events ({size:,.0f} MB) in {time.perf_counter() - started:.1f} s")
        child = subprocess.run(
            [sys.executable, "-m", "simulator.bench_report", "--measure", str(tmp)]
            + (["--workers", str(args.workers)] if args.workers else []),
            stdout=subprocess.PIPE, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
        )
        result = json.loads(child.stdout)
        print(f"build_report: {result['events']:,} events in {result['seconds']:.2f} s wall, "
              f"{result['cpu_s']:.1f} CPU s (load average {result['load_avg_1m']}), "
              f"{result['workers']} process(es), peak RSS {result['peak_mb']:.0f} MB "
              f"(parent {result['parent_peak_mb']:.0f} MB + workers {result['worker_peak_mb']:.0f} MB each) "
              "(targets: < 10 s, < 500 MB)")
        print(json.dumps(result))
        return 0 if result["seconds"] < 10 and result["peak_mb"] < 500 else 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
