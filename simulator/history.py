"""What the LLM emulator was asked and answered during a load run, and whether every history was coherent.

:class:`RecordingResponses` wraps the emulator's replies and remembers each one per conversation;
:func:`history_problems` checks every request the emulator got against them (a turn run twice, a late
reply or a reply the caller never heard shows up as an incoherent history). Used by ``load`` and by the
emulator child processes (``simulator.emulator_process``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any


class RecordingResponses:
    """Wraps the LLM emulator's ``responses``: remembers every reply produced for each conversation. Thread-safe."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.produced: dict[tuple[tuple[str, str], ...], set[str]] = {}

    def __call__(self, request: dict[str, Any]) -> str:
        reply = self.inner(request)
        key = _conversation(request["messages"])
        with self._lock:
            self.produced.setdefault(key, set()).add(spoken(reply))
        return reply


_MARKER = re.compile(r"\[\s*(END|TRANSFER)\s*\]", re.IGNORECASE)


def spoken(text: str) -> str:
    """A reply as it enters the call's history: markers removed, whitespace collapsed."""
    return " ".join(_MARKER.sub(" ", text).split())


_NOT_WORD = re.compile(r"[^\w\s]")


def _conversation(messages: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The non-system messages; a caller's words compared by meaning (case and punctuation aside), since a
    speculative turn asked with the running transcript is adopted by a final one that says the same."""
    def text(m: dict[str, Any]) -> str:
        content = str(m["content"])
        return " ".join((_NOT_WORD.sub(" ", content.lower()) if m["role"] == "user" else content).split())

    return tuple((m["role"], text(m)) for m in messages if m["role"] != "system")


def history_problems(requests: Sequence[dict[str, Any]], produced: dict[tuple[tuple[str, str], ...], set[str]],
                     allowed: set[str]) -> list[str]:
    """Why LLM requests carried an incoherent history (one reason per bad request; empty: all coherent).

    Coherent: after the system prompt, the roles alternate user / assistant and end with the
    user; every assistant line is a reply the emulator produced for exactly the conversation
    before it (markers stripped), or one of ``allowed`` (the business's own prompts: the apology
    a failed request became, the goodbye). A turn run twice shows up as two assistant lines in
    a row, a late reply as a line produced for another conversation.
    """
    problems = []
    for request in requests:
        conv = _conversation(request["messages"])
        roles = [role for role, _text in conv]
        if roles != ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))] or len(roles) % 2 == 0:
            problems.append(f"roles {''.join(r[0] for r in roles)}")
            continue
        for i in range(1, len(conv), 2):
            line = conv[i][1]
            if line not in produced.get(conv[:i], set()) and line not in allowed:
                problems.append(f"agent line {i // 2 + 1} was not produced for what preceded it: {line[:60]!r}")
                break
    return problems


__all__ = ["RecordingResponses", "history_problems", "spoken"]
