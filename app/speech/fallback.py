"""Fallback voices: who speaks a clip when the business's own voice cannot, within a live turn.

A business voice may name fallbacks in its TOML table, tried in order after the voice itself
(after its retries) and before the call flow gives up and ``<Say>``s the text::

    [demo.voice]
    provider = "deepgram"
    model = "aura-2-thalia-en"
    fallback = [{provider = "piper", model = "en_US-joe-medium"}]

``fallback = []`` means none (straight to ``<Say>``). Without the key, a voice from a network
provider falls back to the embedded Piper voice (:data:`DEFAULT_FALLBACK`, local, so it cannot
fail for the same reason), and a Piper voice has no fallback. A fallback voice is a different
voice, so its clips have their own content keys (and may be precomputed like any other).

Pure and thread-safe.
"""

from __future__ import annotations

import re
from typing import Any

from app.errors import BusinessConfigError
from app.speech.voices import PROVIDERS, Voice

DEFAULT_FALLBACK = Voice("piper", "en_US-joe-medium")
MAX_FALLBACKS = 3
_MODEL_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEYS = {"provider", "model", "speed"}


def parse_fallback(biz: str, voice_table: dict[str, Any]) -> tuple[Voice, ...] | None:
    """The ``fallback`` list of a business's ``voice`` table; None when the key is absent.

    Raises BusinessConfigError naming ``voice.fallback[i].<field>`` for anything malformed:
    not an array of tables, an unknown provider or key, a bad model name or speed, more than
    MAX_FALLBACKS entries.
    """
    if "fallback" not in voice_table:
        return None
    raw = voice_table["fallback"]
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise BusinessConfigError(biz, "voice.fallback", "must be an array of tables like {provider, model}")
    if len(raw) > MAX_FALLBACKS:
        raise BusinessConfigError(biz, "voice.fallback", f"names {len(raw)} voices; at most {MAX_FALLBACKS}")
    voices = []
    for i, item in enumerate(raw):
        where = f"voice.fallback[{i}]"
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise BusinessConfigError(biz, f"{where}.{unknown[0]}", "is not a known field (provider, model, speed)")
        provider = item.get("provider")
        if provider not in PROVIDERS:
            raise BusinessConfigError(biz, f"{where}.provider", f"must be one of {', '.join(PROVIDERS)}")
        model = item.get("model")
        if not isinstance(model, str) or not _MODEL_RE.fullmatch(model):
            raise BusinessConfigError(biz, f"{where}.model", "must be 1-64 of letters, digits, '.', '_', '-'")
        speed = item.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.5 <= float(speed) <= 2.0:
            raise BusinessConfigError(biz, f"{where}.speed", "must be a number from 0.5 to 2.0")
        voices.append(Voice(provider=provider, model=model, speed=float(speed)))
    return tuple(voices)


def default_chain(voice: Voice) -> tuple[Voice, ...]:
    """The fallbacks of a voice whose business names none: Piper for a network voice, else nothing."""
    return () if voice.provider == DEFAULT_FALLBACK.provider else (DEFAULT_FALLBACK,)


def chain_for(business: Any) -> tuple[Voice, ...]:
    """The voices to try, in order, after ``business.voice`` (never the voice itself, no repeats).

    Reads ``business.voice_fallbacks`` (None = not configured: :func:`default_chain`).
    """
    configured = business.voice_fallbacks
    chain = default_chain(business.voice) if configured is None else configured
    out: list[Voice] = []
    for voice in chain:
        if voice != business.voice and voice not in out:
            out.append(voice)
    return tuple(out)
