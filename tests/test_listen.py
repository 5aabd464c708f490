"""The listening benchmark's measures, on signals whose pitch, level and pauses are known."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import listen

RATE = listen.RATE


def tone(hz: float, seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


def test_a_join_between_two_tones_measures_their_pitch_level_and_pause():
    a, gap, b = tone(200, 0.6, 8000), silence(0.1), tone(250, 0.6, 4000)
    audio = np.concatenate([a, gap, b])
    bounds = [(0, len(a) + len(gap) // 2), (len(a) + len(gap) // 2, len(audio))]
    ((end_ratio, reset, step, pause),) = listen.measure_joins(audio, bounds, [True], [len(a) + len(gap) // 2])
    assert end_ratio == pytest.approx(1.0, abs=0.02)  # a steady tone ends at its median pitch
    assert reset == pytest.approx(1.25, abs=0.03)     # 250 Hz after 200 Hz
    assert step == pytest.approx(20 * np.log10(2), abs=0.2)  # half the amplitude: 6 dB
    assert pause == pytest.approx(100, abs=10)


def test_joins_outside_a_sentence_are_not_measured():
    audio = np.concatenate([tone(200, 0.4, 8000), tone(200, 0.4, 8000)])
    half = len(audio) // 2
    assert listen.measure_joins(audio, [(0, half), (half, len(audio))], [False], [half]) == []


def test_silence_at_finds_the_silent_run_around_a_boundary():
    audio = np.concatenate([tone(200, 0.3, 8000), silence(0.25), tone(200, 0.3, 8000)])
    levels = listen.frame_db(audio)
    assert listen.silence_at(levels, int(RATE * 0.42)) == pytest.approx(250, abs=10)
    assert listen.silence_at(levels, int(RATE * 0.1)) == 0  # inside sound, no silence within reach


def test_kinds_of_join_and_sentence_ends():
    assert listen._kind("booking on~") == "no pause"
    assert listen._kind("march sixth,") == "punctuation"
    assert listen._inside("booking on~") and listen._inside("sure,")
    assert not listen._inside("is that right?") and not listen._inside('he said "yes."')


def test_gate_reads_the_summary_of_the_served_audio():
    summary = {"serving": "assembled", "end_ratio": 0.9, "ctx_end_ratio": 0.93, "reset": 1.1, "ctx_reset": 1.2,
               "step_db": 1.5, "ctx_step_db": 3.0, "pause_ms_served": 50, "ctx_pause_ms": 170}
    assert listen.gate(summary) == {"pitch_end_within_0.05": True, "pitch_reset_within_0.05": False,
                                    "loudness_step_within_2dB_of_context": True, "loudness_step_at_most_2dB": True,
                                    "pause_within_100ms": False}
