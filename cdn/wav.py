"""G.711 mu-law WAV files: write them, parse them strictly, validate what providers return.

Pure and thread-safe. Python's ``wave`` module cannot handle mu-law, hence this module.

The file we write (all integers little-endian)::

    RIFF <size> WAVE
    fmt  18: format 7 (mu-law), 1 channel, <rate> Hz, <rate> bytes/s, block align 1, 8 bits, cbSize 0
    fact 4:  sample count
    data n:  the mu-law bytes (+ one pad byte when n is odd)

The parser walks the chunks, skips unknown ones (LIST, ...), and raises :class:`InvalidAudio`
for anything malformed. One lie is tolerated: a streaming writer (Deepgram, ffmpeg, OpenAI) does
not know the length when it writes the header and puts a placeholder (0xFFFFFFFF, or 0x7FFFFFFF)
in the RIFF and ``data`` size fields. Such a placeholder ``data`` size means "the rest of the
file", and the RIFF size may then be anything at least the file's size. A real ``data`` size
larger than the file is a truncated body and is rejected. Any other disagreement between a size field and the
bytes is rejected. The ``fact`` chunk's sample count is informational and not checked (streaming
writers cannot know it); the ``data`` chunk is the truth.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from app.errors import InvalidAudio

WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
STREAMING_SIZE = 0xFFFFFFFF
# The placeholders streaming writers put in the data size when they can't know it (OpenAI, Deepgram's
# emulator and ffmpeg use 0xFFFFFFFF; ElevenLabs 0x7FFFFFFF). Any other size larger than the file is a
# truncated body, never "the rest of the file".
STREAMING_PLACEHOLDERS = frozenset({0xFFFFFFFF, 0x7FFFFFFF})


@dataclass(frozen=True)
class UlawWav:
    """A parsed mu-law WAV: ``sample_rate`` in Hz, ``channels``, ``bits`` per sample, the raw bytes."""

    sample_rate: int
    channels: int
    bits: int
    ulaw: bytes

    @property
    def frames(self) -> int:
        """Samples per channel."""
        return len(self.ulaw) // self.channels if self.channels else 0

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def ulaw_wav(ulaw: bytes, sample_rate: int = 8000) -> bytes:
    """A complete mono mu-law WAV file holding ``ulaw`` (one byte per sample) at ``sample_rate`` Hz."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    n = len(ulaw)
    pad = b"\x00" if n % 2 else b""
    fmt = struct.pack("<HHIIHHH", WAVE_FORMAT_MULAW, 1, sample_rate, sample_rate, 1, 8, 0)
    body = b"".join(
        (
            b"WAVE",
            b"fmt ", struct.pack("<I", len(fmt)), fmt,
            b"fact", struct.pack("<II", 4, n),
            b"data", struct.pack("<I", n), bytes(ulaw), pad,
        )
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _parse_fmt(body: bytes) -> tuple[int, int, int]:
    """(channels, sample_rate, bits) of a mu-law ``fmt `` chunk body; InvalidAudio otherwise."""
    if len(body) < 16:
        raise InvalidAudio(f"fmt chunk is {len(body)} bytes, need at least 16")
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise InvalidAudio(f"extensible fmt chunk is {len(body)} bytes, need 40")
        tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
    if tag != WAVE_FORMAT_MULAW:
        raise InvalidAudio(f"format code {tag:#06x} is not mu-law ({WAVE_FORMAT_MULAW:#06x})")
    if len(body) >= 18:
        cb_size = struct.unpack_from("<H", body, 16)[0]
        if 18 + cb_size > len(body):
            raise InvalidAudio(f"fmt cbSize {cb_size} runs past the {len(body)}-byte fmt chunk")
    if channels < 1:
        raise InvalidAudio("fmt says 0 channels")
    if bits != 8:
        raise InvalidAudio(f"mu-law must be 8 bits per sample, fmt says {bits}")
    if rate < 1:
        raise InvalidAudio("fmt says a sample rate of 0 Hz")
    if block_align != channels or byte_rate != rate * channels:
        raise InvalidAudio(
            f"fmt is inconsistent: block align {block_align}, {byte_rate} bytes/s "
            f"for {channels} channel(s) at {rate} Hz"
        )
    return channels, rate, bits


def parse_ulaw_wav(data: bytes) -> UlawWav:
    """Parse a mu-law WAV file; raise :class:`InvalidAudio` saying what is wrong with it."""
    data = bytes(data)
    if len(data) < 12:
        raise InvalidAudio(f"truncated: {len(data)} bytes is shorter than a RIFF header")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudio("not a RIFF/WAVE file")
    riff_size = struct.unpack_from("<I", data, 4)[0]
    fmt: tuple[int, int, int] | None = None
    samples: bytes | None = None
    streaming = False
    pos = 12
    while pos < len(data):
        if len(data) - pos < 8:
            raise InvalidAudio(
                f"truncated or a size field is wrong: {len(data) - pos} stray byte(s) at offset {pos}"
            )
        chunk_id = data[pos : pos + 4]
        if not all(0x20 <= c < 0x7F for c in chunk_id):
            raise InvalidAudio(f"no chunk id at offset {pos} (got {chunk_id!r}): a chunk size field is wrong")
        size = struct.unpack_from("<I", data, pos + 4)[0]
        start = pos + 8
        left = len(data) - start
        if size > left:
            if chunk_id != b"data" or size not in STREAMING_PLACEHOLDERS:
                raise InvalidAudio(
                    f"truncated: {chunk_id!r} chunk claims {size} bytes, {left} left in the file"
                )
            streaming = True
            size = left
        body = data[start : start + size]
        if chunk_id == b"fmt ":
            if fmt is not None:
                raise InvalidAudio("two fmt chunks")
            fmt = _parse_fmt(body)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidAudio("data chunk before the fmt chunk")
            if samples is not None:
                raise InvalidAudio("two data chunks")
            samples = body
        pos = start + size + (size % 2)
        pos = min(pos, len(data))  # a missing pad byte after the last chunk is a harmless writer slip
    if fmt is None:
        raise InvalidAudio("no fmt chunk")
    if samples is None:
        raise InvalidAudio("no data chunk")
    riff_ok = riff_size + 8 == len(data) or riff_size == STREAMING_SIZE or (streaming and riff_size + 8 > len(data))
    if not riff_ok:
        raise InvalidAudio(f"RIFF size {riff_size} disagrees with the {len(data)}-byte file")
    channels, rate, bits = fmt
    if len(samples) % channels:
        raise InvalidAudio(f"{len(samples)} data bytes is not a whole number of {channels}-channel frames")
    return UlawWav(sample_rate=rate, channels=channels, bits=bits, ulaw=samples)


def validate_ulaw_wav(
    data: bytes,
    sample_rate: int = 8000,
    min_duration_s: float = 0.05,
    max_duration_s: float = 120.0,
) -> float:
    """Check that ``data`` is a mono mu-law WAV at ``sample_rate`` Hz; return its duration in s.

    Raises :class:`InvalidAudio` when it does not parse, has another rate or more than one
    channel, or lasts less than ``min_duration_s`` or more than ``max_duration_s`` seconds.
    """
    wav = parse_ulaw_wav(data)
    if wav.sample_rate != sample_rate:
        raise InvalidAudio(f"sample rate is {wav.sample_rate} Hz, expected {sample_rate} Hz")
    if wav.channels != 1:
        raise InvalidAudio(f"{wav.channels} channels, expected mono")
    duration = wav.duration_s
    if not wav.ulaw:
        raise InvalidAudio("no audio: the data chunk is empty")
    if duration < min_duration_s:
        raise InvalidAudio(f"audio is {duration:.3f} s long, shorter than {min_duration_s} s")
    if duration > max_duration_s:
        raise InvalidAudio(f"audio is {duration:.1f} s long, longer than {max_duration_s} s")
    return duration


def wav_duration_s(data: bytes) -> float:
    """Duration in seconds of a mu-law WAV file (any rate or channel count); InvalidAudio if malformed."""
    return parse_ulaw_wav(data).duration_s
