"""Recorded receptionist-style dialogues (shared/corpus/*.jsonl): what precompute mines, what the simulator replays.

The corpus (``sgd-dev.jsonl``) is derived from the Schema-Guided Dialogue dataset, (c) Google,
CC BY-SA 4.0 — see ``LICENSE-NOTES.txt`` next to it. This module only reads it at run time.

One JSON object per line::

    {"id": "sgd:dev:11_00055#Services_4", "domain": "Services_4", "domain_desc": "...",
     "turns": [{"speaker": "user", "text": "..."},
               {"speaker": "system", "text": "...", "slots": [["city", 30, 40], ...]}, ...], ...}

Slots are ``[name, start, end]`` character spans into that turn's text (end exclusive).
:func:`load_dialogues` skips malformed lines and counts them (``.bad_lines``); blank lines are
ignored. Dialogue objects are immutable and safe to share across threads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

SPEAKERS = ("user", "system")

Slot = tuple[str, int, int]


class Turn(NamedTuple):
    """One utterance: ``speaker`` is ``"user"`` (the caller) or ``"system"`` (the receptionist)."""

    speaker: str
    text: str
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True)
class Dialogue:
    """One recorded conversation, turns in order."""

    id: str
    turns: tuple[Turn, ...]
    domain: str = ""
    description: str = ""

    def utterances(self) -> list[str]:
        """What the caller says, in order."""
        return [t.text for t in self.turns if t.speaker == "user"]

    def system_turns(self) -> list[Turn]:
        """What the receptionist says, in order."""
        return [t for t in self.turns if t.speaker == "system"]


class Dialogues(list):
    """A ``list[Dialogue]`` that also says how many lines of its file could not be used."""

    def __init__(self, items: Iterable[Dialogue] = (), *, bad_lines: int = 0, path: Path | None = None) -> None:
        super().__init__(items)
        self.bad_lines = bad_lines
        self.path = path


class BadDialogue(ValueError):
    """A corpus line that is not a usable dialogue."""


def _slot(raw: Any, text: str) -> Slot:
    if not (isinstance(raw, (list, tuple)) and len(raw) == 3):
        raise BadDialogue(f"slot {raw!r} is not [name, start, end]")
    name, start, end = raw
    if not isinstance(name, str) or not name:
        raise BadDialogue(f"slot name {name!r}")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
    if not ints or not 0 <= start < end <= len(text):
        raise BadDialogue(f"slot span {raw!r} outside a {len(text)}-character text")
    return (name, start, end)


def parse_dialogue(data: Any) -> Dialogue:
    """One decoded JSON line -> Dialogue; raises BadDialogue naming the problem."""
    if not isinstance(data, dict):
        raise BadDialogue("not an object")
    ident = data.get("id")
    if not isinstance(ident, str) or not ident:
        raise BadDialogue("missing id")
    raw_turns = data.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise BadDialogue(f"{ident}: no turns")
    turns = []
    for i, raw in enumerate(raw_turns):
        if not isinstance(raw, dict):
            raise BadDialogue(f"{ident}: turn {i} is not an object")
        speaker, text = raw.get("speaker"), raw.get("text")
        if speaker not in SPEAKERS:
            raise BadDialogue(f"{ident}: turn {i} speaker {speaker!r}")
        if not isinstance(text, str) or not text.strip():
            raise BadDialogue(f"{ident}: turn {i} has no text")
        slots_raw = raw.get("slots") or []
        if not isinstance(slots_raw, list):
            raise BadDialogue(f"{ident}: turn {i} slots is not a list")
        slots = tuple(sorted((_slot(s, text) for s in slots_raw), key=lambda s: (s[1], s[2], s[0])))
        turns.append(Turn(speaker, text, slots))
    domain = data.get("domain") if isinstance(data.get("domain"), str) else ""
    desc = data.get("domain_desc") if isinstance(data.get("domain_desc"), str) else ""
    return Dialogue(id=ident, turns=tuple(turns), domain=domain, description=desc)


def load_dialogues(path: str | Path) -> Dialogues:
    """Every usable dialogue of a JSONL file, in file order; ``.bad_lines`` counts the rest.

    Slots of each turn are sorted by start offset. Raises OSError if the file cannot be read.
    """
    path = Path(path)
    dialogues: list[Dialogue] = []
    bad = 0
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                dialogues.append(parse_dialogue(json.loads(line)))
            except (ValueError, BadDialogue):
                bad += 1
    return Dialogues(dialogues, bad_lines=bad, path=path)
