"""Streamed replies: sentences handed out as the model writes them, and every way a stream can go wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.business import Business, load_businesses
from app.errors import ResponderError
from app.responders.base import Reply
from app.responders.faq import FaqResponder
from app.responders.openai import MAX_REPLY_CHARS, OpenAIResponder, safe_reply, safe_stream
import dataclasses

from app.responders.stream import EARLY_CLAUSE_AFTER_CHARS, SentenceCutter, early_clause, one_shot
from app.speech.segment import split_sentences
from simulator.llm_emulator import LLMEmulator, long_reply, tokens

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-stream"
APOLOGY = "I'm sorry, I'm having trouble right now. Please call back in a few minutes."


@pytest.fixture(scope="module")
def demo() -> Business:
    return load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def sse(*deltas: str, finish: str = "stop") -> list[bytes]:
    """The SSE lines of a completion streamed as ``deltas`` (one event per delta)."""
    out = [b": keep-alive\n\n"]
    for d in deltas:
        out.append(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": d},
                                                         "finish_reason": None}]}).encode() + b"\n\n")
    out.append(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}).encode()
               + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


class ControlledBody(httpx.SyncByteStream):
    """An SSE body handed out one event at a time: ``pulled`` counts what the client asked for,
    ``closed`` tells that the client closed the response."""

    def __init__(self, events: list[bytes]) -> None:
        self.events = events
        self.pulled = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for event in self.events:
            self.pulled += 1
            yield event

    def close(self) -> None:
        self.closed = True


def responder_over(body_for_request, **kw) -> OpenAIResponder:
    def handler(request: httpx.Request) -> httpx.Response:
        return body_for_request(request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return OpenAIResponder(client=client, base_url="http://llm.test", api_key="k", model="m", **kw)


# --- cutting sentences ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Sure, I can help with that. Is there anything else I can help you with?",
    "Dr. Smith sees patients at 9 a.m. Monday to Friday. Call us then!",
    "We open at 9 a.m. We close at 6 p.m. A check-up costs $120.50, or 1,200 points.",
    "Really?! Yes... we do. \"Great.\" Done",
    "One sentence without an end",
])
def test_cutting_a_stream_char_by_char_gives_the_same_sentences_as_the_whole_text(text: str) -> None:
    cutter = SentenceCutter()
    got: list[str] = []
    for i, ch in enumerate(text):
        for sentence in cutter.feed(ch):
            got.append(sentence)
            # handed out only once the text after it showed it ended: a later sentence has begun
            assert len(" ".join(got)) < len(" ".join(text[: i + 1].split()))
    got.extend(cutter.finish())
    assert got == split_sentences(text)


def test_markers_and_markdown_never_reach_a_sentence() -> None:
    cutter = SentenceCutter()
    got = []
    for piece in tokens("**We're open** until 6.\n- Call us anytime! Goodbye. [EN") + ["D]"]:
        got.extend(cutter.feed(piece))
    got.extend(cutter.finish())
    assert got == ["We're open until 6.", "Call us anytime!", "Goodbye."]


def cut_char_by_char(text: str, **kw) -> list[tuple[int, str]]:
    """(index of the character whose arrival handed it out, piece) for ``text`` fed one character at a time."""
    cutter = SentenceCutter(**kw)
    got = [(i, piece) for i, ch in enumerate(text) for piece in cutter.feed(ch)]
    return got + [(len(text), piece) for piece in cutter.finish()]


def test_a_long_first_sentence_is_handed_out_from_its_opening_clauses_before_it_ends() -> None:
    text = ("Your appointment with Dr. Smith is confirmed for Tuesday, March 3rd at 10 am. "
            "Anything else, while I have you on the line, that I can help with today?")
    got = cut_char_by_char(text, early_clause=True)
    assert [piece for _, piece in got] == ["Your appointment with Dr. Smith is confirmed for Tuesday,",
                                            "March 3rd at 10 am.",
                                            "Anything else, while I have you on the line, that I can help with today?"]
    # the opening came out once the sentence had run 60 characters of whole words, long before its end
    assert got[0][0] == text.index(" 3rd") and got[0][0] >= EARLY_CLAUSE_AFTER_CHARS
    assert got[1][0] == text.index(" else,")  # once a whole word of the next sentence was written
    # only the first sentence is cut; joined, the pieces are the text
    assert " ".join(piece for _, piece in got) == " ".join(text.split())


@pytest.mark.parametrize("text", [
    "Sure, what time would you like?",  # short: a sentence of its own
    "There are several restaurants that match what you are looking for in that part of town, yes.",  # late pause
    "I have ten options for you in the city and the first one that I found is called Nopa in SF.",  # no pause
])
def test_a_first_sentence_without_a_worthwhile_opening_is_handed_out_whole(text: str) -> None:
    assert [piece for _, piece in cut_char_by_char(text, early_clause=True)] == split_sentences(text)


def test_the_opening_is_whole_clauses_at_least_half_of_what_was_written() -> None:
    assert early_clause("Okay, so, I found it, well, it's a dentist - a good one - and it is") == \
        "Okay, so, I found it, well, it's a dentist - a good one -"
    assert early_clause("Okay, I found a dentist for you that is open on weekends and it") is None  # "Okay," is short
    assert early_clause("We open at 9:30 and close at 5 with 1,200 seats in the main hall and") is None  # no pause
    assert early_clause("I found it, yes") is None  # not long yet


def test_without_early_clause_the_cutter_hands_out_whole_sentences() -> None:
    text = "Your appointment with Dr. Smith is confirmed for Tuesday, March 3rd at 10 am. Anything else?"
    assert [piece for _, piece in cut_char_by_char(text)] == split_sentences(text)


def test_a_streamed_reply_plays_a_long_first_sentence_from_its_opening(demo: Business) -> None:
    deltas = ("Your appointment with ", "Dr. Smith is confirmed ", "for Tuesday, March ", "3rd at 10 am. ",
              "Anything else?")
    body = ControlledBody(sse(*deltas))
    stream = responder_over(lambda _r: httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                                                      stream=body)).stream(demo, [], "book me")
    assert demo.splice == "sentence" and demo.early_clause
    assert next(stream) == "Your appointment with Dr. Smith is confirmed for Tuesday,"
    assert body.pulled == 4  # keep-alive + three deltas: the model is still writing the sentence
    assert list(stream) == ["March 3rd at 10 am.", "Anything else?"]
    assert stream.reply == Reply("".join(deltas), "continue")


@pytest.mark.parametrize("change", [{"early_clause": False}, {"splice": "phrase"}])
def test_a_streamed_reply_keeps_whole_sentences_when_the_business_says_so(demo: Business, change: dict) -> None:
    business = dataclasses.replace(demo, **change)
    deltas = ("Your appointment with ", "Dr. Smith is confirmed ", "for Tuesday, March ", "3rd at 10 am. ",
              "Anything else?")
    stream = responder_over(lambda _r: httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                                                      stream=ControlledBody(sse(*deltas)))).stream(business, [], "x")
    assert list(stream) == ["Your appointment with Dr. Smith is confirmed for Tuesday, March 3rd at 10 am.",
                            "Anything else?"]


# --- the streaming responder, deterministic --------------------------------------------------------


def test_the_first_sentence_is_handed_out_before_the_stream_ends(demo: Business) -> None:
    body = ControlledBody(sse("Sure, I can ", "help with that. ", "Is there any", "thing else?"))
    sent: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=body)

    stream = responder_over(answer).stream(demo, [], "hello")
    assert body.pulled == 0 and sent == []  # no I/O before the first next()
    first = next(stream)
    assert first == "Sure, I can help with that."
    assert sent[0]["stream"] is True
    # Only the keep-alive and two deltas were read: the rest of the reply is still being written.
    assert body.pulled == 4 and stream.reply is None
    assert list(stream) == ["Is there anything else?"]
    assert stream.reply == Reply("Sure, I can help with that. Is there anything else?", "continue")
    assert body.closed


def test_abandoning_a_stream_closes_it_without_reading_the_rest(demo: Business) -> None:
    body = ControlledBody(sse("One. ", "Two. ", "Three. ", "Four."))
    responder = responder_over(lambda r: httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                                                        stream=body))
    stream = safe_stream(responder, demo, [], "hi")
    assert next(stream) == "One."
    pulled = body.pulled
    stream.close()
    assert body.closed and body.pulled == pulled
    assert list(stream) == []


def test_a_server_that_ignores_stream_answers_one_json_body(demo: Business) -> None:
    payload = {"choices": [{"message": {"content": "We open at 9. Bye! [END]"}, "finish_reason": "stop"}]}
    responder = responder_over(lambda r: httpx.Response(200, json=payload))
    stream = safe_stream(responder, demo, [], "hours?")
    assert list(stream) == ["We open at 9.", "Bye!"]
    assert stream.reply == Reply("We open at 9. Bye!", "end") and stream.failed is None


def test_a_truncated_stream_drops_its_unfinished_sentence(demo: Business) -> None:
    responder = responder_over(lambda r: httpx.Response(
        200, headers={"Content-Type": "text/event-stream"},
        content=iter(sse("We open at 9. ", "On Saturdays we", finish="length"))))
    stream = responder.stream(demo, [], "hours?")
    assert list(stream) == ["We open at 9."] and stream.reply == Reply("We open at 9.")


@pytest.mark.parametrize(("events", "expected", "failed"), [
    # fails before the first sentence: the apology, sentence by sentence
    ([b"data: {not json\n\n"], split_sentences(APOLOGY), "not JSON"),
    ([b'data: {"error": {"message": "overloaded"}}\n\n'], split_sentences(APOLOGY), "overloaded"),
    # fails after one sentence: the reply is what was already said
    (sse("We open at 9. ", "We close at 6. ")[:3] + [b"data: {broken\n\n"], ["We open at 9."], "not JSON"),
    # nothing speakable at all
    (sse("..."), split_sentences(APOLOGY), "nothing to say"),
    # fails after a long first sentence's opening: the caller hears the apology after it, not half a sentence
    (sse("Your appointment with ", "Dr. Smith is confirmed ", "for Tuesday, March ")[:4] + [b"data: {broken\n\n"],
     ["Your appointment with Dr. Smith is confirmed for Tuesday,", *split_sentences(APOLOGY)], "not JSON"),
])
def test_stream_failures_become_the_apology_or_what_was_said(demo: Business, events, expected, failed) -> None:
    responder = responder_over(lambda r: httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                                                        content=iter(events)))
    stream = safe_stream(responder, demo, [], "hi")
    assert list(stream) == expected
    apology = expected[-len(split_sentences(APOLOGY)):] == split_sentences(APOLOGY)  # says why (reports count it)
    assert stream.reply == Reply(" ".join(expected), "continue",
                                 failure=f"ResponderError: {stream.failed}" if apology else None)
    assert failed in (stream.failed or "")


def test_an_over_long_first_sentence_is_finished_within_the_limit_after_its_opening(demo: Business) -> None:
    from app.responders.stream import SafeStream

    text = ("Your appointment with Dr. Smith is confirmed for Tuesday, March 3rd at 10 am in the morning "
            "at our main office on the corner of Fifth Avenue and Main Street. See you then.")
    responder = responder_over(lambda r: httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                                                        content=iter(sse(*tokens(text)))))
    stream = SafeStream(lambda: responder.stream(demo, [], "book"), demo, max_chars=100)
    out = list(stream)
    assert out[0] == "Your appointment with Dr. Smith is confirmed for Tuesday,"
    assert len(out) == 2 and out[1].endswith(".") and "March 3rd" in out[1]
    assert len(" ".join(out)) <= 100 and stream.reply.text == " ".join(out)


def test_an_end_marker_alone_is_the_goodbye(demo: Business) -> None:
    responder = responder_over(lambda r: httpx.Response(200, headers={"Content-Type": "text/event-stream"},
                                                        content=iter(sse("[END]"))))
    stream = safe_stream(responder, demo, [], "bye")
    assert list(stream) == ["Thanks for calling Harbourside Dental. Goodbye!"]
    assert stream.reply == Reply("Thanks for calling Harbourside Dental. Goodbye!", "end")


def test_http_errors_raise_when_iterated(demo: Business) -> None:
    responder = responder_over(lambda r: httpx.Response(503, text="busy"))
    with pytest.raises(ResponderError, match="HTTP 503"):
        list(responder.stream(demo, [], "hi"))
    assert list(safe_stream(responder, demo, [], "hi")) == split_sentences(APOLOGY)


# --- against the emulator --------------------------------------------------------------------------


def test_the_emulator_streams_token_by_token_and_the_reply_matches_the_unstreamed_one(http, demo) -> None:
    with LLMEmulator(api_key=KEY) as llm:
        responder = OpenAIResponder(client=http, base_url=llm.base_url, api_key=KEY, model="m")
        stream = safe_stream(responder, demo, [], "Do you do whitening?")
        sentences = list(stream)
        plain = responder.reply(demo, [], "Do you do whitening?")
        assert llm.streamed == 1 and len(llm.requests) == 2
        assert llm.requests[0]["stream"] is True and "stream" not in llm.requests[1]  # the plain path is unchanged
    assert sentences == split_sentences(plain.text) and stream.reply == plain and stream.streamed


def test_emulator_stream_timing_knobs_and_the_ignore_mode(http, demo) -> None:
    seen = []

    def timing(request, content):
        seen.append(len(tokens(content)))
        return 0.0, 0.0

    with LLMEmulator(api_key=KEY, timing=timing) as llm:
        responder = OpenAIResponder(client=http, base_url=llm.base_url, api_key=KEY, model="m")
        list(safe_stream(responder, demo, [], "hi"))
        responder.reply(demo, [], "hi")
        llm.stream_mode = "ignore"
        ignored = safe_stream(responder, demo, [], "hi")
        assert list(ignored) == split_sentences(responder.reply(demo, [], "hi").text)
        assert llm.streamed == 1 and len(seen) == 4 and len(set(seen)) == 1
    a = LLMEmulator(base_ms=100, ttft_ms=40, per_token_ms=7)
    assert a.stream_timing({}, "x") == (0.04, 0.007)
    with pytest.raises(ValueError):
        LLMEmulator(stream_mode="maybe")


def test_a_long_streamed_reply_stops_at_the_reply_limit(http, demo) -> None:
    with LLMEmulator(api_key=KEY) as llm:
        llm.inject("long")
        responder = OpenAIResponder(client=http, base_url=llm.base_url, api_key=KEY, model="m")
        stream = safe_stream(responder, demo, [], "tell me everything")
        sentences = list(stream)
        llm.inject("long")
        assert stream.reply == safe_reply(responder, demo, [], "tell me everything")
    assert len(stream.reply.text) <= MAX_REPLY_CHARS and sentences == split_sentences(stream.reply.text)
    assert long_reply().startswith(stream.reply.text)


def test_responders_that_cannot_stream_are_one_shot_streams_with_their_marks(demo: Business) -> None:
    history = [{"role": "caller", "text": "I'd like to book"},
               {"role": "agent", "text": "Sure, I can book that for you. May I have your name, please?"},
               {"role": "caller", "text": "Sam"}, {"role": "agent", "text": "Thanks, Sam. What day and time would suit you?"}]
    stream = safe_stream(FaqResponder(), demo, history, "Monday at 9 am")
    expected = FaqResponder().reply(demo, history, "Monday at 9 am")
    assert not stream.streamed and stream.reply == expected and expected.marks
    assert list(stream) == split_sentences(expected.text)
    assert one_shot(Reply("Hi there.")).reply == Reply("Hi there.")
