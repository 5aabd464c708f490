"""A Deepgram-compatible text-to-speech server on loopback, speaking with the local Piper voice.

It follows the REST API the way Warmline and the official SDK use it:

    POST /v1/speak?model=aura-2-thalia-en&encoding=mulaw&container=wav&sample_rate=8000
    Authorization: Token <api_key>
    {"text": "..."}

    200  audio streamed with chunked transfer encoding; headers dg-request-id (uuid4),
         dg-model-name, dg-char-count, content-type audio/wav (container=none: the raw codec type).
         A WAV has Deepgram's 44-byte header (16-byte fmt chunk) with the RIFF and data sizes
         set to 0xFFFFFFFF, because a streamed response cannot know its length.
    400  unknown model / parameter, bad encoding, container or sample rate, a body that is not
         exactly {"text": <non-empty string>}
    401  missing or wrong key          413  text over 2000 characters
    429  more requests in flight than ``concurrency_limit`` (a request holds its slot until its
         response is complete: a success frees it just before the last chunk is written, so a
         client that waits for that chunk before sending its next request is never over the limit)
    Every error is JSON {"err_code", "err_msg", "request_id"} with a ``dg-error`` header.

Latency: the first byte is sent ``ttfb_ms + per_char_ms * len(text)`` (+ uniform ``jitter_ms``)
after the request arrived (synthesis time is counted inside it). Injected failures: with
probability ``failure_rate`` (a seeded RNG, drawn in arrival order) a request fails in one of
``failure_modes``: "500", "503", "429" (JSON errors), "stall" (headers and a first chunk, then
silence for ``stall_ms``, then the connection closes), "truncate" (half the body, then close),
"garbage" (200 with a non-audio body), "wrong_rate" (a valid WAV at the other rate).

Deviations from the real service, on purpose: no mp3/opus/flac/aac (encoding is required and
must be linear16, mulaw or alaw), no callbacks. ``speed`` is applied by the voice (Piper's
length scale). Text Piper cannot speak (no letter or digit) is a 400.

Thread-safe: every request runs on its own thread; counters and the RNG are under one lock.
The Piper voice is loaded lazily on the first request (one per process).

    python -m simulator.deepgram_emulator --port 8030 --ttfb-ms 150 --failure-rate 0.05
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import soxr

from app.errors import InvalidText, SynthesisFailed
from app.speech.audio import pcm16_to_ulaw_wav, trim_silence
from app.speech.wav import parse_ulaw_wav

log = logging.getLogger("warmline.deepgram_emulator")

FAILURE_MODES = ("500", "503", "429", "stall", "truncate", "garbage", "wrong_rate")
MAX_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024
MODEL_RE = re.compile(r"^aura-(?:2-)?[a-z]+-[a-z]{2}$")
SAMPLE_RATES = {"mulaw": (8000, 16000), "alaw": (8000, 16000), "linear16": (8000, 16000, 24000, 32000, 48000)}
DEFAULT_RATES = {"mulaw": 8000, "alaw": 8000, "linear16": 24000}
CONTAINERS = ("wav", "none")
ACCEPTED_IGNORED = ("mip_opt_out", "tag")
WAV_FORMAT = {"linear16": (1, 16), "alaw": (6, 8), "mulaw": (7, 8)}
RAW_CONTENT_TYPES = {"linear16": "audio/l16", "alaw": "audio/x-alaw-basic", "mulaw": "audio/basic"}
_STREAMING_SIZE = 0xFFFFFFFF


class Speaker(Protocol):
    """What the emulator speaks with: PiperProvider, or anything with the same method."""

    def synthesize_pcm(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, int]: ...


class ApiError(Exception):
    """A Deepgram error response: status, err_code, err_msg."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# --- audio ------------------------------------------------------------------------------------

