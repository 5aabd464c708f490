"""gunicorn settings for Warmline (gthread: requests wait on I/O, threads carry concurrency)."""

import os

bind = os.environ.get("WARMLINE_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WARMLINE_WORKERS", "2"))
threads = int(os.environ.get("WARMLINE_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("WARMLINE_ACCESS_LOG") or None
# Each worker imports the app itself: onnxruntime, httpx pools and SQLite handles must not cross fork.
preload_app = False


def child_exit(server, worker):
    from app.metrics import child_exit as metrics_child_exit

    metrics_child_exit(server, worker)


def worker_int(worker):
    worker.log.info("worker %s interrupted", worker.pid)
