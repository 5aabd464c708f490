"""gunicorn settings for Warmline (gthread: requests wait on I/O, threads carry concurrency).

Serving settings come from the environment (``WARMLINE_BIND``, ``WARMLINE_WORKERS``,
``WARMLINE_THREADS``, ``WARMLINE_ACCESS_LOG``); command-line flags (``-b``, ``-w``) still win.

Start-up check: the master runs :func:`app.doctor.main_check` once in ``on_starting``, before it
binds or forks a worker: any problem stops it with one line per problem and exit status 3 (not
enforced for the live checks under ``WARMLINE_ENV=testing``). The check runs in a short-lived
forked child, so the master itself never imports the application (workers import it fresh).
Malformed values here fall back to the defaults so that the check, not a traceback, reports them.

Reloading businesses: ``kill -HUP <master pid>`` re-checks the settings, the business file and its
voices (not the network services: a reload must be quick while calls are running); when it passes, new
workers start on it and the old ones finish their requests (gunicorn's graceful reload). Workers
read a copy pinned by the master (``<data dir>/run/businesses-<pid>.toml``), so a broken file
never reaches a worker: the reload is refused, logged one line per problem, and the running
business file stays in service.
"""

import os
import shutil
from pathlib import Path

# Prometheus multiprocess mode: every worker writes its samples under one directory, /metrics sums
# them. Set before the workers fork; wiped when the master starts so dead workers' files don't linger.
_data_dir = Path(os.environ.get("WARMLINE_DATA_DIR", Path(__file__).resolve().parent / "var"))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_data_dir / "prometheus"))



def _int(var, default):
    try:
        return max(1, int(os.environ.get(var) or default))
    except ValueError:
        return default  # the start-up check names it and stops


bind = (os.environ.get("WARMLINE_BIND") or "127.0.0.1:8000").replace(",", " ").split()
worker_class = "gthread"
# One more worker than the host has cores: a worker's Python runs one thread at a time (the GIL), and
# with ~100 threads per worker (webhooks + turn jobs) a thread whose I/O came back queues for it; a
# third process on 2 cores cut that queue. 200 callers on 2 cores (LLM + Deepgram emulators, see
# BENCHMARKS.md "Capacity"): p95 time to answer <= 2.5 s in 3 of 5 runs with 3 workers, 0 of 6 with 2.
# Each worker holds its own voices and pools (~330 MB RSS with Piper loaded).
workers = _int("WARMLINE_WORKERS", len(os.sched_getaffinity(0)) + 1)
# A request holds its thread while it waits: `process` up to the instant budget (0.3 s), a `tts-ready`
# hop up to the silence budget (0.5 s), then it answers with a bridge. With 200 calls on a host about
# a third are in such a wait at any moment (the rest are listening to audio or speaking), ~70
# requests over 2 workers: 64 threads per worker carry 200+ calls with room for bursts. Threads that
# wait cost memory, not CPU (the GIL is released on I/O).
threads = _int("WARMLINE_THREADS", 64)
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("WARMLINE_ACCESS_LOG") or None
# Each worker imports the app itself: onnxruntime, httpx pools and SQLite handles must not cross fork.
preload_app = False
# gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which
# several masters on one machine would fight over; Warmline doesn't use it.
control_socket_disable = True


def _strict():
    return os.environ.get("WARMLINE_ENV", "development") != "testing"


def _pinned_path(server):
    return _data_dir / "run" / f"businesses-{server.pid}.toml"


def _read(path):
    try:
        return path.read_bytes()
    except OSError:
        return None  # the check names the file


