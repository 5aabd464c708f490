"""The runner: synthesize and publish a plan, politely, exactly once, and say what happened.

- **Bounded concurrency sized to the provider**: at most ``provider.max_concurrency`` calls in
  flight per provider (Deepgram 15; Piper 1 — one voice per process), from a pool twice that
  size so that publishing a finished clip overlaps the next request.
- **Backoff with jitter** on retryable failures (429 / 5xx / timeouts: SynthesisRetryable, and
  StoreUnavailable, InvalidAudio): "full jitter", ``uniform(0, min(max_delay, base * 2**attempt))``
  seconds, at most ``attempts`` tries per clip; then the clip counts as failed and the run goes on.
- **Create-only publish** through :meth:`Synthesizer.clip` (validates, publishes create-only,
  indexes). That makes a run **idempotent** (what is indexed or already in the store costs no
  provider call) and **resumable**: the store publishes atomically, so a run killed half-way
  leaves each clip either complete or absent, and the next run makes only the absent ones.
- **One run at a time** per data directory: :class:`RunLock` holds an exclusive ``flock`` on
  ``<data_dir>/precompute.lock``. The kernel drops it when the holder dies (even by SIGKILL),
  so a crash never leaves a stale lock. A second run raises PrecomputeLocked at once. With Redis
  call state (several hosts), the lock also takes a deployment-wide lease
  (:mod:`precompute.lease`), so a second run on *any* host is refused too.
- **Progress**: a bar on a terminal, plain log lines otherwise; a :class:`RunSummary` at the end.

Thread safety: ``run_plan`` is called from one thread and owns its pools; the summary is
updated under a lock. Process safety comes from the lock file and the Synthesizer's own locks.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.errors import (
    InvalidAudio,
    PrecomputeLocked,
    StoreUnavailable,
    SynthesisRetryable,
    WarmlineError,
)
from app.speech.synthesizer import Synthesizer
from precompute.plan import PlanItem, estimated_cost

log = logging.getLogger("warmline.precompute")

RETRYABLE = (SynthesisRetryable, StoreUnavailable, InvalidAudio)
LOCK_NAME = "precompute.lock"
PUBLISH_OVERLAP = 2


class GatedProvider:
    """A provider behind a semaphore of ``slots``: at most that many ``synthesize`` calls in flight.

    Lets the runner's pool have more threads than the provider has slots, so validating,
    publishing and indexing one clip overlaps the next request. Thread-safe.
    """

    def __init__(self, provider: Any, slots: int) -> None:
        self.provider = provider
        self.name = provider.name
        self.max_concurrency = slots
        self._gate = threading.BoundedSemaphore(slots)

    def synthesize(self, text: str, voice: Any) -> bytes:
        with self._gate:
            return self.provider.synthesize(text, voice)


# --- the lock -------------------------------------------------------------------------------


class RunLock:
    """An exclusive, non-blocking ``flock`` on a lock file; released on ``release()`` or process death.

    The file holds the holder's PID (for the message a refused run prints). Not re-entrant.
    Safe across processes; one instance must not be shared by threads that acquire it twice.
    """

    def __init__(self, path: Path | str, *, shared: Any = None) -> None:
        self.path = Path(path)
        self.shared = shared  # a precompute.lease.RedisLease taken after the flock, or None
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise PrecomputeLocked naming the holder's PID."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "?"
            os.close(fd)
            raise PrecomputeLocked(f"another precompute run is in progress (pid {holder}); not starting") from None
        except OSError:
            os.close(fd)
            raise
        if self.shared is not None:
            try:
                self.shared.acquire()
            except PrecomputeLocked:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            if self.shared is not None:
                self.shared.release()
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


# --- the summary ----------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What a run did. ``chars`` counts characters actually synthesized (billed); cost is estimated."""

    planned: int = 0
    new: int = 0
    already: int = 0
    failed: int = 0
    chars: int = 0
    planned_chars: int = 0
    retries: int = 0
    seconds: float = 0.0
    price_per_1k_chars: float = 0.0
    dry_run: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)
    assembled: int = 0  # phrase-level sentences newly assembled from published pieces (no synthesis)

    @property
    def done(self) -> int:
        return self.new + self.already + self.failed

    @property
    def est_cost(self) -> float:
        return estimated_cost(self.chars, self.price_per_1k_chars)

    @property
    def planned_cost(self) -> float:
        return estimated_cost(self.planned_chars, self.price_per_1k_chars)

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned, "new": self.new, "already": self.already, "failed": self.failed,
            "chars": self.chars, "planned_chars": self.planned_chars, "est_cost": self.est_cost,
            "planned_cost": self.planned_cost, "retries": self.retries, "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run, "failures": list(self.failures), "assembled": self.assembled,
        }

    def lines(self) -> list[str]:
        """The human summary printed at the end of a run."""
        if self.dry_run:
            return [
                f"planned {self.planned} clips, {self.planned_chars} characters, "
                f"estimated cost {self.planned_cost:.4f} (at {self.price_per_1k_chars:g} per 1,000 characters)",
                "dry run: nothing synthesized",
            ]
        lines = [
            f"planned {self.planned}  new {self.new}  already there {self.already}  failed {self.failed}",
            f"characters synthesized {self.chars} of {self.planned_chars} planned; "
            f"estimated cost {self.est_cost:.4f} (at {self.price_per_1k_chars:g} per 1,000 characters); "
            f"{self.retries} retries; {self.seconds:.1f} s",
        ]
        if self.assembled:
            lines.append(f"sentences assembled from their pieces {self.assembled}")
        lines.extend(f"failed: {f['text'][:60]!r}: {f['error']}" for f in self.failures[:20])
        return lines


