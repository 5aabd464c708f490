"""Hostile input at every door: Twilio webhooks, the admin API, the local edge, the business file.

Not repeated here (covered elsewhere): a missing/forged signature and a changed SpeechResult on
``process`` (test_voice_flow), malformed CallSids in the ``process`` path, one markup echo and one
oversized SpeechResult (test_arms_security), the list of ``/cdn`` path tricks (test_edge),
field-by-field business validation and create_app refusing a bad rollout_percent (test_config).

Apps are shared per module (one costs ~0.2 s to warm up); every test uses fresh CallSids and
asserts on *its* call's state, so tests stay independent. Assertions are exact: statuses, parsed
TwiML, state entries of the call. The gunicorn tests are bounded in time and stop what they start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from app.admin.auth import COOKIE, cookie_value
from app.errors import BusinessConfigError, ConfigError
from app.responders.base import Reply
from app.speech.voices import Voice
from app.voice.security import clean_speech
from tests.conftest import ADMIN_TOKEN, ROOT, TWILIO_TOKEN, new_call_sid, sign, signed_post, twilio_form
from tests.fakes import ToneProvider
from tests.support import free_port
from tests.twiml_support import tags, verbs

PUBLIC = "https://warmline.example.com"
VOICE = Voice("piper", "en_US-joe-medium")
APOLOGY = "I'm sorry, I'm having trouble right now. Please call back in a few minutes."
GENERIC_APOLOGY = "Sorry, we can't take your call right now. Please try again later."
LISTEN_TAIL = ["Gather", "Say", "Gather", "Say", "Hangup"]
SAMPLE = (ROOT / "businesses" / "businesses.toml").read_text(encoding="utf-8")


class EchoResponder:
    """Answers "You said: <utterance>". Stateless; thread-safe."""

    def reply(self, business, history, utterance):
        return Reply(f"You said: {utterance}")


def _make(tmp_path_factory, name: str, *, provider=None, **settings):
    runtime = {"providers": {"piper": provider} if provider else {}, "responder": EchoResponder()}
    config = {"env": "testing", "data_dir": tmp_path_factory.mktemp(name), "twilio_auth_token": TWILIO_TOKEN,
              "admin_token": ADMIN_TOKEN, "instant_budget_ms": 3000, **settings, "runtime": runtime}
    return create_app(config)


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    """name -> app: ``say`` (no TTS: answers are <Say>s), ``tone`` (a tone TTS), ``public`` (public_url set)."""
    made = {
        "say": _make(tmp_path_factory, "say"),
        "tone": _make(tmp_path_factory, "tone", provider=ToneProvider()),
        "public": _make(tmp_path_factory, "public", public_url=PUBLIC),
        "public443": _make(tmp_path_factory, "public443", public_url=PUBLIC + ":443"),
    }
    yield made
    for app in made.values():
        app.extensions["warmline"].shutdown(wait=True)


@pytest.fixture(scope="module")
def say_app(apps):
    return apps["say"]


def state(app):
    return app.extensions["warmline"].state


def untouched(app, call_sid: str) -> bool:
    """Nothing of this call is in the shared state: no call record, no turn, no lease."""
    s = state(app)
    return s.get_call(call_sid) is None and s.get_turn(call_sid, 1) is None and s.lease_owner(f"turn:{call_sid}:1") is None


def endpoints(call_sid: str) -> list[tuple[str, dict[str, str]]]:
    """(path, form) of all four Twilio webhooks of one call."""
    return [
        ("/voice/incoming/demo", twilio_form(call_sid, CallStatus="ringing")),
        (f"/voice/process/demo/{call_sid}", twilio_form(call_sid, SpeechResult="what are your hours")),
        (f"/voice/tts-ready/demo/{call_sid}?turn=1&played=0", twilio_form(call_sid)),
        ("/voice/status/demo", twilio_form(call_sid, CallStatus="completed", CallDuration="12")),
    ]


ENDPOINT_IDS = ["incoming", "process", "tts-ready", "status"]


def apology_403(response) -> None:
    assert response.status_code == 403 and response.mimetype == "text/xml"
    v = verbs(response.data)
    assert [x[0] for x in v] == ["Say", "Hangup"] and v[0][2] == GENERIC_APOLOGY


# --- signatures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(4), ids=ENDPOINT_IDS)
def test_every_webhook_refuses_a_bad_signature_and_touches_no_state(say_app, index):
    client = say_app.test_client()
    for how in ("missing", "empty", "wrong-token", "other-url", "garbage", "valid-but-for-another-body"):
        call_sid = new_call_sid()
        path, form = endpoints(call_sid)[index]
        signature = {
            "missing": None,
            "empty": "",
            "wrong-token": sign("http://localhost" + path, form, token="not-the-token"),
            "other-url": sign("http://localhost/voice/incoming/other", form),
            "garbage": "%%%\x7f==",
            "valid-but-for-another-body": sign("http://localhost" + path, twilio_form(new_call_sid())),
        }[how]
        headers = {} if signature is None else {"X-Twilio-Signature": signature}
        response = client.post(path, data=form, headers=headers)
        apology_403(response)
        assert untouched(say_app, call_sid), how


CHANGES = {
    "param-added": lambda p, f: (p, {**f, "Extra": "1"}),
    "param-removed": lambda p, f: (p, {k: v for k, v in f.items() if k != "Confidence"}),
    "from-changed": lambda p, f: (p, {**f, "From": "+15559999999"}),
    "speech-trailing-space": lambda p, f: (p, {**f, "SpeechResult": f["SpeechResult"] + " "}),
    "param-renamed-case": lambda p, f: (p, {("speechresult" if k == "SpeechResult" else k): v for k, v in f.items()}),
    "query-added": lambda p, f: (p + "?turn=1", f),
    "call-sid-in-path-uppercased": lambda p, f: (p.rsplit("/", 1)[0] + "/CA" + p.rsplit("/", 1)[1][2:].upper(), f),
    "other-call-sid-in-path": lambda p, f: (p.rsplit("/", 1)[0] + "/" + new_call_sid(), f),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_replayed_request_with_anything_changed_is_refused(say_app, change):
    call_sid = new_call_sid()
    path = f"/voice/process/demo/{call_sid}"
    form = twilio_form(call_sid, SpeechResult="what are your hours", Confidence="0.9")
    signature = sign("http://localhost" + path, form)
    new_path, new_form = change(path, dict(form))
    response = say_app.test_client().post(new_path, data=new_form, headers={"X-Twilio-Signature": signature})
    apology_403(response)
    assert untouched(say_app, call_sid)
    assert untouched(say_app, new_path.rsplit("/", 1)[1].split("?")[0])


def test_a_changed_query_string_on_tts_ready_is_refused(say_app):
    client = say_app.test_client()
    call_sid = new_call_sid()
    form = twilio_form(call_sid)
    signature = sign(f"http://localhost/voice/tts-ready/demo/{call_sid}?turn=1&played=0", form)
    for query in ("turn=1&played=1", "played=0&turn=1", "turn=1&played=0&x=1", "turn=2&played=0", "turn=1&played=00", ""):
        path = f"/voice/tts-ready/demo/{call_sid}" + (f"?{query}" if query else "")
        apology_403(client.post(path, data=form, headers={"X-Twilio-Signature": signature}))
    # The untouched original passes; there is no turn 1 yet, so the caller is asked again.
    response = client.post(f"/voice/tts-ready/demo/{call_sid}?turn=1&played=0", data=form,
                           headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200 and tags(response.data) == ["Say", *LISTEN_TAIL]


def test_a_forged_status_callback_cannot_end_someone_elses_call(say_app):
    client = say_app.test_client()
    victim = new_call_sid()
    assert signed_post(client, "/voice/incoming/demo", twilio_form(victim, CallStatus="ringing")).status_code == 200
    assert state(say_app).get_call(victim) is not None
    form = twilio_form(victim, CallStatus="completed")
    for signature in ("", "forged", sign("http://localhost/voice/status/demo", form, token="attacker-token"),
                      sign("http://localhost/voice/status/demo", twilio_form(victim, CallStatus="in-progress"))):
        apology_403(client.post("/voice/status/demo", data=form, headers={"X-Twilio-Signature": signature}))
    assert state(say_app).get_call(victim) is not None
    assert signed_post(client, "/voice/status/demo", form).status_code == 200
    assert state(say_app).get_call(victim) is None


@pytest.mark.parametrize(
    "signed_base, status",
    [
        (PUBLIC, 200),
        (PUBLIC + ":443", 200),  # NOTES-APIS: an explicit :443 is accepted (the validator tries with and without it)
        ("http://warmline.example.com", 403),  # http vs https
        ("https://warmline.example.com:8443", 403),
        ("https://evil.example.com", 403),
        ("http://localhost", 403),  # what the request itself says: ignored when a public URL is configured
    ],
)
def test_signatures_are_checked_against_the_configured_public_url(apps, signed_base, status):
    app = apps["public"]
    call_sid = new_call_sid()
    path = "/voice/incoming/demo"
    form = twilio_form(call_sid, CallStatus="ringing")
    response = app.test_client().post(path, data=form, headers={"X-Twilio-Signature": sign(signed_base + path, form)})
    assert response.status_code == status
    assert (state(app).get_call(call_sid) is not None) == (status == 200)


@pytest.mark.parametrize("signed_base, status", [(PUBLIC, 200), (PUBLIC + ":443", 200), ("http://warmline.example.com", 403)])
def test_a_public_url_with_an_explicit_443_accepts_signatures_with_and_without_it(apps, signed_base, status):
    app = apps["public443"]
    call_sid = new_call_sid()
    form = twilio_form(call_sid, CallStatus="ringing")
    response = app.test_client().post("/voice/incoming/demo", data=form,
                                      headers={"X-Twilio-Signature": sign(signed_base + "/voice/incoming/demo", form)})
    assert response.status_code == status


@pytest.mark.parametrize("signed_scheme, forwarded_proto, status", [
    ("https", "https", 200), ("http", "https", 403), ("https", None, 403), ("http", None, 200),
])
def test_behind_a_tls_proxy_the_forwarded_scheme_is_what_is_signed(say_app, signed_scheme, forwarded_proto, status):
    call_sid = new_call_sid()  # say_app has no public_url: ProxyFix trusts X-Forwarded-Proto/Host
    path = "/voice/incoming/demo"
    form = twilio_form(call_sid, CallStatus="ringing")
    headers = {"X-Twilio-Signature": sign(f"{signed_scheme}://warmline.example.com{path}", form),
               "X-Forwarded-Host": "warmline.example.com"}
    if forwarded_proto:
        headers["X-Forwarded-Proto"] = forwarded_proto
    response = say_app.test_client().post(path, data=form, headers=headers)
    assert response.status_code == status
    if status == 200:  # the URLs handed back to Twilio use the public scheme and host too
        assert verbs(response.data)[1][1]["action"] == f"{signed_scheme}://warmline.example.com/voice/process/demo/{call_sid}"


# --- oversized bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(4), ids=ENDPOINT_IDS)
def test_a_body_over_the_limit_gets_an_apology_and_no_state(say_app, index):
    call_sid = new_call_sid()
    path, form = endpoints(call_sid)[index]
    form["Padding"] = "x" * (64 * 1024)
    response = signed_post(say_app.test_client(), path, form)  # correctly signed, just too big
    assert response.status_code == 200 and response.mimetype == "text/xml"
    v = verbs(response.data)
    assert [x[0] for x in v] == ["Say", "Hangup"] and v[0][2] == GENERIC_APOLOGY
    assert untouched(say_app, call_sid)


def test_a_long_speech_result_under_the_body_limit_is_capped_before_the_responder_sees_it(say_app):
    call_sid = new_call_sid()
    speech = "book " * 12_000  # 60,000 characters: under the 64 KiB body limit, far over max_speech_chars
    response = signed_post(say_app.test_client(), f"/voice/process/demo/{call_sid}",
                           twilio_form(call_sid, SpeechResult=speech))
    assert response.status_code == 200
    heard = state(say_app).get_call(call_sid)["history"][0]["text"]
    assert heard == clean_speech(speech, 2000) and len(heard) == 2000
    v = verbs(response.data)
    assert [x[0] for x in v[-5:]] == LISTEN_TAIL
    said = [x for x in v[:-5]]
    assert said and all(x[0] == "Say" for x in said)
    assert sum(len(x[2]) for x in said) <= 600  # the reply is trimmed to MAX_REPLY_CHARS before it is spoken


def test_an_oversized_admin_body_is_413_and_starts_nothing(say_app):
    body = json.dumps({"business": "demo", "pad": "x" * (1 << 20)})
    response = say_app.test_client().post("/admin/precompute", data=body, content_type="application/json",
                                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 413
    assert not (Path(say_app.extensions["warmline"].settings.data_dir) / "cdn").exists()


# --- SpeechResult content ------------------------------------------------------------------------

HOSTILE_SPEECH = {
    "ssml": '<speak><prosody rate="x-slow">book me</prosody><break time="10s"/></speak>',
    "xml-structure": '</Say></Gather><Redirect method="GET">https://evil.example/</Redirect><Gather><Say>',
    "cdata": "<![CDATA[</Response>]]> and ]]> too",
    "entities": "&amp; &lt;Play&gt; &#x0; &xxe; <!DOCTYPE r [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>",
    "processing-instruction": '<?xml version="1.0"?><?php system("id"); ?>',
    "control-characters": "book\x00 an\x01 appointment\x07\x08\x0b\x0c\x1b[31m now\x7f\x85\x9f",
    "ansi-and-newlines": "line one\r\nline two\n\tline three\x1b[2J",
    "rtl-override": "I want \u202etnemtnioppa na\u202c please \u2066x\u2069",
    "arabic-hebrew": "أريد حجز موعد שלום עולם",
    "emoji-zwj": "👩‍👩‍👧‍👦 book for the family 🦷🪥 ✔️",
    "combining": "ca\u0301fe\u0301 Z\u0351\u0352\u0353a\u0354lgo",
    # U+FFFE/U+FFFF are not XML 1.0 characters: they must not reach a <Say> (Twilio error 12100).
    "nonchars": "hello \ufffe\uffff world",
    "zero-width": "bo\u200bok \ufeffme\u200d in",
    "quotes": "it's \"quoted\" & 'single' `back`",
}
BIDI_AND_INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\ufeff"


def xml_char(c: str) -> bool:
    """Whether ``c`` may appear in an XML 1.0 document (the Char production)."""
    o = ord(c)
    return o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF


@pytest.mark.parametrize("speech", HOSTILE_SPEECH.values(), ids=HOSTILE_SPEECH.keys())
def test_hostile_speech_reaches_the_responder_clean_and_is_spoken_back_as_plain_text(say_app, speech):
    call_sid = new_call_sid()
    response = signed_post(say_app.test_client(), f"/voice/process/demo/{call_sid}",
                           twilio_form(call_sid, SpeechResult=speech, Confidence="0.5"))
    assert response.status_code == 200 and response.mimetype == "text/xml"
    heard = state(say_app).get_call(call_sid)["history"][0]["text"]
    assert heard == clean_speech(speech, 2000)
    assert not any(unicodedata.category(c) == "Cc" or c in BIDI_AND_INVISIBLE or not xml_char(c) for c in heard)
    v = verbs(response.data)  # parses: nothing the caller said broke the document
    answer = v[:-5]
    assert [x[0] for x in v[-5:]] == LISTEN_TAIL
    assert answer and all(x[0] == "Say" and x[3] == [] for x in answer)  # the caller's words never became a verb
    spoken = "".join(x[2] for x in answer)
    assert "".join(spoken.split()) == "".join(f"You said: {heard}".split())


def test_ten_kilobytes_of_emoji_and_rtl_speech(say_app):
    call_sid = new_call_sid()
    speech = ("שלום 🦷 مرحبا \u202e" * 800)[:6000]
    assert len(speech.encode("utf-8")) > 10_000
    response = signed_post(say_app.test_client(), f"/voice/process/demo/{call_sid}",
                           twilio_form(call_sid, SpeechResult=speech))
    assert response.status_code == 200
    heard = state(say_app).get_call(call_sid)["history"][0]["text"]
    assert heard == clean_speech(speech, 2000) and "\u202e" not in heard and len(heard) == 2000
    v = verbs(response.data)
    assert [x[0] for x in v[-5:]] == LISTEN_TAIL
    assert v[:-5] and all(x[0] == "Say" and 0 < len(x[2]) <= 600 for x in v[:-5])
    events_dir = Path(say_app.extensions["warmline"].settings.data_dir) / "events"
    lines = [json.loads(line) for f in events_dir.glob("turns-*.jsonl") for line in f.read_text("utf-8").splitlines()]
    assert [(e["call"], e["turn"]) for e in lines if e["call"] == call_sid] == [(call_sid, 1)]


def test_hostile_speech_with_a_real_tts_provider_becomes_clips_not_markup(apps):
    app = apps["tone"]
    provider = app.extensions["warmline"].providers["piper"]
    call_sid = new_call_sid()
    speech = HOSTILE_SPEECH["xml-structure"]
    response = signed_post(app.test_client(), f"/voice/process/demo/{call_sid}", twilio_form(call_sid, SpeechResult=speech))
    v = verbs(response.data)
    answer = v[:-5]
    assert answer and {x[0] for x in answer} == {"Play"}
    for _tag, _attrs, url, _children in answer:
        assert url.startswith("http://localhost/cdn/tts/v2/") and url.endswith(".wav")
    # It was synthesized as words (canon() folds case), never obeyed.
    assert any("</redirect>" in text.lower() for text in provider.calls)


# --- ids in paths and forms ----------------------------------------------------------------------

# Ids a URL carries as they are: refused as ids (then routed by `To`, or an apology), never echoed.
PLAIN_BUSINESS_IDS = ["..", ".", "DEMO", "demo;rm", "demo'--", "a" * 41, "_demo", "-demo", "demo.", "demo~1", "d\u00e9mo"]
# Ids that need percent-encoding: traversal, NUL, CRLF, slashes, a JNDI string.
ENCODED_BUSINESS_IDS = ["%2e%2e", "demo%2F..%2F..", "demo%00", "demo%0d%0aSet-Cookie:x=1", "%2Fetc%2Fpasswd",
                        "%24%7Bjndi%3Aldap%3A%2F%2Fx%7D"]


@pytest.mark.parametrize("business_id", PLAIN_BUSINESS_IDS)
def test_a_hostile_business_id_is_answered_exactly_like_the_number_it_was_called_on(say_app, business_id):
    client = say_app.test_client()
    call_sid = new_call_sid()
    # An unknown number: nobody to route to, so a polite apology and nothing stored.
    response = signed_post(client, f"/voice/incoming/{business_id}", twilio_form(call_sid, To="+15550000000"))
    assert response.status_code == 200
    v = verbs(response.data)
    assert [x[0] for x in v] == ["Say", "Hangup"] and v[0][2] == GENERIC_APOLOGY
    assert untouched(say_app, call_sid)
    # The business's own number in `To`: byte for byte what /voice/incoming/demo answers.
    hostile = signed_post(client, f"/voice/incoming/{business_id}", twilio_form(call_sid))
    plain = signed_post(client, "/voice/incoming/demo", twilio_form(call_sid))
    assert hostile.status_code == plain.status_code == 200
    assert hostile.data == plain.data
    assert verbs(hostile.data)[1][1]["action"] == f"http://localhost/voice/process/demo/{call_sid}"


@pytest.mark.parametrize("business_id", ENCODED_BUSINESS_IDS)
def test_an_encoded_hostile_business_id_is_refused_before_any_state(say_app, business_id):
    client = say_app.test_client()
    call_sid = new_call_sid()
    for path in (f"/voice/incoming/{business_id}", f"/voice/process/{business_id}/{call_sid}",
                 f"/voice/status/{business_id}"):
        response = signed_post(client, path, twilio_form(call_sid, SpeechResult="hi", To="+15550000000"))
        # 403: the URL Twilio would have signed is not the one the app reconstructs; 404: no route;
        # 200: decoded into an id that is refused, with no number to route by -> the apology.
        assert response.status_code in (200, 403, 404), path
        if response.status_code != 404:
            assert tags(response.data) == ["Say", "Hangup"], path
    assert untouched(say_app, call_sid)


HOSTILE_CALL_SIDS = ["", "CA" + "0" * 31, "CA" + "0" * 33, "CA" + "G" * 32, "../../etc/passwd", "CA" + "0" * 32 + "\n",
                     "CA" + "0" * 32 + "' OR '1'='1", "CA" + "0" * 30 + "/..", "call:CA" + "0" * 32, "CA" + "\uff10" * 32,
                     "turn:CA" + "0" * 32 + ":1", "*", "CA" + "0" * 32 + "\x00"]


@pytest.mark.parametrize("where", ["incoming", "status"])
def test_hostile_call_sids_in_the_form_get_an_apology_and_create_or_delete_nothing(say_app, where):
    client = say_app.test_client()
    legit = new_call_sid()
    assert signed_post(client, "/voice/incoming/demo", twilio_form(legit, CallStatus="ringing")).status_code == 200
    calls_before = state(say_app).count_calls()
    path = "/voice/incoming/demo" if where == "incoming" else "/voice/status/demo"
    for call_sid in HOSTILE_CALL_SIDS:
        response = signed_post(client, path, twilio_form(legit, CallSid=call_sid, CallStatus="completed"))
        assert response.status_code == 200, repr(call_sid)
        v = verbs(response.data)
        assert [x[0] for x in v] == ["Say", "Hangup"] and v[0][2] == APOLOGY, repr(call_sid)
    assert state(say_app).count_calls() == calls_before
    assert state(say_app).get_call(legit) is not None


@pytest.mark.parametrize("query", ["turn=1;DROP", "turn=-1", "turn=0", "turn=10001", "turn=1e3", "turn=99999999999999999999",
                                   "turn=1&played=-1", "turn=1&played=1001", "turn=1&played=0x1", "turn=", "turn=NaN",
                                   "turn=1&turn=2&played=0"])
def test_hostile_ready_parameters_get_an_apology(say_app, query):
    call_sid = new_call_sid()
    response = signed_post(say_app.test_client(), f"/voice/tts-ready/demo/{call_sid}?{query}", twilio_form(call_sid))
    assert response.status_code == 200
    if query == "turn=1&turn=2&played=0":  # the first value counts: turn 1, which does not exist -> ask again
        assert tags(response.data) == ["Say", *LISTEN_TAIL]
    else:
        v = verbs(response.data)
        assert [x[0] for x in v] == ["Say", "Hangup"] and v[0][2] == APOLOGY
    assert untouched(say_app, call_sid)


def test_hostile_call_sids_in_the_path_touch_nothing_on_disk(say_app):
    client = say_app.test_client()
    data_dir = Path(say_app.extensions["warmline"].settings.data_dir)
    for call_sid in ["..%2F..%2Fpwned", "CA" + "0" * 32 + "%2F..%2F..%2Fpwned", "%2e%2e", "CA%00" + "0" * 30, "pwned"]:
        for path in (f"/voice/process/demo/{call_sid}", f"/voice/tts-ready/demo/{call_sid}?turn=1"):
            response = signed_post(client, path, twilio_form(new_call_sid(), SpeechResult="hi"))
            assert response.status_code in (200, 403, 404), path
            if response.status_code != 404:
                assert tags(response.data) == ["Say", "Hangup"], path
    assert list(data_dir.parent.rglob("*pwned*")) == []


# --- the local edge ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge(apps):
    app = apps["tone"]
    url = app.extensions["warmline"].synthesizer.clip("Hello there.", VOICE).url
    return app.test_client(), url


def get_404(client, path: str) -> None:
    response = client.get(path)
    try:
        assert response.status_code == 404, path
        assert "Location" not in response.headers
        assert b"RIFF" not in response.data and b"root:" not in response.data
    finally:
        response.close()


@pytest.mark.parametrize("path", [
    "/cdn/%252e%252e/%252e%252e/etc/passwd",  # double encoding
    "/cdn/tts/v1/..%5c..%5c..%5cetc%5cpasswd",
    "/cdn/\uff0e\uff0e/\uff0e\uff0e/etc/passwd",  # fullwidth dots (NFKC would fold them to '..')
    "/cdn//etc/passwd",
    "/cdn/%2Fetc%2Fpasswd",
    "/cdn/C:%5CWindows%5Cwin.ini",
    "/cdn/file:///etc/passwd",
    "/cdn/tts/v1/%00/../../etc/passwd",
])
def test_more_cdn_tricks_are_404(edge, path):
    get_404(edge[0], path)


def test_a_valid_name_with_parameters_or_suffixes_is_404(edge):
    client, url = edge
    path = url.removeprefix("http://localhost")
    ok = client.get(path)
    assert ok.status_code == 200 and ok.data.startswith(b"RIFF")
    ok.close()
    for variant in (path + ";jsessionid=1", path + "%3F", path + ".", path.replace(".wav", ".WAV"), path + "/.",
                    path.replace("/tts/", "/tts/./"), path.replace("/cdn/", "/cdn/./"), path + "%20", path + "\u200b"):
        get_404(client, variant)


CDN_TOKENS = list("./\\%2eEfF5cC0:~ az_-") + ["%2e", "%2f", "%5c", "..", "//", "tts/v1/", "%00", "piper-en_us-joe-medium/"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(CDN_TOKENS), max_size=30).map("".join))
def test_any_cdn_path_that_is_not_the_published_name_is_404(edge, tail):
    client, url = edge
    path = "/cdn/" + tail
    if path == url.removeprefix("http://localhost"):
        return
    get_404(client, path)


# --- admin ---------------------------------------------------------------------------------------

ADMIN_ENDPOINTS = [("POST", "/admin/filler/demo"), ("POST", "/admin/precompute"), ("GET", "/admin/report"),
                   ("GET", "/admin/report.json")]
T = ADMIN_TOKEN
WRONG_AUTHORIZATIONS = {
    "none": None,
    "empty-bearer": "Bearer ",
    # Same length, one byte off at the end / at the start: what a timing attack would probe.
    "last-char-differs": "Bearer " + T[:-1] + chr(ord(T[-1]) ^ 1),
    "first-char-differs": "Bearer " + chr(ord(T[0]) ^ 1) + T[1:],
    # Wrong lengths: a prefix, one more character, doubled.
    "prefix": "Bearer " + T[:-1],
    "longer": "Bearer " + T + "x",
    "doubled": "Bearer " + T * 2,
    "case-changed": "Bearer " + T.upper(),
    "basic-scheme": "Basic " + T,
    "no-scheme": T,
    "token-then-junk": "Bearer " + T + " junk",
    # Non-ASCII: hmac.compare_digest raises TypeError on non-ASCII str, so a 500 here would show the
    # compare is not over bytes; a 401 shows it is.
    "non-ascii": "Bearer " + T[:-1] + "\u00e9",
    "huge": "Bearer " + "x" * 8000,
}


@pytest.mark.parametrize("method, path", ADMIN_ENDPOINTS)
def test_admin_refuses_anything_but_the_exact_token(apps, method, path):
    app = apps["tone"]
    provider = app.extensions["warmline"].providers["piper"]
    before = list(provider.calls)
    client = app.test_client()
    for kind, authorization in WRONG_AUTHORIZATIONS.items():
        headers = {} if authorization is None else {"Authorization": authorization}
        response = client.open(path, method=method, headers=headers)
        assert response.status_code == 401, kind
        assert response.json == {"error": "unauthorized", "detail": "admin bearer token required"}, kind
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="warmline-admin"'
        assert response.headers["Cache-Control"] == "no-store"
    assert client.open(f"{path}?token={T}", method=method).status_code == 401  # only /admin/login takes a query token
    assert provider.calls == before


def test_the_exact_token_is_accepted_and_the_scheme_is_case_insensitive(say_app):
    client = say_app.test_client()
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert client.get("/admin/report.json", headers={"Authorization": f"{scheme} {T}"}).status_code == 200


@pytest.mark.parametrize("cookie", ["forged", cookie_value("not-the-token"), cookie_value(T)[:-1] + "0",
                                    cookie_value(T).upper(), T, ""])
def test_a_forged_admin_cookie_is_refused(say_app, cookie):
    client = say_app.test_client()
    client.set_cookie(COOKIE, cookie, path="/admin")
    assert client.get("/admin/report.json").status_code == 401


def test_the_real_cookie_reads_reports_but_never_triggers_actions(apps):
    app = apps["tone"]
    provider = app.extensions["warmline"].providers["piper"]
    before = list(provider.calls)
    client = app.test_client()
    client.set_cookie(COOKIE, cookie_value(T), path="/admin")
    assert client.get("/admin/report.json").status_code == 200
    assert client.post("/admin/filler/demo").status_code == 401
    assert client.post("/admin/precompute").status_code == 401
    assert provider.calls == before


def test_an_empty_admin_token_setting_authenticates_nobody(make_app):
    app = make_app(runtime={"providers": {}}, admin_token="")
    client = app.test_client()
    client.set_cookie(COOKIE, cookie_value(""), path="/admin")
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer  "}, {"Authorization": "Bearer \t"}):
        assert client.get("/admin/report.json", headers=headers).status_code == 401
    assert client.post("/admin/login", data={"token": ""}).status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/admin/", "https://evil.example/", "/admin/\\evil", "/\\evil.example",
                                    "/admin/report\r\nLocation: https://evil.example/", "javascript:alert(1)",
                                    "/admin/../../evil"])
def test_login_never_redirects_off_site(say_app, target):
    response = say_app.test_client().post("/admin/login", data={"token": T, "next": target})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location == "/admin/report" or (target == "/admin/../../evil" and location == target)


def test_a_wrong_login_token_gets_no_cookie(say_app):
    for token in ("", "x", T[:-1], T + "x"):
        response = say_app.test_client().post("/admin/login", data={"token": token, "next": "/admin/report"})
        assert response.status_code == 401 and "Set-Cookie" not in response.headers


# --- the business file at start-up ---------------------------------------------------------------

GREETING_LINE = 'greeting = "Thanks for calling Harbourside Dental. How can I help you today?"'
SAY_VOICE_LINE = 'voice = "Polly.Joanna-Neural"'


@pytest.mark.parametrize(
    "old, new, business, field",
    [
        ("[demo]", '["../../etc"]', "../../etc", "id"),
        ("[demo]", '["demo\\u0000"]', "demo\x00", "id"),
        ("[demo]", '["demo\\nx"]', "demo\nx", "id"),
        (GREETING_LINE, 'greeting = "' + "Thanks. " * 90 + '"', "demo", "greeting"),
        (GREETING_LINE, 'greeting = "\\u0007\\u0000"', "demo", "greeting"),
        ("instant_budget_ms = 300", "instant_budget_ms = 1e9", "demo", "instant_budget_ms"),
        ("instant_budget_ms = 300", 'instant_budget_ms = "300; DROP"', "demo", "instant_budget_ms"),
        # The <Say> voice is an XML attribute of every <Say>: a control character there makes every
        # document of the business unparsable (Twilio 12100), so it must be refused at start-up.
        (SAY_VOICE_LINE, 'voice = "Polly.Joanna\\u0000"', "demo", "say.voice"),
        (SAY_VOICE_LINE, 'voice = ""', "demo", "say.voice"),
    ],
    ids=["traversal-id", "nul-id", "newline-id", "huge-greeting", "control-greeting", "float-budget", "string-budget",
         "control-say-voice", "empty-say-voice"],
)
def test_create_app_refuses_a_hostile_business_file_naming_the_field(make_app, tmp_path, old, new, business, field):
    assert old in SAMPLE
    path = tmp_path / "b.toml"
    path.write_text(SAMPLE.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(BusinessConfigError) as info:
        make_app(businesses=path)
    assert (info.value.business, info.value.field) == (business, field)


def test_create_app_refuses_a_business_file_that_is_not_utf8(make_app, tmp_path):
    path = tmp_path / "b.toml"
    path.write_bytes(SAMPLE.encode("utf-8").replace(b"Harbourside Dental\"", b"Harbourside \xff\xfe\"", 1))
    with pytest.raises(ConfigError, match="is not valid TOML"):
        make_app(businesses=path)


@pytest.mark.slow
def test_gunicorn_with_a_malformed_business_file_exits_non_zero_naming_the_field(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text(SAMPLE.replace("rollout_percent = 100", "rollout_percent = 150"), encoding="utf-8")
    log = tmp_path / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
    env.update({"WARMLINE_ENV": "testing", "WARMLINE_DATA_DIR": str(tmp_path / "var"), "WARMLINE_BUSINESSES": str(path),
                "WARMLINE_BIND": f"127.0.0.1:{free_port()}", "WARMLINE_WORKERS": "2", "WARMLINE_THREADS": "2"})
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    text = log.read_text(errors="replace")
    assert code == 3  # the master's start-up check: one clean report, no worker started
    assert "\nbusiness 'demo': field 'rollout.rollout_percent': must be an integer from 0 to 100\n" in text
    assert "Traceback" not in text and "Booting worker" not in text


# --- a real server: chunked bodies and raw paths on the wire -------------------------------------


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    from tests.server_support import GunicornServer

    server = GunicornServer(tmp_path_factory.mktemp("hostile-server"), env={"WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN},
                            workers=1, threads=4)
    server.start(timeout=60)
    yield server
    server.stop()


def _chunked_post(url: str, form: dict[str, str], signature: str) -> httpx.Response:
    body = "&".join(f"{k}={quote(v)}" for k, v in form.items()).encode()

    def chunks():
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    return httpx.post(url, content=chunks(), timeout=15,
                      headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


@pytest.mark.slow
def test_a_chunked_body_under_the_limit_is_served(real_server):
    call_sid = new_call_sid()
    url = f"{real_server.base_url}/voice/incoming/demo"
    form = twilio_form(call_sid, CallStatus="ringing") | {f"Pad{i}": "x" * 4096 for i in range(4)}
    response = _chunked_post(url, form, sign(url, form))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    assert tags(response.content)[1:] == LISTEN_TAIL


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_is_refused_on_the_wire(real_server):
    """No Content-Length: werkzeug stops reading at the limit and drops the form, so the signature fails (403)."""
    call_sid = new_call_sid()
    url = f"{real_server.base_url}/voice/incoming/demo"
    form = twilio_form(call_sid, CallStatus="ringing") | {f"Pad{i}": "x" * 4096 for i in range(40)}
    response = _chunked_post(url, form, sign(url, form))
    assert response.status_code == 403 and response.headers["content-type"].startswith("text/xml")
    v = verbs(response.content)
    assert [x[0] for x in v] == ["Say", "Hangup"] and v[0][2] == GENERIC_APOLOGY


@pytest.mark.slow
def test_raw_hostile_paths_on_the_wire(real_server):
    with httpx.Client(base_url=real_server.base_url, timeout=10) as client:
        for raw in ("/voice/process/demo/..%2F..%2Fetc%2Fpasswd", "/voice/process/demo/CA" + "0" * 32 + "%00",
                    "/voice/incoming/%2e%2e", "/voice/status/demo%0d%0aX:1", "/voice/../cdn/../etc/passwd",
                    "/cdn/..%2f..%2f..%2fetc%2fpasswd"):
            response = client.post(raw, data={"CallSid": new_call_sid()}, headers={"X-Twilio-Signature": "x"})
            assert response.status_code in (403, 404, 405), raw
            assert b"Traceback" not in response.content and b"root:" not in response.content
