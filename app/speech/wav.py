"""The clip format (G.711 mu-law WAV) as the speech layer uses it: defined in :mod:`cdn.wav`.

Every clip the speech layer makes is stored, and every store refuses an audio object that is not
a valid mu-law WAV, so the format lives with the stores, below the speech layer (``app/speech``
imports ``cdn``, never the other way). This module names what speech code uses from it.
"""

from __future__ import annotations

from cdn.wav import UlawWav, parse_ulaw_wav, ulaw_wav, validate_ulaw_wav, wav_duration_s

__all__ = ["UlawWav", "parse_ulaw_wav", "ulaw_wav", "validate_ulaw_wav", "wav_duration_s"]