# --- progress -------------------------------------------------------------------------------


class Progress:
    """A progress bar on a terminal, else a log line every ``every_s`` seconds (and at the end)."""

    def __init__(self, total: int, stream: IO[str] | None = None, *, tty: bool | None = None,
                 every_s: float = 5.0, width: int = 30) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s
        self.width = width
        self._last: float | None = None

    def update(self, summary: RunSummary, *, final: bool = False) -> None:
        done = summary.done
        if self.tty:
            filled = int(self.width * done / self.total) if self.total else self.width
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {done}/{self.total}  new {summary.new}  "
                              f"there {summary.already}  failed {summary.failed}")
            if final:
                self.stream.write("\n")
            self.stream.flush()
            return
        now = time.monotonic()
        if final or self._last is None or now - self._last >= self.every_s:
            self._last = now
            log.info("precompute progress %d/%d new=%d already=%d failed=%d chars=%d",
                     done, self.total, summary.new, summary.already, summary.failed, summary.chars)


# --- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Retry policy: ``attempts`` tries; full-jitter exponential delays in seconds."""

    attempts: int = 8
    base_s: float = 0.25
    max_s: float = 10.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.max_s, self.base_s * (2 ** attempt)))


def make_one(
    synthesizer: Synthesizer, item: PlanItem, backoff: Backoff, rng: random.Random,
    sleep: Callable[[float], None] = time.sleep, on_retry: Callable[[], None] | None = None,
) -> tuple[str, Any]:
    """Publish one item: ("new" | "already", clip) or ("failed", error message). Never raises WarmlineError."""
    for attempt in range(backoff.attempts):
        try:
            clip = synthesizer.clip(item.text, item.voice)
        except RETRYABLE as exc:
            if attempt + 1 >= backoff.attempts:
                return "failed", f"{type(exc).__name__}: {exc} (after {backoff.attempts} attempts)"
            if on_retry is not None:
                on_retry()
            sleep(backoff.delay(attempt, rng))
            continue
        except WarmlineError as exc:
            return "failed", f"{type(exc).__name__}: {exc}"
        return ("new" if clip.source == "synth" else "already"), clip
    return "failed", "no attempt made"


