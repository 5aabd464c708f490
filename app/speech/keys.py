"""Content keys and object names: normalized text + voice -> a stable hash -> a path.

Pure and thread-safe.

    key         = sha256("v2" | provider | model | encoding | sample_rate | speed | canon(text))
    object name = tts/v2/<voice-slug>/<key[:2]>/<key>.wav
    assembled   = sha256("v2" | "assembled" | <slug> | key 1 | pause 1 | key 2 | ... | key n)

Versions. ``v1`` clips (until issue 14) were synthesized from ``canon()`` without verbalized
numbers, without join marks, and published without loudness normalization or edge fades. ``v2``
changes what is synthesized for some texts *and* how every clip is finished, so every key moved
to ``v2``: a ``v1`` object is never served for a ``v2`` key. Migration is by regeneration: the next
precompute run plans every fixed and mined piece under its ``v2`` key (nothing is published yet, so
everything is planned), and live misses synthesize as usual. ``v1`` objects stay where they are
(immutable; URLs already handed to Twilio keep working: :data:`cdn.names.CLIP_KEY_VERSIONS` accepts both).

The shape of an object name is checked by :func:`cdn.names.is_object_name` (stores check names
without knowing voices); this module makes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from app.speech.canon import canon
from app.speech.voices import Voice
from cdn.names import OBJECT_ROOT, is_object_name

KEY_VERSION = "v2"
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
    """The store object name of ``key`` in ``voice``: ``tts/v2/<slug>/<key[:2]>/<key>.wav``."""
    return f"{OBJECT_PREFIX}{voice.slug}/{key[:2]}/{key}.wav"


def assembled_key(keys: Sequence[str], pauses_ms: Sequence[int], voice: Voice) -> str:
    """The content key of one clip assembled from the clips ``keys`` with ``pauses_ms[i]`` ms of
    silence after clip i (``len(pauses_ms) == len(keys) - 1``): it names its parts and its joins."""
    if len(pauses_ms) != len(keys) - 1:
        raise ValueError(f"{len(keys)} clips need {len(keys) - 1} pauses, got {len(pauses_ms)}")
    parts = [KEY_VERSION, "assembled", voice.slug, keys[0]]
    for pause, key in zip(pauses_ms, keys[1:]):
        parts += [str(int(pause)), key]
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


__all__ = ["KEY_VERSION", "OBJECT_PREFIX", "assembled_key", "content_key", "is_object_name", "object_name"]