_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def lin2alaw(pcm: np.ndarray) -> bytes:
    """G.711 A-law of int16 samples (the classic Sun g711.c algorithm, vectorized)."""
    value = pcm.astype(np.int32) >> 3
    negative = value < 0
    mask = np.where(negative, 0x55, 0xD5)
    value = np.where(negative, -value - 1, value)
    seg = np.searchsorted(_ALAW_SEG_END, value, side="left")
    shift = np.where(seg < 2, 1, seg)
    mantissa = (value >> np.minimum(shift, 12)) & 0x0F
    alaw = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | mantissa)
    return (alaw ^ mask).astype(np.uint8).tobytes()


def streaming_wav_header(encoding: str, sample_rate: int) -> bytes:
    """Deepgram's 44-byte WAV header for a mono stream, sizes 0xFFFFFFFF (length unknown)."""
    fmt_code, bits = WAV_FORMAT[encoding]
    block_align = bits // 8
    fmt = struct.pack("<HHIIHH", fmt_code, 1, sample_rate, sample_rate * block_align, block_align, bits)
    return (
        b"RIFF"
        + struct.pack("<I", _STREAMING_SIZE)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", _STREAMING_SIZE)
    )


def encode(pcm: np.ndarray, rate_in: int, encoding: str, sample_rate: int) -> bytes:
    """Raw samples of ``pcm`` (int16 mono at ``rate_in``) in ``encoding`` at ``sample_rate``.

    Resampled and silence-trimmed like every Warmline clip (``app.speech.audio``).
    """
    if encoding == "mulaw":
        return parse_ulaw_wav(pcm16_to_ulaw_wav(pcm, rate_in, sample_rate)).ulaw
    floats = pcm.astype(np.float32)
    if rate_in != sample_rate and len(floats):
        floats = soxr.resample(floats, rate_in, sample_rate)
    ints = trim_silence(np.clip(np.rint(floats), -32768, 32767).astype(np.int16), sample_rate)
    if encoding == "alaw":
        return lin2alaw(ints)
    return ints.astype("<i2").tobytes()


def _default_speaker() -> Speaker:
    from app.speech.providers.piper import PiperProvider

    return PiperProvider()


# --- the request ------------------------------------------------------------------------------


def _parse_rate(raw: str, encoding: str) -> int:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value.is_integer() or int(value) not in SAMPLE_RATES[encoding]:
        allowed = ", ".join(str(r) for r in SAMPLE_RATES[encoding])
        raise ApiError(
            400, "INVALID_QUERY_PARAMETER", f"sample_rate {raw!r} is not supported for {encoding} ({allowed})"
        )
    return int(value)


def parse_query(query: str) -> dict[str, Any]:
    """Validated speak options from a query string; raises ApiError(400)."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in params:
            raise ApiError(400, "INVALID_QUERY_PARAMETER", f"parameter {name!r} given twice")
        params[name] = value
    model = params.pop("model", "aura-asteria-en")
    if not MODEL_RE.match(model):
        raise ApiError(
            400, "INVALID_QUERY_PARAMETER", f"no such model {model!r} (aura-<name>-en or aura-2-<name>-<lang>)"
        )
    encoding = params.pop("encoding", None)
    if encoding is None:
        raise ApiError(400, "INVALID_QUERY_PARAMETER", "the emulator needs encoding= (linear16, mulaw or alaw)")
    if encoding not in SAMPLE_RATES:
        raise ApiError(
            400, "INVALID_QUERY_PARAMETER", f"encoding {encoding!r} is not supported (linear16, mulaw, alaw)"
        )
    container = params.pop("container", "wav")
    if container not in CONTAINERS:
        raise ApiError(400, "INVALID_QUERY_PARAMETER", f"container {container!r} is not supported for {encoding}")
    raw_rate = params.pop("sample_rate", None)
    sample_rate = DEFAULT_RATES[encoding] if raw_rate is None else _parse_rate(raw_rate, encoding)
    speed = params.pop("speed", None)
    if speed is not None:
        try:
            speed_value = float(speed)
        except ValueError:
            speed_value = 0.0
        if not 0.7 <= speed_value <= 1.5:
            raise ApiError(400, "INVALID_QUERY_PARAMETER", f"speed {speed!r} must be between 0.7 and 1.5")
    if "bit_rate" in params:
        raise ApiError(400, "INVALID_QUERY_PARAMETER", f"bit_rate is not configurable for {encoding}")
    for name in ACCEPTED_IGNORED:
        params.pop(name, None)
    if params:
        raise ApiError(400, "INVALID_QUERY_PARAMETER", f"unsupported parameter(s): {', '.join(sorted(params))}")
    return {
        "model": model,
        "encoding": encoding,
        "container": container,
        "sample_rate": sample_rate,
        "speed": 1.0 if speed is None else speed_value,
    }


def parse_body(body: bytes) -> str:
    """The text of a speak request body; raises ApiError(400/413)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "INVALID_JSON", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or set(payload) != {"text"}:
        raise ApiError(400, "INVALID_JSON", 'the body must be a JSON object with exactly one field, "text"')
    text = payload["text"]
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "INVALID_JSON", '"text" must be a non-empty string')
    if len(text) > MAX_CHARS:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"text is {len(text)} characters; the limit is {MAX_CHARS}")
    return text


