"""Pacing: how long a webhook may hold the caller in silence, from what recent turns took.

The instant budget (wait for a cached answer before playing a filler) only pays when the answer
can be ready within it. With an embedded responder that answers in microseconds it often is; with
an LLM that takes 0.5-1.5 s it never is, and waiting only delays the filler -- and so the answer,
which plays after the filler. :class:`Pacing` keeps a short window of recent AI latencies per
business and turns the budget off while the AI is too slow for it to pay.

Process-local and thread-safe. Each process learns from the turns it finishes; a new process starts
with the configured budget.
"""

from __future__ import annotations

import threading
from collections import deque

MIN_SAMPLES = 8


class Pacing:
    """Rolling per-business AI latencies (ms) of this process; thread-safe."""

    def __init__(self, window: int = 64) -> None:
        self.window = window
        self._ai: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def observe_ai(self, business_id: str, ai_ms: float | None) -> None:
        if ai_ms is None:
            return
        with self._lock:
            self._ai.setdefault(business_id, deque(maxlen=self.window)).append(float(ai_ms))

    def instant_budget_s(self, business_id: str, budget_s: float) -> float:
        """``budget_s`` while an instant answer is plausible, else 0.

        Plausible = fewer than MIN_SAMPLES observations yet, or at least a quarter of the recent AI
        replies came within the budget.
        """
        with self._lock:
            samples = sorted(self._ai.get(business_id, ()))
        if len(samples) < MIN_SAMPLES:
            return budget_s
        return budget_s if samples[(len(samples) - 1) // 4] <= budget_s * 1000 else 0.0
