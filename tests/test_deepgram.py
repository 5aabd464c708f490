"""DeepgramProvider against httpx.MockTransport: the exact request, every failure class, splitting."""

from __future__ import annotations

import json
import logging
import socket
import struct
from collections.abc import Callable, Iterator

import httpx
import pytest

from app.errors import InvalidAudio, InvalidText, SynthesisRejected, SynthesisRetryable
from app.speech.providers.deepgram import (
    MAX_REQUEST_CHARS,
    DeepgramProvider,
    make_deepgram_client,
    request_pieces,
)
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav, validate_ulaw_wav

VOICE = Voice("deepgram", "aura-2-thalia-en")
KEY = "dg-secret-key"


def streaming_wav(payload: bytes, rate: int = 8000, fmt_code: int = 7, bits: int = 8) -> bytes:
    """A WAV the way Deepgram streams it: 44-byte header, 16-byte fmt, sizes 0xFFFFFFFF."""
    block = bits // 8
    fmt = struct.pack("<HHIIHH", fmt_code, 1, rate, rate * block, block, bits)
    return b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff" + payload


def payload(n: int = 1600, fill: int | None = None) -> bytes:
    """``n`` mu-law bytes (0.2 s at 8 kHz): a recognisable pattern, or one byte value repeated."""
    return bytes([fill]) * n if fill is not None else bytes(i % 251 for i in range(n))


def provider_for(
    handler: Callable[[httpx.Request], httpx.Response], base_url: str = "https://dg.test"
) -> DeepgramProvider:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return DeepgramProvider(client=client, api_key=KEY, base_url=base_url)


def audio_response(body: bytes, request_id: str = "req-1") -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "audio/wav", "dg-request-id": request_id, "dg-model-name": VOICE.model},
        content=body,
    )


def error_response(
    status: int, message: str = "something is wrong", request_id: str | None = "req-err"
) -> httpx.Response:
    headers = {"dg-error": message}
    if request_id is not None:
        headers["dg-request-id"] = request_id
    body = {"err_code": "SOME_CODE", "err_msg": message, "request_id": request_id or "body-id"}
    return httpx.Response(status, headers=headers, json=body)


# --- the request ------------------------------------------------------------------------------


def test_request_shape_and_result() -> None:
    seen: list[httpx.Request] = []
    audio = payload()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return audio_response(streaming_wav(audio))

    wav = provider_for(handler).synthesize("Hello there, how can I help?", VOICE)

    assert len(seen) == 1
    request = seen[0]
    assert request.method == "POST"
    assert (request.url.scheme, request.url.host, request.url.path) == ("https", "dg.test", "/v1/speak")
    assert list(request.url.params.multi_items()) == [
        ("model", "aura-2-thalia-en"),
        ("encoding", "mulaw"),
        ("container", "wav"),
        ("sample_rate", "8000"),
    ]
    assert request.headers["authorization"] == f"Token {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.content == b'{"text": "Hello there, how can I help?"}'
    # The streamed header is replaced by one with exact sizes; the samples are untouched.
    parsed = parse_ulaw_wav(wav)
    assert (parsed.sample_rate, parsed.channels, parsed.ulaw) == (8000, 1, audio)
    assert struct.unpack_from("<I", wav, 4)[0] == len(wav) - 8
    assert validate_ulaw_wav(wav, 8000) == pytest.approx(0.2)


def test_non_ascii_text_is_sent_as_utf8() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return audio_response(streaming_wav(payload()))

    provider_for(handler).synthesize("Caf\u00e9 hours are 9\u201317.", VOICE)
    assert seen == ['{"text": "Caf\u00e9 hours are 9\u201317."}'.encode()]
    assert json.loads(seen[0]) == {"text": "Caf\u00e9 hours are 9\u201317."}


def test_base_url_with_path_and_trailing_slash() -> None:
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url.copy_with(query=None)))
        return audio_response(streaming_wav(payload()))

    provider_for(handler, base_url="http://127.0.0.1:9999/proxy/").synthesize("Hi there.", VOICE)
    assert urls == ["http://127.0.0.1:9999/proxy/v1/speak"]


