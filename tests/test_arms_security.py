"""Rollout arms are stable per call and split as configured; hostile webhook input is contained."""

from __future__ import annotations

import math
import secrets

import pytest

from app.voice.arms import CONTROL, WARMLINE, arm_for, bucket
from app.voice.security import clean_speech
from tests.conftest import new_call_sid, signed_post, twilio_form
from tests.twiml_support import tags, verbs


def test_a_call_sid_always_lands_in_the_same_arm():
    sid = new_call_sid()
    arms = {arm_for(sid, use_proactive_filler=True, rollout_percent=37) for _ in range(100)}
    assert len(arms) == 1
    assert bucket(sid) == bucket(str(sid))


@pytest.mark.parametrize("percent", [0, 10, 50, 90, 100])
def test_split_matches_rollout_percent_over_10000_ids(percent):
    n = 10_000
    sids = [f"CA{i:032x}" for i in range(n)]
    warm = sum(arm_for(s, use_proactive_filler=True, rollout_percent=percent) == WARMLINE for s in sids)
    p = percent / 100
    tolerance = 4 * math.sqrt(n * p * (1 - p)) if 0 < p < 1 else 0
    assert abs(warm - n * p) <= tolerance


def test_filler_flag_off_means_control():
    assert arm_for(new_call_sid(), use_proactive_filler=False, rollout_percent=100) == CONTROL


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("hello\x00 world\x07", "hello world"),
        ("book\u202etxt.exe", "book txt.exe"),
        ("  many   spaces\n\ttoo ", "many spaces too"),
        ("<Say>hi</Say>", "<Say>hi</Say>"),
        ("مرحبا 👋", "مرحبا 👋"),
    ],
)
def test_clean_speech(raw, clean):
    assert clean_speech(raw, 2000) == clean


def test_clean_speech_caps_length():
    assert clean_speech("a" * 10_000, 2000) == "a" * 2000


@pytest.mark.parametrize("call_sid", ["CA123", "ca" + "0" * 32, "CA" + "g" * 32, "../../etc/passwd", "CA" + "0" * 32 + "%2F.."])
def test_malformed_call_sids_get_an_apology_not_an_error(client, call_sid):
    path = f"/voice/process/demo/{call_sid}"
    response = signed_post(client, path, twilio_form(call_sid, SpeechResult="hello"))
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert tags(response.data) == ["Say", "Hangup"]


def test_caller_text_with_markup_is_escaped_by_the_library(make_app):
    from app.responders.base import Reply
    from tests.fakes import ScriptedResponder

    evil = '</Say><Redirect>http://evil.example/</Redirect><Say>'
    responder = ScriptedResponder({}, default=Reply(f"You said {evil}"))
    # No TTS provider: every piece fails over to <Say>, which carries the caller's text verbatim.
    app = make_app(runtime={"providers": {}, "responder": responder}, instant_budget_ms=3000)
    call_sid = new_call_sid()
    response = signed_post(app.test_client(), f"/voice/process/demo/{call_sid}", twilio_form(call_sid, SpeechResult=evil))
    v = verbs(response.data)
    assert [x[0] for x in v] == ["Say", "Gather", "Say", "Gather", "Say", "Hangup"]
    assert v[0][2] == f"You said {evil}"
    assert responder.calls == [evil]


def test_oversized_body_is_refused_with_twiml(client):
    call_sid = new_call_sid()
    params = twilio_form(call_sid, SpeechResult="x" * 100_000)
    response = signed_post(client, f"/voice/process/demo/{call_sid}", params)
    assert response.status_code == 200
    assert tags(response.data) == ["Say", "Hangup"]


def test_random_call_sids_are_valid_format():
    sid = "CA" + secrets.token_hex(16)
    assert arm_for(sid, use_proactive_filler=True, rollout_percent=100) == WARMLINE


def test_a_signature_over_the_url_with_its_port_still_passes_and_a_wrong_one_does_not(make_app):
    from tests.conftest import sign

    app = make_app(public_url="https://voice.example.com")
    client = app.test_client()
    form = twilio_form(new_call_sid())
    path = "/voice/incoming/demo"
    exact = sign("https://voice.example.com" + path, form)
    with_port = sign("https://voice.example.com:443" + path, form)  # Twilio signs either way
    assert exact != with_port
    for signature in (exact, with_port):
        response = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 200 and "Gather" in [v[0] for v in verbs(response.data)]
    wrong = sign("https://other.example.com" + path, form)
    assert client.post(path, data=form, headers={"X-Twilio-Signature": wrong}).status_code == 403
