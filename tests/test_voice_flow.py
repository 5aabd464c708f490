"""The call flow, branch by branch, through the Flask test client with parsed TwiML."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from app.errors import ResponderError, StateError
from app.responders.base import Reply
from app.speech.voices import Voice
from tests.conftest import new_call_sid, sign, signed_post, twilio_form
from tests.fakes import ScriptedResponder, ToneProvider
from tests.twiml_support import tags, verbs

VOICE = Voice("piper", "en_US-joe-medium")
HOURS = "We're open nine to five. Is there anything else I can help you with?"
BASE = "http://localhost"


def build(make_app, *, provider=None, responder=None, **settings):
    provider = provider or ToneProvider()
    runtime = {"providers": {"piper": provider}}
    if responder is not None:
        runtime["responder"] = responder
    settings.setdefault("hop_s", 0.5)
    return make_app(runtime=runtime, **settings), provider


def warm(app):
    """Publish the demo business's fixed phrases, as precompute does before calls arrive."""
    demo = app.extensions["warmline"].businesses.get("demo")
    publish(app, demo.greeting, *demo.fillers, *demo.prompts.values())
    return demo


def publish(app, *texts):
    synth = app.extensions["warmline"].synthesizer
    return [synth.clip(t, VOICE).url for t in texts]


def process(client, call_sid, speech):
    return signed_post(client, f"/voice/process/demo/{call_sid}", twilio_form(call_sid, SpeechResult=speech, Confidence="0.9"))


