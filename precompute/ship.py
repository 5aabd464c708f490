"""Shipping turn events to a shared store, so the nightly job mines every host's calls.

Each host uploads its *complete* day files (UTC days before today) as
``events/<host-id>/turns-YYYY-MM-DD.jsonl``. Stores are create-only, so a day file is uploaded
once, when it can no longer grow; today's file stays local and is mined locally by this host
(see ``precompute.runner.mined_counts``). Shipping is idempotent: names already in the store
are skipped (and a racing duplicate upload is harmless: first writer wins).

The host id comes from the ``host_id`` setting (``WARMLINE_HOST_ID``) or the host name, folded to ``[a-z0-9-]{1,64}``.
Thread- and process-safe (reads local files, create-only writes).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socket
from pathlib import Path

from cdn.store import AudioStore, events_name
from precompute.mine import day_of

log = logging.getLogger("warmline.precompute")


def host_id(raw: str | None = None) -> str:
    """This host's id for object names: ``raw`` (the host_id setting) or the host name, folded to [a-z0-9-]."""
    raw = raw or socket.gethostname()
    folded = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:64].strip("-")
    return folded or "host"


def is_shared_store(store: AudioStore) -> bool:
    """True for a store other hosts see too (anything but the embedded local directory)."""
    from cdn.local import LocalStore

    return not isinstance(store, LocalStore)


def ship_events(directory: Path | str, store: AudioStore, host: str, today: dt.date | None = None) -> list[str]:
    """Upload this host's complete day files not yet in ``store``; return the names uploaded."""
    today = today or dt.datetime.now(dt.UTC).date()
    existing = set(store.list(f"events/{host}/"))
    shipped = []
    for path in sorted(Path(directory).glob("turns-*.jsonl")):
        day = day_of(path.name)
        if day is None or day >= today:
            continue
        name = events_name(host, day)
        if name in existing:
            continue
        store.put(name, path.read_bytes())
        shipped.append(name)
        log.info("shipped %s (%d bytes)", name, path.stat().st_size)
    return shipped