# --- the server -------------------------------------------------------------------------------


class DeepgramEmulator:
    """A Deepgram TTS server on ``host`` (loopback), on its own thread. See the module docstring.

    Thread-safe. Knobs are read on every request, so a test may change them while it runs.
    Times are in milliseconds. ``start()`` returns the base URL (``http://127.0.0.1:PORT``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "test-key",
        concurrency_limit: int = 15,
        ttfb_ms: float = 150.0,
        per_char_ms: float = 1.0,
        jitter_ms: float = 0.0,
        failure_rate: float = 0.0,
        failure_modes: Iterable[str] = FAILURE_MODES,
        seed: int = 0,
        stall_ms: float = 3000.0,
        chunk_bytes: int = 1600,
        speaker: Speaker | None = None,
        cache_size: int = 256,
    ) -> None:
        modes = tuple(failure_modes)
        unknown = set(modes) - set(FAILURE_MODES)
        if unknown:
            raise ValueError(f"unknown failure modes {sorted(unknown)}; choose from {FAILURE_MODES}")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be in [0, 1]")
        self.host = host
        self.port = port
        self.api_key = api_key
        self.concurrency_limit = concurrency_limit
        self.ttfb_ms = ttfb_ms
        self.per_char_ms = per_char_ms
        self.jitter_ms = jitter_ms
        self.failure_rate = failure_rate
        self.failure_modes = modes
        self.stall_ms = stall_ms
        self.chunk_bytes = chunk_bytes
        self._speaker = speaker
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, float], tuple[np.ndarray, int]] = OrderedDict()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._speaker_lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self.requests_total = 0
        self.by_status: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.chars_total = 0

    # lifecycle

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> str:
        """Bind, serve on a daemon thread, return the base URL. Ready when this returns."""
        if self._server is not None:
            raise RuntimeError("the emulator is already started")
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="deepgram-emulator", daemon=True
        )
        self._thread.start()
        log.info("deepgram emulator listening on %s", self.base_url)
        return self.base_url

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, wake stalled responses, wait (bounded) for requests in flight."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would keep handler threads alive
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.in_flight and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # stats

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (what ``GET /stats`` returns)."""
        with self._lock:
            return {
                "requests_total": self.requests_total,
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "failures": dict(sorted(self.failures.items())),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "chars_total": self.chars_total,
            }

    # request plumbing (called from handler threads)

    def _connections_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _connections_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _count(self, status: int) -> None:
        with self._lock:
            self.by_status[status] += 1

    def _admit(self) -> bool:
        with self._lock:
            self.requests_total += 1
            if self.in_flight >= self.concurrency_limit:
                return False
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return True

    def _release(self) -> None:
        with self._idle:
            self.in_flight -= 1
            self._idle.notify_all()

    def _draw(self, text: str) -> tuple[str | None, float]:
        """(failure mode or None, time to first byte in s) for one request, in arrival order."""
        with self._lock:
            mode = None
            if self.failure_rate > 0 and self._rng.random() < self.failure_rate:
                mode = self._rng.choice(self.failure_modes)
            jitter = self._rng.uniform(0, self.jitter_ms) if self.jitter_ms > 0 else 0.0
        ttfb = (
            self.ttfb_ms + jitter
            if mode in ("500", "503", "429")
            else (self.ttfb_ms + self.per_char_ms * len(text) + jitter)
        )
        return mode, ttfb / 1000.0

    def _pcm(self, text: str, speed: float) -> tuple[np.ndarray, int]:
        key = (text, speed)
        with self._speaker_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            if self._speaker is None:
                self._speaker = _default_speaker()
            speaker = self._speaker
        try:
            pcm, rate = speaker.synthesize_pcm(text, speed=speed)
        except InvalidText as exc:
            raise ApiError(400, "INVALID_TEXT", f"nothing to say: {exc}") from exc
        except SynthesisFailed as exc:
            raise ApiError(500, "INTERNAL_SERVER_ERROR", f"synthesis failed: {exc}") from exc
        with self._speaker_lock:
            self._cache[key] = (pcm, rate)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return pcm, rate

    def render(self, text: str, options: dict[str, Any], *, wrong_rate: bool = False) -> bytes:
        """The response body for ``text`` with the parsed ``options``."""
        encoding, rate = options["encoding"], options["sample_rate"]
        if wrong_rate:
            rate = 16000 if rate != 16000 else 8000
        pcm, rate_in = self._pcm(text, options["speed"])
        payload = encode(pcm, rate_in, encoding, rate)
        if options["container"] == "wav":
            return streaming_wav_header(encoding, rate) + payload
        return payload

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the emulator stops; True if it is stopping."""
        return self._stopping.wait(max(0.0, seconds))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    emulator: DeepgramEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small header/chunk writes must not wait for delayed ACKs
    server_version = "DeepgramEmulator/1.0"
    timeout = 60  # seconds an idle keep-alive connection is kept
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.emulator._connections_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._connections_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # routing

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/stats":
            self._send_json(200, self.server.emulator.stats(), {})
        else:
            self._send_json(404, {"err_code": "NOT_FOUND", "err_msg": "not found"}, {})

    def do_POST(self) -> None:
        emulator = self.server.emulator
        arrived = time.monotonic()
        request_id = str(uuid.uuid4())
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except ApiError as exc:
            self.close_connection = True
            self._error(exc, request_id)
            return
        if url.path != "/v1/speak":
            self._error(ApiError(404, "NOT_FOUND", f"no route {url.path}"), request_id)
            return
        if self.headers.get("Authorization", "") != f"Token {emulator.api_key}":
            with emulator._lock:
                emulator.requests_total += 1
            self._error(ApiError(401, "INVALID_AUTH", "Invalid credentials."), request_id)
            return
        if not emulator._admit():
            self._error(ApiError(429, "TOO_MANY_REQUESTS", "Too many requests. Please try again later."), request_id)
            return
        released = False

        def release() -> None:  # once per request: before the last chunk, or when the handler ends
            nonlocal released
            if not released:
                released = True
                emulator._release()

        try:
            self._speak(emulator, url.query, body, request_id, arrived, release)
        except ApiError as exc:
            self._error(exc, request_id)
        finally:
            release()

    def _speak(self, emulator: DeepgramEmulator, query: str, body: bytes, request_id: str, arrived: float,
               release: Callable[[], None]) -> None:
        """Answer one admitted request; ``release`` frees its concurrency slot (called just before the
        final chunk: the client cannot send its next request until it has read it)."""
        options = parse_query(query)
        text = parse_body(body)
        mode, ttfb_s = emulator._draw(text)
        if mode is not None:
            with emulator._lock:
                emulator.failures[mode] += 1
        if mode in ("500", "503", "429"):
            emulator.sleep(ttfb_s - (time.monotonic() - arrived))
            messages = {"500": "Internal server error.", "503": "Service unavailable.", "429": "Too many requests."}
            codes = {"500": "INTERNAL_SERVER_ERROR", "503": "SERVICE_UNAVAILABLE", "429": "TOO_MANY_REQUESTS"}
            raise ApiError(int(mode), codes[mode], messages[mode])
        if mode == "garbage":
            audio = b"<html><head><title>502 Bad Gateway</title></head><body>upstream error</body></html>\n"
        else:
            audio = emulator.render(text, options, wrong_rate=mode == "wrong_rate")
        with emulator._lock:
            emulator.chars_total += len(text)
        if emulator.sleep(ttfb_s - (time.monotonic() - arrived)):
            self.close_connection = True
            return
        content_type = "audio/wav" if options["container"] == "wav" else RAW_CONTENT_TYPES[options["encoding"]]
        size = max(1, emulator.chunk_bytes)
        emulator._count(200)
        try:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("dg-request-id", request_id)
            self.send_header("dg-model-name", options["model"])
            self.send_header("dg-char-count", str(len(text)))
            self.end_headers()
            if mode == "stall":
                self._chunk(audio[: min(size, len(audio) // 4)])
                self.wfile.flush()
                emulator.sleep(emulator.stall_ms / 1000.0)
                self.close_connection = True
                return
            end = len(audio) // 2 if mode == "truncate" else len(audio)
            for offset in range(0, end, size):
                self._chunk(audio[offset : min(offset + size, end)])
            if mode == "truncate":
                self.wfile.flush()
                self.close_connection = True
                return
            release()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as exc:  # the client went away (or stop() shut the socket) mid-body
            log.debug("connection lost mid-body: %r", exc)
            self.close_connection = True

    # HTTP helpers

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError as exc:
            raise ApiError(400, "BAD_REQUEST", "bad Content-Length") from exc
        if length < 0 or length > MAX_BODY_BYTES:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            line = self.rfile.readline(1024).strip()
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError as exc:
                raise ApiError(400, "BAD_REQUEST", "bad chunked body") from exc
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return bytes(data)
            if len(data) + size > MAX_BODY_BYTES:
                raise ApiError(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
            data += self.rfile.read(size)
            self.rfile.readline(1024)

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n")

    def _error(self, exc: ApiError, request_id: str) -> None:
        self.server.emulator._count(exc.status)
        body = {"err_code": exc.code, "err_msg": exc.message, "request_id": request_id}
        self._send_json(exc.status, body, {"dg-request-id": request_id, "dg-error": exc.message})

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:
            log.debug("connection lost before the response: %r", exc)
            self.close_connection = True


def main(argv: list[str] | None = None) -> None:
    """Run the emulator in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m simulator.deepgram_emulator", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8030)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--concurrency-limit", type=int, default=15)
    parser.add_argument("--ttfb-ms", type=float, default=150.0)
    parser.add_argument("--per-char-ms", type=float, default=1.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--failure-modes", default=",".join(FAILURE_MODES), help="comma-separated")
    parser.add_argument("--stall-ms", type=float, default=3000.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    emulator = DeepgramEmulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        concurrency_limit=args.concurrency_limit,
        ttfb_ms=args.ttfb_ms,
        per_char_ms=args.per_char_ms,
        jitter_ms=args.jitter_ms,
        failure_rate=args.failure_rate,
        failure_modes=[m for m in args.failure_modes.split(",") if m],
        seed=args.seed,
        stall_ms=args.stall_ms,
    )
    print(emulator.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
