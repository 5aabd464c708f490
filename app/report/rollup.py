"""Daily rollups: one host's day of turn events, aggregated so that reports need not re-read them.

A rollup holds, per (business, arm) of that host and day, every counter of the report and the
fixed-bucket latency histograms (``app.report.compute.EDGES``); merging rollups adds counters and
histograms bucket by bucket, which is exact: a report over rollups gives the same counts as over
the raw events, and percentiles within one bucket of the raw events' exact ones. It also keeps the
``ROLLUP_MISSES`` most-missed sentences of each business with up to ``CALLS_CAP`` distinct call
ids each (so "heard in N distinct calls" survives merging); a sentence outside a day's top list is
not carried into a month's top list (the one approximation, stated in the report's footer).

JSON, written create-only as ``rollup/<host>/<day>.json`` in the events store by the shipper once
the day is closed and fully shipped (``app.events_ship``). Pure functions; thread-safe.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from app.report.compute import _Fold, _loads, read_lines

ROLLUP_VERSION = 1
ROLLUP_MISSES = 200


def rollup_of(lines: Any, host: str, day: dt.date, *, end: int | None = None) -> dict[str, Any]:
    """The rollup (a JSON-ready dict) of ``host``'s events of ``day`` (raw JSON lines)."""
    fold = _Fold(day, day, None)
    fold.feed(lines, host)
    return {"v": ROLLUP_VERSION, "host": host, "day": day.isoformat(), "end": end, **fold.to_rollup(ROLLUP_MISSES)}


def rollup_bytes(data: bytes, host: str, day: dt.date) -> bytes:
    """The rollup of one host's day file contents ``data``, serialized."""
    doc = rollup_of(read_lines(data), host, day, end=len(data))
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def load(data: bytes) -> dict[str, Any]:
    """A rollup document from its bytes; ValueError when it is not one of ours."""
    doc = _loads(data)
    if not isinstance(doc, dict) or doc.get("v") != ROLLUP_VERSION or not isinstance(doc.get("groups"), list):
        raise ValueError("not a Warmline rollup")
    return doc
