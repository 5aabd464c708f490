"""Silence trimming and the PCM -> published mu-law WAV pipeline, on synthetic signals."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
import soxr

from app.errors import InvalidAudio
from app.speech.audio import (
    EDGE_MAX,
    PEAK_LIMIT_DBFS,
    TARGET_LEVEL_DBFS,
    active_level_dbfs,
    finish_ulaw_wav,
    is_finished,
    level_and_fade,
    pcm16_to_ulaw_wav,
    trim_silence,
)
from app.speech.ulaw import lin2ulaw, ulaw2lin
from app.speech.wav import parse_ulaw_wav, ulaw_wav, validate_ulaw_wav

RATE = 8000
PAD = 480  # 60 ms at 8 kHz
FRAME = 80  # 10 ms at 8 kHz


def tone(n: int, rate: int = RATE, amplitude: float = 10000.0, hz: float = 440.0) -> np.ndarray:
    return (np.sin(2 * np.pi * hz * np.arange(n) / rate) * amplitude).astype(np.int16)


def zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int16)


def test_long_silence_is_trimmed_to_exactly_the_pad() -> None:
    sound = tone(8000)
    pcm = np.concatenate([zeros(4000), sound, zeros(2400)])
    out = trim_silence(pcm, RATE)
    assert out.dtype == np.int16
    assert len(out) == 8000 + 2 * PAD
    assert not out[:PAD].any() and not out[-PAD:].any()
    assert np.array_equal(out[PAD:-PAD], sound)


def test_quiet_noise_in_the_pad_is_kept_and_missing_pad_is_zero_filled() -> None:
    rng = np.random.default_rng(1)
    hiss = rng.integers(-20, 21, size=160).astype(np.int16)  # about -68 dBFS: silence
    sound = tone(800)
    pcm = np.concatenate([hiss, sound])  # 20 ms before, nothing after
    out = trim_silence(pcm, RATE)
    assert len(out) == PAD + 800 + PAD
    assert not out[: PAD - 160].any()
    assert np.array_equal(out[PAD - 160 : PAD], hiss)
    assert np.array_equal(out[PAD : PAD + 800], sound)
    assert not out[PAD + 800 :].any()


def test_sound_boundaries_have_frame_resolution() -> None:
    # The tone starts 50 samples into frame 50 and ends 30 samples into frame 149.
    pcm = np.concatenate([zeros(4050), tone(7900), zeros(3000)])
    out = trim_silence(pcm, RATE)
    start, end = 50 * FRAME, 150 * FRAME
    assert len(out) == (end - start) + 2 * PAD
    assert np.array_equal(out, pcm[start - PAD : end + PAD])


@pytest.mark.parametrize(("level_dbfs", "kept"), [(-50.0, False), (-40.0, True)])
def test_threshold_in_dbfs(level_dbfs: float, kept: bool) -> None:
    # A sine's RMS is its amplitude / sqrt(2).
    amplitude = 32768 * 10 ** (level_dbfs / 20) * np.sqrt(2)
    pcm = np.concatenate([zeros(800), tone(1600, amplitude=amplitude), zeros(800)])
    out = trim_silence(pcm, RATE)
    assert len(out) == (1600 + 2 * PAD if kept else 0)
    assert len(trim_silence(pcm, RATE, threshold_dbfs=level_dbfs - 6)) == 1600 + 2 * PAD


def test_pad_and_frame_are_in_milliseconds() -> None:
    # At 22,050 Hz a 10 ms frame is 220 samples, a 20 ms frame 441, a 60 ms pad 1323.
    pcm = np.concatenate([zeros(2200), tone(2200, rate=22050), zeros(2200)])
    assert len(trim_silence(pcm, 22050, pad_ms=0)) == 2200
    assert len(trim_silence(pcm, 22050, pad_ms=100)) == 2200 + 2 * 2205
    pcm = np.concatenate([zeros(4410), tone(4410, rate=22050), zeros(4410)])
    assert len(trim_silence(pcm, 22050, pad_ms=60, frame_ms=20)) == 4410 + 2 * 1323


def test_silence_and_empty_give_empty() -> None:
    assert trim_silence(zeros(8000), RATE).shape == (0,)
    assert trim_silence(zeros(0), RATE).shape == (0,)


def test_rejects_wrong_dtype_and_shape() -> None:
    with pytest.raises(TypeError, match="int16"):
        trim_silence(np.zeros(10, dtype=np.float32), RATE)
    with pytest.raises(ValueError, match="mono"):
        trim_silence(np.zeros((10, 2), dtype=np.int16), RATE)


def test_pcm16_to_ulaw_wav_from_22050() -> None:
    rate_in = 22050
    pcm = np.concatenate([zeros(4410), tone(22050, rate=rate_in, amplitude=16000), zeros(6615)])
    wav = pcm16_to_ulaw_wav(pcm, rate_in)
    parsed = parse_ulaw_wav(wav)
    assert (parsed.sample_rate, parsed.channels, parsed.bits) == (8000, 1, 8)
    # 1 s of tone at 8 kHz + 60 ms each side
    assert len(parsed.ulaw) == 8000 + 2 * PAD
    assert validate_ulaw_wav(wav) == 1.12
    info = soundfile.info(io.BytesIO(wav))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (8000, 1, "ULAW", 8960)
    decoded = ulaw2lin(parsed.ulaw)
    # mu-law of digital silence is 0xFF; the pads are silent, the middle is levelled to the target
    assert set(parsed.ulaw[:400]) == {0xFF} and set(parsed.ulaw[-400:]) == {0xFF}
    rms = np.sqrt(np.mean(decoded[PAD:-PAD].astype(np.float64) ** 2))
    assert abs(20 * np.log10(rms / 32768) - TARGET_LEVEL_DBFS) < 0.2


def test_pcm16_to_ulaw_wav_same_rate_keeps_the_samples_up_to_one_gain() -> None:
    pcm = np.concatenate([zeros(960), tone(4000), zeros(1000)])
    wav = pcm16_to_ulaw_wav(pcm, 8000, pad_ms=20)
    ulaw = parse_ulaw_wav(wav).ulaw
    assert len(ulaw) == 4000 + 2 * 160
    assert set(ulaw[:160]) == {0xFF} and set(ulaw[-160:]) == {0xFF}
    decoded = ulaw2lin(ulaw)[160 + 80 : -160 - 80].astype(np.float64)  # inside the 5 ms fades
    source = pcm[960 + 80 : 4960 - 80].astype(np.float64)
    gain = 10 ** ((TARGET_LEVEL_DBFS - 20 * np.log10(np.sqrt(np.mean(source**2)) / 32768)) / 20)
    assert np.max(np.abs(decoded - source * gain)) < 0.04 * 32768 * 10 ** (TARGET_LEVEL_DBFS / 20) * 1.5


def test_cut_sides_are_neither_trimmed_nor_padded() -> None:
    pcm = np.concatenate([zeros(400), tone(2000), zeros(400)])
    assert len(trim_silence(pcm, RATE, pad_ms=20)) == 2000 + 2 * 160
    assert len(trim_silence(pcm, RATE, pad_ms=20, cut_start=True)) == 400 + 2000 + 160
    assert len(trim_silence(pcm, RATE, pad_ms=20, cut_end=True)) == 160 + 2000 + 400
    both = trim_silence(pcm, RATE, pad_ms=20, cut_start=True, cut_end=True)
    assert np.array_equal(both, pcm)


@pytest.mark.parametrize("amplitude", [300.0, 3000.0, 20000.0])
def test_level_and_fade_brings_any_clip_to_the_target_with_silent_edges(amplitude: float) -> None:
    pcm = tone(8000, amplitude=amplitude)
    out = level_and_fade(pcm, RATE)
    assert abs(active_level_dbfs(out, RATE) - TARGET_LEVEL_DBFS) < 0.05
    assert out[0] == 0.0 and out[-1] == 0.0
    assert np.all(np.abs(out[:40]) <= np.abs(out[40:80]).max())  # a ramp, not a step
    assert is_finished(np.rint(out).astype(np.int16), RATE)
    assert not is_finished(pcm, RATE)  # a 440 Hz tone starting at a peak-free sample is still unlevelled


def test_level_never_clips_a_peaky_clip() -> None:
    clicks = zeros(8000)
    clicks[::400] = 30000  # sparse full-scale clicks: far below the target level on average
    out = level_and_fade(clicks, RATE)
    assert np.max(np.abs(out)) <= 32768 * 10 ** (PEAK_LIMIT_DBFS / 20) + 1
    assert is_finished(np.rint(out).astype(np.int16), RATE)  # as close to the target as the peak allows


def test_finish_ulaw_wav_levels_and_fades_and_leaves_finished_clips_alone() -> None:
    raw = ulaw_wav(lin2ulaw(tone(8000, amplitude=25000)), RATE)
    done = finish_ulaw_wav(raw)
    assert done != raw
    pcm = ulaw2lin(parse_ulaw_wav(done).ulaw)
    assert abs(active_level_dbfs(pcm, RATE) - TARGET_LEVEL_DBFS) < 0.3
    assert abs(int(pcm[0])) <= EDGE_MAX and abs(int(pcm[-1])) <= EDGE_MAX
    assert finish_ulaw_wav(done) is done


def test_clips_before_casting_so_overshoot_cannot_wrap() -> None:
    square = np.where(np.arange(22050) % 50 < 25, 32767, -32768).astype(np.int16)
    overshoot = soxr.resample(square.astype(np.float32), 22050, 8000)
    assert overshoot.max() > 32767 and overshoot.min() < -32768  # the hazard is real
    decoded = ulaw2lin(parse_ulaw_wav(pcm16_to_ulaw_wav(square, 22050, pad_ms=0)).ulaw).astype(np.int32)
    reference = np.clip(np.rint(overshoot), -32768, 32767)
    assert len(decoded) == len(reference)
    # a wrapped sample would flip sign at full scale; clipped ones keep it (levelling then scales
    # the clipped signal to the target level, one gain for every sample)
    loud = np.abs(reference) > 30000
    assert loud.sum() > 1000
    middle = loud.copy()
    middle[:200] = middle[-200:] = False  # outside the edge fades
    assert np.array_equal(np.sign(decoded[middle]), np.sign(reference[middle]))
    gain = 10 ** ((TARGET_LEVEL_DBFS - active_level_dbfs(reference, 8000)) / 20)
    assert np.abs(decoded[middle] - reference[middle] * gain).max() <= 1100 * gain + 8


def test_silent_input_gives_an_invalid_clip() -> None:
    wav = pcm16_to_ulaw_wav(zeros(22050), 22050)
    assert parse_ulaw_wav(wav).ulaw == b""
    with pytest.raises(InvalidAudio, match="empty"):
        validate_ulaw_wav(wav)
