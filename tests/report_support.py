"""Shared by the report tests: a small Flask app holding the hand-written fixture events."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

from flask import Flask

from app.business import load_businesses
from app.config import load_settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"
TOKEN = "t0ken-for-tests"

BUSINESSES_TOML = """
[demo]
name = "Harbourside Dental"
greeting = "Thanks for calling Harbourside Dental. How can I help you today?"
fillers = ["Let me check that for you."]
[demo.voice]
provider = "piper"
model = "en_US-joe-medium"
[demo.say]
voice = "Polly.Joanna-Neural"
language = "en-US"

[quiet]
name = "Quiet Law"
greeting = "Quiet Law, good morning."
fillers = ["One moment, please."]
[quiet.voice]
provider = "piper"
model = "en_US-joe-medium"
[quiet.say]
voice = "Polly.Joanna-Neural"
language = "en-US"
"""


def make_app(tmp_path: Path, *, with_events: bool = True) -> Flask:
    """A Flask app with the admin blueprints, /metrics and ``flask report``; data under tmp_path."""
    from app.admin import init_app

    data = tmp_path / "data"
    events = data / "events"
    events.mkdir(parents=True)
    if with_events:
        for path in FIXTURES.glob("*.jsonl"):
            shutil.copy(path, events / path.name)
    toml = tmp_path / "businesses.toml"
    toml.write_text(BUSINESSES_TOML, encoding="utf-8")
    app = Flask("warmline-report-test")
    app.config["TESTING"] = True
    app.extensions["warmline"] = SimpleNamespace(
        settings=load_settings({}, {"data_dir": data, "admin_token": TOKEN, "env": "testing", "businesses": toml}),
        businesses=load_businesses(toml),
    )
    init_app(app)
    return app
