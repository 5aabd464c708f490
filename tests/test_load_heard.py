"""``simulator load`` counts what the callers heard, against real gunicorn and the emulators on loopback.

A run whose every LLM request fails has no transport error at all -- every webhook answers valid
TwiML -- yet every caller heard the apology: the summary counts it, the verdict is FAIL and the
command exits 1. The same run with a healthy LLM passes, every answer in the business's own voice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.load import LoadConfig, deepgram_business_toml, format_summary, main, run_load

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
FAST = ["--calls", "2", "--minutes", "0.05", "--ramp-s", "0", "--speed", "20", "--workers", "1", "--threads", "8",
        "--responder", "llm", "--llm-ms", "0,0", "--voice", "deepgram"]


def test_every_answer_an_apology_is_a_failing_run_not_errors_0(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    json_path = tmp_path / "load.json"
    code = main([*FAST, "--llm-fault-rate", "1", "--json", str(json_path)])
    printed = capsys.readouterr().out
    import json

    summary = json.loads(json_path.read_text(encoding="utf-8"))
    turns = summary["caller_turns"]
    assert code == 1
    assert summary["errors"] == 0 and turns >= 2  # nothing a transport-level count would see
    assert summary["caller_heard"] == {"clips": 0, "other_voice": 0, "say": 0, "apology": turns, "unanswered": 0}
    assert summary["responder_failures"] == summary["llm_requests"] >= turns
    assert summary["llm_incoherent_requests"] == 0  # the apology the caller heard is in the history, nothing else
    assert summary["ok"] is False and summary["verdict"] == ["caller-heard problems 100.0% of turns > 1.0%"]
    assert f"caller-heard problems: {turns} (100.0% of {turns} turns): {turns} apologies" in printed
    assert printed.rstrip().endswith("verdict: FAIL -- caller-heard problems 100.0% of turns > 1.0%")
    assert "errors 0" not in printed


def test_a_healthy_run_passes_with_every_answer_in_the_own_voice(tmp_path: Path) -> None:
    config = LoadConfig(calls=2, minutes=0.05, ramp_s=0, speed=20, workers=1, threads=8, responder="llm",
                        llm_ms=(0, 0), voice="deepgram", deepgram_ttfb_ms=0, deepgram_per_char_ms=0,
                        deepgram_jitter_ms=0, max_answer_p95_s=5.0, data_dir=tmp_path / "var")
    summary = run_load(config)
    turns = summary["caller_turns"]
    assert turns >= 2 and summary["errors"] == 0
    assert summary["caller_heard"] == {"clips": turns, "other_voice": 0, "say": 0, "apology": 0, "unanswered": 0}
    assert summary["responder_failures"] == 0 and summary["llm_requests"] == turns
    assert summary["llm_incoherent_requests"] == 0
    assert summary["ok"] is True and format_summary(summary).endswith("verdict: PASS")
    assert summary["server"] == {"workers": 1, "threads": 8}
    # The server spoke Deepgram: every live clip is under the Deepgram voice's slug, none under Piper's.
    slugs = {slug.name for slug in (tmp_path / "var" / "cdn" / "tts").glob("*/*")}
    assert "deepgram-aura-2-thalia-en" in slugs and not any(slug.startswith("piper") for slug in slugs)


def test_a_p95_limit_fails_the_verdict(tmp_path: Path) -> None:
    config = LoadConfig(calls=1, minutes=0.02, ramp_s=0, speed=20, workers=1, threads=4, responder="llm",
                        llm_ms=(0, 0), voice="deepgram", max_silence_p95_s=0.0)
    summary = run_load(config)
    assert summary["errors"] == 0 and summary["caller_heard"]["clips"] == summary["caller_turns"] > 0
    p95 = summary["longest_silence_s"]["p95"]
    assert summary["verdict"] == [f"p95 longest silence {p95} s > 0 s"] and summary["ok"] is False


def test_the_deepgram_business_keeps_every_other_setting(tmp_path: Path) -> None:
    import tomllib

    source = ROOT / "businesses" / "businesses.toml"
    before, after = tomllib.loads(source.read_text()), tomllib.loads(deepgram_business_toml(source, "demo"))
    assert after["demo"].pop("voice") == {"provider": "deepgram", "model": "aura-2-thalia-en"}
    before["demo"].pop("voice")
    assert after == before
    with pytest.raises(ValueError):
        deepgram_business_toml(source, "nobody")