def test_sample_rate_and_speed_come_from_the_voice() -> None:
    params: list[list[tuple[str, str]]] = []
    audio = payload(3200)

    def handler(request: httpx.Request) -> httpx.Response:
        params.append(list(request.url.params.multi_items()))
        return audio_response(streaming_wav(audio, rate=16000))

    voice = Voice("deepgram", "aura-asteria-en", sample_rate=16000, speed=1.2)
    wav = provider_for(handler).synthesize("Hello.", voice)
    assert params == [
        [
            ("model", "aura-asteria-en"),
            ("encoding", "mulaw"),
            ("container", "wav"),
            ("sample_rate", "16000"),
            ("speed", "1.2"),
        ]
    ]
    assert parse_ulaw_wav(wav).sample_rate == 16000
    assert validate_ulaw_wav(wav, 16000) == pytest.approx(0.2)


def test_constructor_does_no_io() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return audio_response(streaming_wav(payload()))

    provider = provider_for(handler)
    assert (provider.name, provider.max_concurrency) == ("deepgram", 15)
    assert calls == []


def test_invalid_text_is_rejected_before_any_request() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return audio_response(streaming_wav(payload()))

    provider = provider_for(handler)
    for text in ("", "   ", "?!"):
        with pytest.raises(InvalidText):
            provider.synthesize(text, VOICE)
    assert calls == []


def test_foreign_or_non_mulaw_voice_is_rejected_before_any_request() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return audio_response(streaming_wav(payload()))

    provider = provider_for(handler)
    with pytest.raises(SynthesisRejected):
        provider.synthesize("Hello.", Voice("deepgram", "aura-2-thalia-en", encoding="linear16"))
    with pytest.raises(SynthesisRejected):
        provider.synthesize("Hello.", Voice("piper", "en_US-joe-medium"))
    assert calls == []


def test_success_is_logged_with_request_id_model_chars_and_ms(caplog: pytest.LogCaptureFixture) -> None:
    provider = provider_for(lambda request: audio_response(streaming_wav(payload()), request_id="abc-123"))
    with caplog.at_level(logging.INFO, logger="warmline.deepgram"):
        provider.synthesize("Hello there.", VOICE)
    records = [r for r in caplog.records if r.name == "warmline.deepgram"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "request_id=abc-123" in message
    assert "model=aura-2-thalia-en" in message
    assert "chars=12" in message
    assert " ms=" in message


# --- HTTP errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    provider = provider_for(lambda request: error_response(status, "slow down please"))
    with pytest.raises(SynthesisRetryable) as info:
        provider.synthesize("Hello.", VOICE)
    assert (info.value.status, info.value.request_id, info.value.retryable) == (status, "req-err", True)
    assert "slow down please" in str(info.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 418, 422])
def test_rejected_statuses(status: int) -> None:
    provider = provider_for(lambda request: error_response(status, f"bad thing {status}"))
    with pytest.raises(SynthesisRejected) as info:
        provider.synthesize("Hello.", VOICE)
    assert (info.value.status, info.value.request_id, info.value.retryable) == (status, "req-err", False)
    assert f"bad thing {status}" in str(info.value)


def test_request_id_from_the_error_body_when_the_header_is_missing() -> None:
    provider = provider_for(lambda request: error_response(401, "Invalid credentials.", request_id=None))
    with pytest.raises(SynthesisRejected) as info:
        provider.synthesize("Hello.", VOICE)
    assert info.value.request_id == "body-id"
    assert "Invalid credentials." in str(info.value)


def test_non_json_error_body() -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    provider = provider_for(lambda request: httpx.Response(502, headers={"content-type": "text/html"}, content=html))
    with pytest.raises(SynthesisRetryable) as info:
        provider.synthesize("Hello.", VOICE)
    assert info.value.status == 502
    assert info.value.request_id is None
    assert "502 Bad Gateway" in str(info.value)


