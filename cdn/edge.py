"""The local edge: ``GET|HEAD /cdn/<object name>`` serves clips from this host.

With the embedded store it serves every published clip. With a remote store (GCS: published
clips are served by the bucket / Cloud CDN) it serves this host's spool: clips made while the
store was away, and -- edge-first, the default -- a live turn's fresh clip while it uploads. A
fresh clip of *another* host (behind a round-robin load balancer the fetch may land anywhere) is
served from the store once its upload lands there, waiting at most ``PROXY_WAIT_S``. Every clip is immutable and content-addressed, so responses carry
``Cache-Control: public, max-age=31536000, immutable`` and a strong ETag that is the clip's
content key; werkzeug's conditional machinery answers If-None-Match / If-Modified-Since
(304), If-Range and single byte ranges (206, or 416 with ``Content-Range: bytes */N``).

Two places where werkzeug 3.1 departs from RFC 9110 are corrected before it runs:
a Range header that is malformed, multi-range or in an unknown unit is *ignored* (full 200)
instead of answered with 416; and If-None-Match / If-Modified-Since are evaluated before
Range, so a client that already holds the clip gets 304, not 206.

Anything that is not exactly a well-formed audio object name under the store's root, requested
by its literal path, answers a bare 404 (never 400, never a redirect, never a reason): ``..``,
``//``, percent-encoded characters (``%2F``), absolute paths, backslashes, ``events/`` files,
temp files, symlinks out of the root.
Stateless; safe in any number of threads and processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from werkzeug.datastructures import Range
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import http_date, is_resource_modified, parse_range_header
from werkzeug.utils import send_file

from app.errors import InvalidAudio, ObjectNotFound, StoreError
from cdn.local import LocalStore
from cdn.store import AUDIO_CONTENT_TYPE, IMMUTABLE_CACHE_CONTROL, AudioStore, is_audio_name
from cdn.wav import validate_ulaw_wav

EDGE_PREFIX = "/cdn/"
PROXY_WAIT_S = 2.0
"""How long a request for another host's fresh clip waits for its upload to reach the store."""
PROXY_POLL_S = 0.05
PROXY_SLOTS = 8
"""Requests per process that may wait for a clip at once."""
_proxy_slots = threading.BoundedSemaphore(PROXY_SLOTS)

edge = Blueprint("edge", __name__)


def make_edge_blueprint() -> Blueprint:
    """The ``edge`` blueprint (one module-level instance; register it once per app)."""
    return edge


def _not_found() -> Response:
    return Response("Not Found\n", status=404, mimetype="text/plain", headers={"Cache-Control": "no-store"})


