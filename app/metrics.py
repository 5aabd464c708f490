"""Prometheus metrics and structured turn logs.

Metrics are created lazily, once per process, in the default registry. Under gunicorn set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, the same for every worker) *before* the
master starts: prometheus-client then writes each worker's values to memory-mapped files there and
``/metrics`` sums them (:class:`~prometheus_client.multiprocess.MultiProcessCollector`). Call
:func:`child_exit` from gunicorn's ``child_exit`` hook. Without the variable the in-process
default registry is served (development, tests).

Series (all seconds, all counters ``_total``):

    warmline_turns_total{business,arm,outcome}
    warmline_sentences_total{business,result}               how each sentence was heard: cache | live |
                                                            fallback_voice | say (app.events.SPOKEN)
    warmline_fallbacks_total{business,kind}                 turns the caller heard a <Say> (say), a
                                                            fallback voice (fallback_voice), an apology
                                                            instead of the responder's reply (apology)
    warmline_responder_failures_total{business,error_class} turns whose responder failed
    warmline_time_to_first_audio_seconds{business,arm}      histogram
    warmline_time_to_answer_seconds{business,arm}           histogram
    warmline_answer_wait_seconds{business}                  histogram: from the answer being playable to its
                                                            hand-over to Twilio (a filler or bridge ending,
                                                            the next hop) -- what Twilio's schedule costs
    warmline_ai_seconds                                     histogram
    warmline_tts_seconds{provider}                          histogram, turns with live synthesis
    warmline_synthesis_errors_total{provider,error_class}   every voice that failed a clip (rescued or not)
    warmline_webhook_requests_total{endpoint,status}        every /voice/* response, 403s included
    warmline_webhook_seconds{endpoint}                      histogram: the app's time on each /voice/*
                                                            request (signature check to response);
                                                            Twilio waits it out, the caller in silence
    warmline_webhooks_in_flight                             gauge, summed over the live workers: /voice/*
                                                            requests being handled now (each holds a
                                                            gunicorn thread; hops and ``process`` wait
                                                            in it) -- saturation before callers feel it

:func:`init_app` creates the known label sets at zero (every business, kind, voice endpoint), so
``/metrics`` is never empty and an alert on a rate has a series from the first scrape.

Everything here is safe across threads (prometheus-client locks) and processes (multiprocess mode).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from app.events import SAY_OUTCOMES, SPOKEN, answer_wait_s, spoken_of

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
"""Seconds: a partial result takes milliseconds, a hop up to the silence budget, Twilio gives up at 15."""
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
                    fallbacks=Counter(
                        "warmline_fallbacks", "Turns the caller heard a <Say>, a fallback voice or an apology.",
                        ["business", "kind"],
                    ),
                    responder_failures=Counter(
                        "warmline_responder_failures", "Turns whose responder failed (the caller heard an apology).",
                        ["business", "error_class"],
                    ),
                    ttfa=Histogram(
                        "warmline_time_to_first_audio_seconds", "Webhook arrival to the first audio the caller hears.",
                        ["business", "arm"], buckets=LATENCY_BUCKETS,
                    ),
                    tta=Histogram(
                        "warmline_time_to_answer_seconds", "Webhook arrival to the answer's audio.",
                        ["business", "arm"], buckets=LATENCY_BUCKETS,
                    ),
                    answer_wait=Histogram(
                        "warmline_answer_wait_seconds",
                        "From the answer being playable to its hand-over to Twilio (a phrase ending, the next hop).",
                        ["business"], buckets=LATENCY_BUCKETS,
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
                    webhook_seconds=Histogram(
                        "warmline_webhook_seconds", "The app's time on a Twilio webhook request, by endpoint.",
                        ["endpoint"], buckets=WEBHOOK_BUCKETS,
                    ),
                    webhooks_in_flight=Gauge(
                        "warmline_webhooks_in_flight", "Twilio webhook requests being handled now (all live workers).",
                        multiprocess_mode="livesum",
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
    heard = Tally(spoken_of(s) for s in sentences)
    for kind, n in heard.items():
        m.sentences.labels(business, kind).inc(n)
    if heard["say"] or outcome in SAY_OUTCOMES:
        m.fallbacks.labels(business, "say").inc()
    if heard["fallback_voice"]:
        m.fallbacks.labels(business, "fallback_voice").inc()
    if event.get("reply") == "apology" or outcome == "apology":
        m.fallbacks.labels(business, "apology").inc()
    failure = event.get("failure") or {}
    if failure.get("kind") == "responder":
        m.responder_failures.labels(business, str(failure.get("error") or "unknown")).inc()
    if isinstance(event.get("time_to_first_audio_ms"), (int, float)):
        m.ttfa.labels(business, arm).observe(event["time_to_first_audio_ms"] / 1000)
    if isinstance(event.get("time_to_answer_ms"), (int, float)):
        m.tta.labels(business, arm).observe(event["time_to_answer_ms"] / 1000)
    waited = answer_wait_s(event)
    if waited is not None:
        m.answer_wait.labels(business).observe(waited)
    if isinstance(event.get("ai_ms"), (int, float)):
        m.ai.observe(event["ai_ms"] / 1000)
    if isinstance(event.get("tts_ms"), (int, float)) and (event.get("chars_live") or 0) > 0:
        m.tts.labels(_provider(event.get("voice"))).observe(event["tts_ms"] / 1000)


def record_synthesis_error(provider: str, exc: BaseException | str) -> None:
    """Count a synthesis failure under its exception class name (e.g. ``SynthesisRetryable``)."""
    name = exc if isinstance(exc, str) else type(exc).__name__
    metrics().synthesis_errors.labels(provider, name).inc()


def record_webhook_request(endpoint: str, status: int) -> None:
    """Count a webhook request; ``endpoint`` is the Flask endpoint name (bounded), not the URL."""
    metrics().webhook_requests.labels(endpoint, str(status)).inc()


VOICE_ENDPOINTS = ("voice.incoming", "voice.process", "voice.tts_ready", "voice.partial", "voice.fallback",
                   "voice.status")
SYNTHESIS_ERRORS = ("SynthesisRetryable", "SynthesisRejected", "SynthesisFailed", "InvalidAudio", "StoreUnavailable")


def zero_series(business_ids: Iterable[str], providers: Iterable[str]) -> None:
    """Create the known label sets at 0 so every series exists from the first scrape."""
    m = metrics()
    for endpoint in VOICE_ENDPOINTS:
        for status in ("200", "403"):
            m.webhook_requests.labels(endpoint, status)
        m.webhook_seconds.labels(endpoint)
    for business in business_ids:
        for kind in ("say", "fallback_voice", "apology"):
            m.fallbacks.labels(business, kind)
        for kind in SPOKEN:
            m.sentences.labels(business, kind)
        m.responder_failures.labels(business, "ResponderError")
    for provider in providers:
        for name in SYNTHESIS_ERRORS:
            m.synthesis_errors.labels(provider, name)


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
    """Register ``/metrics``, count and time every ``/voice/*`` request, create the zero series (idempotent)."""
    if metrics_bp.name in app.blueprints:
        return
    app.register_blueprint(metrics_bp)
    app.before_request(_webhook_started)
    app.after_request(_count_webhook)
    app.teardown_request(_webhook_done)
    runtime = app.extensions.get("warmline")
    businesses = list(getattr(runtime, "businesses", None) or ())
    zero_series([b.id for b in businesses], sorted({b.voice.provider for b in businesses}))


def _webhook_started() -> None:
    """before_request: a ``/voice/*`` request is in flight from here (``g.webhook_started``: perf_counter s)."""
    if request.path.startswith("/voice/"):
        g.webhook_started = time.perf_counter()
        metrics().webhooks_in_flight.inc()


def _count_webhook(response: Response) -> Response:
    """after_request: count a ``/voice/*`` response by endpoint and status (403s of the signature check too),
    and time it."""
    started = g.get("webhook_started")
    if started is not None:
        endpoint = request.endpoint if request.endpoint in VOICE_ENDPOINTS else "voice.unmatched"
        record_webhook_request(endpoint, response.status_code)
        metrics().webhook_seconds.labels(endpoint).observe(time.perf_counter() - started)
    return response


def _webhook_done(_exc: BaseException | None) -> None:
    """teardown_request (runs whatever happened): the request is no longer in flight."""
    if g.pop("webhook_started", None) is not None:
        metrics().webhooks_in_flight.dec()


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
