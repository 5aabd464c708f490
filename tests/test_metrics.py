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
    turn("demo", "warmline", "filler", [False, False, True], 320, 2100, 40),
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
