"""The local edge route: exact caching headers, conditional GET, ranges, and 404 for every trick."""

from __future__ import annotations

import http.client
import os
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import http_date
from werkzeug.serving import make_server

from app.speech.keys import content_key, object_name
from app.speech.voices import Voice
from app.speech.wav import ulaw_wav
from cdn.edge import edge, make_edge_blueprint
from cdn.local import LocalStore
from tests.support import free_port

VOICE = Voice("piper", "en_US-joe-medium")
NAME = object_name(content_key("Let me check that for you.", VOICE), VOICE)
KEY = NAME.rsplit("/", 1)[1].removesuffix(".wav")
DATA = ulaw_wav(bytes(range(256)) * 8)  # 2048 samples, every byte value: ranges are checkable
SIZE = len(DATA)
EVENTS = "events/host-1/turns-2026-11-25.jsonl"
MTIME = 1_764_000_000  # a fixed, whole-second modification time


class BufferedClient(FlaskClient):
    """Reads and closes every response body (a WSGI server closes the file; the test client does not)."""

    def open(self, *args: object, **kwargs: object):  # type: ignore[override]
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


def make_app(runtime: object | None) -> Flask:
    app = Flask(__name__)
    app.config["TESTING"] = True
    app.test_client_class = BufferedClient
    app.register_blueprint(make_edge_blueprint())
    if runtime is not None:
        app.extensions["warmline"] = runtime
    return app


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "root" / "cdn", "http://127.0.0.1:8000/cdn")
    store.put(NAME, DATA)
    store.put(EVENTS, b'{"v": 1}\n')
    os.utime(store.path(NAME), (MTIME, MTIME))
    return store


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A valid clip OUTSIDE the store's root that must never be served."""
    path = tmp_path / "secret.wav"
    path.write_bytes(ulaw_wav(b"\x42" * 4000))
    (tmp_path / "root" / "secret.wav").write_bytes(path.read_bytes())
    return path


@pytest.fixture
def client(store: LocalStore) -> FlaskClient:
    return make_app(types.SimpleNamespace(store=store)).test_client()


def test_blueprint_factory_returns_the_module_blueprint() -> None:
    assert make_edge_blueprint() is edge
    assert edge.name == "edge"


def test_get_serves_the_clip_with_immutable_caching_headers(client: FlaskClient) -> None:
    response = client.get("/cdn/" + NAME)
    assert response.status_code == 200
    assert response.data == DATA
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == f'"{KEY}"'
    assert response.headers["Last-Modified"] == http_date(MTIME)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Length"] == str(SIZE)
    assert "Content-Disposition" not in response.headers
    assert "Set-Cookie" not in response.headers