def _raw_path_is_plain(environ: dict, name: str) -> bool:
    """False unless the undecoded request path is literally ``.../cdn/<name>``.

    Object names are plain ``[a-z0-9_./-]``, so an escaped form (``tts%2Fv1...``, ``%2e``), a
    doubled slash (``//cdn/...``) or a backslash is refused even when the server's decoding
    would turn it into a valid name. Servers that expose no raw URI (neither RAW_URI nor
    REQUEST_URI) skip this check; the decoded name is validated regardless.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:
        return True
    path = raw.split("?", 1)[0]
    if "://" in path:  # absolute-form request target (sent to proxies): keep only the path
        path = urlsplit(path).path
    return path.endswith(EDGE_PREFIX + name) and "%" not in path and "\\" not in path and "//" not in path


def _range_environ(environ: dict, etag: str, last_modified: float) -> dict:
    """A copy of ``environ`` whose Range header werkzeug should act on (see module docstring)."""
    if "HTTP_RANGE" not in environ:
        return environ
    env = dict(environ)
    parsed: Range | None = parse_range_header(env["HTTP_RANGE"])
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        del env["HTTP_RANGE"]
    elif not is_resource_modified(env, etag, last_modified=http_date(last_modified)):
        del env["HTTP_RANGE"]  # the client's copy is current: 304 takes precedence over 206
    return env


@edge.route("/cdn/<path:name>", methods=["GET", "HEAD"], merge_slashes=False, strict_slashes=True)
def serve(name: str) -> Response:
    """Serve one published clip with immutable caching, ETag, conditional GET and ranges."""
    runtime = current_app.extensions.get("warmline")
    if not is_audio_name(name) or not _raw_path_is_plain(request.environ, name):
        return _not_found()
    store = getattr(runtime, "store", None)
    spool = getattr(runtime, "spool", None)
    # This host's spool first (clips it made while the store was away, or that are still uploading),
    # then the embedded store; with a remote store that is all this edge holds.
    local = [s for s in (getattr(spool, "objects", None), store) if isinstance(s, LocalStore)]
    for candidate in local:
        if candidate.path(name).is_file():
            return _send(candidate, name)
    if spool is not None and not isinstance(store, LocalStore) and getattr(runtime.settings, "edge_first", False):
        return _proxied(store, name)
    return _not_found()


def _proxied(store: AudioStore, name: str, *, wait_s: float = PROXY_WAIT_S, poll_s: float = PROXY_POLL_S,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Response:
    """Another host's fresh clip (edge-first: its TwiML named a ``/cdn`` URL the load balancer sent here):
    served from the store once its upload lands there, waiting at most ``wait_s`` seconds.

    At most PROXY_SLOTS requests per process wait at once (the rest answer 404 at once), so
    requests for names that never appear cannot hold the server's threads.
    """
    if not _proxy_slots.acquire(blocking=False):
        return _not_found()
    try:
        end = clock() + wait_s
        while True:
            try:
                data = store.get(name)
                break
            except ObjectNotFound:
                if clock() >= end:
                    return _not_found()
                sleep(poll_s)  # polling the remote store: it has no notification to wait on
            except StoreError:
                return _not_found()
    finally:
        _proxy_slots.release()
    try:
        validate_ulaw_wav(data)
    except InvalidAudio:
        return _not_found()
    response = Response(data, mimetype=AUDIO_CONTENT_TYPE)
    response.set_etag(_key(name))
    response.headers["Cache-Control"] = IMMUTABLE_CACHE_CONTROL
    return response.make_conditional(request.environ, accept_ranges=True, complete_length=len(data))


def _key(name: str) -> str:
    return name.rsplit("/", 1)[1].removesuffix(".wav")


def _send(store: LocalStore, name: str) -> Response:
    """``name`` from the local ``store`` (a clip it holds), with the conditional and range handling above."""
    path = store.path(name)
    try:
        root = store.root.resolve(strict=True)
        real = path.resolve(strict=True)
        if not real.is_relative_to(root) or not real.is_file():
            return _not_found()
        mtime = real.stat().st_mtime
    except OSError:
        return _not_found()

    key = _key(name)
    environ = _range_environ(request.environ, key, mtime)
    try:
        response = send_file(
            real,
            environ,
            mimetype=AUDIO_CONTENT_TYPE,
            use_x_sendfile=current_app.config.get("USE_X_SENDFILE", False),
            response_class=current_app.response_class,
            conditional=True,
            etag=key,
            last_modified=mtime,
            max_age=None,
        )
    except RequestedRangeNotSatisfiable as exc:
        size = exc.length if exc.length is not None else 0
        return Response(
            status=416,
            headers={
                "Content-Range": f"bytes */{size}",
                "Accept-Ranges": "bytes",
                "Cache-Control": "no-store",
            },
        )
    except OSError:  # vanished between the checks and the open (tests/ops delete only)
        return _not_found()
    response.headers["Cache-Control"] = IMMUTABLE_CACHE_CONTROL
    response.headers.pop("Content-Disposition", None)
    return response


__all__ = ["EDGE_PREFIX", "edge", "make_edge_blueprint"]
