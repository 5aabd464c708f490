"""From a provider's PCM to the clip we publish: resample, trim silence, level, fade, mu-law encode, wrap.

Pure and thread-safe (numpy and soxr hold no shared state). Units: sample rates in Hz, samples
are mono 16-bit signed integers (int16), durations in milliseconds where the name says ``_ms``,
levels in dBFS (0 dBFS = a full-scale int16 amplitude of 32768; a full-scale sine has an RMS of
about -3 dBFS).
"""

from __future__ import annotations

import numpy as np
import soxr

from app.speech.ulaw import lin2ulaw, ulaw2lin
from app.speech.wav import parse_ulaw_wav, ulaw_wav

_FULL_SCALE = 32768.0

TARGET_LEVEL_DBFS = -20.0
"""Every published clip's active speech level (see :func:`active_level_dbfs`), in dBFS."""
LEVEL_TOLERANCE_DB = 0.5
"""A clip within this many dB of the target is left as it is by :func:`finish_ulaw_wav`."""
PEAK_LIMIT_DBFS = -1.0
"""Levelling never raises a clip's peak above this (a quieter clip is better than a clipped one)."""
FADE_MS = 5.0
"""Raised-cosine fade at each edge of every clip: no click where a clip starts or stops."""
EDGE_MAX = 64
"""The largest |sample| allowed in a published clip's first and last sample (a faded edge)."""
_SOUND_DBFS = -45.0  # the frame level that counts as sound (as in trim_silence)


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
    *,
    cut_start: bool = False,
    cut_end: bool = False,
) -> np.ndarray:
    """Trim leading and trailing silence of ``pcm`` to exactly ``pad_ms`` milliseconds each side.

    The signal is cut into frames of ``frame_ms`` ms (``rate * frame_ms // 1000`` samples; the last
    one may be shorter). A frame is sound when its RMS level is above ``threshold_dbfs`` dBFS. The
    result keeps everything from the first sound frame to the end of the last one, plus
    ``rate * pad_ms // 1000`` samples on each side: the original samples where the clip had that
    much before/after the sound, zeros for whatever it lacked. So its length is always
    ``sound span + 2 * pad``. Resolution is one frame. A clip with no sound frame at all gives an
    empty array (callers treat that as invalid audio). Returns a new int16 array.

    ``cut_start`` / ``cut_end``: that side was cut out of running speech (a join-marked piece):
    it is kept exactly as it is, neither trimmed nor padded.
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
    start = 0 if cut_start else int(loud[0]) * frame
    end = n if cut_end else min(n, (int(loud[-1]) + 1) * frame)
    pad_head = 0 if cut_start else pad
    pad_tail = 0 if cut_end else pad
    out = np.zeros(pad_head + (end - start) + pad_tail, dtype=np.int16)
    head = min(pad_head, start)
    tail = min(pad_tail, n - end)
    out[pad_head - head : pad_head + (end - start) + tail] = samples[start - head : end + tail]
    return out


def active_level_dbfs(pcm: np.ndarray, rate: int, frame_ms: int = 10) -> float:
    """The active speech level of ``pcm`` in dBFS: the RMS over the 10 ms frames that are sound
    (above -45 dBFS), so pauses and pads do not lower it. -inf when no frame is sound."""
    samples = np.asarray(pcm, dtype=np.float64)
    frame = max(1, rate * frame_ms // 1000)
    n_frames = len(samples) // frame
    if n_frames == 0:
        return float("-inf")
    mean_square = np.mean(samples[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1)
    threshold = (_FULL_SCALE * 10.0 ** (_SOUND_DBFS / 20.0)) ** 2
    loud = mean_square[mean_square > threshold]
    if loud.size == 0:
        return float("-inf")
    return float(10.0 * np.log10(np.mean(loud) / _FULL_SCALE**2))


def level_and_fade(pcm: np.ndarray, rate: int, target_dbfs: float = TARGET_LEVEL_DBFS,
                   fade_ms: float = FADE_MS) -> np.ndarray:
    """``pcm`` (int16 or float, in int16 units) brought to ``target_dbfs`` active level (peak
    limited to PEAK_LIMIT_DBFS) with a raised-cosine fade of ``fade_ms`` ms at each edge; float64."""
    samples = np.asarray(pcm, dtype=np.float64).copy()
    level = active_level_dbfs(samples, rate)
    if np.isfinite(level):
        gain_db = target_dbfs - level
        peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
        if peak > 0:
            gain_db = min(gain_db, PEAK_LIMIT_DBFS - 20.0 * np.log10(peak / _FULL_SCALE))
        samples *= 10.0 ** (gain_db / 20.0)
    n = min(len(samples) // 2, int(rate * fade_ms / 1000))
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
        samples[:n] *= ramp
        samples[len(samples) - n:] *= ramp[::-1]
        samples[0] = samples[-1] = 0.0
    return samples


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


def is_finished(pcm: np.ndarray, rate: int, target_dbfs: float = TARGET_LEVEL_DBFS) -> bool:
    """True when ``pcm`` is at the target level (within LEVEL_TOLERANCE_DB, or as close as the
    peak limit allows) and its first and last samples are faded (|sample| <= EDGE_MAX)."""
    samples = np.asarray(pcm)
    if len(samples) == 0:
        return True
    if abs(int(samples[0])) > EDGE_MAX or abs(int(samples[-1])) > EDGE_MAX:
        return False
    level = active_level_dbfs(samples, rate)
    if not np.isfinite(level) or abs(level - target_dbfs) <= LEVEL_TOLERANCE_DB:
        return True
    peak_dbfs = 20.0 * np.log10(max(1.0, float(np.max(np.abs(samples.astype(np.int32))))) / _FULL_SCALE)
    return level < target_dbfs and peak_dbfs >= PEAK_LIMIT_DBFS - LEVEL_TOLERANCE_DB


def finish_ulaw_wav(data: bytes, target_dbfs: float = TARGET_LEVEL_DBFS) -> bytes:
    """A mono mu-law WAV brought to the target level with faded edges (see :func:`level_and_fade`).

    Returns ``data`` itself when it is already finished (:func:`is_finished`), so a clip made by
    :func:`pcm16_to_ulaw_wav` is not encoded twice. Raises InvalidAudio for a malformed WAV.
    """
    wav = parse_ulaw_wav(data)
    pcm = ulaw2lin(wav.ulaw)
    if wav.channels != 1 or is_finished(pcm, wav.sample_rate, target_dbfs):
        return data
    return ulaw_wav(lin2ulaw(_to_int16(level_and_fade(pcm, wav.sample_rate, target_dbfs))), wav.sample_rate)


def pcm16_to_ulaw_wav(pcm: np.ndarray, rate_in: int, rate_out: int = 8000, pad_ms: int = 60, *,
                      cut_start: bool = False, cut_end: bool = False) -> bytes:
    """Resample mono int16 ``pcm`` from ``rate_in`` to ``rate_out`` Hz, trim, level, fade and wrap as a mu-law WAV.

    Steps: float conversion, ``soxr.resample`` (high quality), rounding and clipping to the int16
    range *before* the cast (resampling overshoots slightly near full scale), :func:`trim_silence`
    with ``pad_ms`` ms of padding (``cut_start``/``cut_end``: that side was cut out of running
    speech and is kept as it is), :func:`level_and_fade` to TARGET_LEVEL_DBFS with FADE_MS fades,
    G.711 mu-law encoding, WAV container. The result may hold no samples when the input was
    silent; :func:`app.speech.wav.validate_ulaw_wav` rejects that.
    """
    samples = _as_mono_int16(pcm)
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    floats = samples.astype(np.float32)
    if rate_in != rate_out and len(floats):
        floats = soxr.resample(floats, rate_in, rate_out)
    resampled = np.clip(np.rint(floats), -32768, 32767).astype(np.int16)
    trimmed = trim_silence(resampled, rate_out, pad_ms=pad_ms, cut_start=cut_start, cut_end=cut_end)
    return ulaw_wav(lin2ulaw(_to_int16(level_and_fade(trimmed, rate_out))), sample_rate=rate_out)


def assemble_ulaw(parts: list[bytes], pauses_ms: list[int], rate: int = 8000,
                  fade_ms: float = FADE_MS) -> bytes:
    """The mu-law samples of ``parts`` played in order, ``pauses_ms[i]`` ms of silence after part i.

    A pause of 0 is a join inside running speech: the two parts' faded edges (``fade_ms`` each)
    overlap and add, a short crossfade with no gap and no dip. Parts are decoded and re-encoded
    (mu-law re-encodes its own decoded values exactly, so only overlapped samples change).
    Milliseconds of work for a reply; pure and thread-safe.
    """
    if len(pauses_ms) != len(parts) - 1:
        raise ValueError(f"{len(parts)} parts need {len(parts) - 1} pauses, got {len(pauses_ms)}")
    overlap = int(rate * fade_ms / 1000)
    out = np.zeros(0, dtype=np.int32)
    for i, part in enumerate(parts):
        pcm = ulaw2lin(part).astype(np.int32)
        if i and pauses_ms[i - 1] <= 0 and overlap and len(out) >= overlap and len(pcm) >= overlap:
            out[-overlap:] += pcm[:overlap]
            pcm = pcm[overlap:]
        elif i:
            out = np.concatenate([out, np.zeros(int(rate * pauses_ms[i - 1] / 1000), dtype=np.int32)])
        out = np.concatenate([out, pcm])
    return lin2ulaw(np.clip(out, -32768, 32767).astype(np.int16))
