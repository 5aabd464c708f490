"""Pacing: how long a webhook may hold the caller in silence, from what recent turns took.

The instant budget (wait for a cached answer before playing a filler) only pays when the answer
can be ready within it. With an embedded responder that answers in microseconds it often is; with
an LLM that takes 0.5-1.5 s it never is, and waiting only delays the filler -- and so the answer,
which plays after the filler. :class:`Pacing` keeps a short window of recent AI latencies per
business and turns the budget off while the AI is too slow for it to pay.

Process-local and thread-safe. Each process learns from the turns it finishes; a new process starts
with the configured budget.

Bridges: while an answer is pending, every ``tts-ready`` hop waits at most the silence budget and
then bridges with a short phrase (:meth:`Pacing.next_bridge`): "Just a moment." first, then a longer
hold phrase, then an honest "sorry for the wait"; after that the two first alternate, so the same
phrase never plays twice in a row, until the turn deadline's ``<Say>``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

MIN_SAMPLES = 8
BRIDGES = ("second_filler", "hold", "sorry_wait")
"""The prompts that bridge a wait, in order; after the last, the first two alternate."""


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

    def instant_budget_s(self, business_id: str, budget_s: float, *, remote_responder: bool = False) -> float:
        """``budget_s`` while an instant answer is plausible, else 0.

        Plausible = at least a quarter of the recent AI replies came within the budget; before
        MIN_SAMPLES were seen, unless the responder is a model behind the network
        (``remote_responder``): its first turns play their filler at once instead of waiting out the
        budget while the process learns what every turn would show.
        """
        with self._lock:
            samples = sorted(self._ai.get(business_id, ()))
        if len(samples) < MIN_SAMPLES:
            return 0.0 if remote_responder else budget_s
        return budget_s if samples[(len(samples) - 1) // 4] <= budget_s * 1000 else 0.0

    @staticmethod
    def next_bridge(business: Any, played: Sequence[str]) -> str:
        """The bridge to play after the bridges ``played`` so far this turn (never the last one again)."""
        n = len(played)
        name = BRIDGES[n] if n < len(BRIDGES) else BRIDGES[(n - len(BRIDGES)) % 2]
        text = business.prompt(name)
        if played and text == played[-1]:  # a business may configure two bridges alike
            text = next((t for t in (business.prompt(b) for b in BRIDGES) if t != played[-1]), text)
        return text
