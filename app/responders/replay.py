"""Replay recorded dialogues as the responder: realistic receptionist text at a realistic pace.

For benchmarks and soak tests: the simulated caller speaks a recorded dialogue's user turns, and
:class:`ReplayResponder` answers each with the recorded system turn that followed it, keyed by
position (the N-th caller utterance gets the reply that followed the N-th user turn), with the
recorded slot spans as :attr:`Reply.marks`. The reply after the last user turn has action
``end``; past the end the business's goodbye is said. With several dialogues, a call's dialogue is
the one whose first user turn matches the call's first utterance (case, punctuation and spacing
ignored), else one picked by a hash of that utterance — stable across workers and hosts.

Dialogues are duck-typed (``.id`` and ``.turns`` of ``(speaker, text, slots)`` with speakers
``"user"``/``"system"``, as :mod:`precompute.corpus` loads them), so ``app`` does not import the
simulator. Thread-safe: immutable after construction; the latency model locks its RNG.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from app.business import Business
from app.responders.base import Mark, Reply, prior_history


class LatencyModel:
    """A seeded uniform delay in ``[min_ms, max_ms]``, standing in for an LLM's think time.

    ``LatencyModel(0, 0)`` never sleeps. Thread-safe (the RNG is behind a lock); the sequence
    of delays is the same for the same seed, whichever threads draw them.
    """

    def __init__(self, min_ms: float = 500.0, max_ms: float = 1500.0, seed: int | None = 0) -> None:
        if not 0 <= min_ms <= max_ms:
            raise ValueError(f"need 0 <= min_ms <= max_ms, got {min_ms}, {max_ms}")
        self.min_ms = float(min_ms)
        self.max_ms = float(max_ms)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @classmethod
    def none(cls) -> LatencyModel:
        return cls(0.0, 0.0)

    def sample_s(self) -> float:
        """The next delay, in seconds."""
        if self.max_ms == 0:
            return 0.0
        with self._lock:
            return self._rng.uniform(self.min_ms, self.max_ms) / 1000.0

    def sleep(self) -> float:
        """Sleep the next delay; returns it in seconds."""
        delay = self.sample_s()
        if delay > 0:
            time.sleep(delay)
        return delay


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def replies_of(dialogue: Any) -> list[tuple[str, tuple[Mark, ...]] | None]:
    """For each user turn, the system turn(s) that followed it (joined, marks shifted); None if none."""
    out: list[tuple[str, tuple[Mark, ...]] | None] = []
    current: list[tuple[str, Sequence[Mark]]] | None = None
    for speaker, text, slots in dialogue.turns:
        if speaker == "user":
            if current is not None:
                out.append(_join(current))
            current = []
        elif current is not None:  # system turns before the first user turn are the greeting: skipped
            current.append((text, slots))
    if current is not None:
        out.append(_join(current))
    return out


def _join(parts: list[tuple[str, Sequence[Mark]]]) -> tuple[str, tuple[Mark, ...]] | None:
    if not parts:
        return None
    text = ""
    marks: list[Mark] = []
    for chunk, slots in parts:
        if text:
            text += " "
        marks.extend((name, len(text) + start, len(text) + end) for name, start, end in slots)
        text += chunk
    return text, tuple(sorted(marks, key=lambda m: (m[1], m[2], m[0])))


class ReplayResponder:
    """Answers with recorded system turns (see the module docstring). Thread-safe."""

    def __init__(self, dialogues: Any, *, latency: LatencyModel | None = None) -> None:
        items = [dialogues] if hasattr(dialogues, "turns") else list(dialogues)
        if not items:
            raise ValueError("ReplayResponder needs at least one dialogue")
        self.dialogues = items
        self.latency = latency if latency is not None else LatencyModel(500.0, 1500.0, seed=0)
        self._replies = [replies_of(d) for d in items]
        self._by_first: dict[str, int] = {}
        for i, d in enumerate(items):
            first = next((text for speaker, text, _ in d.turns if speaker == "user"), None)
            if first is not None:
                self._by_first.setdefault(_key(first), i)

    def dialogue_for(self, first_utterance: str) -> int:
        """Index of the dialogue a call follows, from its first caller utterance."""
        key = _key(first_utterance)
        if key in self._by_first:
            return self._by_first[key]
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % len(self.dialogues)

    def reply(self, business: Business, history: list[dict[str, Any]], utterance: str) -> Reply:
        items = prior_history(history, utterance)
        callers = [str(h.get("text", "")) for h in items if h.get("role") == "caller"]
        index = self.dialogue_for(callers[0] if callers else utterance)
        replies = self._replies[index]
        position = len(callers)
        self.latency.sleep()
        if position >= len(replies) or replies[position] is None:
            return Reply(business.prompt("goodbye"), "end")
        text, marks = replies[position]
        last = position == len(replies) - 1
        return Reply(text, "end" if last else "continue", marks)

    @staticmethod
    def of(dialogues: Iterable[Any], **kwargs: Any) -> ReplayResponder:
        return ReplayResponder(list(dialogues), **kwargs)
