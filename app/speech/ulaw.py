"""G.711 mu-law encoding and decoding with numpy (a drop-in for the deprecated ``audioop``).

Pure and thread-safe: both directions are lookups into read-only tables built at import.
``lin2ulaw`` matches ``audioop.lin2ulaw(data, 2)`` byte for byte on every int16 input, and
``ulaw2lin`` matches ``audioop.ulaw2lin(data, 2)`` on every code.
"""

from __future__ import annotations

import numpy as np

_BIAS = 0x84
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_encode_table() -> np.ndarray:
    """The mu-law code of every int16 value, indexed by the value's uint16 bit pattern."""
    values = np.arange(-32768, 32768, dtype=np.int32) >> 2  # G.711 works on 14-bit samples
    mask = np.where(values < 0, 0x7F, 0xFF)
    magnitude = np.abs(values) + (_BIAS >> 2)
    segment = np.searchsorted(_SEG_END, magnitude, side="left")
    in_range = segment < 8
    shifted = magnitude >> np.minimum(segment + 1, 8)
    code = np.where(in_range, (np.minimum(segment, 7) << 4) | (shifted & 0xF), 0x7F)
    encoded = (code ^ mask).astype(np.uint8)
    table = np.empty(65536, dtype=np.uint8)
    table[np.arange(-32768, 32768, dtype=np.int32).astype(np.int16).view(np.uint16)] = encoded
    table.setflags(write=False)
    return table


def _build_decode_table() -> np.ndarray:
    """The int16 sample of every mu-law code."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((codes & 0x0F) << 3) + _BIAS) << ((codes & 0x70) >> 4)
    table = np.where(codes & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)
    table.setflags(write=False)
    return table


_ENCODE = _build_encode_table()
_DECODE = _build_decode_table()


def lin2ulaw(pcm: np.ndarray) -> bytes:
    """Encode 16-bit signed PCM samples (any shape, dtype int16) as one mu-law byte per sample."""
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"lin2ulaw needs int16 samples, got {samples.dtype}")
    return _ENCODE[samples.reshape(-1).view(np.uint16)].tobytes()


def ulaw2lin(data: bytes) -> np.ndarray:
    """Decode mu-law bytes into a new 1-D int16 array (one sample per byte)."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]
