"""Property tests: for ANY text, every TwiML document Warmline builds is one Twilio will run.

Twilio's documented limits checked here:

* Only <Say>, <Play> and <Pause> may nest inside <Gather> (Twilio's <Gather> docs; NOTES-APIS).
* <Say> text: "Polly TTS Voices are limited to 3000 UTF-8 single byte characters" (Twilio warning
  13521, https://www.twilio.com/docs/api/errors/13521; Basic voices 4096, Google 5000). We hold
  every <Say> to 3000 characters, and the text of a whole webhook answer to 3000 UTF-8 bytes.
* An empty <Say> is Twilio warning 13520 "The text of the Say verb was empty or un-parsable"
  (https://www.twilio.com/docs/api/errors/13520): every <Say> must hold non-blank text.
* The response body must not exceed 64 kB (Twilio error 11750 "TwiML response body too large",
  https://www.twilio.com/docs/api/errors/11750); we require strictly less than 64 * 1024 bytes.
* The document must be well-formed XML (error 12100 otherwise), i.e. only XML 1.0 characters.

Texts come from ``st.text()`` (all of Unicode except surrogates, so control characters, bidi
marks, non-characters, emoji and combining marks are all drawn) plus very long texts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from app import create_app
from app.responders.base import Reply
from app.voice import twiml
from tests.conftest import TWILIO_TOKEN, new_call_sid, signed_post, twilio_form

SAY_MAX_CHARS = 3000
DOC_MAX_BYTES = 64 * 1024
TOP_LEVEL_VERBS = frozenset({"Say", "Play", "Pause", "Gather", "Redirect", "Hangup", "Dial", "Record", "Reject",
                             "Enqueue", "Leave", "Connect", "Refer", "Pay", "Prompt", "Start", "Stop", "Sms", "Queue"})
GATHER_CHILDREN = frozenset({"Say", "Play", "Pause"})
SAY = twiml.SayVoice("Polly.Joanna-Neural", "en-US")
LISTEN = twiml.Listen(action="https://warmline.example.com/voice/process/demo/CA" + "0" * 32, language="en-US",
                      still_there=twiml.Speak(text="Are you still there?"),
                      goodbye=twiml.Speak(url="https://warmline.example.com/cdn/tts/v1/x/00/" + "0" * 64 + ".wav"))

# Any text, including very long ones; the alphabet is all of Unicode but surrogates.
any_text = st.one_of(
    st.text(),
    st.text(min_size=2500, max_size=6000),
    st.builds(lambda a, n: a * n, st.text(min_size=1, max_size=8), st.integers(min_value=100, max_value=1000)),
)
hostile = [
    "plain words.", "a\x00b", "\x01\x02\x03 ok", "ok \ufffe\uffff", "\x0b\x0c", "<Say>x</Say>", "]]>", "&amp;&",
    "\u202e\u2066rtl", "👩‍👩‍👧‍👦" * 1000, "&" * 3001, "x" * 3000 + ". tail", "word " * 2000, " \t\n ",
]


def xml_char(c: str) -> bool:
    o = ord(c)
    return o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF


def check_document(body: str | bytes) -> list[ET.Element]:
    """Assert ``body`` is TwiML Twilio accepts (see the module docstring); returns the <Say> elements."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    assert len(raw) < DOC_MAX_BYTES, f"document is {len(raw)} bytes"
    root = ET.fromstring(raw)  # well-formed XML, or ParseError
    assert root.tag == "Response"
    says = []
    for verb in root:
        assert verb.tag in TOP_LEVEL_VERBS, verb.tag
        if verb.tag == "Gather":
            for child in verb:
                assert child.tag in GATHER_CHILDREN, f"<{child.tag}> inside <Gather>"
                assert len(child) == 0
                if child.tag == "Say":
                    says.append(child)
        elif verb.tag == "Say":
            says.append(verb)
        else:
            assert len(verb) == 0, f"<{verb.tag}> has children"
    for say in says:
        text = say.text or ""
        assert text.strip(), "an empty <Say>"
        assert len(text) <= SAY_MAX_CHARS, f"<Say> of {len(text)} characters"
        assert set(say.attrib) <= {"voice", "language", "loop"}
    return says