def test_redirect_is_rejected() -> None:
    provider = provider_for(lambda request: httpx.Response(301, headers={"location": "https://elsewhere.test/"}))
    with pytest.raises(SynthesisRejected) as info:
        provider.synthesize("Hello.", VOICE)
    assert info.value.status == 301


# --- transport errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc_type",
    [
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ConnectError,
        httpx.RemoteProtocolError,
        httpx.ReadError,
    ],
)
def test_transport_errors_are_retryable(exc_type: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("boom", request=request)

    with pytest.raises(SynthesisRetryable) as info:
        provider_for(handler).synthesize("Hello.", VOICE)
    assert isinstance(info.value.__cause__, exc_type)
    assert info.value.status is None


class _BrokenStream(httpx.SyncByteStream):
    """Yields the first part of a body, then fails like a connection dropped mid-body."""

    def __init__(self, first: bytes, error: Exception) -> None:
        self.first = first
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ReadError("connection reset"),
        httpx.ReadTimeout("timed out"),
    ],
)
def test_body_cut_mid_stream_is_retryable_and_keeps_the_request_id(error: Exception) -> None:
    whole = streaming_wav(payload())

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "audio/wav", "dg-request-id": "req-mid"},
            stream=_BrokenStream(whole[: len(whole) // 2], error),
        )

    with pytest.raises(SynthesisRetryable) as info:
        provider_for(handler).synthesize("Hello.", VOICE)
    assert info.value.request_id == "req-mid"
    assert info.value.__cause__ is error


def test_real_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        client = make_deepgram_client(connect_timeout=0.5, read_timeout=0.5)
        with client:
            provider = DeepgramProvider(client=client, api_key=KEY, base_url=f"http://127.0.0.1:{port}")
            with pytest.raises(SynthesisRetryable) as info:
                provider.synthesize("Hello.", VOICE)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


# --- bodies that are not the audio we asked for -------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html><body>Service temporarily unavailable</body></html>", id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(streaming_wav(payload())[:30], id="truncated-header"),
        pytest.param(streaming_wav(b""), id="no-samples"),
        pytest.param(streaming_wav(payload(3200), rate=16000), id="16k-when-8k-asked"),
        pytest.param(streaming_wav(payload(3200), fmt_code=1, bits=16), id="pcm-format-1"),
        pytest.param(streaming_wav(payload(1600), fmt_code=6), id="alaw-format-6"),
        pytest.param(b"ID3\x03\x00\x00\x00" + bytes(400), id="mp3"),
    ],
)
def test_invalid_audio(body: bytes) -> None:
    provider = provider_for(lambda request: audio_response(body, request_id="req-bad"))
    with pytest.raises(InvalidAudio) as info:
        provider.synthesize("Hello.", VOICE)
    assert "req-bad" in str(info.value)


def test_duration_bound_grows_with_the_text() -> None:
    long_text = " ".join(numbered_sentences(20))  # 1999 characters: up to 400 s is plausible
    minutes = streaming_wav(payload(8000 * 150))
    wav = provider_for(lambda request: audio_response(minutes)).synthesize(long_text, VOICE)
    assert validate_ulaw_wav(wav, 8000, max_duration_s=1000) == 150.0
    with pytest.raises(InvalidAudio):  # 150 s for "Hello." is a runaway model
        provider_for(lambda request: audio_response(minutes)).synthesize("Hello.", VOICE)


def test_8k_wav_when_16k_asked_is_invalid() -> None:
    provider = provider_for(lambda request: audio_response(streaming_wav(payload())))
    with pytest.raises(InvalidAudio):
        provider.synthesize("Hello.", Voice("deepgram", "aura-2-thalia-en", sample_rate=16000))


def test_a_wav_with_exact_sizes_is_accepted_too() -> None:
    audio = payload(801)  # odd length: the writer pads the data chunk
    exact = streaming_wav(audio)
    exact = (
        exact[:4] + struct.pack("<I", len(exact) - 8 + 1) + exact[8:40] + struct.pack("<I", len(audio)) + audio + b"\0"
    )
    wav = provider_for(lambda request: audio_response(exact)).synthesize("Hello.", VOICE)
    assert parse_ulaw_wav(wav).ulaw == audio


