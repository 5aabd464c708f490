"""The voice a clip is spoken in: what, besides the text, decides how a clip sounds."""

from __future__ import annotations

import re
from dataclasses import dataclass

PROVIDERS = ("piper", "deepgram")


@dataclass(frozen=True)
class Voice:
    """A provider's voice and the audio format we ask it for.

    Immutable and hashable; part of every content key. ``sample_rate`` is in Hz, ``speed`` is a
    multiplier (1.0 = the voice's natural pace). Everything Warmline publishes is G.711 mu-law.
    """

    provider: str
    model: str
    encoding: str = "mulaw"
    sample_rate: int = 8000
    speed: float = 1.0

    @property
    def slug(self) -> str:
        """A path-safe name for the voice, used in object names (``piper-en_us-joe-medium``)."""
        raw = f"{self.provider}-{self.model}".lower()
        return re.sub(r"[^a-z0-9_-]+", "-", raw).strip("-")
