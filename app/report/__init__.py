"""Cache-hit reports: pure computation (compute), rollups, sources, text renderings (render), the page, the CLI.

:func:`report_from_runtime` is the one entry point the CLI and the admin views share: it reads
every host's events (rollups, shipped chunks and this host's own log, see ``source``) and builds
the report for a date window.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from app.report.compute import Report, _Fold, default_window, finish


def events_dir(settings: Any) -> Path:
    """This host's turn log directory: ``<data_dir>/events``."""
    return Path(settings.data_dir) / "events"


def report_from_runtime(
    runtime: Any,
    *,
    since: date | None = None,
    until: date | None = None,
    business: str | None = None,
    host: str | None = None,
    today: date | None = None,
) -> Report:
    """Build the report for ``runtime`` (``.settings``, ``.businesses``) over [since, until].

    Missing bounds default to the 14 days ending ``today`` (UTC). ``host`` keeps one host's
    turns only. Thread-safe; large local files are folded in worker processes. Raises
    StoreError when the events store cannot be read.
    """
    from app.report.source import collect, events_store_of, host_of

    settings = runtime.settings
    if since is None or until is None:
        lo, hi = default_window(until or today or datetime.now(UTC).date())
        since, until = since or lo, until or hi
    fold = _Fold(since, until, business, host)
    hosts = collect(fold, events_dir=events_dir(settings), store=events_store_of(runtime), this_host=host_of(runtime),
                    since=since, until=until)
    return finish(
        fold, since=since, until=until, business=business, price=settings.price_per_1k_chars,
        known=runtime.businesses.ids(), min_calls=settings.min_distinct_calls, hosts=hosts,
    )