# --- long texts -------------------------------------------------------------------------------


def numbered_sentences(count: int, length: int = 99) -> list[str]:
    """``count`` distinct sentences of exactly ``length`` characters each."""
    out = []
    for i in range(count):
        head = f"Sentence number {i:03d} is here"
        out.append(head + " and" * ((length - len(head) - 1) // 4) + "x" * ((length - len(head) - 1) % 4) + ".")
    assert all(len(s) == length for s in out)
    return out


@pytest.mark.parametrize(("count", "sizes"), [(60, [20, 20, 20]), (45, [20, 20, 5]), (21, [20, 1])])
def test_long_text_is_split_at_sentences_into_requests(count: int, sizes: list[int]) -> None:
    sentences = numbered_sentences(count)
    text = " ".join(sentences)
    assert len(text) > MAX_REQUEST_CHARS
    texts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        texts.append(json.loads(request.content)["text"])
        return audio_response(streaming_wav(payload(800, fill=len(texts))), request_id=f"req-{len(texts)}")

    wav = provider_for(handler).synthesize(text, VOICE)

    # 20 sentences of 99 characters and 19 spaces make 1999 characters: the greedy packing.
    expected, start = [], 0
    for size in sizes:
        expected.append(" ".join(sentences[start : start + size]))
        start += size
    assert texts == expected
    assert all(len(t) <= MAX_REQUEST_CHARS for t in texts)
    # One WAV, the pieces' samples in request order.
    assert parse_ulaw_wav(wav).ulaw == b"".join(payload(800, fill=i + 1) for i in range(len(sizes)))


def test_text_of_exactly_the_limit_is_one_request() -> None:
    text = " ".join(numbered_sentences(20))  # 1999 characters
    text = text[:-1] + "!."  # 2000 characters
    assert len(text) == MAX_REQUEST_CHARS
    texts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        texts.append(json.loads(request.content)["text"])
        return audio_response(streaming_wav(payload()))

    provider_for(handler).synthesize(text, VOICE)
    assert texts == [text]


def test_a_failing_piece_fails_the_whole_text() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 2:
            return error_response(503, "overloaded")
        return audio_response(streaming_wav(payload()))

    with pytest.raises(SynthesisRetryable):
        provider_for(handler).synthesize(" ".join(numbered_sentences(60)), VOICE)
    assert len(calls) == 2  # no retry, no further pieces


def test_request_pieces_splits_an_overlong_sentence_at_clauses_then_words() -> None:
    clause = "and then we go on, " * 6  # 114 characters per clause group
    sentence = ("We talk " + clause * 30).strip().rstrip(",") + "."
    assert len(sentence) > 3000
    pieces = request_pieces(sentence)
    assert len(pieces) >= 2
    assert all(len(p) <= MAX_REQUEST_CHARS for p in pieces)
    assert " ".join(pieces) == sentence
    assert all(p.endswith(",") for p in pieces[:-1])  # cut after a comma, never mid-clause

    words = " ".join(["word"] * 1000) + "."  # one 5000-character clause without punctuation
    pieces = request_pieces(words)
    assert all(len(p) <= MAX_REQUEST_CHARS for p in pieces)
    assert " ".join(pieces) == words

    blob = "x" * 4500 + "."
    pieces = request_pieces(blob)
    assert [len(p) for p in pieces] == [2000, 2000, 501]
    assert "".join(pieces) == blob


def test_short_text_is_one_piece_unchanged() -> None:
    assert request_pieces("  Hello.   Bye.  ") == ["  Hello.   Bye.  "]


# --- the client factory -----------------------------------------------------------------------


def test_make_deepgram_client_timeouts() -> None:
    with make_deepgram_client(connect_timeout=1.5, read_timeout=7.0) as client:
        assert client.timeout.connect == 1.5
        assert client.timeout.read == 7.0
        assert client.timeout.write == 7.0
        assert client.timeout.pool == 1.5