def test_head_has_the_headers_and_no_body(client: FlaskClient) -> None:
    response = client.head("/cdn/" + NAME)
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["ETag"] == f'"{KEY}"'
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("tag", [f'"{KEY}"', f'W/"{KEY}"', f'"other", "{KEY}"', "*"])
def test_if_none_match_gives_304(client: FlaskClient, tag: str) -> None:
    response = client.get("/cdn/" + NAME, headers={"If-None-Match": tag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == f'"{KEY}"'
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_if_none_match_other_tag_gives_200(client: FlaskClient) -> None:
    response = client.get("/cdn/" + NAME, headers={"If-None-Match": '"' + "0" * 64 + '"'})
    assert response.status_code == 200
    assert response.data == DATA


def test_if_modified_since(client: FlaskClient) -> None:
    fresh = client.get("/cdn/" + NAME, headers={"If-Modified-Since": http_date(MTIME)})
    assert fresh.status_code == 304
    assert fresh.data == b""
    stale = client.get("/cdn/" + NAME, headers={"If-Modified-Since": http_date(MTIME - 60)})
    assert stale.status_code == 200
    assert stale.data == DATA


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=-5", SIZE - 5, SIZE - 1),
        (f"bytes=44-{SIZE + 1000}", 44, SIZE - 1),  # clamped to the end
    ],
)
def test_range_gives_206_with_exact_bytes(client: FlaskClient, header: str, start: int, end: int) -> None:
    response = client.get("/cdn/" + NAME, headers={"Range": header})
    assert response.status_code == 206
    assert response.data == DATA[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["ETag"] == f'"{KEY}"'
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}"])
def test_unsatisfiable_range_gives_416(client: FlaskClient, header: str) -> None:
    response = client.get("/cdn/" + NAME, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert DATA not in response.data


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=abc", "items=0-5", "bytes=5-1"])
def test_multi_malformed_or_foreign_ranges_are_ignored(client: FlaskClient, header: str) -> None:
    response = client.get("/cdn/" + NAME, headers={"Range": header})
    assert response.status_code == 200
    assert response.data == DATA
    assert "Content-Range" not in response.headers


def test_if_range(client: FlaskClient) -> None:
    same = client.get("/cdn/" + NAME, headers={"Range": "bytes=0-3", "If-Range": f'"{KEY}"'})
    assert same.status_code == 206
    assert same.data == DATA[:4]
    changed = client.get("/cdn/" + NAME, headers={"Range": "bytes=0-3", "If-Range": '"' + "f" * 64 + '"'})
    assert changed.status_code == 200
    assert changed.data == DATA


def test_if_none_match_wins_over_range(client: FlaskClient) -> None:
    response = client.get("/cdn/" + NAME, headers={"Range": "bytes=0-3", "If-None-Match": f'"{KEY}"'})
    assert response.status_code == 304
    assert response.data == b""


def test_range_on_head(client: FlaskClient) -> None:
    response = client.head("/cdn/" + NAME, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.data == b""
    assert response.headers["Content-Range"] == f"bytes 10-19/{SIZE}"


def test_missing_clip_is_404_and_not_cached(client: FlaskClient) -> None:
    other = object_name(content_key("Never published.", VOICE), VOICE)
    response = client.get("/cdn/" + other)
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == b"Not Found\n"


def test_post_is_not_allowed(client: FlaskClient) -> None:
    assert client.post("/cdn/" + NAME).status_code == 405


def tricks(secret: Path) -> list[str]:
    """Request paths that must all be 404; several would reach ``secret`` if joined naively."""
    legit = "/cdn/" + NAME
    return [
        "/cdn/../secret.wav",
        "/cdn/tts/../../secret.wav",
        "/cdn/tts/v1/../../../secret.wav",
        "/cdn/%2e%2e/secret.wav",
        "/cdn/..%2fsecret.wav",
        "/cdn/..%2Fsecret.wav",
        "/cdn/" + NAME.replace("/", "%2F"),
        "/cdn/" + NAME.replace("/", "%2f"),
        "/cdn/" + NAME.replace(".wav", "%2Ewav"),
        "/cdn/" + NAME.replace("tts/", "tts%2F"),
        "/cdn/" + NAME.replace("tts/v2/", "tts/v2/../v2/"),
        "/cdn/" + NAME.replace("tts/v2/", "tts/./v2/"),
        "/cdn/" + NAME.replace("tts/v2/", "tts//v2/"),
        "//cdn/" + NAME,
        "/cdn//" + NAME,
        "/cdn/" + NAME.replace("/", "\\"),
        "/cdn/" + NAME.replace("/", "%5C"),
        "/cdn/" + NAME.replace(KEY, KEY.upper()),
        legit + "%00",
        legit + "/",
        legit + ".part",
        "/cdn/" + NAME.replace("tts/", "TTS/"),
        "/cdn/" + str(secret),  # absolute path: /cdn//tmp/.../secret.wav
        "/cdn" + str(secret),
        "/cdn/" + EVENTS,  # exists in the store, but only audio is served
        "/cdn/events/host-1/../../" + NAME,
        "/cdn/secret.wav",
        "/cdn/",
        "/cdn",
    ]


def test_every_trick_is_a_bare_404(client: FlaskClient, secret: Path) -> None:
    secret_bytes = secret.read_bytes()
    for path in tricks(secret):
        for method in (client.get, client.head):
            response = method(path)
            assert response.status_code == 404, (method.__name__, path, response.status_code)
            assert secret_bytes not in response.data
            assert DATA not in response.data
            assert "Location" not in response.headers


def test_symlink_out_of_the_root_is_not_followed(store: LocalStore, client: FlaskClient, secret: Path) -> None:
    link_name = object_name(content_key("A link.", VOICE), VOICE)
    link = store.path(link_name)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    response = client.get("/cdn/" + link_name)
    assert response.status_code == 404
    assert secret.read_bytes() not in response.data


def test_temp_files_are_not_served(store: LocalStore, client: FlaskClient) -> None:
    directory = store.path(NAME).parent
    (directory / (".tmp-x" + KEY + ".wav")).write_bytes(DATA)
    assert client.get(f"/cdn/tts/v1/{VOICE.slug}/{KEY[:2]}/.tmp-x{KEY}.wav").status_code == 404


def test_not_a_local_store_is_404(store: LocalStore) -> None:
    class OtherStore:
        root = store.root

        def path(self, name: str) -> Path:
            return store.path(name)

    for runtime in (types.SimpleNamespace(store=OtherStore()), types.SimpleNamespace(), None):
        response = make_app(runtime).test_client().get("/cdn/" + NAME)
        assert response.status_code == 404
        assert DATA not in response.data


# --- through a real HTTP server: raw request lines, as a proxy or Twilio would send them ----------


@pytest.fixture
def server(store: LocalStore) -> Iterator[int]:
    port = free_port()
    httpd = make_server("127.0.0.1", port, make_app(types.SimpleNamespace(store=store)), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def raw_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_real_server_serves_and_ranges(server: int) -> None:
    status, headers, body = raw_get(server, "/cdn/" + NAME)
    assert (status, body) == (200, DATA)
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["ETag"] == f'"{KEY}"'
    status, headers, body = raw_get(server, "/cdn/" + NAME, {"Range": "bytes=40-47"})
    assert (status, body) == (206, DATA[40:48])
    assert headers["Content-Range"] == f"bytes 40-47/{SIZE}"
    status, _, body = raw_get(server, "/cdn/" + NAME, {"If-None-Match": f'"{KEY}"'})
    assert (status, body) == (304, b"")


def test_real_server_refuses_every_trick(server: int, secret: Path) -> None:
    secret_bytes = secret.read_bytes()
    for path in tricks(secret):
        if "\\" in path:
            continue  # not sendable raw in a request line by http.client; covered above
        status, headers, body = raw_get(server, path)
        if path.startswith("//"):
            # http.server collapses a leading "//" in the request line before any WSGI app sees
            # it (CPython gh-87389), so this is a plain request for the legitimate clip.
            assert (status, body) == (200, DATA)
            continue
        assert status == 404, (path, status)
        assert secret_bytes not in body
        assert DATA not in body
        assert "Location" not in headers
