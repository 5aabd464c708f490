"""Admin endpoints of precompute: bearer token required; fillers now (URLs as JSON); a background run."""

from __future__ import annotations

import time

import pytest

import precompute as precompute_pkg
from app.errors import PrecomputeLocked
from app.speech.canon import canon
from app.speech.keys import content_key, object_name
from precompute.runner import lock_for
from tests.conftest import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def admin_client(app):
    precompute_pkg.init_app(app)
    precompute_pkg.init_app(app)  # idempotent
    return app.test_client()


@pytest.mark.parametrize("path", ["/admin/filler/demo", "/admin/precompute"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}])
def test_without_the_token_401_and_nothing_happens(admin_client, provider, path, headers):
    response = admin_client.post(path, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "unauthorized", "detail": "admin bearer token required"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="warmline-admin"'
    assert provider.calls == []


def test_fillers_and_greeting_now_as_json_urls(admin_client, app, provider):
    business = app.extensions["warmline"].businesses.get("demo")
    response = admin_client.post("/admin/filler/demo", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    texts = list(business.fillers) + list(business.short_fillers) + [business.greeting]
    assert body["business"] == "demo"
    assert [c["kind"] for c in body["clips"]] == ["filler"] * 6 + ["greeting"]
    assert [c["text"] for c in body["clips"]] == [canon(t) for t in texts]
    for clip, text in zip(body["clips"], texts):
        key = content_key(text, business.voice)
        assert clip["key"] == key
        assert clip["url"] == "/cdn/" + object_name(key, business.voice)
        assert clip["source"] == "synth"
    assert provider.calls == [canon(t) for t in texts]
    for clip in body["clips"]:  # the URLs serve the audio
        with admin_client.get(clip["url"]) as served:
            assert served.status_code == 200 and served.data[:4] == b"RIFF"
    again = admin_client.post("/admin/filler/demo", headers=AUTH).get_json()
    assert [c["source"] for c in again["clips"]] == ["index"] * 7
    assert len(provider.calls) == 7


def test_fillers_of_an_unknown_business_404(admin_client):
    response = admin_client.post("/admin/filler/nope", headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_filler_synthesis_failure_is_a_502(make_app):
    from app.errors import SynthesisRetryable
    from tests.fakes import ToneProvider

    app = make_app(runtime={"providers": {"piper": ToneProvider(fail=SynthesisRetryable("deepgram 503"))}})
    precompute_pkg.init_app(app)
    response = app.test_client().post("/admin/filler/demo", headers=AUTH)
    assert response.status_code == 502
    assert response.get_json() == {"error": "synthesis_failed", "detail": "SynthesisRetryable: deepgram 503"}


def test_precompute_starts_a_background_run_and_returns_at_once(admin_client, app, provider):
    provider.delay_s = 0.05
    started = time.monotonic()
    response = admin_client.post("/admin/precompute", json={"business": "demo", "fixed_only": True}, headers=AUTH)
    assert time.monotonic() - started < 0.5
    assert response.status_code == 202
    assert response.get_json() == {"status": "started"}
    busy = admin_client.post("/admin/precompute", headers=AUTH)
    assert busy.status_code == 409 and busy.get_json()["status"] == "already running"
    lock = lock_for(app.extensions["warmline"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the run releases the lock when it is done
        try:
            lock.acquire()
            break
        except PrecomputeLocked:
            time.sleep(0.05)
    else:
        raise AssertionError("the background run did not finish")
    lock.release()
    assert len(provider.calls) == 37  # the demo's fixed phrases and the FAQ responder's (see test_precompute_runner.FIXED_DEMO_CLIPS)
    assert len(list(app.extensions["warmline"].store.list("tts/"))) == 37


@pytest.mark.parametrize("body, detail", [
    ({"business": "nope"}, "no business 'nope'"),
    ({"budget_chars": -1}, "budget_chars must be a non-negative integer"),
    ({"fixed_only": "yes"}, "fixed_only must be true or false"),
    ([1, 2], "body must be a JSON object"),
])
def test_precompute_rejects_bad_options(admin_client, provider, body, detail):
    response = admin_client.post("/admin/precompute", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.get_json() == {"error": "bad_request", "detail": detail}
    assert provider.calls == []