def follow(client, redirect_url):
    parts = urlsplit(redirect_url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    call_sid = path.split("/")[4].split("?")[0]
    return signed_post(client, path, twilio_form(call_sid))


def last_document(client, url, max_hops=6):
    """Follow tts-ready redirects from ``url``; the first document that does not redirect again."""
    for _ in range(max_hops):
        v = verbs(follow(client, url).data)
        if v[-1][0] != "Redirect":
            return v
        url = v[-1][2]
    raise AssertionError(f"still redirecting after {max_hops} hops: {v}")


def clips_ready(app, call_sid, turn=1):
    """Wait (notified, bounded) until turn ``turn`` has every clip: the next hop then answers at once, whatever
    the hop's silence budget and however loaded the machine."""
    ok = lambda r: bool(r and r.get("pieces") and all(p.get("url") for p in r["pieces"]))  # noqa: E731
    assert app.extensions["warmline"].state.wait_turn(call_sid, turn, ok, timeout_s=10), "the clips never came"


def listen_tail(call_sid):
    """The verbs after an answer that listens: Gather, still-there, Gather, goodbye, Hangup."""
    return ["Gather", "Say", "Gather", "Say", "Hangup"]


def events(app):
    return list(app.extensions["warmline"].events.read())


def test_incoming_plays_the_greeting_then_gathers(make_app):
    app, provider = build(make_app)
    greeting_url = publish(app, app.extensions["warmline"].businesses.get("demo").greeting)[0]
    call_sid = new_call_sid()
    response = signed_post(app.test_client(), "/voice/incoming/demo", twilio_form(call_sid))
    assert response.status_code == 200 and response.mimetype == "text/xml"
    v = verbs(response.data)
    assert v[0] == ("Play", {}, BASE + greeting_url, [])
    assert v[1] == ("Gather", {"input": "speech", "action": f"{BASE}/voice/process/demo/{call_sid}", "method": "POST",
                               "speechTimeout": "auto", "timeout": "6", "language": "en-US",
                               "partialResultCallback": f"{BASE}/voice/partial/demo/{call_sid}?turn=1",
                               "partialResultCallbackMethod": "POST", "speechModel": "deepgram_nova-3"}, "", [])
    assert [x[0] for x in v] == ["Play", "Gather", "Say", "Gather", "Say", "Hangup"]
    assert v[2][1] == {"voice": "Polly.Joanna-Neural", "language": "en-US"} and v[2][2] == "Are you still there?"


def test_incoming_routes_by_the_to_number(make_app):
    app, _ = build(make_app)
    call_sid = new_call_sid()
    response = signed_post(app.test_client(), "/voice/incoming", twilio_form(call_sid, To="+15005550006"))
    assert tags(response.data) == ["Say", "Gather", "Say", "Gather", "Say", "Hangup"]
    assert verbs(response.data)[1][1]["action"] == f"{BASE}/voice/process/demo/{call_sid}"


def test_cache_hit_answers_at_once_with_no_filler(make_app):
    responder = ScriptedResponder({"when are you open": Reply(HOURS)})
    app, provider = build(make_app, responder=responder, instant_budget_ms=3000)
    warm(app)
    urls = publish(app, "We're open nine to five.", "Is there anything else I can help you with?")
    calls_before = len(provider.calls)
    call_sid = new_call_sid()
    v = verbs(process(app.test_client(), call_sid, "when are you open").data)
    assert [x[0] for x in v] == ["Play", "Play", "Gather", "Play", "Gather", "Play", "Hangup"]
    assert [v[0][2], v[1][2]] == [BASE + u for u in urls]
    assert len(provider.calls) == calls_before
    app.extensions["warmline"].shutdown()
    (event,) = events(app)
    assert (event["outcome"], event["arm"], event["filler"], event["hops"], event["tts_cached"]) == ("instant", "warmline", None, 0, True)
    assert [s["hit"] for s in event["sentences"]] == [True, True]
    assert event["chars_live"] == 0 and event["chars_cached"] == len("We're open nine to five.") + len("Is there anything else I can help you with?")


def test_miss_plays_a_filler_and_redirects_then_ready_plays_the_answer(make_app):
    responder = ScriptedResponder({"parking?": Reply("There's free parking behind the building.")})
    app, provider = build(make_app, responder=responder, provider=ToneProvider(delay_s=0.6))
    client = app.test_client()
    call_sid = new_call_sid()
    v = verbs(process(client, call_sid, "parking?").data)
    assert [x[0] for x in v] == ["Say", "Redirect"]
    assert v[0][2] == "Let me check that for you."
    assert v[1][1] == {"method": "POST"}
    assert v[1][2] == f"{BASE}/voice/tts-ready/demo/{call_sid}?turn=1&played=0"
    clips_ready(app, call_sid)
    ready = verbs(follow(client, v[1][2]).data)
    assert [x[0] for x in ready] == ["Play"] + listen_tail(call_sid)
    assert ready[0][2].startswith(BASE + "/cdn/tts/v2/piper-en_us-joe-medium/")
    app.extensions["warmline"].shutdown()
    (event,) = [e for e in events(app) if e["outcome"] != "reprompt"]
    assert (event["outcome"], event["filler"], event["hops"]) == ("filler", "Let me check that for you.", 1)
    assert event["sentences"][0]["hit"] is False and event["chars_live"] == len("There's free parking behind the building.")


def test_fillers_rotate_and_never_repeat_back_to_back(make_app):
    responder = ScriptedResponder({}, default=Reply("A brand new answer every time."))
    app, provider = build(make_app, responder=responder)
    demo = warm(app)
    by_url = {BASE + publish(app, f)[0]: f for f in demo.fillers}
    provider.delay_s = 0.5
    client = app.test_client()
    call_sid = new_call_sid()
    heard = []
    for i in range(6):
        responder.default = Reply(f"Answer number {i} is new.")
        v = verbs(process(client, call_sid, f"question {i}").data)
        assert v[0][0] == "Play"
        heard.append(by_url[v[0][2]])
        follow(client, v[1][2])
    # Nothing learnt yet (1.2 s expected): no filler fits, so the shortest ones, never the same one twice in a row.
    short = sorted(demo.fillers, key=len)[:2]
    assert set(heard) == set(short) and all(a != b for a, b in zip(heard, heard[1:]))


def test_ready_plays_a_ready_prefix_and_redirects_for_the_rest(make_app):
    responder = ScriptedResponder({"hi": Reply("First part is quick. Second part is slow.")})
    provider = ToneProvider(slow_texts={"second part is slow.": 1.5})
    app, _ = build(make_app, responder=responder, provider=provider, instant_budget_ms=100, hop_s=2.5)
    client = app.test_client()
    call_sid = new_call_sid()
    v = verbs(process(client, call_sid, "hi").data)
    assert [x[0] for x in v] == ["Say", "Redirect"]
    prefix = verbs(follow(client, v[1][2]).data)
    assert [x[0] for x in prefix] == ["Play", "Redirect"]
    assert prefix[1][2] == f"{BASE}/voice/tts-ready/demo/{call_sid}?turn=1&played=1"
    # The next sentence is still being made: each hop bridges (within the silence budget) until it is there.
    bridges, rest = through_bridges(client, prefix[1][2], played=1)
    assert bridges and bridges[0] == "Just a moment."
    assert [x[0] for x in rest] == ["Play"] + listen_tail(call_sid)
    assert rest[0][2] != prefix[0][2]


def through_bridges(client, url, *, played=0, max_hops=30):
    """Follow hops that only bridge (a <Say>/<Play> of a prompt, then a redirect with the same ``played``).

    Returns the bridges' texts and the first document that is not a bridge. Asserts no bridge
    plays twice in a row.
    """
    bridges = []
    for _ in range(max_hops):
        v = verbs(follow(client, url).data)
        if not (len(v) == 2 and v[1][0] == "Redirect" and v[1][2].endswith(f"&played={played}")):
            assert all(a != b for a, b in zip(bridges, bridges[1:])), bridges
            return bridges, v
        bridges.append(v[0][2])  # the prompt's text (<Say>) or its clip URL (<Play>)
        url = v[1][2]
    raise AssertionError(f"still bridging after {max_hops} hops: {bridges}")


def test_second_filler_when_nothing_is_ready_after_a_hop(make_app):
    responder = ScriptedResponder({}, default=Reply("Slow thinking."), delay_s=1.2)
    app, _ = build(make_app, responder=responder, hop_s=0.3)
    client = app.test_client()
    call_sid = new_call_sid()
    v = verbs(process(client, call_sid, "anything").data)
    hop = verbs(follow(client, v[1][2]).data)
    assert [x[0] for x in hop] == ["Say", "Redirect"]
    assert hop[0][2] == "Just a moment."
    assert hop[1][2] == f"{BASE}/voice/tts-ready/demo/{call_sid}?turn=1&played=0"


def test_deadline_falls_back_to_say_of_the_answer_text(make_app):
    responder = ScriptedResponder({}, default=Reply("Here is the answer you wanted."))
    app, _ = build(make_app, responder=responder, provider=ToneProvider(delay_s=3.0), hop_s=0.4, turn_deadline_s=1.0)
    client = app.test_client()
    call_sid = new_call_sid()
    v = last_document(client, verbs(process(client, call_sid, "question").data)[1][2])
    assert [x[0] for x in v] == ["Say"] + listen_tail(call_sid)
    assert v[0] == ("Say", {"voice": "Polly.Joanna-Neural", "language": "en-US"}, "Here is the answer you wanted.", [])
    app.extensions["warmline"].shutdown()
    (event,) = events(app)
    assert (event["outcome"], event["fallback"]) == ("fallback", True)


def test_deadline_with_no_text_apologises(make_app):
    responder = ScriptedResponder({}, default=Reply("Too late."), delay_s=3.0)
    app, _ = build(make_app, responder=responder, hop_s=0.4, turn_deadline_s=1.0)
    client = app.test_client()
    call_sid = new_call_sid()
    v = last_document(client, verbs(process(client, call_sid, "question").data)[1][2])
    assert v[0][2] == "I'm sorry, I'm having trouble right now. Please call back in a few minutes."
    assert [x[0] for x in v] == ["Say"] + listen_tail(call_sid)


def test_end_action_says_goodbye_and_hangs_up(make_app):
    responder = ScriptedResponder({"bye": Reply("Thanks for calling. Goodbye!", action="end")})
    app, _ = build(make_app, responder=responder, instant_budget_ms=3000)
    publish(app, "Thanks for calling.", "Goodbye!")
    v = verbs(process(app.test_client(), new_call_sid(), "bye").data)
    assert [x[0] for x in v] == ["Play", "Play", "Hangup"]


def test_empty_speech_reprompts(make_app):
    app, _ = build(make_app)
    call_sid = new_call_sid()
    v = verbs(process(app.test_client(), call_sid, "   ").data)
    assert v[0][2] == "Sorry, I didn't catch that. Could you say it again?"
    assert [x[0] for x in v] == ["Say"] + listen_tail(call_sid)


def test_unknown_business_gets_an_apology(make_app):
    app, _ = build(make_app)
    call_sid = new_call_sid()
    response = signed_post(app.test_client(), "/voice/incoming/nosuch", twilio_form(call_sid, To="+15550000000"))
    assert response.status_code == 200
    assert tags(response.data) == ["Say", "Hangup"]


@pytest.mark.parametrize("signature", ["", "forged", None])
def test_bad_signature_is_refused(make_app, signature):
    app, _ = build(make_app)
    call_sid = new_call_sid()
    form = twilio_form(call_sid, SpeechResult="hi")
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = app.test_client().post(f"/voice/process/demo/{call_sid}", data=form, headers=headers)
    assert response.status_code == 403


def test_signature_of_changed_params_is_refused(make_app):
    app, _ = build(make_app)
    call_sid = new_call_sid()
    path = f"/voice/process/demo/{call_sid}"
    signature = sign(BASE + path, twilio_form(call_sid, SpeechResult="hi"))
    response = app.test_client().post(path, data=twilio_form(call_sid, SpeechResult="book me"), headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


class FailingState:
    """A call-state backend whose every method raises ``exc`` (a broken backend at its boundary)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise self.exc

        return fail


def test_internal_exception_becomes_a_valid_apology(make_app):
    app, _ = build(make_app)
    app.extensions["warmline"].__dict__["state"] = FailingState(RuntimeError("state exploded"))
    response = process(app.test_client(), new_call_sid(), "hello")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    v = verbs(response.data)
    assert [x[0] for x in v] == ["Say", "Hangup"]
    assert v[0][2] == "I'm sorry, I'm having trouble right now. Please call back in a few minutes."


def test_responder_failure_is_an_apology_not_an_error(make_app):
    responder = ScriptedResponder({}, fail=ResponderError("LLM down"))
    app, _ = build(make_app, responder=responder, instant_budget_ms=3000)
    demo = warm(app)
    client = app.test_client()
    call_sid = new_call_sid()
    v = verbs(process(client, call_sid, "hello").data)
    sentences = ["I'm sorry, I'm having trouble right now.", "Please call back in a few minutes."]
    assert " ".join(sentences) == demo.prompt("apology")
    assert [x[0] for x in v] == ["Play", "Play", "Gather", "Play", "Gather", "Play", "Hangup"]
    assert [v[0][2], v[1][2]] == [BASE + u for u in publish(app, *sentences)]
    app.extensions["warmline"].shutdown()
    (event,) = events(app)
    assert [s["text"] for s in event["sentences"]] == sentences


def test_status_callback_removes_the_call(make_app):
    responder = ScriptedResponder({}, default=Reply("Okay."))
    app, _ = build(make_app, responder=responder)
    client = app.test_client()
    call_sid = new_call_sid()
    process(client, call_sid, "hello")
    state = app.extensions["warmline"].state
    app.extensions["warmline"].shutdown()
    assert state.get_call(call_sid) is not None
    response = signed_post(client, "/voice/status/demo", twilio_form(call_sid, CallStatus="completed", CallDuration="12"))
    assert response.status_code == 200 and tags(response.data) == []
    assert state.get_call(call_sid) is None and state.get_turn(call_sid, 1) is None


def test_control_arm_is_the_blocking_flow(make_app, tmp_path):
    businesses = tmp_path / "b.toml"
    from tests.conftest import ROOT

    businesses.write_text((ROOT / "businesses" / "businesses.toml").read_text().replace("rollout_percent = 100", "rollout_percent = 0"))
    responder = ScriptedResponder({"hi": Reply("Hello there. How can I help?")})
    app, provider = build(make_app, responder=responder, businesses=businesses)
    warm(app)
    before = len(provider.calls)
    v = verbs(process(app.test_client(), new_call_sid(), "hi").data)
    assert [x[0] for x in v] == ["Play", "Play", "Gather", "Play", "Gather", "Play", "Hangup"]
    assert sorted(provider.calls[before:]) == ["hello there.", "how can i help?"]  # synthesized in parallel
    app.extensions["warmline"].shutdown()
    (event,) = events(app)
    assert (event["arm"], event["outcome"], event["filler"]) == ("control", "control", None)


def test_control_arm_says_the_answer_when_synthesis_times_out(make_app, tmp_path):
    businesses = tmp_path / "b.toml"
    from tests.conftest import ROOT

    businesses.write_text((ROOT / "businesses" / "businesses.toml").read_text().replace("use_proactive_filler = true", "use_proactive_filler = false"))
    responder = ScriptedResponder({"hi": Reply("Hello there.")})
    app, _ = build(make_app, responder=responder, businesses=businesses, provider=ToneProvider(delay_s=1.5), control_tts_timeout_s=0.3)
    v = verbs(process(app.test_client(), new_call_sid(), "hi").data)
    assert v[0] == ("Say", {"voice": "Polly.Joanna-Neural", "language": "en-US"}, "Hello there.", [])


def test_a_prefix_that_played_every_piece_ends_with_the_tail_only(make_app):
    """The last hop may find nothing left to play (the prefix had it all): it listens, it does not apologise."""
    from app.voice.flow import CallFlow, Urls

    app, _ = build(make_app, responder=ScriptedResponder({}, default=Reply("One. Two.")))
    rt = app.extensions["warmline"]
    demo = warm(app)
    call_sid = new_call_sid()
    flow = CallFlow(rt)
    urls = Urls(BASE, "demo", call_sid)
    flow.engine.ensure_call(demo, call_sid)
    pieces = [flow.engine.make_clip(demo, "One."), flow.engine.make_clip(demo, "Two.")]
    rt.state.put_turn(call_sid, 1, {"status": "done", "started": time.time(), "text": "One. Two.", "action": "continue",
                                    "pieces": pieces, "hops": 1, "logged": False}, 60)
    with app.test_request_context():
        v = verbs(flow.ready(demo, urls, 1, 2))
    assert [x[0] for x in v] == ["Gather", "Play", "Gather", "Play", "Hangup"]


def test_call_state_down_keeps_the_caller_on_the_line(make_app):
    app, _ = build(make_app)
    app.extensions["warmline"].__dict__["state"] = FailingState(StateError("redis: connection refused"))
    call_sid = new_call_sid()
    response = process(app.test_client(), call_sid, "hello")
    assert response.status_code == 200
    v = verbs(response.data)
    assert [x[0] for x in v] == ["Say"] + listen_tail(call_sid)
    assert v[0][2] == "Sorry, I didn't catch that. Could you say it again?"
    assert v[1][1]["action"] == f"{BASE}/voice/process/demo/{call_sid}"


def fallback_post(client, call_sid, error_url, code="11205"):
    return signed_post(client, "/voice/fallback/demo", twilio_form(call_sid, ErrorCode=code, ErrorUrl=error_url))


def test_fallback_after_a_failed_hop_answers_that_hop(make_app):
    responder = ScriptedResponder({}, default=Reply("Here it is."))
    app, _ = build(make_app, responder=responder, provider=ToneProvider(delay_s=0.6))
    client = app.test_client()
    call_sid = new_call_sid()
    redirect = verbs(process(client, call_sid, "question").data)[1][2]
    clips_ready(app, call_sid)
    # The worker serving that redirect died: Twilio posts the Fallback URL instead.
    v = verbs(fallback_post(client, call_sid, redirect).data)
    assert [x[0] for x in v] == ["Play"] + listen_tail(call_sid)
    app.extensions["warmline"].shutdown()
    (event,) = events(app)
    assert (event["turn"], event["outcome"]) == (1, "filler")


def test_fallback_after_a_failed_process_resumes_the_started_turn(make_app):
    responder = ScriptedResponder({}, default=Reply("Resumed answer."))
    # the clip takes longer than process's instant budget (0.3 s): process answered with a filler
    app, _ = build(make_app, responder=responder, provider=ToneProvider(delay_s=0.45))
    client = app.test_client()
    call_sid = new_call_sid()
    process(client, call_sid, "question")  # its response never reached Twilio
    clips_ready(app, call_sid)  # the turn goes on meanwhile
    v = verbs(fallback_post(client, call_sid, f"{BASE}/voice/process/demo/{call_sid}").data)
    assert [x[0] for x in v] == ["Play"] + listen_tail(call_sid)
    assert responder.calls == ["question"]


def test_fallback_before_any_turn_reprompts_and_after_incoming_greets(make_app):
    app, _ = build(make_app)
    client = app.test_client()
    call_sid = new_call_sid()
    v = verbs(fallback_post(client, call_sid, f"{BASE}/voice/process/demo/{call_sid}").data)
    assert v[0][2] == "Sorry, I didn't catch that. Could you say it again?"
    assert [x[0] for x in v] == ["Say"] + listen_tail(call_sid)
    v = verbs(fallback_post(client, call_sid, f"{BASE}/voice/incoming/demo", code="11200").data)
    assert v[0][2] == "Thanks for calling Harbourside Dental. How can I help you today?"


@pytest.mark.parametrize("error_url", ["", "not a url", f"{BASE}/voice/tts-ready/demo/CAx?turn=abc", "javascript:alert(1)"])
def test_fallback_with_a_strange_error_url_still_answers(make_app, error_url):
    app, _ = build(make_app)
    response = fallback_post(app.test_client(), new_call_sid(), error_url)
    assert response.status_code == 200
    assert [x[0] for x in verbs(response.data)][-1] == "Hangup"
