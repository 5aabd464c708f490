"""Test helpers for the GCS store: a real `gcp-storage-emulator` process and a fake HTTP transport.

``running_emulator()`` starts ``gcp-storage-emulator start --in-memory`` on a free loopback port
and stops it (by PID) on exit. ``FakeGCS`` is a ``requests`` adapter that answers the
storage JSON/upload API from a handler, recording every request: the transport boundary
for behaviour the emulator does not have (412 on ``ifGenerationMatch=0``, 5xx, 403).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.response import HTTPResponse

from tests.support import free_port, stop_process, wait_for_port

EMULATOR_START_TIMEOUT_S = 15.0


def emulator_command() -> str:
    """Path of the ``gcp-storage-emulator`` script of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "gcp-storage-emulator"
    if beside.exists():
        return str(beside)
    found = shutil.which("gcp-storage-emulator")
    if found is None:
        raise RuntimeError("gcp-storage-emulator is not installed (requirements-dev.txt)")
    return found


@contextmanager
def running_emulator() -> Iterator[str]:
    """Run an in-memory emulator on 127.0.0.1; yield its base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    proc = subprocess.Popen(
        [emulator_command(), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=EMULATOR_START_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def emulator_admin_client(base_url: str) -> storage.Client:
    """A client bound to the emulator without touching the environment (for fixtures)."""
    return storage.Client(
        project="warmline-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": base_url},
    )


@dataclass
class Recorded:
    """One request the fake transport saw."""

    method: str
    url: str
    path: str
    query: dict[str, list[str]]
    body: bytes


@dataclass
class FakeResponse:
    status: int
    body: dict | bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Recorded], FakeResponse]


class FakeGCS(BaseAdapter):
    """A requests transport adapter answering every request with ``handler(recorded)``."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests: list[Recorded] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        parts = urlsplit(request.url or "")
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        recorded = Recorded(
            method=request.method or "",
            url=request.url or "",
            path=parts.path,
            query=parse_qs(parts.query),
            body=body,
        )
        self.requests.append(recorded)
        answer = self.handler(recorded)
        response = requests.Response()
        response.status_code = answer.status
        if isinstance(answer.body, dict):
            content = json.dumps(answer.body).encode()
            headers = {"Content-Type": "application/json; charset=UTF-8", **answer.headers}
        else:
            content = answer.body
            headers = dict(answer.headers)
        headers = {"Content-Length": str(len(content)), **headers}
        # a streamable body, as HTTPAdapter builds it (downloads read response.raw)
        response.raw = HTTPResponse(
            body=io.BytesIO(content), headers=headers, status=answer.status, preload_content=False
        )
        response.headers = CaseInsensitiveDict(headers)
        response.encoding = "utf-8"
        response.url = recorded.url
        response.request = request
        response.reason = {200: "OK", 403: "Forbidden", 412: "Precondition Failed", 503: "Service Unavailable"}.get(
            answer.status, "Status"
        )
        return response

    def close(self) -> None:
        pass


def fake_client(adapter: FakeGCS) -> storage.Client:
    """A real storage client whose HTTP goes to ``adapter`` (no network, no credentials)."""
    session = AuthorizedSession(AnonymousCredentials())  # a requests.Session, as the client expects
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return storage.Client(project="warmline-test", credentials=AnonymousCredentials(), _http=session)


def gcs_error(status: int, message: str) -> FakeResponse:
    """A JSON API error body the way GCS sends it."""
    return FakeResponse(status, {"error": {"code": status, "message": message, "errors": [{"message": message}]}})


def object_resource(bucket: str, name: str, content_type: str, size: int) -> FakeResponse:
    """A 200 answer to an upload: the created object's resource."""
    return FakeResponse(
        200,
        {
            "kind": "storage#object",
            "bucket": bucket,
            "name": name,
            "generation": "1700000000000001",
            "metageneration": "1",
            "contentType": content_type,
            "size": str(size),
        },
    )
