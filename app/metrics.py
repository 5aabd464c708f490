"""Prometheus metrics and structured turn logs.

Metrics are created lazily, once per process, in the default registry. Under gunicorn set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, the same for every worker) *before* the
master starts: prometheus-client then writes each worker's values to memory-mapped files there and
``/metrics`` sums them (:class:`~prometheus_client.multiprocess.MultiProcessCollector`). Call
:func:`child_exit` from gunicorn's ``child_exit`` hook. Without the variable the in-process
default registry is served (development, tests).

Series (all seconds, all counters ``_total``):

    warmline_turns_total{business,arm,outcome}
    warmline_sentences_total{business,result="hit"|"miss"}
    warmline_fallbacks_total{business}                      turns that ended in <Say> (fallback/apology)
    warmline_time_to_first_audio_seconds{business,arm}      histogram
    warmline_time_to_answer_seconds{business,arm}           histogram
    warmline_ai_seconds                                     histogram
    warmline_tts_seconds{provider}                          histogram, turns with live synthesis
    warmline_synthesis_errors_total{provider,error_class}
    warmline_webhook_requests_total{endpoint,status}

Everything here is safe across threads (prometheus-client locks) and processes (multiprocess mode).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
SAY_OUTCOMES = frozenset(("fallback", "apology"))
turn_logger = logging.getLogger("warmline.turns")

_lock = threading.Lock()
_metrics: SimpleNamespace | None = None


def metrics() -> SimpleNamespace:
    """This process's metric objects (created on first use, registered in the default registry)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = SimpleNamespace(
                    turns=Counter("warmline_turns", "Turns by business, arm and outcome.", ["business", "arm", "outcome"]),
                    sentences=Counter("warmline_sentences", "Answer sentences by cache result.", ["business", "result"]),
                    fallbacks=Counter("warmline_fallbacks", "Turns that fell back to <Say>.", ["business"]),
                    ttfa=Histogram(
                        "warmline_time_to_first_audio_seconds", "Webhook arrival to the first audio the caller hears.",
                        ["business", "arm"], buckets=LATENCY_BUCKETS,
                    ),
                    tta=Histogram(
                        "warmline_time_to_answer_seconds", "Webhook arrival to the answer's audio.",
                        ["business", "arm"], buckets=LATENCY_BUCKETS,
                    ),
                    ai=Histogram("warmline_ai_seconds", "AI responder latency per turn.", buckets=LATENCY_BUCKETS),
                    tts=Histogram(
                        "warmline_tts_seconds", "Live synthesis time per turn (turns with a cache miss).",
                        ["provider"], buckets=LATENCY_BUCKETS,
                    ),
                    synthesis_errors=Counter(
                        "warmline_synthesis_errors", "Synthesis failures by provider and error class.",
                        ["provider", "error_class"],
                    ),
                    webhook_requests=Counter(
                        "warmline_webhook_requests", "Twilio webhook requests by endpoint and HTTP status.",
                        ["endpoint", "status"],
                    ),
                )
    return _metrics


def _provider(voice: Any) -> str:
    """The provider part of a voice slug ('piper-en_us-joe-medium' -> 'piper')."""
    return voice.split("-", 1)[0] if isinstance(voice, str) and voice else "unknown"


def record_turn(event: dict[str, Any]) -> None:
    """Update the turn series from one turn event (the schema of app/events.py; ms -> seconds)."""
    m = metrics()
    business = str(event.get("business") or "unknown")
    arm = str(event.get("arm") or "unknown")
    outcome = str(event.get("outcome") or "unknown")
    m.turns.labels(business, arm, outcome).inc()
    sentences = event.get("sentences") or ()
    hits = sum(1 for s in sentences if s.get("hit") is True)
    if hits:
        m.sentences.labels(business, "hit").inc(hits)
    if len(sentences) - hits:
        m.sentences.labels(business, "miss").inc(len(sentences) - hits)
    if outcome in SAY_OUTCOMES:
        m.fallbacks.labels(business).inc()
    if isinstance(event.get("time_to_first_audio_ms"), (int, float)):
        m.ttfa.labels(business, arm).observe(event["time_to_first_audio_ms"] / 1000)
    if isinstance(event.get("time_to_answer_ms"), (int, float)):
        m.tta.labels(business, arm).observe(event["time_to_answer_ms"] / 1000)
    if isinstance(event.get("ai_ms"), (int, float)):
        m.ai.observe(event["ai_ms"] / 1000)
    if isinstance(event.get("tts_ms"), (int, float)) and (event.get("chars_live") or 0) > 0:
        m.tts.labels(_provider(event.get("voice"))).observe(event["tts_ms"] / 1000)


def record_synthesis_error(provider: str, exc: BaseException) -> None:
    """Count a synthesis failure under its exception class name (e.g. ``SynthesisRetryable``)."""
    metrics().synthesis_errors.labels(provider, type(exc).__name__).inc()


def record_webhook_request(endpoint: str, status: int) -> None:
    """Count a webhook request; ``endpoint`` is the Flask endpoint name (bounded), not the URL."""
    metrics().webhook_requests.labels(endpoint, str(status)).inc()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: drop the dead worker's live-gauge files (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def scrape() -> bytes:
    """The exposition text: all workers' values in multiprocess mode, else this process's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
    metrics()  # expose the series' HELP/TYPE even before the first turn
    return generate_latest(REGISTRY)


metrics_bp = Blueprint("metrics", __name__)


@metrics_bp.get("/metrics")
def metrics_view() -> Response:
    resp = Response(scrape(), mimetype=None, content_type=CONTENT_TYPE_LATEST)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def init_app(app) -> None:
    """Register ``/metrics`` (idempotent)."""
    if metrics_bp.name not in app.blueprints:
        app.register_blueprint(metrics_bp)


# ---- structured logs ---------------------------------------------------------------------------

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC ISO), level, logger, message, then any ``extra`` fields.

    Exceptions are rendered under ``exc_info`` as text. Values that are not JSON are ``str()``-ed.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def log_turn(event: dict[str, Any]) -> None:
    """Log one turn on ``warmline.turns`` as ``{"message": "turn", "turn": {...event...}}``."""
    turn_logger.info("turn", extra={"turn": event})
