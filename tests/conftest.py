"""Shared fixtures: an app on tmp_path with a fake TTS provider, a test client, signed Twilio posts."""

from __future__ import annotations

from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from app import create_app
from app.ids import new_call_sid  # noqa: F401 - the tests' one way to make a CallSid
from tests.fakes import ToneProvider

TWILIO_TOKEN = "test-twilio-token"
ADMIN_TOKEN = "test-admin-token"
ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "sgd-dev.jsonl"


def sign(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def twilio_form(call_sid: str, **extra: str) -> dict[str, str]:
    form = {
        "CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": "+15551230000", "To": "+15005550006",
        "CallStatus": "in-progress", "Direction": "inbound", "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def signed_post(client, path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN, base: str = "http://localhost"):
    """POST ``params`` to ``path`` as Twilio would, with a valid X-Twilio-Signature."""
    return client.post(path, data=params, headers={"X-Twilio-Signature": sign(base + path, params, token)})


@pytest.fixture
def provider() -> ToneProvider:
    return ToneProvider()


@pytest.fixture
def make_app(tmp_path):
    def make(runtime: dict | None = None, **overrides):
        config = {"env": "testing", "data_dir": tmp_path / "var", "twilio_auth_token": TWILIO_TOKEN,
                  "admin_token": ADMIN_TOKEN, **overrides}
        config["runtime"] = runtime or {}
        return create_app(config)

    return make


@pytest.fixture
def app(make_app, provider):
    app = make_app(runtime={"providers": {"piper": provider}})
    yield app
    app.extensions["warmline"].shutdown(wait=True)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
