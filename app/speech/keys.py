"""Content keys and object names: normalized text + voice -> a stable hash -> a path.

Pure and thread-safe.

    key         = sha256("v1" | provider | model | encoding | sample_rate | speed | canon(text))
    object name = tts/v1/<voice-slug>/<key[:2]>/<key>.wav
"""

from __future__ import annotations

import hashlib
import re

from app.speech.canon import canon
from app.speech.voices import Voice

KEY_VERSION = "v1"
OBJECT_PREFIX = f"tts/{KEY_VERSION}/"
OBJECT_NAME_RE = re.compile(r"^tts/v1/[a-z0-9_-]{1,80}/[0-9a-f]{2}/[0-9a-f]{64}\.wav$")


def content_key(text: str, voice: Voice) -> str:
    """The 64-hex-digit content key of ``text`` spoken in ``voice``."""
    parts = (
        KEY_VERSION,
        voice.provider,
        voice.model,
        voice.encoding,
        str(voice.sample_rate),
        f"{voice.speed:g}",
        canon(text),
    )
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def object_name(key: str, voice: Voice) -> str:
    """The store object name of ``key`` in ``voice``: ``tts/v1/<slug>/<key[:2]>/<key>.wav``."""
    return f"{OBJECT_PREFIX}{voice.slug}/{key[:2]}/{key}.wav"


def is_object_name(name: str) -> bool:
    """True when ``name`` is exactly of the form :func:`object_name` produces."""
    return OBJECT_NAME_RE.fullmatch(name) is not None and name.split("/")[3] == name.rsplit("/", 1)[1][:2]
