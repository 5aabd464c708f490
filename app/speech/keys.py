"""Content keys and object names: normalized text + voice -> a stable hash -> a path.

Pure and thread-safe.

    key         = sha256("v1" | provider | model | encoding | sample_rate | speed | canon(text))
    object name = tts/v1/<voice-slug>/<key[:2]>/<key>.wav

The shape of an object name is checked by :func:`cdn.names.is_object_name` (stores check names
without knowing voices); this module makes them.
"""

from __future__ import annotations

import hashlib

from app.speech.canon import canon
from app.speech.voices import Voice
from cdn.names import OBJECT_ROOT, is_object_name

KEY_VERSION = "v1"
OBJECT_PREFIX = f"{OBJECT_ROOT}{KEY_VERSION}/"


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


__all__ = ["KEY_VERSION", "OBJECT_PREFIX", "content_key", "is_object_name", "object_name"]
