"""A round-robin HTTP reverse proxy on loopback: the stack's stand-in for a real load balancer.

Every request goes to the next backend in turn, whichever call it belongs to, so consecutive
webhooks of one call land on different hosts (the hard case the shared call state exists for).
It adds ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` as a TLS-terminating proxy would, and
``X-Warmline-Host`` (the backend's name) on each response; each request is appended to
``log_path`` as one line: ``<method> <path> -> <backend> <status> <ms>``.

Thread-safe (ThreadingHTTPServer; one shared httpx client; the turn counter under a lock). For
development and tests only: no TLS, no health-based routing, no retries.
"""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "content-encoding", "host"}


class Balancer:
    """Round-robin over ``backends`` (name -> base URL) on ``127.0.0.1:port`` (0 = a free port)."""

    def __init__(self, backends: dict[str, str], *, port: int = 0, log_path: Path | None = None) -> None:
        self.backends = list(backends.items())
        self._turns = itertools.cycle(range(len(self.backends)))
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0), trust_env=False)
        self.log_path = log_path
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_backend(self) -> tuple[str, str]:
        with self._lock:
            return self.backends[next(self._turns)]

    def record(self, line: str) -> None:
        if self.log_path is not None:
            with self._lock, open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line + "\n")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _proxy(self) -> None:
                name, base = balancer.next_backend()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["X-Forwarded-For"] = self.client_address[0]
                headers["X-Forwarded-Proto"] = "http"
                headers["X-Forwarded-Host"] = self.headers.get("Host", "")
                t0 = time.monotonic()
                try:
                    answer = balancer._client.request(self.command, base + self.path, content=body, headers=headers)
                    status, content = answer.status_code, answer.content
                    out = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
                except httpx.HTTPError as exc:
                    status, content, out = 502, f"backend {name} failed: {exc}\n".encode(), [("Content-Type", "text/plain")]
                balancer.record(f"{self.command} {self.path} -> {name} {status} {(time.monotonic() - t0) * 1000:.0f}")
                self.send_response(status)
                for key, value in out:
                    self.send_header(key, value)
                self.send_header("X-Warmline-Host", name)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_HEAD = _proxy

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def start(self) -> Balancer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="balancer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._client.close()
