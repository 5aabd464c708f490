"""Prometheus metrics across real processes (multiprocess mode) and the JSON turn log."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.ids import new_call_sid
from app.metrics import JsonFormatter, child_exit, log_turn
from tests.report_support import make_app

ROOT = Path(__file__).resolve().parent.parent

# Each child records the given turns and a synthesis error, then exits.
CHILD = """
import json, sys
from app.errors import SynthesisRetryable
from app.metrics import record_turn, record_synthesis_error, record_webhook_request
for event in json.loads(sys.argv[1]):
    record_turn(event)
record_synthesis_error("piper", SynthesisRetryable("busy"))
record_webhook_request("voice.process", 200)
"""


def turn(business: str, arm: str, outcome: str, hits: list[bool], ttfa_ms: int, tta_ms: int | None, live: int) -> dict:
    return {
        "business": business, "arm": arm, "outcome": outcome, "voice": "piper-en_us-joe-medium",
        "sentences": [{"key": "k" * 64, "text": "x", "hit": h, "chars": 1} for h in hits],
        "ai_ms": 800, "tts_ms": 400 if live else 0, "time_to_first_audio_ms": ttfa_ms,
        "time_to_answer_ms": tta_ms, "chars_live": live, "chars_cached": 10,
    }


PROCESS_A = [
    turn("demo", "warmline", "instant", [True, True], 250, 250, 0),
    turn("demo", "warmline", "filler", [True, False], 300, 1600, 20),
    turn("demo", "control", "fallback", [False], 4500, 4500, 30),
]
PROCESS_B = [
    {**turn("demo", "warmline", "filler", [False, False, True], 320, 2100, 40), "first_playable_ms": 1700.0},
    turn("demo", "warmline", "apology", [], 310, None, 0),
]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def run_child(multiproc_dir: Path, events: list[dict]) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(events)], cwd=ROOT, env=env, timeout=60,
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.returncode


def test_counters_and_histograms_sum_across_two_processes(tmp_path, monkeypatch):
    mp = tmp_path / "prom"
    mp.mkdir()
    run_child(mp, PROCESS_A)
    run_child(mp, PROCESS_B)
    assert len(list(mp.glob("counter_*.db"))) == 2  # one file per process
    assert len(list(mp.glob("histogram_*.db"))) == 2

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(mp))
    resp = make_app(tmp_path, with_events=False).test_client().get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    got = samples(resp.get_data(as_text=True))

    def v(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert v("warmline_turns_total", business="demo", arm="warmline", outcome="filler") == 2
    assert v("warmline_turns_total", business="demo", arm="warmline", outcome="instant") == 1
    assert v("warmline_turns_total", business="demo", arm="warmline", outcome="apology") == 1
    assert v("warmline_turns_total", business="demo", arm="control", outcome="fallback") == 1
    assert v("warmline_sentences_total", business="demo", result="cache") == 4
    assert v("warmline_sentences_total", business="demo", result="live") == 4
    assert v("warmline_fallbacks_total", business="demo", kind="say") == 2
    assert v("warmline_fallbacks_total", business="demo", kind="apology") == 1
    assert v("warmline_synthesis_errors_total", provider="piper", error_class="SynthesisRetryable") == 2
    assert v("warmline_webhook_requests_total", endpoint="voice.process", status="200") == 2
    # The one turn that logged when its answer became playable: it waited 0.4 s for the hand-over.
    assert v("warmline_answer_wait_seconds_count", business="demo") == 1
    assert v("warmline_answer_wait_seconds_sum", business="demo") == pytest.approx(0.4)
    assert v("warmline_answer_wait_seconds_bucket", business="demo", le="0.3") == 0
    assert v("warmline_answer_wait_seconds_bucket", business="demo", le="0.5") == 1
    # Histograms: warmline ttfa 250, 300 (A) and 320, 310 (B) seconds-wise.
    assert v("warmline_time_to_first_audio_seconds_count", business="demo", arm="warmline") == 4
    assert v("warmline_time_to_first_audio_seconds_sum", business="demo", arm="warmline") == pytest.approx(1.18)
    assert v("warmline_time_to_first_audio_seconds_bucket", business="demo", arm="warmline", le="0.3") == 2
    assert v("warmline_time_to_first_audio_seconds_bucket", business="demo", arm="warmline", le="0.5") == 4
    assert v("warmline_time_to_answer_seconds_count", business="demo", arm="warmline") == 3  # apology has none
    assert v("warmline_time_to_answer_seconds_bucket", business="demo", arm="warmline", le="2.0") == 2
    assert v("warmline_time_to_answer_seconds_bucket", business="demo", arm="control", le="5.0") == 1
    assert v("warmline_ai_seconds_count") == 5
    assert v("warmline_tts_seconds_count", provider="piper") == 3  # turns with live synthesis
    assert v("warmline_tts_seconds_sum", provider="piper") == pytest.approx(1.2)

    child_exit(None, SimpleNamespace(pid=123456))  # no live gauges: counters must survive
    again = samples(make_app(tmp_path / "2", with_events=False).test_client().get("/metrics").get_data(as_text=True))
    assert again[("warmline_sentences_total", (("business", "demo"), ("result", "cache")))] == 4


def test_single_process_registry_without_multiproc_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    text = make_app(tmp_path, with_events=False).test_client().get("/metrics").get_data(as_text=True)
    assert "# TYPE warmline_turns_total counter" in text
    assert "# TYPE warmline_time_to_first_audio_seconds histogram" in text


def test_log_turn_writes_one_json_line():
    event = {"business": "demo", "turn": 3, "outcome": "filler", "time_to_first_audio_ms": 310}
    handler = logging.StreamHandler()
    lines: list[str] = []
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("warmline.turns")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        log_turn(event)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert len(lines) == 1 and "\n" not in lines[0]
    data = json.loads(lines[0])
    assert (data["level"], data["logger"], data["message"], data["turn"]) == ("INFO", "warmline.turns", "turn", event)
    assert data["ts"].endswith("Z")


def test_json_formatter_renders_exceptions_and_odd_values():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("turn",), sys.exc_info())
    record.path = Path("/tmp/a")
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "failed turn"
    assert data["path"] == "/tmp/a"
    assert "ValueError: boom" in data["exc_info"]


@pytest.mark.slow
def test_a_forged_signature_is_counted_and_metrics_are_never_empty(tmp_path):
    """Real gunicorn (2 workers, multiprocess metrics): /metrics has every known series at 0 before the
    first call, and a forged X-Twilio-Signature shows up as a 403 on its endpoint."""
    import httpx

    from tests.conftest import TWILIO_TOKEN, twilio_form
    from tests.server_support import GunicornServer

    with GunicornServer(tmp_path / "var", env={"WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN}, workers=2, threads=4) as srv:
        before = httpx.get(srv.base_url + "/metrics", timeout=10)
        assert before.status_code == 200 and int(before.headers["Content-Length"]) > 0
        got = samples(before.text)
        key = ("warmline_webhook_requests_total", (("endpoint", "voice.process"), ("status", "403")))
        assert got[key] == 0
        assert got[("warmline_fallbacks_total", (("business", "demo"), ("kind", "apology")))] == 0
        call_sid = new_call_sid()
        forged = httpx.post(f"{srv.base_url}/voice/process/demo/{call_sid}", timeout=10,
                            data=twilio_form(call_sid, SpeechResult="hello"), headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
        assert forged.status_code == 403
        after = samples(httpx.get(srv.base_url + "/metrics", timeout=10).text)
    assert after[key] == 1
    assert after[("warmline_webhook_requests_total", (("endpoint", "voice.process"), ("status", "200")))] == 0
    # timed like any other, and no longer in flight in any worker
    assert after[("warmline_webhook_seconds_count", (("endpoint", "voice.process"),))] == 1
    assert after[("warmline_webhooks_in_flight", ())] == 0
    assert got[("warmline_webhook_seconds_count", (("endpoint", "voice.partial"),))] == 0  # a series from the start


def test_healthz_answers_json_503_when_the_gcs_store_is_unreachable(make_app, monkeypatch):
    from tests.support import free_port

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    app = make_app(store="gs://warmline-clips/prod")
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    assert resp.mimetype == "application/json" and resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["status"] == "degraded" and list(body["problems"]) == ["store"]
    assert body["problems"]["store"]  # says what failed: an error, or no answer within the probe's bound


def _value(name: str, **labels: str) -> float:
    """This process's value of a sample in the default registry (0.0 when it does not exist yet)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_webhook_is_timed_and_counted_under_its_own_endpoint_and_in_flight_while_it_runs(client, monkeypatch):
    """In-process registry: a partial result counts as ``voice.partial`` (not "unmatched"), each request is
    one observation of its endpoint's histogram, and the in-flight gauge is 1 inside the view, 0 after."""
    from app.voice import flow as flow_module
    from tests.conftest import signed_post, twilio_form

    call_sid = new_call_sid()
    before = {e: _value("warmline_webhook_seconds_count", endpoint=e) for e in ("voice.incoming", "voice.partial")}
    partial_before = _value("warmline_webhook_requests_total", endpoint="voice.partial", status="200")
    unmatched_before = _value("warmline_webhook_requests_total", endpoint="voice.unmatched", status="200")
    assert signed_post(client, "/voice/incoming/demo", twilio_form(call_sid)).status_code == 200
    resp = signed_post(client, f"/voice/partial/demo/{call_sid}?turn=1",
                       twilio_form(call_sid, UnstableSpeechResult="what time", StableSpeechResult="",
                                   SequenceNumber="1"))
    assert resp.status_code == 200
    assert _value("warmline_webhook_seconds_count", endpoint="voice.incoming") == before["voice.incoming"] + 1
    assert _value("warmline_webhook_seconds_count", endpoint="voice.partial") == before["voice.partial"] + 1
    assert _value("warmline_webhook_requests_total", endpoint="voice.partial", status="200") == partial_before + 1
    assert _value("warmline_webhook_requests_total", endpoint="voice.unmatched", status="200") == unmatched_before

    seen: list[float] = []
    real_process = flow_module.CallFlow.process

    def process(self, *args, **kwargs):  # the view's work, observed from inside the request
        seen.append(_value("warmline_webhooks_in_flight"))
        return real_process(self, *args, **kwargs)

    monkeypatch.setattr(flow_module.CallFlow, "process", process)
    idle = _value("warmline_webhooks_in_flight")
    resp = signed_post(client, f"/voice/process/demo/{call_sid}",
                       twilio_form(call_sid, SpeechResult="What are your hours?"))
    assert resp.status_code == 200
    assert seen == [idle + 1]
    assert _value("warmline_webhooks_in_flight") == idle


def test_a_request_that_fails_behind_the_view_leaves_the_in_flight_gauge_where_it_was(client, monkeypatch):
    from app.voice import flow as flow_module
    from tests.conftest import signed_post, twilio_form

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(flow_module.CallFlow, "process", broken)
    call_sid = new_call_sid()
    idle = _value("warmline_webhooks_in_flight")
    count = _value("warmline_webhook_seconds_count", endpoint="voice.process")
    resp = signed_post(client, f"/voice/process/demo/{call_sid}", twilio_form(call_sid, SpeechResult="hello"))
    assert resp.status_code == 200 and b"<Hangup" in resp.data  # the apology, as TwiML
    assert _value("warmline_webhooks_in_flight") == idle
    assert _value("warmline_webhook_seconds_count", endpoint="voice.process") == count + 1
