"""OpenAIResponder against a real OpenAI-compatible emulator on loopback; safe_reply; trimming."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.business import Business, load_businesses
from app.errors import ResponderError
from app.responders.base import Reply
from app.responders.openai import (
    MAX_REPLY_CHARS,
    OpenAIResponder,
    build_messages,
    parse_content,
    safe_reply,
    system_prompt,
    trim_reply,
)
from app.speech.segment import split_sentences
from simulator.llm_emulator import LLMEmulator, faq_responses, long_reply
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-123"
APOLOGY = "I'm sorry, I'm having trouble right now. Please call back in a few minutes."


@pytest.fixture(scope="module")
def businesses():
    return load_businesses(ROOT / "businesses" / "businesses.toml")


@pytest.fixture(scope="module")
def demo(businesses) -> Business:
    return businesses.get("demo")


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def llm() -> Iterator[LLMEmulator]:
    with LLMEmulator(api_key=KEY, stall_s=10.0) as emulator:
        yield emulator


def responder_for(llm: LLMEmulator, http: httpx.Client, *, timeout_s: float = 2.0, key: str = KEY) -> OpenAIResponder:
    return OpenAIResponder(client=http, base_url=llm.base_url, api_key=key, model="gpt-test", timeout_s=timeout_s)


# --- success ------------------------------------------------------------------------------------


def test_reply_from_the_emulator(llm: LLMEmulator, http: httpx.Client, demo: Business) -> None:
    history = [{"role": "caller", "text": "Hi"}, {"role": "agent", "text": "Hello, how can I help?"}]
    reply = responder_for(llm, http).reply(demo, history, "Do you do whitening?")
    assert reply == Reply("Sure, I can help with that. Is there anything else I can help you with?", "continue")
    assert llm.status_counts == {200: 1}
    (request,) = llm.requests
    assert request["model"] == "gpt-test" and request["max_tokens"] == 160
    assert [(m["role"], m["content"]) for m in request["messages"][1:]] == [
        ("user", "Hi"), ("assistant", "Hello, how can I help?"), ("user", "Do you do whitening?")]
    system = request["messages"][0]
    assert system["role"] == "system" and system["content"] == system_prompt(demo)
    assert system["content"].startswith("You are the receptionist of Harbourside Dental, answering a phone call.")
    for fact in (demo.hours, *(f.answer for f in demo.faq), "1-3 short spoken sentences", "no markdown", "[END]"):
        assert fact in system["content"]


def test_base_url_may_end_in_v1(llm: LLMEmulator, http: httpx.Client, demo: Business) -> None:
    responder = OpenAIResponder(client=http, base_url=llm.base_url + "/v1/", api_key=KEY, model="m")
    assert responder.url == llm.base_url + "/v1/chat/completions"
    assert responder.reply(demo, [], "hello").action == "continue"


def test_history_is_mapped_and_bounded(demo: Business) -> None:
    history = [{"role": "caller" if i % 2 == 0 else "agent", "text": f"line {i}"} for i in range(30)]
    history.insert(25, {"role": "system", "text": "not a call role: skipped"})
    history.insert(26, {"role": "agent", "text": "   "})  # empty: skipped
    history.append({"role": "caller", "text": "now"})  # the current utterance, already appended
    messages = build_messages(demo, history, "now")
    assert len(messages) == 1 + 18 + 1  # the last 20 history items, 2 of them skipped
    assert messages[1] == {"role": "user", "content": "line 12"}
    assert messages[-2] == {"role": "assistant", "content": "line 29"}
    assert messages[-1] == {"role": "user", "content": "now"}


@pytest.mark.parametrize(("content", "transfer_number", "expected"), [
    ("Thanks for calling, goodbye! [END]", "", Reply("Thanks for calling, goodbye!", "end")),
    ("Goodbye![end]", "", Reply("Goodbye!", "end")),
    ("Putting you through now. [TRANSFER]", "+15005550001", Reply("Putting you through now.", "transfer")),
    ("Putting you through now. [TRANSFER]", "", Reply("Putting you through now.", "continue")),
    ("[END]", "", Reply("Thanks for calling Harbourside Dental. Goodbye!", "end")),
    ("[TRANSFER]", "+15005550001", Reply("Let me put you through to someone who can help.", "transfer")),
    ("**We're open** until 6.\n\n- Call us anytime!", "", Reply("We're open until 6. Call us anytime!", "continue")),
])
def test_action_markers(llm: LLMEmulator, http: httpx.Client, demo: Business, content: str, transfer_number: str,
                        expected: Reply) -> None:
    llm.responses = lambda request: content
    biz = dataclasses.replace(demo, transfer_number=transfer_number)
    assert responder_for(llm, http).reply(biz, [], "ok") == expected


def test_a_truncated_reply_drops_its_unfinished_sentence(demo: Business) -> None:
    assert parse_content("We open at 9. On Saturdays we", demo, truncated=True) == Reply("We open at 9.")
    assert parse_content("We open at 9. On Saturdays we", demo) == Reply("We open at 9. On Saturdays we")


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "message"), [
    ("500", "HTTP 500"),
    ("429", "HTTP 429"),
    ("stall", "timed out"),
    ("empty", "nothing to say"),
    ("bad_json", "not JSON"),
])
def test_failures_become_responder_errors_and_apologies(
    llm: LLMEmulator, http: httpx.Client, demo: Business, mode: str, message: str
) -> None:
    responder = responder_for(llm, http, timeout_s=0.4)
    llm.inject(mode)
    started = time.monotonic()
    with pytest.raises(ResponderError, match=message):
        responder.reply(demo, [], "hello")
    assert time.monotonic() - started < 2.0
    llm.inject(mode)
    apology = safe_reply(responder, demo, [], "hello")
    assert (apology.text, apology.action) == (APOLOGY, "continue")
    assert apology.failure.startswith("ResponderError: ") and message in apology.failure  # reports count it
    # the fault queue is used up: the next request succeeds
    assert responder.reply(demo, [], "hello").text.startswith("Sure, I can help")


def test_wrong_key_and_dead_server(llm: LLMEmulator, http: httpx.Client, demo: Business) -> None:
    with pytest.raises(ResponderError, match="HTTP 401"):
        responder_for(llm, http, key="wrong").reply(demo, [], "hello")
    dead = OpenAIResponder(client=http, base_url=f"http://127.0.0.1:{free_port()}", api_key=KEY, model="m",
                           timeout_s=1.0)
    with pytest.raises(ResponderError, match="request failed"):
        dead.reply(demo, [], "hello")
    apology = safe_reply(dead, demo, [], "hello")
    assert (apology.text, apology.action) == (APOLOGY, "continue") and "request failed" in apology.failure


def test_malformed_replies_raise(demo: Business) -> None:
    bodies = [b'{"choices": []}', b'{"choices": [{"message": {}}]}', b'{"choices": [{"message": {"content": 7}}]}',
              b"[]", b"\xff\xfe"]
    for body in bodies:
        transport = httpx.MockTransport(lambda request, body=body: httpx.Response(200, content=body))
        with httpx.Client(transport=transport) as client:
            responder = OpenAIResponder(client=client, base_url="http://llm.test", api_key="k", model="m")
            with pytest.raises(ResponderError):
                responder.reply(demo, [], "hello")


def test_an_over_long_reply_is_trimmed_at_a_sentence_boundary(llm: LLMEmulator, http: httpx.Client,
                                                            demo: Business) -> None:
    llm.inject("long")
    responder = responder_for(llm, http)
    raw = responder.reply(demo, [], "tell me everything")
    assert len(raw.text) == 20_000 and raw.text == long_reply()
    llm.inject("long")
    reply = safe_reply(responder, demo, [], "tell me everything")
    sentences = split_sentences(long_reply())
    expected = sentences[0]
    for sentence in sentences[1:]:
        if len(expected) + 1 + len(sentence) > MAX_REPLY_CHARS:
            break
        expected += " " + sentence
    assert reply == Reply(expected, "continue")
    assert len(reply.text) <= MAX_REPLY_CHARS and reply.text.endswith("to speak.")
    assert len(reply.text) > MAX_REPLY_CHARS - 80  # no more than one sentence was dropped past the limit


def test_trim_reply_keeps_marks_inside_the_cut() -> None:
    first = "Your appointment is with Dr Lee. "
    text = first + "x" * 10 + ". " + "More words here. " * 50
    reply = Reply(text, "end", (("doctor", 25, 31), ("tail", len(text) - 10, len(text) - 1)))
    trimmed = trim_reply(reply, 100)
    assert trimmed.text == text[: len(trimmed.text)] and len(trimmed.text) <= 100
    assert trimmed.text.endswith("More words here.")
    assert trimmed.marks == (("doctor", 25, 31),) and trimmed.action == "end"
    assert trim_reply(Reply("Short."), 100) == Reply("Short.")
    one_sentence = Reply("word " * 200 + "end.")
    cut = trim_reply(one_sentence, 50)
    assert cut.text == ("word " * 9).strip() + "." and len(cut.text) <= 50


def test_safe_reply_replaces_unspeakable_text(demo: Business) -> None:
    class Fixed:
        def __init__(self, reply: Reply) -> None:
            self.fixed = reply

        def reply(self, business, history, utterance):
            return self.fixed

    assert safe_reply(Fixed(Reply("...")), demo, [], "x") == Reply(
        APOLOGY, failure="ResponderError: the reply has nothing to say")
    assert safe_reply(Fixed(Reply(" ", "end")), demo, [], "x") == Reply(
        "Thanks for calling Harbourside Dental. Goodbye!", "end")


# --- the emulator itself --------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b'{"messages": [{"role": "user", "content": "hi"}]}', {}, 400),
    (b'{"model": "m", "messages": []}', {}, 400),
    (b'{"model": "m", "messages": [{"role": "robot", "content": "hi"}]}', {}, 400),
    (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', {}, 400),
    (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}', {}, 400),
    (b"{nope", {}, 400),
    (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', {"Content-Type": "text/plain"}, 400),
    (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', {"Authorization": "Bearer nope"}, 401),
    (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', {}, 200),
])
def test_emulator_validates_requests(llm: LLMEmulator, http: httpx.Client, body: bytes, headers: dict,
                                     status: int) -> None:
    sent = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **headers}
    resp = http.post(llm.base_url + "/v1/chat/completions", content=body, headers=sent)
    assert resp.status_code == status
    data = resp.json()
    if status == 200:
        assert data["object"] == "chat.completion" and data["choices"][0]["message"]["role"] == "assistant"
    else:
        assert set(data["error"]) == {"message", "type", "param", "code"} and data["error"]["message"]


def test_emulator_paths_and_methods(llm: LLMEmulator, http: httpx.Client) -> None:
    assert http.get(llm.base_url + "/v1/chat/completions").status_code == 405
    assert http.post(llm.base_url + "/v1/completions", json={}).status_code == 404


def test_emulator_latency_model(http: httpx.Client, demo: Business) -> None:
    with LLMEmulator(api_key=KEY, base_ms=150, per_token_ms=1) as llm:
        started = time.monotonic()
        reply = responder_for(llm, http).reply(demo, [], "hello")
        elapsed = time.monotonic() - started
        tokens = len(reply.text) // 4
        assert 0.15 + tokens / 1000 <= elapsed < 1.0
    a = LLMEmulator(base_ms=100, jitter_ms=50, seed=11)
    b = LLMEmulator(base_ms=100, jitter_ms=50, seed=11)
    draws = [a.latency_s("x" * 40) for _ in range(20)]
    assert draws == [b.latency_s("x" * 40) for _ in range(20)]
    assert all(0.05 <= d <= 0.15 for d in draws) and len(set(draws)) == 20


def test_emulator_random_faults_are_seeded(http: httpx.Client, demo: Business) -> None:
    outcomes = []
    for _ in range(2):
        with LLMEmulator(api_key=KEY, fault_rate=0.5, fault_modes=("500", "empty"), seed=5) as llm:
            responder = responder_for(llm, http)
            outcomes.append([safe_reply(responder, demo, [], "hi").text == APOLOGY for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert 0 < sum(outcomes[0]) < 12
    with pytest.raises(ValueError):
        LLMEmulator(fault_modes=("explode",))


def test_faq_responses_drive_a_booking_through_the_llm_path(http: httpx.Client, businesses, demo: Business) -> None:
    with LLMEmulator(api_key=KEY, responses=faq_responses(businesses), port=free_port()) as llm:
        responder = responder_for(llm, http)
        history: list[dict] = []
        replies = []
        for said in ["I'd like to book", "Sam", "Monday at 9 am"]:
            reply = responder.reply(demo, history, said)
            replies.append(reply)
            history += [{"role": "caller", "text": said}, {"role": "agent", "text": reply.text}]
    assert [(r.text, r.action) for r in replies] == [
        ("Sure, I can book that for you. May I have your name, please?", "continue"),
        ("Thanks, Sam. What day and time would suit you?", "continue"),
        ("Great, Sam, you're booked for Monday at 9 a.m. We'll send a reminder. Goodbye!", "end"),
    ]


def test_stop_releases_a_stalled_request(http: httpx.Client, demo: Business) -> None:
    llm = LLMEmulator(api_key=KEY, stall_s=30.0)
    llm.start()
    llm.inject("stall")
    responder = responder_for(llm, http, timeout_s=0.3)
    with pytest.raises(ResponderError, match="timed out"):
        responder.reply(demo, [], "hi")
    started = time.monotonic()
    llm.stop()
    llm.stop()  # idempotent
    assert time.monotonic() - started < 2.0
    with pytest.raises(RuntimeError):
        _ = llm.base_url
