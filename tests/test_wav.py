"""mu-law WAV files: exact bytes we write, libsndfile as an independent reader/writer, strict parsing."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile

from app.errors import InvalidAudio
from app.speech.ulaw import lin2ulaw, ulaw2lin
from cdn.wav import UlawWav, parse_ulaw_wav, ulaw_wav, validate_ulaw_wav, wav_duration_s

FMT_MULAW_8K = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)


def chunk(chunk_id: bytes, body: bytes, size: int | None = None, pad: bool = True) -> bytes:
    """One RIFF chunk; ``size`` overrides the size field (to make it lie)."""
    header = chunk_id + struct.pack("<I", len(body) if size is None else size)
    return header + body + (b"\x00" if pad and len(body) % 2 else b"")


def riff(*chunks: bytes, size: int | None = None, form: bytes = b"WAVE") -> bytes:
    body = form + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if size is None else size) + body


def fmt_body(tag: int = 7, channels: int = 1, rate: int = 8000, bits: int = 8, cb: bytes = b"\x00\x00") -> bytes:
    return struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits) + cb


SAMPLES = bytes(range(256)) * 4  # 1024 samples = 0.128 s


# --- writing ---------------------------------------------------------------------------------


def test_ulaw_wav_exact_bytes_even_length() -> None:
    data = b"\x01\x02\x03\x04"
    expected = (
        b"RIFF" + struct.pack("<I", 4 + 26 + 12 + 8 + 4) + b"WAVE"
        + b"fmt " + struct.pack("<I", 18) + struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
        + b"fact" + struct.pack("<II", 4, 4)
        + b"data" + struct.pack("<I", 4) + data
    )
    assert ulaw_wav(data) == expected
    assert len(expected) == 62


def test_ulaw_wav_pads_odd_data_and_counts_the_pad_in_riff_only() -> None:
    wav = ulaw_wav(b"\x10\x20\x30", sample_rate=16000)
    assert len(wav) == 58 + 3 + 1
    assert wav[-1:] == b"\x00"
    assert struct.unpack_from("<I", wav, 4)[0] == len(wav) - 8
    assert struct.unpack_from("<HHIIHHH", wav, 20) == (7, 1, 16000, 16000, 1, 8, 0)
    assert wav[38:46] == b"fact" + struct.pack("<I", 4) and struct.unpack_from("<I", wav, 46)[0] == 3
    assert wav[50:58] == b"data" + struct.pack("<I", 3)
    assert parse_ulaw_wav(wav).ulaw == b"\x10\x20\x30"


@pytest.mark.parametrize("n", [0, 1, 2, 1023, 8000])
def test_round_trip(n: int) -> None:
    payload = (SAMPLES * 8)[:n]
    assert parse_ulaw_wav(ulaw_wav(payload)) == UlawWav(sample_rate=8000, channels=1, bits=8, ulaw=payload)


def test_soundfile_reads_what_we_write() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32768, size=4001, dtype=np.int16)
    ulaw = lin2ulaw(pcm)
    wav = ulaw_wav(ulaw)
    info = soundfile.info(io.BytesIO(wav))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (8000, 1, "ULAW", "WAV")
    assert info.frames == 4001
    decoded, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert rate == 8000
    assert decoded.tolist() == ulaw2lin(ulaw).tolist()
    # and the decoded audio is the original within mu-law quantization
    error = np.abs(decoded.astype(np.int32) - pcm.astype(np.int32))
    assert np.all(error <= 8 + np.abs(pcm.astype(np.int32)) / 16 + 700 * (np.abs(pcm.astype(np.int32)) > 32000))


def test_we_read_what_soundfile_writes() -> None:
    tone = (np.sin(np.arange(2000) * 2 * np.pi * 440 / 8000) * 12000).astype(np.int16)
    buf = io.BytesIO()
    soundfile.write(buf, tone, 8000, format="WAV", subtype="ULAW")
    wav = parse_ulaw_wav(buf.getvalue())
    assert (wav.sample_rate, wav.channels, wav.bits, len(wav.ulaw)) == (8000, 1, 8, 2000)
    reread, _ = soundfile.read(io.BytesIO(buf.getvalue()), dtype="int16")
    assert ulaw2lin(wav.ulaw).tolist() == reread.tolist()
    assert validate_ulaw_wav(buf.getvalue()) == 0.25


# --- tolerated variations --------------------------------------------------------------------


def test_unknown_chunks_are_skipped() -> None:
    list_chunk = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00odd!\x00")  # odd body: padded
    wav = riff(list_chunk, chunk(b"fmt ", FMT_MULAW_8K), chunk(b"junk", b"x" * 7), chunk(b"data", SAMPLES),
               chunk(b"LIST", b"INFO"))
    assert parse_ulaw_wav(wav).ulaw == SAMPLES


def test_sixteen_byte_fmt_without_fact() -> None:
    wav = riff(chunk(b"fmt ", fmt_body(cb=b"")), chunk(b"data", SAMPLES))
    assert parse_ulaw_wav(wav).ulaw == SAMPLES


def test_extensible_format_with_mulaw_subformat() -> None:
    guid = struct.pack("<H", 7) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    ext = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 8000, 1, 8, 22, 8, 4) + guid
    wav = riff(chunk(b"fmt ", ext), chunk(b"data", SAMPLES))
    assert parse_ulaw_wav(wav).sample_rate == 8000


def test_streaming_placeholders_take_the_rest_of_the_file() -> None:
    wav = riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES, size=0xFFFFFFFF), size=0xFFFFFFFF)
    assert parse_ulaw_wav(wav).ulaw == SAMPLES
    assert validate_ulaw_wav(wav) == 0.128


def test_streaming_data_size_with_true_riff_size() -> None:
    wav = riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", b"\x7f" * 801, size=0x7FFFFFFF, pad=False))
    assert parse_ulaw_wav(wav).ulaw == b"\x7f" * 801


def test_riff_placeholder_with_true_data_size() -> None:
    wav = riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"fact", struct.pack("<I", 0)), chunk(b"data", SAMPLES),
               size=0xFFFFFFFF)
    assert parse_ulaw_wav(wav).ulaw == SAMPLES


def test_missing_final_pad_byte_is_tolerated() -> None:
    body = b"WAVE" + chunk(b"fmt ", FMT_MULAW_8K) + chunk(b"data", b"\x01\x02\x03", pad=False)
    wav = b"RIFF" + struct.pack("<I", len(body)) + body
    assert parse_ulaw_wav(wav).ulaw == b"\x01\x02\x03"


# --- rejected --------------------------------------------------------------------------------

GOOD = riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES))

MALFORMED = [
    ("empty", b"", "truncated"),
    ("riff only", b"RIFF\x00\x00", "truncated"),
    ("rifx", b"RIFX" + GOOD[4:], "not a RIFF/WAVE"),
    ("avi", GOOD[:8] + b"AVI " + GOOD[12:], "not a RIFF/WAVE"),
    ("mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 20, "not a RIFF/WAVE"),
    ("pcm", riff(chunk(b"fmt ", fmt_body(tag=1, bits=16)), chunk(b"data", SAMPLES)), "format code 0x0001"),
    ("alaw", riff(chunk(b"fmt ", fmt_body(tag=6)), chunk(b"data", SAMPLES)), "format code 0x0006"),
    ("16 bits", riff(chunk(b"fmt ", fmt_body(bits=16)), chunk(b"data", SAMPLES)), "8 bits"),
    ("short fmt", riff(chunk(b"fmt ", FMT_MULAW_8K[:14]), chunk(b"data", SAMPLES)), "fmt chunk is 14 bytes"),
    (
        "byte rate lies",
        riff(chunk(b"fmt ", struct.pack("<HHIIHHH", 7, 1, 8000, 16000, 1, 8, 0)), chunk(b"data", SAMPLES)),
        "inconsistent",
    ),
    ("cbSize lies", riff(chunk(b"fmt ", fmt_body(cb=b"\x10\x00")), chunk(b"data", SAMPLES)), "cbSize"),
    ("no data", riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"LIST", b"INFO")), "no data chunk"),
    ("no fmt", riff(chunk(b"data", SAMPLES)), "before the fmt"),
    ("header only", riff(), "no fmt chunk"),
    ("data twice", riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES), chunk(b"data", SAMPLES)), "two data"),
    ("fmt twice", riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES)), "two fmt"),
    ("cut in fmt", GOOD[:30], "truncated"),
    ("cut in a chunk header", GOOD[:40], "truncated or a size field is wrong: 2 stray"),
    ("riff size too small", riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES), size=100), "RIFF size 100"),
    ("riff size too big", riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES), size=5000), "RIFF size 5000"),
    ("riff size zero", riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES), size=0), "RIFF size 0"),
    (
        "data size too small",
        riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES, size=1000)),
        "no chunk id at offset 1046",
    ),
    (
        "LIST size past the end",
        riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES), chunk(b"LIST", b"INFO", size=99)),
        "LIST",
    ),
    (
        "streaming data but riff smaller than file",
        riff(chunk(b"fmt ", FMT_MULAW_8K), chunk(b"data", SAMPLES, size=0xFFFFFFFF), size=64),
        "RIFF size 64",
    ),
    (
        "stereo frames cut",
        riff(chunk(b"fmt ", fmt_body(channels=2)), chunk(b"data", b"\x01\x02\x03", pad=True)),
        "whole number",
    ),
    ("trailing junk", GOOD + b"\x00\x00\x00", "3 stray byte"),
    ("trailing zeros", GOOD + bytes(8), "no chunk id at offset 1070"),
]


@pytest.mark.parametrize(("data", "message"), [(d, m) for _, d, m in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_is_rejected_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(InvalidAudio, match=message):
        parse_ulaw_wav(data)


# --- validation ------------------------------------------------------------------------------


def test_validate_returns_duration_in_seconds() -> None:
    assert validate_ulaw_wav(ulaw_wav(b"\xff" * 4000)) == 0.5
    assert wav_duration_s(ulaw_wav(b"\xff" * 12000)) == 1.5
    assert wav_duration_s(ulaw_wav(b"\xff" * 16000, sample_rate=16000)) == 1.0


def test_validate_rejects_wrong_rate() -> None:
    with pytest.raises(InvalidAudio, match="16000 Hz, expected 8000 Hz"):
        validate_ulaw_wav(ulaw_wav(b"\xff" * 16000, sample_rate=16000))
    assert validate_ulaw_wav(ulaw_wav(b"\xff" * 16000, sample_rate=16000), sample_rate=16000) == 1.0


def test_validate_rejects_stereo() -> None:
    wav = riff(chunk(b"fmt ", fmt_body(channels=2)), chunk(b"data", SAMPLES))
    assert parse_ulaw_wav(wav).channels == 2
    assert wav_duration_s(wav) == 0.064
    with pytest.raises(InvalidAudio, match="2 channels"):
        validate_ulaw_wav(wav)


def test_validate_rejects_empty_audio() -> None:
    with pytest.raises(InvalidAudio, match="empty"):
        validate_ulaw_wav(ulaw_wav(b""))


def test_validate_duration_bounds() -> None:
    with pytest.raises(InvalidAudio, match="shorter than 0.05 s"):
        validate_ulaw_wav(ulaw_wav(b"\xff" * 399))
    assert validate_ulaw_wav(ulaw_wav(b"\xff" * 400)) == 0.05
    with pytest.raises(InvalidAudio, match="longer than 1.0 s"):
        validate_ulaw_wav(ulaw_wav(b"\xff" * 8001), max_duration_s=1.0)
    with pytest.raises(InvalidAudio, match="longer than 120"):
        validate_ulaw_wav(ulaw_wav(b"\xff" * (120 * 8000 + 1)))


def test_validate_rejects_garbage() -> None:
    with pytest.raises(InvalidAudio, match="not a RIFF/WAVE"):
        validate_ulaw_wav(b'{"err_code": "INVALID", "err_msg": "bad"}')


def test_a_truncated_body_with_real_sizes_is_rejected():
    from app.errors import InvalidAudio
    from cdn.wav import parse_ulaw_wav, ulaw_wav

    whole = ulaw_wav(bytes(range(256)) * 8)
    with pytest.raises(InvalidAudio, match="truncated"):
        parse_ulaw_wav(whole[: len(whole) - 100])


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFFFFF])
def test_streaming_placeholders_mean_the_rest_of_the_file(placeholder):
    import struct

    from cdn.wav import parse_ulaw_wav, ulaw_wav

    samples = bytes(range(256)) * 8
    whole = bytearray(ulaw_wav(samples))
    data_at = whole.index(b"data")
    struct.pack_into("<I", whole, data_at + 4, placeholder)
    struct.pack_into("<I", whole, 4, placeholder)
    assert parse_ulaw_wav(bytes(whole)).ulaw == samples
