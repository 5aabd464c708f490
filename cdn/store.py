"""The audio store interface: where published clips (and shipped turn-event files) live.

A store holds immutable, content-addressed objects under two name families only:

    tts/v1/<voice-slug>/<key[:2]>/<key>.wav     an audio clip (8 kHz mono G.711 mu-law WAV)
    events/<host-id>/turns-YYYY-MM-DD.jsonl     one host's turn events of one UTC day

``put`` is *create-only*: publishing a name that already exists is success and never
overwrites (the bytes under a content key never change, so caches may keep them forever).
Every implementation validates names with :func:`check_name` and refuses to publish audio
objects whose bytes are not a valid mu-law WAV (:func:`check_object`), even though the
synthesizer validates audio first: defence in depth.

Everything in this module is pure and thread-safe.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from app.errors import InvalidObjectName
from cdn.names import OBJECT_ROOT, is_object_name
from cdn.wav import validate_ulaw_wav

AUDIO_CONTENT_TYPE = "audio/wav"
EVENTS_CONTENT_TYPE = "application/x-ndjson"
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

EVENTS_PREFIX = "events/"
_EVENTS_NAME_RE = re.compile(r"events/[a-z0-9-]{1,64}/turns-([0-9]{4})-([0-9]{2})-([0-9]{2})\.jsonl")


@runtime_checkable
class AudioStore(Protocol):
    """Where clips are published and read back. Implementations are thread-safe.

    Errors: :class:`~app.errors.InvalidObjectName` for a malformed name,
    :class:`~app.errors.InvalidAudio` for an audio object whose bytes are not a valid
    mu-law WAV, :class:`~app.errors.ObjectNotFound`, :class:`~app.errors.StoreUnavailable`
    when the backing storage fails.
    """

    def put(self, name: str, data: bytes) -> str:
        """Publish ``data`` under ``name`` unless it already exists; return the public URL."""
        ...

    def url(self, name: str) -> str:
        """The public URL of ``name`` (no I/O; the object need not exist)."""
        ...

    def exists(self, name: str) -> bool:
        """True when ``name`` has been published."""
        ...

    def get(self, name: str) -> bytes:
        """The bytes of ``name``; raises ObjectNotFound when it was never published."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Names of the published objects starting with ``prefix`` (a plain string prefix)."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name`` (tests and ops only; raises ObjectNotFound when absent)."""
        ...


def is_events_name(name: str) -> bool:
    """True when ``name`` is ``events/<host-id>/turns-YYYY-MM-DD.jsonl`` with a real calendar date."""
    match = _EVENTS_NAME_RE.fullmatch(name)
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    try:
        _dt.date(year, month, day)
    except ValueError:
        return False
    return True


def events_name(host_id: str, day: _dt.date) -> str:
    """The object name of ``host_id``'s turn events of ``day``; raises InvalidObjectName for a bad host id."""
    return check_name(f"{EVENTS_PREFIX}{host_id}/turns-{day.isoformat()}.jsonl")


def is_valid_name(name: object) -> bool:
    """True when ``name`` is a well-formed object name of either family (see :func:`check_name`)."""
    return isinstance(name, str) and (is_object_name(name) or is_events_name(name))


def check_name(name: str) -> str:
    """Return ``name`` unchanged if it is a well-formed object name, else raise InvalidObjectName.

    Only the two families above are accepted, matched in full against fixed patterns over
    ``[a-z0-9_-]`` path components, so traversal (``..``), empty components (``//``), leading
    ``/``, backslashes, percent-encoding, NUL, uppercase hex and non-ASCII are all refused.
    The message never echoes the whole name (it may be hostile or huge).
    """
    if not isinstance(name, str):
        raise InvalidObjectName(f"object name must be str, not {type(name).__name__}")
    if is_valid_name(name):
        return name
    raise InvalidObjectName(f"not a well-formed object name ({len(name)} chars, starts {name[:24]!r})")


def is_audio_name(name: str) -> bool:
    """True when ``name`` is a well-formed audio clip name (``tts/v1/...wav``)."""
    return isinstance(name, str) and is_object_name(name)


def content_type(name: str) -> str:
    """The Content-Type an object is stored and served with: audio/wav or application/x-ndjson."""
    check_name(name)
    return AUDIO_CONTENT_TYPE if name.startswith(OBJECT_ROOT) else EVENTS_CONTENT_TYPE


def check_object(name: str, data: bytes) -> str:
    """Validate an object before publishing it; return its Content-Type.

    Raises InvalidObjectName for a bad name, InvalidAudio when an audio object's bytes are
    not an 8 kHz mono mu-law WAV, and TypeError when ``data`` is not bytes.
    """
    ctype = content_type(name)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"object data must be bytes, not {type(data).__name__}")
    if ctype == AUDIO_CONTENT_TYPE:
        validate_ulaw_wav(bytes(data))
    return ctype


__all__ = [
    "AUDIO_CONTENT_TYPE",
    "EVENTS_CONTENT_TYPE",
    "EVENTS_PREFIX",
    "IMMUTABLE_CACHE_CONTROL",
    "AudioStore",
    "check_name",
    "check_object",
    "content_type",
    "events_name",
    "is_audio_name",
    "is_events_name",
    "is_valid_name",
]
