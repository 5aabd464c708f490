"""A ~20 s soak: gunicorn, a faulty Deepgram emulator, the LLM emulator and 5 concurrent callers.

The full soak (``python -m simulator.soak``, see RELIABILITY.md) runs for minutes; this one only
proves the harness and its invariants on every test run. No worker kills here (they would make
the count of application errors depend on timing); exact counts, no timing asserts.
"""

from __future__ import annotations

import io

import pytest

from simulator.soak import SoakConfig, format_summary, run_soak

pytestmark = pytest.mark.slow


def test_a_short_soak_keeps_every_invariant(tmp_path):
    config = SoakConfig(calls=5, minutes=0.15, fault_rate=0.2, kill_every_s=0, workers=2, threads=8, speed=4.0,
                        utterances=3, drain_s=60.0, work_dir=tmp_path)
    log = io.StringIO()
    s = run_soak(config, out=log)
    assert s["calls"] >= 5 and s["calls_unfinished"] == 0
    assert s["turns"] == 4 * s["calls"]  # three questions and a goodbye, every call to its end
    assert s["server_turn_events"] == s["turns"]
    assert s["application_errors"] == 0, s["application_error_samples"]
    assert s["invalid_twiml"] == 0
    assert s["media_failures"] == 0
    assert s["kills"] == 0
    assert s["leftover_calls"] == 0 and s["status_callbacks_lost"] == 0
    assert s["store_objects"] > 0 and s["invalid_objects"] == 0
    assert s["server_exceptions"] == 0
    assert s["deepgram"]["requests_total"] > 0
    assert sum(s["caller_heard"].values()) == s["turns"]
    assert s["caller_heard"]["apology"] == s["caller_heard"]["unanswered"] == 0 and s["responder_failures"] == 0
    assert s["p95_time_to_answer_s"] is not None
    assert s["invariants_ok"] is True and format_summary(s).endswith("verdict: PASS")


def test_a_soak_where_every_llm_request_fails_counts_the_apologies_and_fails(tmp_path):
    config = SoakConfig(calls=2, minutes=0.05, fault_rate=0.0, kill_every_s=0, workers=1, threads=8, speed=8.0,
                        utterances=2, drain_s=60.0, work_dir=tmp_path, llm_fault_rate=1.0)
    s = run_soak(config, out=io.StringIO())
    turns = s["turns"]
    assert turns >= 2 and s["application_errors"] == 0 and s["invalid_twiml"] == 0  # the transport was fine
    assert s["caller_heard"] == {"clips": 0, "other_voice": 0, "say": 0, "apology": turns, "unanswered": 0}
    assert s["responder_failures"] >= turns
    assert s["invariants"]["apologies + unanswered <= 1% of turns"] is False and s["invariants_ok"] is False
    assert format_summary(s).endswith("verdict: FAIL -- apologies + unanswered <= 1% of turns")
