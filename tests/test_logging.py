"""Structured logs outside tests: one JSON object per line on stderr, a turn per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = """
import logging
from app import create_app
from app.metrics import log_turn
create_app()
create_app()  # a second app must not double the handler
log_turn({"business": "demo", "call": "CA" + "0" * 32, "outcome": "instant", "sentences": []})
logging.getLogger("warmline.flow").warning("state %s", "down")
"""


def test_development_logs_one_json_line_per_record(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
    env.update({"WARMLINE_ENV": "development", "WARMLINE_DATA_DIR": str(tmp_path)})
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(r["logger"], r["level"], r["message"]) for r in lines] == [
        ("warmline.turns", "INFO", "turn"), ("warmline.flow", "WARNING", "state down")]
    assert lines[0]["turn"]["outcome"] == "instant" and lines[0]["ts"].endswith("Z")
