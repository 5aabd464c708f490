"""How Warmline listens: partial results, the pinned speech model, barge-in, and the partial-result webhook."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.business import load_businesses
from app.errors import BusinessConfigError
from app.speech.voices import Voice
from app.voice.speculation import SLOT, Speculation
from tests.conftest import new_call_sid, signed_post, twilio_form
from tests.fakes import ToneProvider
from tests.twiml_support import verbs

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://localhost"
VOICE = Voice("piper", "en_US-joe-medium")


def business_file(tmp_path: Path, listen: str, extra: str = "") -> Path:
    text = (ROOT / "businesses" / "businesses.toml").read_text(encoding="utf-8")
    start = text.index("[demo.listen]")
    end = text.index("[demo.prompts]")
    path = tmp_path / "businesses.toml"
    path.write_text(text[:start] + "[demo.listen]\n" + listen + "\n\n" + text[end:] + extra, encoding="utf-8")
    return path


@pytest.fixture
def barge_app(make_app, tmp_path):
    path = business_file(tmp_path, 'speech_model = "deepgram_nova-3"\nbarge_in = true')
    app = make_app(runtime={"providers": {"piper": ToneProvider()}}, businesses=path)
    yield app
    app.extensions["warmline"].shutdown(wait=True)


def gather_attrs(call_sid: str, turn: int) -> dict[str, str]:
    return {"input": "speech", "action": f"{BASE}/voice/process/demo/{call_sid}", "method": "POST",
            "speechTimeout": "auto", "timeout": "6", "language": "en-US", "speechModel": "deepgram_nova-3",
            "partialResultCallback": f"{BASE}/voice/partial/demo/{call_sid}?turn={turn}",
            "partialResultCallbackMethod": "POST"}


def test_the_greeting_plays_inside_the_gather_with_partial_results_and_a_pinned_model(barge_app):
    rt = barge_app.extensions["warmline"]
    greeting = rt.synthesizer.clip(rt.businesses.get("demo").greeting, VOICE).url
    call_sid = new_call_sid()
    v = verbs(signed_post(barge_app.test_client(), "/voice/incoming/demo", twilio_form(call_sid)).data)
    assert [x[0] for x in v] == ["Gather", "Say", "Gather", "Say", "Hangup"]
    assert v[0] == ("Gather", gather_attrs(call_sid, 1), "", [("Play", {}, BASE + greeting, [])])
    assert v[2] == ("Gather", gather_attrs(call_sid, 1), "", [])


def test_a_cached_answer_is_nested_in_the_gather_so_the_caller_can_interrupt_it(barge_app):
    rt = barge_app.extensions["warmline"]
    demo = rt.businesses.get("demo")
    from app.responders.faq import FaqResponder
    from app.speech.segment import split_sentences

    answer = FaqResponder().reply(demo, [{"role": "caller", "text": "Where are you located?"}],
                                  "Where are you located?").text
    assert "Harbour Street" in answer

    urls = [rt.synthesizer.clip(s, VOICE).url for s in split_sentences(answer)]
    for prompt in ("still_there", "goodbye"):
        rt.synthesizer.clip(demo.prompt(prompt), VOICE)
    client = barge_app.test_client()
    call_sid = new_call_sid()
    signed_post(client, "/voice/incoming/demo", twilio_form(call_sid))
    v = verbs(signed_post(client, f"/voice/process/demo/{call_sid}",
                          twilio_form(call_sid, SpeechResult="Where are you located?")).data)
    assert len(urls) >= 2 and [x[0] for x in v] == ["Play", "Gather", "Play", "Gather", "Play", "Hangup"]
    # The first sentence plays at once; the rest inside the Gather (fetched before they play, interruptible).
    assert v[0] == ("Play", {}, BASE + urls[0], [])
    assert v[1] == ("Gather", gather_attrs(call_sid, 2), "", [("Play", {}, BASE + u, []) for u in urls[1:]])


def test_without_barge_in_the_answer_plays_before_the_gather(client):
    call_sid = new_call_sid()
    v = verbs(signed_post(client, "/voice/incoming/demo", twilio_form(call_sid)).data)
    assert [x[0] for x in v] == ["Say", "Gather", "Say", "Gather", "Say", "Hangup"]
    assert v[1][3] == [] and v[1][1]["partialResultCallback"].endswith("?turn=1")


@pytest.mark.parametrize(("listen", "field"), [
    ('speech_model = "Nova 3"', "listen.speech_model"),
    ('speech_timeout = 0', "listen.speech_timeout"),
    ('speech_timeout = "soon"', "listen.speech_timeout"),
    ('speech_model = "default"\nspeech_timeout = "auto"', "listen.speech_timeout"),
    ('barge_in = "yes"', "listen.barge_in"),
    ('hurry = true', "listen.hurry"),
])
def test_listen_config_errors_name_the_field(tmp_path, listen, field):
    with pytest.raises(BusinessConfigError) as err:
        load_businesses(business_file(tmp_path, listen))
    assert err.value.field == field


def test_listen_config_defaults_and_whole_second_timeouts(tmp_path):
    demo = load_businesses(business_file(tmp_path, 'speech_model = "googlev2_telephony"\nspeech_timeout = 2')).get("demo")
    assert (demo.speech_model, demo.speech_timeout, demo.partial_results, demo.barge_in) == (
        "googlev2_telephony", "2", True, False)
    shipped = load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")
    assert (shipped.speech_model, shipped.speech_timeout, shipped.short_fillers, shipped.speculate) == (
        "deepgram_nova-3", "auto", ("Sure.", "Okay."), True)


def test_the_partial_webhook_is_signed_ignores_its_body_and_notes_the_transcript(client, app):
    call_sid = new_call_sid()
    state = app.extensions["warmline"].state
    signed_post(client, "/voice/incoming/demo", twilio_form(call_sid))
    form = twilio_form(call_sid, UnstableSpeechResult="what time do", StableSpeechResult="what", SequenceNumber="1")
    path = f"/voice/partial/demo/{call_sid}?turn=1"
    assert client.post(path, data=form).status_code == 403  # unsigned
    response = signed_post(client, path, form)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert verbs(response.data) == []
    first = Speculation.from_dict(state.get_turn(call_sid, SLOT))
    assert (first.seq, first.count, first.stable_seen) == (1, 0, True)  # the call's first stable part, once
    again = {**form, "UnstableSpeechResult": "what time do you", "SequenceNumber": "2"}
    assert signed_post(client, path, again).status_code == 200
    assert Speculation.from_dict(state.get_turn(call_sid, SLOT)).seq == 1  # incomplete: read, not written
    app.extensions["warmline"].__dict__["speculator"].enabled = False  # note the transcript, start no job
    done = {**form, "UnstableSpeechResult": "what time do you open", "StableSpeechResult": "what time do you open",
            "SequenceNumber": "3"}
    assert signed_post(client, path, done).status_code == 200
    assert Speculation.from_dict(state.get_turn(call_sid, SLOT)).count == 0  # speculation off: nothing started
    app.extensions["warmline"].__dict__["speculator"].enabled = True
    assert signed_post(client, path, done).status_code == 200
    spec = Speculation.from_dict(state.get_turn(call_sid, SLOT))
    assert (spec.turn, spec.seq, spec.text, spec.stable, spec.count, spec.key) == (
        1, 3, "what time do you open", "what time do you open", 1, "what time do you open")  # one write: noted + started
    late = signed_post(client, f"/voice/partial/demo/{call_sid}?turn=7", {**form, "SequenceNumber": "4"})
    assert late.status_code == 200
    assert Speculation.from_dict(state.get_turn(call_sid, SLOT)).seq == 3
