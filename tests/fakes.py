"""Fakes at the boundaries (a TTS provider, a responder), for tests of our own code above them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from app.errors import SynthesisRetryable
from app.responders.base import Reply
from app.speech.ulaw import lin2ulaw
from app.speech.voices import Voice
from app.speech.wav import ulaw_wav


def tone_wav(text: str, rate: int = 8000) -> bytes:
    """A valid mu-law WAV whose length follows the text (60 ms a character, at least 0.3 s)."""
    n = max(int(rate * 0.3), int(rate * 0.06 * len(text)))
    t = np.arange(n) / rate
    pcm = (8000 * np.sin(2 * np.pi * (300 + len(text) % 200) * t)).astype(np.int16)
    return ulaw_wav(lin2ulaw(pcm), rate)


class ToneProvider:
    """A TTS provider that answers with a tone: counts calls, optionally slow or failing.

    ``calls_file``: when set, every call appends a line there (to count calls across processes).
    """

    name = "fake"
    max_concurrency = 4

    def __init__(self, *, delay_s: float = 0.0, fail: Exception | None = None, calls_file: Path | None = None,
                 slow_texts: dict[str, float] | None = None) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.calls_file = calls_file
        self.slow_texts = dict(slow_texts or {})
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def synthesize(self, text: str, voice: Voice) -> bytes:
        with self._lock:
            self.calls.append(text)
        if self.calls_file is not None:
            with open(self.calls_file, "a") as fh:
                fh.write(f"{os.getpid()} {text}\n")
        delay = self.slow_texts.get(text, self.delay_s)
        if delay:
            time.sleep(delay)
        if self.fail is not None:
            raise self.fail
        return tone_wav(text, voice.sample_rate)


class ScriptedResponder:
    """A responder that answers from a table of utterance -> Reply, after ``delay_s``."""

    def __init__(self, answers: dict[str, Reply], *, delay_s: float = 0.0, default: Reply | None = None,
                 fail: Exception | None = None) -> None:
        self.answers = answers
        self.delay_s = delay_s
        self.default = default or Reply("I can help with bookings and questions.")
        self.fail = fail
        self.calls: list[str] = []

    def reply(self, business, history, utterance):
        self.calls.append(utterance)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return self.answers.get(utterance, self.default)


__all__ = ["ToneProvider", "ScriptedResponder", "tone_wav", "SynthesisRetryable"]
