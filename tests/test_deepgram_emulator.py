"""The Deepgram emulator: the official SDK and our provider against a real server on loopback."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from deepgram import DeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment

from app.errors import InvalidAudio, SynthesisRejected, SynthesisRetryable
from app.speech.providers.deepgram import DeepgramProvider, make_deepgram_client
from app.speech.providers.piper import PiperProvider
from app.speech.ulaw import ulaw2lin
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav, validate_ulaw_wav
from simulator.deepgram_emulator import FAILURE_MODES, DeepgramEmulator, lin2alaw
from tests.support import free_port, wait_for_port

pytestmark = [
    pytest.mark.slow,
    # deepgram-sdk 7.16 imports websockets' legacy names (for its websocket clients) when its
    # speak module loads; nothing here uses websockets.
    pytest.mark.filterwarnings("ignore:websockets.exceptions.InvalidStatusCode is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
]

KEY = "test-key"
VOICE = Voice("deepgram", "aura-2-thalia-en")
SENTENCE = "Thanks for calling, how can I help you today?"
ROOT = Path(__file__).resolve().parents[1]


class ToneSpeaker:
    """A stand-in voice for protocol-only tests: 20 ms of a 440 Hz tone per character, 22,050 Hz."""

    def synthesize_pcm(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
        t = np.arange(int(22050 * 0.02 * len(text) / speed)) / 22050
        return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), 22050


@pytest.fixture(scope="module")
def piper() -> PiperProvider:
    """One Piper voice for the whole module, loaded up front so no timed test pays for the load."""
    voice = PiperProvider()
    voice.synthesize_pcm("Warming up.")
    return voice


@pytest.fixture
def emulator(piper: PiperProvider) -> Iterator[DeepgramEmulator]:
    with DeepgramEmulator(api_key=KEY, ttfb_ms=5, per_char_ms=0, speaker=piper) as emu:
        yield emu


@pytest.fixture
def tone_emulator() -> Iterator[DeepgramEmulator]:
    with DeepgramEmulator(api_key=KEY, ttfb_ms=0, per_char_ms=0, speaker=ToneSpeaker()) as emu:
        yield emu


@contextmanager
def sdk_client(base_url: str, api_key: str = KEY) -> Iterator[DeepgramClient]:
    """The official SDK pointed at ``base_url`` (its REST calls use ``environment.base``), no retries."""
    ws = base_url.replace("http://", "ws://")
    environment = DeepgramClientEnvironment(base=base_url, production=ws, agent=ws, agent_rest=base_url)
    with httpx.Client(timeout=10) as http:
        yield DeepgramClient(api_key=api_key, environment=environment, max_retries=0, timeout=10, httpx_client=http)


@contextmanager
def provider(base_url: str, *, read_timeout: float = 10.0, api_key: str = KEY) -> Iterator[DeepgramProvider]:
    """Our provider on its own pooled client, closed afterwards."""
    with make_deepgram_client(connect_timeout=2.0, read_timeout=read_timeout) as client:
        yield DeepgramProvider(client=client, api_key=api_key, base_url=base_url)


def speak_url(base_url: str, **params: str) -> str:
    query = {"model": "aura-2-thalia-en", "encoding": "mulaw", "container": "wav", "sample_rate": "8000"} | params
    return f"{base_url}/v1/speak?" + "&".join(f"{k}={v}" for k, v in query.items())


def rms_dbfs(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) / 32768.0)


# --- the official SDK proves the protocol -------------------------------------------------------


def test_official_sdk_generate_gets_speech_as_a_ulaw_wav(emulator: DeepgramEmulator) -> None:
    with sdk_client(emulator.base_url) as client:
        data = b"".join(
            client.speak.v1.audio.generate(
                text=SENTENCE, model="aura-2-thalia-en", encoding="mulaw", container="wav", sample_rate=8000
            )
        )
    duration = validate_ulaw_wav(data, 8000)
    assert 1.0 < duration < 6.0
    # Deepgram's streaming header: RIFF and data sizes unknown.
    assert data[4:8] == b"\xff\xff\xff\xff" and data[36:44] == b"data\xff\xff\xff\xff"
    # An independent reader (libsndfile) agrees, and it is speech, not silence.
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    assert (rate, soundfile.info(io.BytesIO(data)).subtype) == (8000, "ULAW")
    assert len(samples) == len(parse_ulaw_wav(data).ulaw)
    assert rms_dbfs(samples) > -35
    assert emulator.stats()["by_status"] == {"200": 1}
    assert emulator.chars_total == len(SENTENCE)


def test_official_sdk_raw_response_headers(emulator: DeepgramEmulator) -> None:
    with (
        sdk_client(emulator.base_url) as client,
        client.speak.v1.audio.with_raw_response.generate(
            text="Hello there.", model="aura-asteria-en", encoding="mulaw", container="wav", sample_rate=16000
        ) as response,
    ):
        headers = response.headers
        data = b"".join(response.data)
    assert headers["content-type"] == "audio/wav"
    assert headers["transfer-encoding"] == "chunked"
    assert uuid.UUID(headers["dg-request-id"]).version == 4
    assert headers["dg-model-name"] == "aura-asteria-en"
    assert headers["dg-char-count"] == "12"
    assert validate_ulaw_wav(data, 16000) > 0.3


def test_official_sdk_sees_deepgram_errors(tone_emulator: DeepgramEmulator) -> None:
    with sdk_client(tone_emulator.base_url, api_key="wrong") as client, pytest.raises(ApiError) as info:
        b"".join(
            client.speak.v1.audio.generate(
                text="Hello.", model="aura-2-thalia-en", encoding="mulaw", container="wav", sample_rate=8000
            )
        )
    assert info.value.status_code == 401
    assert info.value.body["err_code"] == "INVALID_AUTH"
    with sdk_client(tone_emulator.base_url) as client, pytest.raises(ApiError) as info:
        b"".join(
            client.speak.v1.audio.generate(
                text="x" * 2001, model="aura-2-thalia-en", encoding="mulaw", container="wav", sample_rate=8000
            )
        )
    assert info.value.status_code == 413
    assert info.value.body["err_code"] == "PAYLOAD_TOO_LARGE"


# --- our provider end to end ------------------------------------------------------------------


def test_provider_end_to_end(emulator: DeepgramEmulator) -> None:
    with provider(emulator.base_url) as dg:
        wav = dg.synthesize(SENTENCE, VOICE)
    duration = validate_ulaw_wav(wav, 8000)
    assert 1.0 < duration < 6.0
    assert int.from_bytes(wav[4:8], "little") == len(wav) - 8  # exact sizes in what we publish
    assert rms_dbfs(ulaw2lin(parse_ulaw_wav(wav).ulaw)) > -35
    stats = emulator.stats()
    assert (stats["requests_total"], stats["by_status"], stats["chars_total"]) == (1, {"200": 1}, len(SENTENCE))


def test_provider_at_16k(emulator: DeepgramEmulator) -> None:
    with provider(emulator.base_url) as dg:
        wav = dg.synthesize("Hello there.", Voice("deepgram", "aura-2-thalia-en", sample_rate=16000))
    assert parse_ulaw_wav(wav).sample_rate == 16000
    assert validate_ulaw_wav(wav, 16000) > 0.3


def test_provider_splits_long_text_into_requests_the_emulator_accepts(tone_emulator: DeepgramEmulator) -> None:
    sentences = [f"This is sentence number {i} of a long answer, said slowly and clearly." for i in range(40)]
    text = " ".join(sentences)
    assert 2000 < len(text) < 4000
    with provider(tone_emulator.base_url) as dg:
        wav = dg.synthesize(text, VOICE)
    assert tone_emulator.stats()["by_status"] == {"200": 2}
    assert tone_emulator.chars_total == len(text) - 1  # one joining space is not sent
    assert validate_ulaw_wav(wav, 8000) > 10


# --- the API's rules --------------------------------------------------------------------------


def test_413_over_2000_characters(tone_emulator: DeepgramEmulator) -> None:
    url = speak_url(tone_emulator.base_url)
    headers = {"Authorization": f"Token {KEY}"}
    ok = httpx.post(url, headers=headers, json={"text": "a" * 1999 + "."})
    assert ok.status_code == 200
    assert ok.headers["dg-char-count"] == "2000"
    too_long = httpx.post(url, headers=headers, json={"text": "a" * 2000 + "."})
    assert too_long.status_code == 413
    body = too_long.json()
    assert set(body) == {"err_code", "err_msg", "request_id"}
    assert body["request_id"] == too_long.headers["dg-request-id"]
    assert too_long.headers["dg-error"] == body["err_msg"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Token wrong-key", f"Bearer {KEY}", KEY, f"token {KEY}"],
)
def test_401_without_the_right_key(tone_emulator: DeepgramEmulator, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.post(speak_url(tone_emulator.base_url), headers=headers, json={"text": "Hello."})
    assert response.status_code == 401
    body = response.json()
    assert body["err_code"] == "INVALID_AUTH"
    assert body["request_id"] == response.headers["dg-request-id"]
    assert response.headers["dg-error"] == body["err_msg"]
    assert tone_emulator.stats()["by_status"] == {"401": 1}
    assert tone_emulator.chars_total == 0


def test_401_through_the_provider(tone_emulator: DeepgramEmulator) -> None:
    with provider(tone_emulator.base_url, api_key="nope") as dg, pytest.raises(SynthesisRejected) as info:
        dg.synthesize("Hello.", VOICE)
    assert info.value.status == 401
    assert uuid.UUID(info.value.request_id).version == 4
    assert "Invalid credentials." in str(info.value)


@pytest.mark.parametrize(
    ("params", "body", "code"),
    [
        ({"model": "nova-2"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"model": "aura-2-thalia"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"model": "aura-thalia-english"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"encoding": "pcm"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"container": "ogg"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"sample_rate": "44100"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"sample_rate": "24000"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"speed": "3"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({"voice": "x"}, {"text": "Hi."}, "INVALID_QUERY_PARAMETER"),
        ({}, {"text": "Hi.", "voice": "thalia"}, "INVALID_JSON"),
        ({}, {"input": "Hi."}, "INVALID_JSON"),
        ({}, {"text": ""}, "INVALID_JSON"),
        ({}, {"text": 42}, "INVALID_JSON"),
        ({}, ["Hi."], "INVALID_JSON"),
    ],
)
def test_400_for_bad_requests(tone_emulator: DeepgramEmulator, params: dict, body: object, code: str) -> None:
    response = httpx.post(
        speak_url(tone_emulator.base_url, **params), headers={"Authorization": f"Token {KEY}"}, json=body
    )
    assert response.status_code == 400
    assert response.json()["err_code"] == code
    assert response.headers["dg-error"] == response.json()["err_msg"]


def test_400_for_text_with_nothing_to_say(emulator: DeepgramEmulator) -> None:
    response = httpx.post(speak_url(emulator.base_url), headers={"Authorization": f"Token {KEY}"}, json={"text": "?!"})
    assert (response.status_code, response.json()["err_code"]) == (400, "INVALID_TEXT")


def test_speed_reaches_the_voice(emulator: DeepgramEmulator) -> None:
    text = "Our opening hours are nine to five, Monday to Friday."
    with provider(emulator.base_url) as dg:
        normal = validate_ulaw_wav(dg.synthesize(text, VOICE), 8000)
        fast = validate_ulaw_wav(dg.synthesize(text, Voice("deepgram", "aura-2-thalia-en", speed=1.4)), 8000)
    assert fast < normal * 0.85


def test_400_for_a_body_that_is_not_json(tone_emulator: DeepgramEmulator) -> None:
    response = httpx.post(
        speak_url(tone_emulator.base_url), headers={"Authorization": f"Token {KEY}"}, content=b"text=Hi"
    )
    assert (response.status_code, response.json()["err_code"]) == (400, "INVALID_JSON")


@pytest.mark.parametrize(
    ("params", "content_type", "fmt_code", "rate"),
    [
        ({"model": "aura-asteria-en", "encoding": "alaw", "sample_rate": "8000"}, "audio/wav", "ALAW", 8000),
        ({"model": "aura-2-celeste-es", "encoding": "linear16", "sample_rate": "16000"}, "audio/wav", "PCM_16", 16000),
    ],
)
def test_other_encodings_are_real_wavs(
    tone_emulator: DeepgramEmulator, params: dict, content_type: str, fmt_code: str, rate: int
) -> None:
    response = httpx.post(
        speak_url(tone_emulator.base_url, **params),
        headers={"Authorization": f"Token {KEY}"},
        json={"text": "Hello there."},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    info = soundfile.info(io.BytesIO(response.content))
    assert (info.subtype, info.samplerate, info.channels) == (fmt_code, rate, 1)


def test_raw_container_and_default_rate(tone_emulator: DeepgramEmulator) -> None:
    url = f"{tone_emulator.base_url}/v1/speak?model=aura-2-thalia-en&encoding=linear16&container=none"
    response = httpx.post(url, headers={"Authorization": f"Token {KEY}"}, json={"text": "Hello there."})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/l16"
    assert response.content[:4] != b"RIFF"
    samples = np.frombuffer(response.content, dtype="<i2")
    # 12 characters of 20 ms tone at the linear16 default of 24 kHz, plus 60 ms of pad each side.
    assert abs(len(samples) - int(24000 * (0.24 + 0.12))) < 24000 * 0.02


def test_unknown_routes_and_stats(tone_emulator: DeepgramEmulator) -> None:
    assert (
        httpx.post(
            f"{tone_emulator.base_url}/v1/listen", headers={"Authorization": f"Token {KEY}"}, json={"text": "Hi."}
        ).status_code
        == 404
    )
    stats = httpx.get(f"{tone_emulator.base_url}/stats").json()
    assert stats == {
        "requests_total": 0,
        "by_status": {"404": 1},
        "failures": {},
        "in_flight": 0,
        "max_in_flight": 0,
        "chars_total": 0,
    }


def test_alaw_matches_g711_reference_on_every_sample() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # audioop: deprecated in 3.11, the reference here
        import audioop
    samples = np.arange(-32768, 32768, dtype=np.int16)
    assert lin2alaw(samples) == audioop.lin2alaw(samples.astype("<i2").tobytes(), 2)


# --- concurrency and latency ------------------------------------------------------------------


def test_429_above_the_concurrency_limit(piper: PiperProvider) -> None:
    with (
        DeepgramEmulator(api_key=KEY, concurrency_limit=2, ttfb_ms=500, per_char_ms=0, speaker=piper) as emu,
        provider(emu.base_url) as dg,
    ):
        barrier = threading.Barrier(6)
        outcomes: list[object] = []
        lock = threading.Lock()

        def call() -> None:
            barrier.wait(timeout=5)
            try:
                result: object = validate_ulaw_wav(dg.synthesize("One moment please.", VOICE), 8000)
            except SynthesisRetryable as exc:
                result = exc
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)
        stats = emu.stats()
    durations = [o for o in outcomes if isinstance(o, float)]
    limited = [o for o in outcomes if isinstance(o, SynthesisRetryable)]
    assert (len(durations), len(limited)) == (2, 4), outcomes
    assert all(exc.status == 429 and exc.request_id for exc in limited)
    assert stats["by_status"] == {"200": 2, "429": 4}
    assert stats["max_in_flight"] == 2
    assert stats["requests_total"] == 6


def test_time_to_first_byte_follows_the_latency_model(tone_emulator: DeepgramEmulator) -> None:
    tone_emulator.ttfb_ms = 150
    tone_emulator.per_char_ms = 2.0
    text = "x" * 99 + "."  # 100 characters: 150 + 200 = 350 ms
    started = time.monotonic()
    with httpx.stream(
        "POST", speak_url(tone_emulator.base_url), headers={"Authorization": f"Token {KEY}"}, json={"text": text}
    ) as response:
        first_byte_s = time.monotonic() - started
        chunks = list(response.iter_raw())
    assert response.status_code == 200
    assert 0.35 <= first_byte_s < 1.2
    assert sum(len(c) for c in chunks) > 44


# --- injected failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "error", "status"),
    [
        ("500", SynthesisRetryable, 500),
        ("503", SynthesisRetryable, 503),
        ("429", SynthesisRetryable, 429),
        ("stall", SynthesisRetryable, None),
        ("truncate", SynthesisRetryable, None),
        ("garbage", InvalidAudio, None),
        ("wrong_rate", InvalidAudio, None),
    ],
)
def test_injected_failures_surface_as_the_right_error(mode: str, error: type[Exception], status: int | None) -> None:
    assert mode in FAILURE_MODES
    # The tone voice answers at once, so only a stall can outlast the 0.5 s read timeout.
    read_timeout = 0.5 if mode == "stall" else 10.0
    with DeepgramEmulator(
        api_key=KEY,
        ttfb_ms=5,
        per_char_ms=0,
        failure_rate=1.0,
        failure_modes=(mode,),
        stall_ms=5000,
        speaker=ToneSpeaker(),
    ) as emu:
        with provider(emu.base_url, read_timeout=read_timeout) as dg, pytest.raises(error) as info:
            dg.synthesize("Hello there.", VOICE)
        stats = emu.stats()
    assert stats["failures"] == {mode: 1}
    if error is SynthesisRetryable:
        assert info.value.status == status
        assert uuid.UUID(info.value.request_id).version == 4  # from the header or the error body
    if mode == "stall":
        assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    if mode == "truncate":
        assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    if mode == "wrong_rate":
        assert "16000" in str(info.value)


def test_failure_injection_is_seeded_and_in_arrival_order() -> None:
    modes = ("500", "503", "429")
    expected_rng = random.Random(7)
    expected = []
    for _ in range(12):
        expected.append(expected_rng.choice(modes) if expected_rng.random() < 0.5 else "200")
    runs = []
    for _ in range(2):
        with (
            DeepgramEmulator(
                api_key=KEY,
                ttfb_ms=0,
                per_char_ms=0,
                failure_rate=0.5,
                failure_modes=modes,
                seed=7,
                speaker=ToneSpeaker(),
            ) as emu,
            httpx.Client(headers={"Authorization": f"Token {KEY}"}) as client,
        ):
            runs.append(
                [str(client.post(speak_url(emu.base_url), json={"text": "Hi."}).status_code) for _ in range(12)]
            )
    assert runs[0] == runs[1] == expected
    assert "200" in expected and set(expected) - {"200"}


def test_bad_knobs_are_refused() -> None:
    with pytest.raises(ValueError):
        DeepgramEmulator(failure_modes=("explode",))
    with pytest.raises(ValueError):
        DeepgramEmulator(failure_rate=1.5)


# --- the command line -------------------------------------------------------------------------


def test_cli_serves_until_interrupted() -> None:
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator.deepgram_emulator",
            "--port",
            str(port),
            "--api-key",
            "cli-key",
            "--ttfb-ms",
            "0",
            "--failure-rate",
            "1",
            "--failure-modes",
            "503",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=20)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/speak?model=aura-2-thalia-en&encoding=mulaw&container=wav&sample_rate=8000",
            headers={"Authorization": "Token cli-key"},
            json={"text": "Hi."},
        )
        assert response.status_code == 503
        assert httpx.get(f"http://127.0.0.1:{port}/stats").json()["failures"] == {"503": 1}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
    assert process.returncode == 0
    assert out.decode().strip() == f"http://127.0.0.1:{port}"


def test_stop_closes_idle_keep_alive_connections(tone_emulator: DeepgramEmulator) -> None:
    def handler_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if "process_request_thread" in t.name]

    with httpx.Client(headers={"Authorization": f"Token {KEY}"}) as client:
        assert client.post(speak_url(tone_emulator.base_url), json={"text": "Hi."}).status_code == 200
        assert len(handler_threads()) == 1  # the connection is kept alive, its thread waits for more
        started = time.monotonic()
        tone_emulator.stop()
        deadline = time.monotonic() + 2
        while handler_threads() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handler_threads() == []
        assert time.monotonic() - started < 2
