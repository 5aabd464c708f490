"""What the caller heard on a simulated call, as a WAV anyone can listen to.

The simulator records every clip Twilio played (the WAV bytes it fetched) and every ``<Say>``
(its text), each with its start in simulated seconds (``CallResult.audio_segments``). This
module lays them out in order with the silences between them kept exactly:

* a played clip is decoded from its mu-law WAV and lasts what its header says -- exactly as
  long as the simulator "played" it;
* a ``<Say>`` is spoken with the local Piper voice (Twilio would use Polly/Google; Piper is the
  voice we have). The simulator only *estimated* its length (words / 2.7 s), so the rendered
  speech may be a little longer or shorter than that estimate; the render keeps the *silence*
  after it exact and lets later audio move by the difference;
* with ``include_caller`` the caller's utterances are spoken too (same voice, a bit faster and
  quieter) so a listener can tell the questions from the answers; off by default, because the
  caller does not hear themselves.

Output: 16-bit PCM mono WAV at 8 kHz (phone quality; every player opens it, unlike mu-law WAV).
Silences are laid out from the simulated timeline, so the WAV's dead air is the dead air the
caller had, to the sample.

Thread safety: :func:`render_call` is pure apart from the speaker it is given; the default
speaker is a :class:`~app.speech.providers.piper.PiperProvider` (its own lock, loaded on first use).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from app.speech.ulaw import ulaw2lin
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav
from simulator.timeline import CallResult
from simulator.twilio_client import say_duration_s

SAMPLE_RATE = 8000
SAY_VOICE = Voice("piper", "en_US-joe-medium")
CALLER_VOICE = Voice("piper", "en_US-joe-medium", speed=1.15)
CALLER_GAIN = 0.6

Speak = Callable[[str, Voice], bytes]
"""Text and voice -> a mono mu-law WAV at 8 kHz (``PiperProvider().synthesize`` has this shape)."""


class _Piece(NamedTuple):
    start_s: float  # simulated start
    sim_s: float  # simulated length (what the timeline assumed)
    pcm: np.ndarray  # what is heard, 8 kHz int16


def _decode(wav: bytes) -> np.ndarray:
    parsed = parse_ulaw_wav(wav)
    if parsed.sample_rate != SAMPLE_RATE or parsed.channels != 1:
        raise ValueError(f"expected mono {SAMPLE_RATE} Hz audio, got {parsed.channels} ch at {parsed.sample_rate} Hz")
    return ulaw2lin(parsed.ulaw)


def _default_speak() -> Speak:
    from app.speech.providers.piper import PiperProvider

    return PiperProvider().synthesize


def render_call(result: CallResult, *, speak: Speak | None = None, include_caller: bool = False) -> bytes:
    """The audio of ``result`` as a 16-bit PCM mono 8 kHz WAV file (see the module docstring).

    ``speak`` renders ``<Say>`` text (and caller utterances); it is only called when there is
    text to speak. Raises ValueError if a played clip is not mono 8 kHz mu-law (the simulator
    would not have played it), and whatever ``speak`` raises.
    """
    speaker = speak
    said: dict[tuple[str, Voice], np.ndarray] = {}

    def say(text: str, voice: Voice) -> np.ndarray:
        nonlocal speaker
        if (text, voice) not in said:
            if speaker is None:
                speaker = _default_speak()
            said[(text, voice)] = _decode(speaker(text, voice))
        return said[(text, voice)]

    pieces: list[_Piece] = []
    for seg in result.audio_segments:
        if seg.kind == "play":
            assert isinstance(seg.data, bytes)
            pcm = _decode(seg.data)
            pieces.append(_Piece(seg.start_s, len(pcm) / SAMPLE_RATE, pcm))
        else:
            text = str(seg.data)
            pieces.append(_Piece(seg.start_s, say_duration_s(text), say(text, SAY_VOICE)))
    if include_caller:
        for line in result.transcript:
            if line.who == "caller" and line.text.strip():
                pcm = say(line.text, CALLER_VOICE)
                pieces.append(_Piece(line.t, line.end - line.t, (pcm * CALLER_GAIN).astype(np.int16)))
    pieces.sort(key=lambda p: p.start_s)

    out: list[np.ndarray] = []
    sim_cursor = 0.0  # simulated time up to which the output is laid out
    for piece in pieces:
        gap = piece.start_s - sim_cursor
        if gap > 0:
            out.append(np.zeros(round(gap * SAMPLE_RATE), dtype=np.int16))
        out.append(piece.pcm)
        sim_cursor = max(sim_cursor, piece.start_s + piece.sim_s)
    tail = result.duration_s - sim_cursor
    if tail > 0:
        out.append(np.zeros(round(tail * SAMPLE_RATE), dtype=np.int16))
    samples = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
    return pcm16_wav(samples)


def pcm16_wav(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit PCM WAV file of ``samples`` (int16)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


def write_call_wav(result: CallResult, path: str | Path, *, speak: Speak | None = None,
                   include_caller: bool = False) -> Path:
    """Render ``result`` (see :func:`render_call`) into ``path`` (parent directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_call(result, speak=speak, include_caller=include_caller))
    return path