BUILDERS = {
    "listen": lambda items: twiml.speak_then_listen(items, LISTEN, SAY),
    "hangup": lambda items: twiml.speak_then_hangup(items, SAY),
    "dial": lambda items: twiml.speak_then_dial(items, "+15005550006", SAY),
    "redirect": lambda items: twiml.speak_then_redirect(items, "https://warmline.example.com/voice/tts-ready/demo/x?turn=1",
                                                        SAY),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
@settings(max_examples=60, deadline=None)
@given(text=any_text)
@example(text="a\x01b")
def test_every_builder_makes_valid_twiml_for_any_text(build, text):
    assume(text.strip())  # Speak's own precondition: something besides whitespace
    check_document(build([twiml.Speak(text=text)]))


@pytest.mark.parametrize("text", hostile)
@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_every_builder_makes_valid_twiml_for_hostile_text(build, text):
    if not text.strip():
        with pytest.raises(ValueError):
            twiml.Speak(text=text)
        return
    check_document(build([twiml.Speak(text=text)]))


@settings(max_examples=50, deadline=None)
@given(texts=st.lists(st.text(min_size=1, max_size=300).filter(str.strip), min_size=1, max_size=8),
       urls=st.lists(st.from_regex(r"\Ahttps://cdn\.example\.com/tts/v1/[a-z0-9-]{1,20}/[0-9a-f]{2}/[0-9a-f]{64}\.wav\Z"),
                     max_size=8))
def test_a_mix_of_clips_and_texts_stays_valid(texts, urls):
    items = [twiml.Speak(url=u) for u in urls] + [twiml.Speak(text=t) for t in texts]
    for build in BUILDERS.values():
        check_document(build(items))


# --- whole webhook answers through the app -------------------------------------------------------


class SettableResponder:
    """Replies with ``text`` (set by the test), or echoes the utterance when ``text`` is None."""

    def __init__(self) -> None:
        self.text: str | None = None

    def reply(self, business, history, utterance):
        return Reply(f"You said: {utterance}" if self.text is None else self.text)


@pytest.fixture(scope="module")
def webhook(tmp_path_factory):
    """An app whose answers are all <Say>s (no TTS provider), so every text reaches the TwiML as text."""
    responder = SettableResponder()
    app = create_app({"env": "testing", "data_dir": tmp_path_factory.mktemp("props"), "twilio_auth_token": TWILIO_TOKEN,
                      "instant_budget_ms": 3000, "runtime": {"providers": {}, "responder": responder}})
    yield app.test_client(), responder
    app.extensions["warmline"].shutdown(wait=True)


def answer(client, speech: str) -> bytes:
    call_sid = new_call_sid()
    response = signed_post(client, f"/voice/process/demo/{call_sid}", twilio_form(call_sid, SpeechResult=speech))
    assert response.status_code == 200 and response.mimetype == "text/xml"
    return response.data


def check_answer(body: bytes) -> None:
    says = check_document(body)
    total = sum(len((s.text or "").encode("utf-8")) for s in says)
    assert total <= 3 * SAY_MAX_CHARS  # answer + still-there + goodbye, each within the limit
    assert all(len((s.text or "").encode("utf-8")) <= SAY_MAX_CHARS for s in says)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(speech=st.text(max_size=3000))
def test_any_caller_speech_gets_valid_twiml(webhook, speech):
    client, responder = webhook
    responder.text = None  # echo the caller
    check_answer(answer(client, speech))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=any_text)
@example(reply="You said \x01 hello.")
@example(reply="ok \ufffe")
def test_any_responder_reply_gets_valid_twiml(webhook, reply):
    """An LLM can answer anything; whatever it says, Twilio must get a document it can run."""
    client, responder = webhook
    responder.text = reply
    check_answer(answer(client, "hello"))
