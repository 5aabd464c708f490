"""Where a report's events come from: every host's rollups and shipped chunks, plus this host's log.

For each host and each day of the window, exactly one source is read:

1. the day's rollup, if the events store has one (then, for this host, only the bytes of the
   local day file written after the rollup's ``end`` — normally none);
2. else, for this host, the local day file itself (its shipped chunks are a prefix of it, so
   they are not read: that is the "unshipped tail" without double counting);
3. else the host's shipped raw chunks of that day.

Without an events store only this host's local log is read (one machine). Thread-safe; reads only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.events_store import ROLLUP_RE, EventsStore
from app.events_ship import day_of_file
from app.report.compute import _Fold, event_files, fold_files, read_events, read_lines
from app.report.rollup import load


def window(since: dt.date, until: dt.date) -> list[dt.date]:
    return [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]


def collect(fold: _Fold, *, events_dir: Path, store: EventsStore | None, this_host: str,
            since: dt.date, until: dt.date) -> list[str]:
    """Fold every host's events of [since, until] into ``fold``, each event once; return the hosts seen.

    Raises StoreError when the events store cannot be read.
    """
    if store is None:
        fold_files(event_files(events_dir, since, until), fold, host=this_host)
        return [this_host]
    days = window(since, until)
    hosts = sorted(set(store.hosts()) | {this_host})
    local = {d: p for p in Path(events_dir).glob("turns-*.jsonl") if (d := day_of_file(p.name)) is not None}
    local_paths: list[Path] = []
    for host in hosts:
        if not fold.wants(host):
            continue
        rolled = {}
        for name in store.list(f"rollup/{host}/"):
            m = ROLLUP_RE.fullmatch(name)
            if m:
                rolled[dt.date.fromisoformat(m.group(2))] = name
        for day in days:
            if day in rolled:
                doc = load(store.get(rolled[day]))
                fold.add_rollup(doc)
                end = doc.get("end")
                if host == this_host and day in local and isinstance(end, int):
                    with local[day].open("rb") as fh:
                        fh.seek(end)
                        tail = fh.read()
                    if tail:
                        fold.feed(read_lines(tail), host)
                continue
            if host == this_host and day in local:
                local_paths.append(local[day])
                continue
            for chunk in store.list(f"raw/{host}/{day.isoformat()}/"):
                fold.feed(read_lines(store.get(chunk)), host)
                fold.sources["raw_chunks"] = fold.sources.get("raw_chunks", 0) + 1
    fold_files(local_paths, fold, host=this_host)
    return hosts


def event_lines(*, events_dir: Path, store: EventsStore | None, this_host: str, since: dt.date,
                until: dt.date) -> Iterator[bytes]:
    """Every host's raw event lines of [since, until], each once (for mining: rollups hold no texts).

    This host's days come from its local log, other hosts' from their shipped chunks. Raises StoreError.
    """
    if store is None:
        yield from read_events(event_files(events_dir, since, until))
        return
    local = {d: p for p in Path(events_dir).glob("turns-*.jsonl") if (d := day_of_file(p.name)) is not None}
    for host in sorted(set(store.hosts()) | {this_host}):
        for day in window(since, until):
            if host == this_host and day in local:
                yield from read_events([local[day]])
                continue
            for chunk in store.list(f"raw/{host}/{day.isoformat()}/"):
                yield from read_lines(store.get(chunk))


def events_store_of(runtime: Any) -> EventsStore | None:
    """The runtime's events store (also for a bare settings holder, as the report tests use)."""
    if hasattr(runtime, "events_store"):
        return runtime.events_store
    from app.events_store import open_events_store

    s = runtime.settings
    return open_events_store(s.events_store, s.store, Path(s.data_dir))


def host_of(runtime: Any) -> str:
    if hasattr(runtime, "host"):
        return runtime.host
    from app.events_ship import host_id

    return host_id(runtime.settings.host_id)
