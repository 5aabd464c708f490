"""Deepgram Aura text-to-speech over REST: one request per <= 2000 characters, mu-law WAV back.

    POST {base_url}/v1/speak?model=<model>&encoding=mulaw&container=wav&sample_rate=<rate>
    Authorization: Token <key>
    {"text": "..."}

Deepgram streams the WAV (chunked) and may write 0xFFFFFFFF as the RIFF and data sizes; the
provider reads the whole body, validates it and re-wraps the mu-law payload in a WAV with exact
sizes. Foreign errors (httpx, HTTP statuses, bad bodies) are translated here, once:

    429, 5xx, timeouts, connection / protocol / mid-body read errors  -> SynthesisRetryable
    400, 401, 403, 404, 413, 422 and every other 4xx                 -> SynthesisRejected
    a 2xx body that is not a valid mu-law WAV at the requested rate  -> InvalidAudio

``synthesize`` is single-shot: it never retries. Callers decide (precompute backs off and tries
again later; a live call has a deadline and falls back to ``<Say>``).
"""

from __future__ import annotations

import json
import logging
import time

import httpx

from app.errors import InvalidAudio, SynthesisRejected, SynthesisRetryable
from app.speech.canon import JOIN
from app.speech.providers.base import MAX_CHARS, check_text, request_pieces
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav, ulaw_wav, validate_ulaw_wav

log = logging.getLogger("warmline.deepgram")

DEFAULT_BASE_URL = "https://api.deepgram.com"
MAX_REQUEST_CHARS = MAX_CHARS
"""Deepgram's limit on the text of one request (longer -> 413)."""
MAX_TEXT_CHARS = 20_000
"""The most ``synthesize`` accepts in one call (split into requests of MAX_REQUEST_CHARS)."""
_MIN_CHARS_PER_S = 5.0


def make_deepgram_client(
    *,
    connect_timeout: float = 2.0,
    read_timeout: float = 10.0,
    max_connections: int = 20,
    max_keepalive: int = 10,
) -> httpx.Client:
    """A pooled ``httpx.Client`` for Deepgram; create ONE per process and share it.

    ``httpx.Client`` is safe to use from many threads at once (its connection pool is locked),
    so every request thread of a worker shares this one client and its kept-alive TLS
    connections. It is NOT safe across ``fork()``: create it in each worker after the fork
    (lazily, on first use), never in the gunicorn master. Timeouts are in seconds; the read
    timeout bounds each wait for the next chunk of the streamed body, not the whole request.
    """
    return httpx.Client(
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive),
        headers={"User-Agent": "warmline/0.1"},
    )


