"""The numpy G.711 mu-law codec against the standard library's audioop (where it still exists)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from app.speech.ulaw import lin2ulaw, ulaw2lin

with warnings.catch_warnings():
    # audioop is deprecated in 3.11-3.12 (removed in 3.13); it is only the reference here.
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def test_lin2ulaw_matches_audioop_on_every_int16() -> None:
    expected = audioop.lin2ulaw(ALL_INT16.tobytes(), 2)
    got = lin2ulaw(ALL_INT16)
    assert len(got) == 65536
    assert got == expected


def test_ulaw2lin_matches_audioop_on_every_code() -> None:
    codes = bytes(range(256))
    expected = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype=np.int16)
    got = ulaw2lin(codes)
    assert got.dtype == np.int16
    assert got.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xFF), (1, 0xFF), (-1, 0x7E), (-2, 0x7E), (32767, 0x80), (-32768, 0x00), (8000, 0xA0)],
)
def test_known_codes(sample: int, code: int) -> None:
    assert lin2ulaw(np.array([sample], dtype=np.int16)) == bytes([code])


def test_round_trip_error_is_within_one_quantization_step() -> None:
    decoded = ulaw2lin(lin2ulaw(ALL_INT16)).astype(np.int32)
    original = ALL_INT16.astype(np.int32)
    error = np.abs(decoded - original)
    magnitude = np.abs(original)
    # A mu-law step at magnitude m is at most about m/16 (8 near zero); G.711 clips at 32124.
    unclipped = magnitude <= 32000
    assert np.all(error[unclipped] <= 8 + magnitude[unclipped] / 16)
    assert error.max() == 32767 - 32124 + 1  # -32768 decodes to -32124
    # Re-encoding a decoded value gives the same code back, except 0x7F ("-0") which decodes to 0.
    codes = np.frombuffer(lin2ulaw(ulaw2lin(bytes(range(256)))), dtype=np.uint8)
    assert [c for c in range(256) if codes[c] != c] == [0x7F]


def test_encodes_strided_and_2d_input_in_order() -> None:
    data = ALL_INT16[::7]
    assert lin2ulaw(data) == audioop.lin2ulaw(data.copy().tobytes(), 2)
    grid = ALL_INT16[:12].reshape(3, 4)
    assert lin2ulaw(grid) == lin2ulaw(ALL_INT16[:12])


def test_empty_input() -> None:
    assert lin2ulaw(np.zeros(0, dtype=np.int16)) == b""
    assert ulaw2lin(b"").shape == (0,)


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.uint16])
def test_rejects_other_dtypes(dtype: type) -> None:
    with pytest.raises(TypeError, match="int16"):
        lin2ulaw(np.zeros(4, dtype=dtype))
