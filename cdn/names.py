"""The names of audio clip objects: their shape, checked wherever a name comes in.

    tts/<version>/<voice-slug>/<key[:2]>/<key>.wav

``<version>`` is a content-key version (:data:`CLIP_KEY_VERSIONS`), ``<voice-slug>`` lowercase
``[a-z0-9_-]``, ``<key>`` 64 lowercase hex digits whose first two are the directory. The speech
layer makes the names (:func:`app.speech.keys.object_name`); stores, the spool and the edge only
check them, so this module knows the shape and nothing of voices or texts. (The other family of
store objects, shipped turn events, is named in :mod:`cdn.store`.)

Pure and thread-safe.
"""

from __future__ import annotations

import re

OBJECT_ROOT = "tts/"
"""Every clip object, of any key version, lives under this prefix."""
CLIP_KEY_VERSIONS = ("v1", "v2")
"""The content-key versions whose clips a store accepts (v1: published before issue 14, still served)."""
OBJECT_NAME_RE = re.compile(
    rf"^tts/(?:{'|'.join(CLIP_KEY_VERSIONS)})/[a-z0-9_-]{{1,80}}/[0-9a-f]{{2}}/[0-9a-f]{{64}}\.wav$")


def is_object_name(name: str) -> bool:
    """True when ``name`` is exactly a clip object name (the shape above, the directory the key's first two digits)."""
    return OBJECT_NAME_RE.fullmatch(name) is not None and name.split("/")[3] == name.rsplit("/", 1)[1][:2]
