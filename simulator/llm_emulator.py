"""An OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

``POST /v1/chat/completions`` with bearer auth and request validation (OpenAI-shaped errors:
``{"error": {"message", "type", "code"}}``), a latency model (base + per output token,
uniform jitter, seeded), injected failures and scripted answers::

    with LLMEmulator(api_key="k", base_ms=50, per_token_ms=5) as llm:
        llm.inject("500")                       # the next request fails with HTTP 500
        responder = OpenAIResponder(client=..., base_url=llm.base_url, api_key="k", model="m")

Failure modes for :meth:`LLMEmulator.inject` (and ``fault_rate``/``fault_modes``):
``"500"``, ``"429"``, ``"stall"`` (no answer for ``stall_s`` — longer than a client timeout),
``"empty"`` (content ``""``), ``"long"`` (a 20,000-character reply), ``"bad_json"`` (a 200 whose
body is not JSON). ``responses`` is a callable ``(request_json) -> str`` for the reply content;
the default gives a canned helpful answer (``[END]`` after a goodbye). :func:`faq_responses`
answers like the built-in FAQ responder for a businesses file.

Streaming: a request with ``"stream": true`` is answered with server-sent events like OpenAI's
(``data: {chat.completion.chunk}`` lines, ``choices[0].delta.content`` about 4 characters -- one
token -- each, the last chunk with ``finish_reason``, then ``data: [DONE]``): the first token after
``ttft_ms`` (default: the same ``base_ms`` + jitter a whole reply waits), then one token every
``per_token_ms``, so a streamed reply ends when the unstreamed one would have arrived.
``stream_mode="ignore"`` models a server that ignores ``stream`` (one JSON body). ``timing`` (a
callable ``(request, content) -> (first_token_s, per_token_s)``) replaces the latency model for
both kinds, so a benchmark can give each reply the same total time streamed or not.

Thread-safe: a ``ThreadingHTTPServer`` with one thread per connection; counters and the fault
queue sit behind a lock. ``stop()`` releases stalled requests and joins the server thread.
Run standalone: ``python -m simulator.llm_emulator --port 8700 --api-key dev``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

FAULT_MODES = ("500", "429", "stall", "empty", "long", "bad_json")
LONG_REPLY_CHARS = 20_000
MAX_BODY_BYTES = 1 << 20
ROLES = ("system", "user", "assistant")

Responses = Callable[[dict[str, Any]], str]
Timing = Callable[[dict[str, Any], str], tuple[float, float]]
STREAM_MODES = ("sse", "ignore")
_TOKEN_RE = re.compile(r"\s*\S{1,4}|\s+$")


def tokens(content: str) -> list[str]:
    """``content`` in pieces of about one token (up to 4 non-space characters with the spaces before them).

    Joined, the pieces give ``content`` back exactly.
    """
    return _TOKEN_RE.findall(content)


def canned_responses(request: dict[str, Any]) -> str:
    """The default scripted answer: deterministic, two short sentences; goodbye + [END] on a goodbye."""
    last = next((m["content"] for m in reversed(request["messages"]) if m["role"] == "user"), "")
    lowered = last.lower()
    if "bye" in lowered or "that's all" in lowered:
        return "Thanks for calling. Goodbye! [END]"
    return "Sure, I can help with that. Is there anything else I can help you with?"


def long_reply(chars: int = LONG_REPLY_CHARS) -> str:
    """A reply of exactly ``chars`` characters made of numbered sentences."""
    out: list[str] = []
    size = 0
    i = 0
    while size < chars:
        i += 1
        sentence = f"This is sentence number {i} of a reply that is far too long to speak."
        out.append(sentence)
        size += len(sentence) + 1
    return " ".join(out)[:chars]


def faq_responses(businesses: Any) -> Responses:
    """Answers like :class:`~app.responders.faq.FaqResponder` for the business the system prompt names.

    Adds the ``[END]``/``[TRANSFER]`` markers the OpenAI responder expects for those actions.
    """
    from app.responders.faq import FaqResponder

    faq = FaqResponder()
    by_name = {b.name: b for b in businesses}
    prefix = "You are the receptionist of "

    def respond(request: dict[str, Any]) -> str:
        system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
        first = system.splitlines()[0] if system else ""
        name = first[len(prefix):].rsplit(", answering a phone call.", 1)[0] if first.startswith(prefix) else ""
        business = by_name.get(name)
        if business is None:
            return canned_responses(request)
        roles = {"user": "caller", "assistant": "agent"}
        turns = [{"role": roles[m["role"]], "text": m["content"]} for m in request["messages"] if m["role"] in roles]
        utterance = turns.pop()["text"] if turns and turns[-1]["role"] == "caller" else ""
        reply = faq.reply(business, turns, utterance)
        marker = {"end": " [END]", "transfer": " [TRANSFER]"}.get(reply.action, "")
        return reply.text + marker

    return respond


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def validate_request(body: bytes) -> dict[str, Any]:
    """Parse and check a chat-completions request; raises _BadRequest with an OpenAI-style message."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(400, f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(data, dict):
        raise _BadRequest(400, "The request body must be a JSON object.")
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise _BadRequest(400, "you must provide a model parameter")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest(400, "'messages' must be a non-empty array")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES or not isinstance(msg.get("content"), str):
            raise _BadRequest(400, f"messages[{i}] must be an object with a role in {ROLES} and string content")
    if messages[-1]["role"] != "user":
        raise _BadRequest(400, "the last message must come from the user")
    for key in ("max_tokens", "temperature"):
        if key in data and (not isinstance(data[key], (int, float)) or isinstance(data[key], bool) or data[key] < 0):
            raise _BadRequest(400, f"'{key}' must be a non-negative number")
    return data