def run_plan(
    items: Sequence[PlanItem],
    synthesizer: Synthesizer,
    *,
    backoff: Backoff = Backoff(),
    concurrency: dict[str, int] | None = None,
    progress: Progress | None = None,
    price_per_1k_chars: float = 0.0,
    seed: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunSummary:
    """Synthesize and publish ``items``; return the summary. Blocks until every item is done.

    Items are grouped by provider; each group runs on its own pool, all groups at once, with at
    most ``max_concurrency`` provider calls in flight (``concurrency`` overrides per provider name)
    and twice as many threads, so publishing overlaps synthesis.
    Items whose provider is not configured fail (SynthesisRejected) without stopping the run.
    """
    summary = RunSummary(planned=len(items), planned_chars=sum(i.chars for i in items),
                         price_per_1k_chars=price_per_1k_chars)
    lock = threading.Lock()
    rng = random.Random(seed)
    started = time.perf_counter()

    def on_retry() -> None:
        with lock:
            summary.retries += 1

    groups: dict[str, list[PlanItem]] = {}
    for item in items:
        groups.setdefault(item.voice.provider, []).append(item)
    gated: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    for name in groups:
        provider = synthesizer.providers.get(name)
        sizes[name] = max(1, int((concurrency or {}).get(name) or getattr(provider, "max_concurrency", 1) or 1))
        if provider is not None:
            gated[name] = GatedProvider(provider, sizes[name])
    # Same store and index (so the same singleflight locks); providers behind their gates.
    worker = Synthesizer(store=synthesizer.store, index=synthesizer.index, providers=gated)
    pools: list[ThreadPoolExecutor] = []
    futures = {}
    try:
        for name, group in groups.items():
            # Twice the provider's slots: while one thread validates and publishes a clip, another
            # already has the freed slot; the gate keeps provider calls in flight <= the limit.
            pool = ThreadPoolExecutor(max_workers=PUBLISH_OVERLAP * sizes[name], thread_name_prefix=f"precompute-{name}")
            pools.append(pool)
            for item in group:
                item_rng = random.Random(rng.random())
                futures[pool.submit(make_one, worker, item, backoff, item_rng, sleep, on_retry)] = item
        for future in as_completed(futures):
            item = futures[future]
            outcome, detail = future.result()
            with lock:
                if outcome == "new":
                    summary.new += 1
                    summary.chars += item.chars
                elif outcome == "already":
                    summary.already += 1
                else:
                    summary.failed += 1
                    summary.failures.append({"text": item.text, "key": item.key, "error": str(detail)})
                    log.warning("precompute failed key=%s: %s", item.key[:12], detail)
            if progress is not None:
                progress.update(summary)
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.perf_counter() - started
    if progress is not None:
        progress.update(summary, final=True)
    return summary


# --- one whole run, as the CLI, the scheduler and the admin endpoint start it ---------------


@dataclass(frozen=True)
class RunOptions:
    """What to run: ``business_ids`` (None = all), budget (None = settings), a corpus to mine too."""

    business_ids: tuple[str, ...] | None = None
    dry_run: bool = False
    budget_chars: int | None = None
    corpus: Path | None = None
    fixed_only: bool = False
    rank: str = "turns"


def _shared_lease(runtime: Any, name: str, what: str) -> Any:
    settings = runtime.settings
    if not settings.state_location.startswith(("redis://", "rediss://")):
        return None
    from app.events_ship import host_id
    from precompute.lease import RedisLease, holder_name

    return RedisLease(settings.state_location, name, what=what, holder=holder_name(host_id(settings.host_id)))


def lock_for(runtime: Any) -> RunLock:
    """The run lock of ``runtime``'s data directory (not yet acquired); deployment-wide with Redis state."""
    return RunLock(Path(runtime.settings.data_dir) / LOCK_NAME, shared=_shared_lease(runtime, "precompute:run",
                                                                                     "precompute run"))


def scheduler_lock_for(runtime: Any) -> RunLock:
    """The lock a ``precompute schedule`` process holds for its life: one scheduler per data dir / deployment."""
    return RunLock(Path(runtime.settings.data_dir) / "precompute-scheduler.lock",
                   shared=_shared_lease(runtime, "precompute:scheduler", "precompute scheduler"))


def mined_counts(runtime: Any, businesses: Sequence[Any], options: RunOptions) -> Callable[[Any], Any]:
    """A ``voice -> Counter`` over the turn log of the last N days (every host's, from the private events
    store; pieces heard in fewer than ``min_distinct_calls`` calls or holding a slot value are left out)
    plus, with ``options.corpus``, the corpus mined at the splice levels of that voice's businesses."""
    from collections import Counter

    from app.report.source import event_lines, events_store_of, host_of
    from precompute import mine

    days = runtime.settings.precompute_days
    today = dt.datetime.now(dt.UTC).date()
    lines = event_lines(events_dir=Path(runtime.settings.data_dir) / "events", store=events_store_of(runtime),
                        this_host=host_of(runtime), since=today - dt.timedelta(days=max(1, days) - 1), until=today)
    mined = mine.mine_events(mine.parse_lines(lines))
    log.info("mined %d turns over %d days: %d voices", mined.turns, days, len(mined.counts))
    corpus_by_level: dict[str, mine.Mined] = {}
    turns = list(mine.agent_turns(mine.read_corpus(options.corpus))) if options.corpus else []

    def counts(voice: Any) -> Counter[str]:
        parts = [mined]
        for level in sorted({b.splice for b in businesses if b.voice == voice}):
            if turns and level not in corpus_by_level:
                corpus_by_level[level] = mine.mine_corpus(turns, level)
            if level in corpus_by_level:
                parts.append(corpus_by_level[level])
        # logged pieces heard in fewer than min_distinct_calls calls are left out; coverage for the "turns" rank
        return mine.combined(parts, voice.slug, min_calls=runtime.settings.min_distinct_calls)

    return counts


def plan_for(runtime: Any, options: RunOptions, targets: tuple[list[Any], Any] | None = None):
    """The plan ``options`` ask for, against what ``runtime``'s index already holds (``targets``:
    :func:`_targets` when the caller has them already)."""
    from precompute.plan import build_plan

    settings = runtime.settings
    businesses, fixed_texts = targets if targets is not None else _targets(runtime, options)
    index = runtime.index

    def is_published(key: str) -> bool:
        return index.get(key) is not None

    return build_plan(
        businesses,
        None if options.fixed_only else mined_counts(runtime, businesses, options),
        is_published=is_published,
        min_count=settings.precompute_min_count,
        budget_chars=settings.precompute_budget_chars if options.budget_chars is None else options.budget_chars,
        fixed_only=options.fixed_only,
        extra_fixed=fixed_texts,
        rank=options.rank,
    )


def _targets(runtime: Any, options: RunOptions) -> tuple[list[Any], Any]:
    """The businesses a run covers and the responder's own fixed phrasing (``fixed_texts(business)``, or None)."""
    if options.business_ids:
        unknown = [b for b in options.business_ids if runtime.businesses.get(b) is None]
        if unknown:
            raise WarmlineError(f"no business {', '.join(map(repr, unknown))}; known: {', '.join(runtime.businesses.ids())}")
        businesses = [runtime.businesses.get(b) for b in options.business_ids]
    else:
        businesses = list(runtime.businesses)
    try:
        fixed_texts = getattr(runtime.responder, "fixed_texts", None)  # a responder's own fixed phrasing, if it says
    except WarmlineError as exc:
        log.warning("responder unavailable, planning without its fixed phrasing: %s", exc)
        fixed_texts = None
    return businesses, fixed_texts


def assemble_sentences(synthesizer: Any, businesses: Sequence[Any],
                       extra_fixed: Callable[[Any], Any] | None = None) -> int:
    """Assemble every fixed sentence the phrase level plays as one clip (:func:`precompute.plan.fixed_sentences`)
    whose pieces are all published, so a live turn finds it in the index instead of uploading it inside a
    webhook; returns how many were new. Idempotent (an assembled sentence is an index hit next time). A
    sentence that cannot be assembled (a piece missing or unreadable) is logged and left to the live path."""
    from precompute.plan import fixed_sentences

    made = 0
    for business in businesses:
        extra = list(extra_fixed(business)) if extra_fixed is not None else []
        for run in fixed_sentences(business, extra):
            try:
                clip = synthesizer.assemble_texts(list(run), business.voice)
            except (WarmlineError, ValueError) as exc:
                log.warning("precompute: sentence %r not assembled: %s", " ".join(run)[:60], exc)
                continue
            if clip is not None and clip.source == "assembled":
                made += 1
    return made


def precompute(runtime: Any, options: RunOptions = RunOptions(), *, lock: RunLock | None = None,
               progress_stream: IO[str] | None = None, seed: int | None = None) -> RunSummary:
    """One precompute run: lock, mine, plan, synthesize, summarize. Raises PrecomputeLocked.

    ``lock``: an already-acquired lock to use (and release); otherwise one is taken here. A dry
    run plans without the lock and synthesizes nothing.
    """
    if options.dry_run:
        plan = plan_for(runtime, options)
        return RunSummary(planned=len(plan.items), planned_chars=plan.chars, dry_run=True,
                          price_per_1k_chars=runtime.settings.price_per_1k_chars)
    held = lock if lock is not None else lock_for(runtime).acquire()
    try:
        targets = _targets(runtime, options)
        plan = plan_for(runtime, options, targets)
        log.info("precompute plan: %d clips (%d fixed, %d mined), %d characters; %d already published, "
                 "%d below min_count, %d cut by the budget", len(plan.items), len(plan.fixed), len(plan.mined),
                 plan.chars, plan.already_published, plan.below_min_count, plan.cut_by_budget)
        summary = run_plan(plan.items, runtime.synthesizer, progress=Progress(len(plan.items), progress_stream),
                           price_per_1k_chars=runtime.settings.price_per_1k_chars, seed=seed)
        summary.assembled = assemble_sentences(runtime.synthesizer, *targets)
        return summary
    finally:
        held.release()
