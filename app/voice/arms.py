"""Rollout arms: which flow a call gets, from a stable hash of its CallSid."""

from __future__ import annotations

import hashlib

WARMLINE = "warmline"
CONTROL = "control"


def bucket(call_sid: str) -> int:
    """0-99, uniform over CallSids and the same for a CallSid forever."""
    digest = hashlib.sha256(f"warmline-arm|{call_sid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def arm_for(call_sid: str, *, use_proactive_filler: bool, rollout_percent: int) -> str:
    """``"warmline"`` for the first ``rollout_percent`` buckets when the filler flow is on, else ``"control"``."""
    if not use_proactive_filler:
        return CONTROL
    return WARMLINE if bucket(call_sid) < rollout_percent else CONTROL