class LLMEmulator:
    """One emulated chat-completions server. ``start()`` -> base URL; ``stop()``; a context manager."""

    def __init__(
        self,
        *,
        api_key: str = "test-llm-key",
        responses: Responses | None = None,
        base_ms: float = 0.0,
        per_token_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
        stall_s: float = 30.0,
        fault_rate: float = 0.0,
        fault_modes: Sequence[str] = ("500",),
        port: int = 0,
        ttft_ms: float | None = None,
        stream_mode: str = "sse",
        timing: Timing | None = None,
    ) -> None:
        for mode in fault_modes:
            if mode not in FAULT_MODES:
                raise ValueError(f"unknown fault mode {mode!r}; one of {FAULT_MODES}")
        if stream_mode not in STREAM_MODES:
            raise ValueError(f"unknown stream mode {stream_mode!r}; one of {STREAM_MODES}")
        self.ttft_ms = ttft_ms
        self.stream_mode = stream_mode
        self.timing = timing
        self.streamed = 0  # requests answered with server-sent events
        self.api_key = api_key
        self.responses = responses or canned_responses
        self.base_ms = base_ms
        self.per_token_ms = per_token_ms
        self.jitter_ms = jitter_ms
        self.stall_s = stall_s
        self.fault_rate = fault_rate
        self.fault_modes = tuple(fault_modes)
        self.port = port
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: deque[str] = deque()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[dict[str, Any]] = []  # every valid request body, in arrival order
        self.status_counts: dict[int, int] = {}

    # --- control -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        """Listen on 127.0.0.1 (``port`` or a free one) in a background thread; returns the base URL."""
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        handler = type("_Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="llm-emulator", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving, release stalled requests, close the socket. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, mode: str, count: int = 1) -> None:
        """Make the next ``count`` requests fail with ``mode`` (queued, first in first out)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {FAULT_MODES}")
        with self._lock:
            self._faults.extend([mode] * count)

    # --- behaviour ---------------------------------------------------------------------------
    def _next_fault(self) -> str | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.fault_modes)
            return None

    def latency_s(self, content: str) -> float:
        """Seconds to wait before answering ``content``: base + per token (~4 chars) ± jitter, never < 0."""
        tokens = max(1, len(content) // 4)
        with self._lock:
            jitter = self._rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.base_ms + self.per_token_ms * tokens + jitter) / 1000.0

    def stream_timing(self, request: dict[str, Any], content: str) -> tuple[float, float]:
        """(seconds to the first token, seconds between tokens) of a streamed answer of ``content``."""
        if self.timing is not None:
            return self.timing(request, content)
        with self._lock:
            jitter = self._rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        first = self.base_ms if self.ttft_ms is None else self.ttft_ms
        return max(0.0, first + jitter) / 1000.0, self.per_token_ms / 1000.0

    def _count(self, status: int) -> None:
        with self._lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    emulator: LLMEmulator
    protocol_version = "HTTP/1.1"
    server_version = "llm-emulator/1"
    disable_nagle_algorithm = True  # headers and body are two writes: avoid a 40 ms delayed-ACK stall per reply

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionResetError, BrokenPipeError):  # a client that abandoned its stream (a cancelled turn)
            self.close_connection = True

    def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.emulator._count(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send(status, json.dumps(body).encode())

    def do_GET(self) -> None:
        self._discard_body()
        if self.path.split("?")[0] == "/v1/chat/completions":
            self._error(405, "Method not allowed; use POST.")
        else:
            self._error(404, f"Unknown path {self.path}")

    def _discard_body(self) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        return length

    def do_POST(self) -> None:
        emu = self.emulator
        if self.path.split("?")[0] != "/v1/chat/completions":
            self._discard_body()
            self._error(404, f"Unknown path {self.path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, "Request body too large.")
            return
        body = self.rfile.read(length) if length > 0 else b""
        if self.headers.get("Authorization") != f"Bearer {emu.api_key}":
            self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            return
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            self._error(400, "Content-Type must be application/json.")
            return
        try:
            request = validate_request(body)
        except _BadRequest as exc:
            self._error(exc.status, str(exc), exc.kind)
            return
        emu._record(request)
        fault = emu._next_fault()
        if fault == "500":
            self._error(500, "The server had an error while processing your request.", "server_error")
            return
        if fault == "429":
            self._error(429, "Rate limit reached.", "requests", "rate_limit_exceeded")
            return
        if fault == "stall":
            emu._stopping.wait(emu.stall_s)
            self.close_connection = True
            return
        if fault == "bad_json":
            self._send(200, b'{"id": "chatcmpl-broken", "choices": [')
            return
        if fault == "empty":
            content = ""
        elif fault == "long":
            content = long_reply()
        else:
            content = emu.responses(request)
        if request.get("stream") is True and emu.stream_mode == "sse":
            self._stream(request, content)
            return
        if emu.timing is not None:
            first, per_token = emu.timing(request, content)
            delay = first + per_token * len(tokens(content))
        else:
            delay = emu.latency_s(content)
        if delay and emu._stopping.wait(delay):
            self.close_connection = True
            return
        n = len(emu.requests)
        reply = {
            "id": f"chatcmpl-emu{n:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": sum(len(m["content"]) for m in request["messages"]) // 4,
                "completion_tokens": len(content) // 4,
                "total_tokens": (sum(len(m["content"]) for m in request["messages"]) + len(content)) // 4,
            },
        }
        self._send(200, json.dumps(reply).encode())


    def _stream(self, request: dict[str, Any], content: str) -> None:
        """Answer with server-sent events, chunked: one token per event at the emulator's pace."""
        emu = self.emulator
        first, per_token = emu.stream_timing(request, content)
        with emu._lock:
            emu.streamed += 1
            n = len(emu.requests)
        if first and emu._stopping.wait(first):
            self.close_connection = True
            return
        emu._count(200)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": f"chatcmpl-emu{n:06d}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": request["model"]}

        def event(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        try:
            event(json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                   "finish_reason": None}]}))
            pieces = tokens(content)
            for i, piece in enumerate(pieces):
                if i and per_token and emu._stopping.wait(per_token):
                    self.close_connection = True
                    return
                event(json.dumps({**base, "choices": [{"index": 0, "delta": {"content": piece},
                                                       "finish_reason": None}]}))
            event(json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
            event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client abandoned the stream (a cancelled turn)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (for ``make run`` against an LLM-shaped endpoint)."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible chat-completions emulator")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--api-key", default="test-llm-key")
    parser.add_argument("--base-ms", type=float, default=500.0)
    parser.add_argument("--per-token-ms", type=float, default=10.0)
    parser.add_argument("--jitter-ms", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--businesses", help="answer like the FAQ responder for this businesses TOML file")
    args = parser.parse_args(argv)
    responses = None
    if args.businesses:
        from pathlib import Path

        from app.business import load_businesses

        responses = faq_responses(load_businesses(Path(args.businesses)))
    emu = LLMEmulator(api_key=args.api_key, responses=responses, base_ms=args.base_ms, per_token_ms=args.per_token_ms,
                      jitter_ms=args.jitter_ms, seed=args.seed, port=args.port)
    print(f"LLM emulator at {emu.start()}/v1/chat/completions", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":
    main()
