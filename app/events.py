"""The turn log: one JSON line per turn, one file per UTC day, append-only.

Safe with many workers and threads: each line is written with a single ``write`` on a file
opened with O_APPEND while holding an exclusive ``flock``, so lines never interleave.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EVENT_VERSION = 1


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class EventLog:
    """Appends turn events to ``<directory>/turns-YYYY-MM-DD.jsonl``. Thread- and process-safe."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def path_for(self, day: dt.date) -> Path:
        return self.directory / f"turns-{day.isoformat()}.jsonl"

    def append(self, event: dict[str, Any], *, when: dt.datetime | None = None) -> Path:
        """Write ``event`` (with ``v`` and ``ts`` filled in) as one line; return the day file's path."""
        when = when or utc_now()
        record = {"v": EVENT_VERSION, "ts": iso(when), **event}
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(when.date())
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)
        return path

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("turns-*.jsonl"))

    def read(self) -> Iterator[dict[str, Any]]:
        """Every well-formed event in every day file (corrupt lines are skipped)."""
        for path in self.files():
            with path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
