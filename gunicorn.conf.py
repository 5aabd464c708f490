"""gunicorn settings for Warmline (gthread: requests wait on I/O, threads carry concurrency)."""

import os
import shutil
from pathlib import Path

# Prometheus multiprocess mode: every worker writes its samples under one directory, /metrics sums
# them. Set before the workers fork; wiped when the master starts so dead workers' files don't linger.
_data_dir = Path(os.environ.get("WARMLINE_DATA_DIR", Path(__file__).resolve().parent / "var"))
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_data_dir / "prometheus"))

bind = os.environ.get("WARMLINE_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WARMLINE_WORKERS", "2"))
# A request holds its thread while it waits: `process` up to the instant budget (0.3 s), a `tts-ready`
# hop up to the silence budget (0.5 s), then it answers with a bridge. With 200 calls on a host about
# a third are in such a wait at any moment (the rest are listening to audio or speaking), ~70
# requests over 2 workers: 64 threads per worker carry 200+ calls with room for bursts. Threads that
# wait cost memory, not CPU (the GIL is released on I/O).
threads = int(os.environ.get("WARMLINE_THREADS", "64"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("WARMLINE_ACCESS_LOG") or None
# Each worker imports the app itself: onnxruntime, httpx pools and SQLite handles must not cross fork.
preload_app = False
# gunicorn 27's control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl), which
# several masters on one machine would fight over; Warmline doesn't use it.
control_socket_disable = True


def on_starting(server):
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker):
    """Warm the worker (load the Piper voice) in the background, so the first call does not wait for it."""
    import threading

    def warm():
        try:
            worker.wsgi.extensions["warmline"].warm()
        except Exception as exc:  # noqa: BLE001 - warming is best effort; the first request loads lazily
            worker.log.warning("warm-up failed: %s", exc)

    threading.Thread(target=warm, name="warm-up", daemon=True).start()


def worker_exit(server, worker):
    """Let running turn jobs finish (they are bounded by the turn deadline) before the worker exits."""
    runtime = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("warmline")
    if runtime is not None:
        runtime.shutdown(wait=True)


def child_exit(server, worker):
    from app.metrics import child_exit as metrics_child_exit

    metrics_child_exit(server, worker)


def worker_int(worker):
    worker.log.info("worker %s interrupted", worker.pid)