class DeepgramProvider:
    """Deepgram Aura TTS. Safe to share across threads (state is read-only; the client is pooled).

    Not safe across ``fork()`` because the ``httpx.Client`` is not: build one per worker process.
    The constructor does no I/O. ``max_concurrency`` is Deepgram's usual per-project limit of
    concurrent REST requests; callers size their pools by it.
    """

    name = "deepgram"
    max_concurrency = 15

    def __init__(self, *, client: httpx.Client, api_key: str, base_url: str = DEFAULT_BASE_URL) -> None:
        self._client = client
        self._api_key = api_key
        self._url = base_url.rstrip("/") + "/v1/speak"

    def synthesize(self, text: str, voice: Voice) -> bytes:
        """Speak ``text`` in ``voice``; return a validated mono mu-law WAV at ``voice.sample_rate``.

        The text is stripped. Texts over 2000 characters become several requests (at sentence
        boundaries), made one after another; their mu-law payloads are joined into one WAV.
        Texts over MAX_TEXT_CHARS, empty or without a letter or digit raise InvalidText.
        Raises InvalidText, SynthesisRetryable, SynthesisRejected or InvalidAudio; never retries.
        """
        # Join marks (app.speech.canon.JOIN) are ours: Aura gets the words. It cannot be aligned, so
        # a marked piece is spoken as it is (without a full stop where it continues a sentence).
        text = check_text(text.strip().strip(JOIN).strip(), max_chars=MAX_TEXT_CHARS)
        if voice.provider != self.name:
            raise SynthesisRejected(f"deepgram cannot speak a {voice.provider!r} voice")
        if voice.encoding != "mulaw":
            raise SynthesisRejected(f"Warmline publishes mu-law only, not {voice.encoding!r}")
        payloads = [self._request(piece, voice) for piece in request_pieces(text)]
        return ulaw_wav(b"".join(payloads), voice.sample_rate)

    def _params(self, voice: Voice) -> dict[str, str]:
        params = {
            "model": voice.model,
            "encoding": "mulaw",
            "container": "wav",
            "sample_rate": str(voice.sample_rate),
        }
        if voice.speed != 1.0:
            # Speed is part of the content key, so it must reach the provider; 1.0 is the default.
            params["speed"] = f"{voice.speed:g}"
        return params

    def _request(self, text: str, voice: Voice) -> bytes:
        """One POST; return the mu-law payload of the validated WAV body."""
        started = time.perf_counter()
        request_id: str | None = None
        try:
            with self._client.stream(
                "POST",
                self._url,
                params=self._params(voice),
                headers={"Authorization": f"Token {self._api_key}", "Content-Type": "application/json"},
                content=json.dumps({"text": text}, ensure_ascii=False).encode("utf-8"),
            ) as response:
                request_id = response.headers.get("dg-request-id")
                body = response.read()
        except httpx.TimeoutException as exc:
            log.warning("deepgram timeout request_id=%s model=%s chars=%d: %r", request_id, voice.model, len(text), exc)
            raise SynthesisRetryable(f"deepgram timed out: {exc!r}", request_id=request_id) from exc
        except httpx.RequestError as exc:
            # TransportError (connect, remote protocol, read errors mid-body) and DecodingError.
            log.warning(
                "deepgram transport error request_id=%s model=%s chars=%d: %r", request_id, voice.model, len(text), exc
            )
            raise SynthesisRetryable(f"deepgram connection failed: {exc!r}", request_id=request_id) from exc
        ms = (time.perf_counter() - started) * 1000
        status = response.status_code
        if status >= 400:
            message, request_id = _error_details(response, request_id)
            log.warning(
                "deepgram error status=%d request_id=%s model=%s chars=%d ms=%.0f: %s",
                status,
                request_id,
                voice.model,
                len(text),
                ms,
                message,
            )
            error = SynthesisRetryable if status == 429 or status >= 500 else SynthesisRejected
            raise error(f"deepgram {status}: {message}", status=status, request_id=request_id)
        if status >= 300:
            # Deepgram does not redirect; a 3xx means base_url points somewhere else.
            raise SynthesisRejected(f"deepgram answered {status}, not audio", status=status, request_id=request_id)
        try:
            validate_ulaw_wav(body, voice.sample_rate, max_duration_s=_max_duration_s(text, voice))
            wav = parse_ulaw_wav(body)
        except InvalidAudio as exc:
            log.warning(
                "deepgram invalid audio request_id=%s model=%s chars=%d bytes=%d: %s",
                request_id,
                voice.model,
                len(text),
                len(body),
                exc,
            )
            raise InvalidAudio(f"deepgram request {request_id}: {exc}") from exc
        log.info(
            "deepgram tts request_id=%s model=%s chars=%d ms=%.0f bytes=%d",
            request_id,
            voice.model,
            len(text),
            ms,
            len(body),
        )
        return wav.ulaw


def _max_duration_s(text: str, voice: Voice) -> float:
    """The longest audio plausible for ``text``: 120 s, or 5 characters a second (far slower than speech)."""
    return max(120.0, len(text) / _MIN_CHARS_PER_S / voice.speed)


def _error_details(response: httpx.Response, request_id: str | None) -> tuple[str, str | None]:
    """(err_msg, request_id) from a Deepgram error response; tolerant of non-JSON bodies."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("err_msg") or body.get("message") or body.get("err_code")
        request_id = request_id or body.get("request_id")
        if message:
            return str(message), request_id
    text = response.text.strip()
    return (text[:200] if text else response.reason_phrase or "no detail"), request_id
