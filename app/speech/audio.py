"""From a provider's PCM to the clip we publish: resample, trim silence, mu-law encode, wrap.

Pure and thread-safe (numpy and soxr hold no shared state). Units: sample rates in Hz, samples
are mono 16-bit signed integers (int16), durations in milliseconds where the name says ``_ms``,
levels in dBFS (0 dBFS = a full-scale int16 amplitude of 32768; a full-scale sine has an RMS of
about -3 dBFS).
"""

from __future__ import annotations

import numpy as np
import soxr

from app.speech.ulaw import lin2ulaw
from app.speech.wav import ulaw_wav

_FULL_SCALE = 32768.0


def _as_mono_int16(pcm: np.ndarray) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"expected int16 samples, got {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {samples.shape}")
    return samples


def trim_silence(
    pcm: np.ndarray,
    rate: int,
    pad_ms: int = 60,
    threshold_dbfs: float = -45.0,
    frame_ms: int = 10,
) -> np.ndarray:
    """Trim leading and trailing silence of ``pcm`` to exactly ``pad_ms`` milliseconds each side.

    The signal is cut into frames of ``frame_ms`` ms (``rate * frame_ms // 1000`` samples; the last
    one may be shorter). A frame is sound when its RMS level is above ``threshold_dbfs`` dBFS. The
    result keeps everything from the first sound frame to the end of the last one, plus
    ``rate * pad_ms // 1000`` samples on each side: the original samples where the clip had that
    much before/after the sound, zeros for whatever it lacked. So its length is always
    ``sound span + 2 * pad``. Resolution is one frame. A clip with no sound frame at all gives an
    empty array (callers treat that as invalid audio). Returns a new int16 array.
    """
    samples = _as_mono_int16(pcm)
    if rate <= 0 or frame_ms <= 0 or pad_ms < 0:
        raise ValueError(f"bad trim parameters: rate={rate}, frame_ms={frame_ms}, pad_ms={pad_ms}")
    frame = max(1, rate * frame_ms // 1000)
    pad = rate * pad_ms // 1000
    n = len(samples)
    if n == 0:
        return samples.copy()
    n_frames = -(-n // frame)
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[:n] = samples
    mean_square = np.mean(padded.reshape(n_frames, frame) ** 2, axis=1)
    threshold = (_FULL_SCALE * 10.0 ** (threshold_dbfs / 20.0)) ** 2
    loud = np.flatnonzero(mean_square > threshold)
    if loud.size == 0:
        return np.zeros(0, dtype=np.int16)
    start = int(loud[0]) * frame
    end = min(n, (int(loud[-1]) + 1) * frame)
    out = np.zeros(pad + (end - start) + pad, dtype=np.int16)
    head = min(pad, start)
    tail = min(pad, n - end)
    out[pad - head : pad + (end - start) + tail] = samples[start - head : end + tail]
    return out


def pcm16_to_ulaw_wav(pcm: np.ndarray, rate_in: int, rate_out: int = 8000, pad_ms: int = 60) -> bytes:
    """Resample mono int16 ``pcm`` from ``rate_in`` to ``rate_out`` Hz, trim, and wrap as a mu-law WAV.

    Steps: float conversion, ``soxr.resample`` (high quality), rounding and clipping to the int16
    range *before* the cast (resampling overshoots slightly near full scale), :func:`trim_silence`
    with ``pad_ms`` ms of padding, G.711 mu-law encoding, WAV container. The result may hold no
    samples when the input was silent; :func:`app.speech.wav.validate_ulaw_wav` rejects that.
    """
    samples = _as_mono_int16(pcm)
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    floats = samples.astype(np.float32)
    if rate_in != rate_out and len(floats):
        floats = soxr.resample(floats, rate_in, rate_out)
    resampled = np.clip(np.rint(floats), -32768, 32767).astype(np.int16)
    trimmed = trim_silence(resampled, rate_out, pad_ms=pad_ms)
    return ulaw_wav(lin2ulaw(trimmed), sample_rate=rate_out)