def _in_child(fn):
    """Run ``fn()`` (returns an exit status) in a forked child and return its status.

    Keeps the application's modules out of the master: workers fork from it and must import
    the code fresh (a new release, a SIGHUP).
    """
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            status = fn()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(status)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _check_and_pin(server, *, reloading):
    """Check everything against the operator's business file; on success workers get a pinned copy of it."""
    source = Path(server.warmline_businesses)
    pinned = _pinned_path(server)
    data = _read(source)

    def check():
        from app.doctor import STATIC_CHECKS, bind_override, diagnose, main_check

        overrides = {**bind_override(server.cfg.bind), "businesses": source}
        if not reloading:
            main_check(overrides, strict=_strict(), log=server.log.info)  # SystemExit(3) on problems
            return 0
        report = diagnose(overrides=overrides, only=("voices",))  # what a business file can break; kept light
        if not report.ok and (_strict() or any(not c.ok for c in report.checks if c.name in STATIC_CHECKS)):
            for line in report.problems:
                server.log.error("reload refused, still serving the previous business file: %s", line)
            return 1
        server.log.info("reload: business file %s checked; new workers start on it", source)
        return 0

    status = _in_child(check)
    if status != 0:
        if not reloading:
            raise SystemExit(status)
        return
    if data is None or _read(source) != data:  # changed while being checked: pin nothing unchecked
        server.log.error("the business file %s changed while it was checked; send SIGHUP again", source)
        if not reloading:
            raise SystemExit(3)
        return
    pinned.parent.mkdir(parents=True, exist_ok=True)
    candidate = pinned.with_suffix(".new")
    candidate.write_bytes(data)
    os.replace(candidate, pinned)
    os.environ["WARMLINE_BUSINESSES"] = str(pinned)
    server.log.info("workers read %s as pinned at %s (kill -HUP %s re-reads it)", source, pinned, server.pid)


def on_starting(server):
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    default = Path(__file__).resolve().parent / "businesses" / "businesses.toml"  # app.config's default
    server.warmline_businesses = os.environ.get("WARMLINE_BUSINESSES") or str(default)
    _check_and_pin(server, reloading=False)


def on_reload(server):
    """SIGHUP: re-check, then (if it passes) let the new workers read the new business file."""
    _check_and_pin(server, reloading=True)


def on_exit(server):
    _pinned_path(server).unlink(missing_ok=True)
    _ship_what_is_left(server)


def _ship_what_is_left(server):
    """After every worker has gone: ship whatever is left of this host's turn log (idempotent, create-only)."""
    from pathlib import Path

    from app.config import load_settings
    from app.errors import StoreError, WarmlineError
    from app.events_ship import Shipper, host_id
    from app.events_store import open_events_store

    try:
        settings = load_settings()
        store = open_events_store(settings.events_store, settings.store, settings.data_dir)
    except WarmlineError as exc:
        server.log.warning("final shipping of turn events skipped: %s", exc)
        return
    if store is None:
        return
    shipper = Shipper(Path(settings.data_dir) / "events", store, host_id(settings.host_id))
    try:
        shipper.ship_once()
    except (StoreError, OSError) as exc:
        server.log.warning("final shipping of turn events failed: %s", exc)
    finally:
        shipper.close()


def post_fork(server, worker):
    """The worker's settings see how many workers share this host, whatever set it (this file, -w):
    ``WARMLINE_SYNTH_WORKERS`` is the host's syntheses in flight, split over them."""
    os.environ["WARMLINE_WORKERS"] = str(server.cfg.workers)


def post_worker_init(worker):
    """Warm the worker (load the Piper voice) in the background, so the first call does not wait for it."""
    import threading

    runtime = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("warmline")
    if runtime is None:  # another WSGI app under these settings (the capacity benchmark's bare endpoint)
        return

    def warm():
        try:
            runtime.warm()
        except Exception as exc:  # noqa: BLE001 - warming is best effort; the first request loads lazily
            worker.log.warning("warm-up failed: %s", exc)

    worker.warmline_warm_up = threading.Thread(target=warm, name="warm-up", daemon=True)
    worker.warmline_warm_up.start()
    # Turn events to the private events store; one worker per host ships (a flock), the others stand by.
    runtime.start_shipping()


WARM_UP_JOIN_S = 15.0
"""How long a stopping worker waits for its warm-up (the Piper voice loading) to finish (within
graceful_timeout, after which the master kills it anyway): interpreter exit
kills a daemon thread mid-call, and onnxruntime aborts the process (SIGABRT) when that call is its
session initialisation -- seen when gunicorn is stopped in its first ~10 s."""


def worker_exit(server, worker):
    """Let running turn jobs finish (they are bounded by the turn deadline) before the worker exits."""
    runtime = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("warmline")
    warm_up = getattr(worker, "warmline_warm_up", None)
    if warm_up is not None:  # a worker stopped while loading its voice: onnxruntime aborts if killed mid-load
        warm_up.join(timeout=WARM_UP_JOIN_S)
    if runtime is not None:
        runtime.shutdown(wait=True)
        runtime.stop_shipping()  # after the last turn is logged: ship it


def child_exit(server, worker):
    from app.metrics import child_exit as metrics_child_exit

    metrics_child_exit(server, worker)


def worker_int(worker):
    worker.log.info("worker %s interrupted", worker.pid)
