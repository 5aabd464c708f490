"""Cache-hit reports: pure computation (compute), text renderings (render), the HTML page (page), the CLI.

:func:`report_from_runtime` is the one entry point the CLI and the admin views share: it reads
the turn log under ``<data_dir>/events/`` and builds the report for a date window.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from app.report.compute import Report, build_report_from_files, default_window, event_files


def events_dir(settings: Any):
    """The turn log directory: ``<data_dir>/events``."""
    return settings.data_dir / "events"


def report_from_runtime(
    runtime: Any,
    *,
    since: date | None = None,
    until: date | None = None,
    business: str | None = None,
    today: date | None = None,
) -> Report:
    """Build the report for ``runtime`` (``.settings``, ``.businesses``) over [since, until].

    Missing bounds default to the 14 days ending ``today`` (UTC). Thread-safe; large windows are
    folded in worker processes (see :func:`~app.report.compute.build_report_from_files`).
    """
    settings = runtime.settings
    if since is None or until is None:
        lo, hi = default_window(until or today or datetime.now(UTC).date())
        since, until = since or lo, until or hi
    files = event_files(events_dir(settings), since, until)
    return build_report_from_files(
        files, since=since, until=until, business=business,
        price_per_1k_chars=settings.price_per_1k_chars, businesses=runtime.businesses.ids(),
    )
