"""Benchmark the cache-hit report: generate synthetic turn events, time build_report, measure peak RSS.

    python -m simulator.bench_report --days 30 --per-day 50000      # 1.5 M events
    python -m simulator.bench_report --rollups --hosts 4 --days 30 --per-day 1000000 \
        --raw-days 5 --raw-per-day 200000                           # 30 M events from daily rollups

``--rollups`` (issue 12): part 1 generates raw events for several hosts, builds each host-day's
rollup with the shipper's own code, then builds the same report both ways in fresh processes
(raw: every event parsed, exact samples kept; rollups: the report's reader over the events-store
layout) and checks that counts and histograms are equal and that every percentile is within one
bucket of the raw events' exact nearest-rank value. Part 2 draws 30 days x ``--per-day`` events'
rollups straight from the same distributions (numpy; no raw JSON: writing 30 M events is not
feasible on a shared 2-core box) and times the 30-day report over them; the raw path's time for
that volume is extrapolated from part 1's rate.

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


def _generate_day(args: tuple) -> int:
    """Write one day's file (of one host: ``args[4]``, default none); return the number of events written."""
    out_dir, day_index, per_day, seed = args[:4]
    host = args[4] if len(args) > 4 else ""
    rng = np.random.default_rng([seed, day_index, int(hashlib.sha256(host.encode()).hexdigest()[:8], 16)])
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
    call_prefix = hashlib.sha256(f"{host}|{day_index}".encode()).hexdigest()[:8]
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
                          "spoken": "cache" if hit else "live", "chars": chars, "duration_s": round(chars / 15, 2),
                          **({"slot": True} if one_off[j] else {})})
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
        failure = ({"kind": "responder", "error": "ResponderError", "detail": None} if outcome == "apology" else
                   {"kind": "deadline", "error": None, "detail": None} if outcome == "fallback" else None)
        lines.append(json.dumps({
            "v": 2, "ts": ts, "host": host, "business": biz, "call": f"CA{call_prefix}{i:024x}", "turn": 1,
            "arm": arm, "voice": "piper-en_us-joe-medium", "outcome": outcome,
            "reply": "apology" if outcome == "apology" else "responder", "failure": failure,
            "action": "continue", "sentences": sents,
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


# --- rollups: the 30-day report from daily rollups, beside the raw path (issue 12) ------------------

ROLLUP_START = date(2026, 9, 1)


def generate_hosts(out_dir: Path, hosts: int, days: int, per_day: int, seed: int = 7) -> int:
    """Raw events of ``hosts`` hosts (``<out_dir>/<host>/turns-DAY.jsonl``), ``per_day`` a day in all."""
    jobs = []
    for h in range(hosts):
        host_dir = out_dir / f"host-{h + 1}"
        host_dir.mkdir(parents=True, exist_ok=True)
        jobs += [(str(host_dir), d, per_day // hosts, seed, f"host-{h + 1}") for d in range(days)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return sum(pool.map(_generate_day, jobs))


def _rollup_file(args: tuple[str, str, str]) -> float:
    """Worker: the shipper's rollup of one host-day file, written to the events-store layout; CPU s spent."""
    path, host, store_root = args
    from app.events_store import LocalEventsStore, rollup_name
    from app.report.rollup import rollup_bytes

    started = time.process_time()
    day = date.fromisoformat(Path(path).name[6:16])
    LocalEventsStore(store_root).put_new(rollup_name(host, day), rollup_bytes(Path(path).read_bytes(), host, day))
    return time.process_time() - started


def _synth_rollup(args: tuple[str, str, int, int, int]) -> int:
    """Worker: a rollup of ``n`` events for one host-day drawn straight from the distributions (no raw events).

    Same shapes as the raw generator: 90 % Warmline arm, 1-4 sentences, lognormal latencies; counts by
    binomial draws; latencies binned with the report's own edges; ROLLUP_MISSES missed sentences per business
    with up to 16 call ids each. Returns the number of events it stands for.
    """
    store_root, host, day_index, n, seed = args
    from app.events_store import LocalEventsStore, rollup_name
    from app.report.compute import EDGES, N_BUCKETS
    from app.report.rollup import ROLLUP_MISSES, ROLLUP_VERSION

    rng = np.random.default_rng([seed, day_index, int(hashlib.sha256(host.encode()).hexdigest()[:8], 16)])
    day = ROLLUP_START + timedelta(days=day_index)
    edges = np.asarray(EDGES)

    def hist(samples: np.ndarray) -> list[list[int]]:
        counts = np.bincount(np.searchsorted(edges, samples, side="left"), minlength=N_BUCKETS)
        return [[int(i), int(c)] for i in np.flatnonzero(counts) for c in (counts[i],)]

    groups = []
    for biz, share in BUSINESSES:
        for arm, arm_share in (("warmline", 0.9), ("control", 0.1)):
            t = int(rng.binomial(n, share * arm_share))
            sentences = int(rng.binomial(4 * t, 0.53))
            hit = int(rng.binomial(sentences, 0.62))
            live_turns = int(rng.binomial(t, 0.55))
            say = int(rng.binomial(t, 0.02 if arm == "warmline" else 0.06))
            apology = int(rng.binomial(t, 0.004))
            ttfa = rng.lognormal(np.log(260 if arm == "warmline" else 1900), 0.3, t)
            tta = rng.lognormal(np.log(1250 if arm == "warmline" else 1900), 0.4, t)
            groups.append({
                "business": biz, "day": day.isoformat(), "arm": arm, "host": host, "turns": t,
                "sentences": sentences, "hit": hit, "with_sentences": int(t * 0.97), "full": int(t * 0.3),
                "filler": int(t * 0.7) if arm == "warmline" else 0, "fallback": say, "chars_live": sentences * 20,
                "chars_cached": hit * 40, "answered": sentences, "say_sent": say, "fv_sent": 0, "fv_turns": 0,
                "apology": apology, "responder_fail": apology, "synth_fail": 0,
                "failures": {"responder: ResponderError": apology, "deadline": say},
                "hist": {"ttfa": hist(ttfa), "tta": hist(tta), "ai": hist(rng.lognormal(np.log(800), 0.35, t)),
                         "tts": hist(rng.lognormal(np.log(700), 0.4, live_turns))},
            })
    misses = {}
    for biz, share in BUSINESSES:
        counts = np.sort(rng.zipf(1.3, ROLLUP_MISSES))[::-1] * 3
        misses[biz] = [[hashlib.sha256(f"{biz}|{k}".encode()).hexdigest(), int(c),
                        [f"{k:04x}{j:08x}" for j in range(min(16, int(c)))], f"Sentence number {k} of {biz}.", 30]
                       for k, c in enumerate(counts.tolist())]
    doc = {"v": ROLLUP_VERSION, "host": host, "day": day.isoformat(), "end": None, "groups": groups,
           "misses": misses, "quality": {"used": n, "corrupt": 0, "truncated": 0, "invalid": 0}}
    LocalEventsStore(store_root).put_new(rollup_name(host, day), json.dumps(doc, separators=(",", ":")).encode())
    return n


def _peak_mb() -> float:
    """This process's peak RSS in MB: ``VmHWM`` (per address space, so not inherited from the process that
    forked us, unlike ``ru_maxrss``, which survives exec); ``ru_maxrss`` where /proc is not there."""
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_rollups(store_root: Path, since: date, until: date) -> dict:
    """Child mode: the report over every host's rollups in [since, until] through the report's own reader."""
    from app.events_store import LocalEventsStore
    from app.report.compute import _Fold, finish
    from app.report.source import collect

    started = time.perf_counter()
    fold = _Fold(since, until, None)
    hosts = collect(fold, events_dir=store_root / "no-local-log", store=LocalEventsStore(store_root),
                    this_host="bench-reader", since=since, until=until)
    report = finish(fold, since=since, until=until, business=None, price=0.03, known=[b for b, _ in BUSINESSES],
                    hosts=hosts)
    return {"events": report.events_used, "seconds": round(time.perf_counter() - started, 3),
            "peak_mb": round(_peak_mb(), 1), "rollups": fold.sources.get("rollups", 0), **_figures(report)}


def measure_raw(raw_root: Path, workers: int | None) -> dict:
    """Child mode: the same report from every host's raw files, keeping exact samples for comparison."""
    from app.report.compute import LATENCIES, _Fold, exact_latency, finish, fold_files

    started = time.perf_counter()
    fold = _Fold(None, None, None, exact=True)
    for host_dir in sorted(p for p in raw_root.iterdir() if p.is_dir()):
        fold_files(sorted(host_dir.glob("turns-*.jsonl")), fold, host=host_dir.name, workers=workers)
    report = finish(fold, since=None, until=None, business=None, price=0.03, known=[b for b, _ in BUSINESSES])
    seconds = time.perf_counter() - started
    exact = {}
    for arm in ("warmline", "control"):
        groups = [g for (_, _, a, _), g in fold.groups.items() if a == arm]
        for name in LATENCIES[:2]:
            lat = exact_latency(groups, name)
            exact[f"{arm}.{name}"] = [lat.p50, lat.p95, lat.p99]
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"events": report.events_used, "seconds": round(seconds, 2), "peak_mb": round(_peak_mb(), 1),
            "worker_peak_mb": round(child, 1), "exact": exact, **_figures(report)}


def _figures(report) -> dict:
    """What the two paths must agree on: counts exactly, percentiles (from histograms) per arm."""
    out = {"turns": report.overall.turns, "sentences": report.overall.sentences, "hit": report.overall.sentences_hit,
           "apology": report.overall.apology_turns, "say": report.overall.fallback_turns}
    for arm, s in report.overall_by_arm.items():
        out[f"{arm}.ttfa"] = [s.time_to_first_audio.p50, s.time_to_first_audio.p95, s.time_to_first_audio.p99]
        out[f"{arm}.tta"] = [s.time_to_answer.p50, s.time_to_answer.p95, s.time_to_answer.p99]
    return out


def _child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "simulator.bench_report", *args], stdout=subprocess.PIPE, text=True,
                          check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(proc.stdout)


def within_one_bucket(exact: float, bucketed: float) -> bool:
    """True when ``bucketed`` (a bucket's upper edge) is the edge of ``exact``'s bucket or the next one."""
    from app.report.compute import EDGES, bucket_of

    i = bucket_of(exact)
    j = bucket_of(bucketed)
    return EDGES[min(j, len(EDGES) - 1)] >= exact and abs(i - j) <= 1


def rollup_benchmark(args: argparse.Namespace) -> int:
    """Part 1: raw vs rollups on the same raw events (the raw path can finish). Part 2: 30 M events' rollups."""
    from app.events_store import LocalEventsStore

    tmp = Path(tempfile.mkdtemp(prefix="warmline-rollup-bench-"))
    out: dict = {"load_avg_1m_start": round(os.getloadavg()[0], 2)}
    try:
        # Part 1 -- the same events, both ways.
        raw_root, store_root = tmp / "raw", tmp / "store"
        started = time.perf_counter()
        n_raw = generate_hosts(raw_root, args.hosts, args.raw_days, args.raw_per_day, args.seed)
        out["raw_events"] = n_raw
        out["raw_mb"] = round(sum(p.stat().st_size for p in raw_root.rglob("*.jsonl")) / 1e6, 1)
        out["raw_generate_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        jobs = [(str(p), p.parent.name, str(store_root)) for p in sorted(raw_root.rglob("turns-*.jsonl"))]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            cpu = list(pool.map(_rollup_file, jobs))
        out["rollup_build_s"] = round(time.perf_counter() - started, 1)
        out["rollup_build_cpu_s_per_host_day"] = round(max(cpu), 2)
        days = sorted({date.fromisoformat(Path(j[0]).name[6:16]) for j in jobs})
        raw = _child("--measure-raw", str(raw_root))
        rolled = _child("--measure-rollups", str(store_root), "--since", days[0].isoformat(), "--until",
                        days[-1].isoformat())
        out["part1_raw"], out["part1_rollups"] = raw, rolled
        agree = all(raw[k] == rolled[k] for k in ("events", "turns", "sentences", "hit", "apology", "say"))
        agree = agree and all(raw[k] == rolled[k] for k in raw if "." in k and k in rolled)  # same buckets
        close = all(within_one_bucket(e, b) for k, ex in raw["exact"].items() for e, b in zip(ex, rolled[k])
                    if e is not None)
        out["part1_counts_and_histograms_equal"], out["part1_percentiles_within_one_bucket"] = agree, close

        # Part 2 -- 30 M events: rollups drawn from the distributions, then the 30-day report.
        big = tmp / "big"
        started = time.perf_counter()
        per_host = args.per_day // args.hosts
        jobs2 = [(str(big), f"host-{h + 1}", d, per_host, args.seed) for h in range(args.hosts) for d in range(args.days)]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            out["big_events"] = sum(pool.map(_synth_rollup, jobs2))
        out["big_generate_s"] = round(time.perf_counter() - started, 1)
        out["big_rollup_mb"] = round(sum(p.stat().st_size for p in big.rglob("*.json")) / 1e6, 1)
        out["big_rollup_files"] = len(LocalEventsStore(big).list("rollup/"))
        until = ROLLUP_START + timedelta(days=args.days - 1)
        out["part2_rollups"] = _child("--measure-rollups", str(big), "--since", ROLLUP_START.isoformat(),
                                      "--until", until.isoformat())
        rate = raw["seconds"] / max(1, raw["events"])
        out["raw_path_extrapolated_s_for_big"] = round(rate * out["big_events"], 0)
        out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        p2 = out["part2_rollups"]
        print(f"part 1: {n_raw:,} raw events ({out['raw_mb']:,} MB), {args.hosts} hosts x {args.raw_days} days: "
              f"raw path {raw['seconds']:.2f} s, {raw['peak_mb']:.0f} MB (+ workers {raw['worker_peak_mb']:.0f} MB); "
              f"rollups {rolled['seconds']:.3f} s, {rolled['peak_mb']:.0f} MB; counts and histograms equal: {agree}; "
              f"percentiles within one bucket of the exact raw ones: {close}")
        print(f"part 2: {out['big_events']:,} events in {out['big_rollup_files']} rollups ({out['big_rollup_mb']} MB): "
              f"30-day report {p2['seconds']:.3f} s, peak {p2['peak_mb']:.0f} MB (goal < 2 s, < 300 MB); raw path "
              f"extrapolated at part 1's rate: ~{out['raw_path_extrapolated_s_for_big']:,.0f} s")
        print(json.dumps(out))
        return 0 if agree and close and p2["seconds"] < 2 and p2["peak_mb"] < 300 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=None, help="report worker processes (default: CPUs)")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it (reused if complete)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--rollups", action="store_true",
                        help="issue 12: raw vs daily rollups on the same events, then a 30-day report from rollups")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--raw-days", type=int, default=5, help="--rollups: days of raw events for the comparison")
    parser.add_argument("--raw-per-day", type=int, default=200_000, help="--rollups: raw events a day (all hosts)")
    parser.add_argument("--measure-raw", type=Path, help=argparse.SUPPRESS)  # child modes
    parser.add_argument("--measure-rollups", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--since", type=date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--until", type=date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers)))
        return 0
    if args.measure_raw:
        print(json.dumps(measure_raw(args.measure_raw, args.workers)))
        return 0
    if args.measure_rollups:
        print(json.dumps(measure_rollups(args.measure_rollups, args.since, args.until)))
        return 0
    if args.rollups:
        return rollup_benchmark(args)
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
