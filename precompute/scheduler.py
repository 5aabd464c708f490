"""The nightly trigger: APScheduler in one process (``flask --app wsgi precompute schedule``).

Run it as its own process, never inside gunicorn workers (each worker would run every job).
The cron expression and time zone come from settings (``WARMLINE_PRECOMPUTE_CRON``,
``WARMLINE_PRECOMPUTE_TIMEZONE``). The job calls the same :func:`precompute.runner.precompute`
as the CLI; ``max_instances=1`` and ``coalesce`` keep one run at a time inside this process,
and the run lock keeps it from overlapping a manual run or another scheduler on the same host.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from app.errors import ConfigError, PrecomputeLocked, WarmlineError
from precompute.runner import precompute

log = logging.getLogger("warmline.precompute")

JOB_ID = "precompute"


def nightly_job(runtime: Any) -> None:
    """One scheduled run; a held lock or a failed run is logged, never raised into the scheduler."""
    try:
        summary = precompute(runtime)
    except PrecomputeLocked as exc:
        log.warning("scheduled precompute skipped: %s", exc)
        return
    except WarmlineError as exc:
        log.error("scheduled precompute failed: %s: %s", type(exc).__name__, exc)
        return
    for line in summary.lines():
        log.info("precompute: %s", line)


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def standard_day_of_week(field: str) -> str:
    """A crontab day-of-week field with numbers as names, in crontab's numbering (0 and 7 = Sunday).

    APScheduler 3's ``CronTrigger.from_crontab`` counts 0 as *Monday* (its documented historical
    mistake), so "1-5" would mean Tuesday to Saturday; names mean the same to everyone. Step
    values ("*/2") stay numbers.
    """
    def name(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if number > 7:
            raise ValueError(f"day of week {number} is not 0-7")
        return _CRON_DAYS[number % 7]

    return re.sub(r"(?<![/\d])\d+", name, field)


def trigger(settings: Any) -> CronTrigger:
    """The cron trigger of ``settings`` (standard crontab semantics); ConfigError for a bad expression or zone."""
    fields = settings.precompute_cron.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
        minute, hour, day, month, dow = fields
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=standard_day_of_week(dow),
                           timezone=settings.precompute_timezone)
    except (ValueError, LookupError, IndexError) as exc:
        raise ConfigError(
            f"WARMLINE_PRECOMPUTE_CRON={settings.precompute_cron!r} / "
            f"WARMLINE_PRECOMPUTE_TIMEZONE={settings.precompute_timezone!r}: {exc}"
        ) from exc


def build_scheduler(runtime: Any, scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """A scheduler (default: blocking) with the nightly job added; not started."""
    cron = trigger(runtime.settings)
    scheduler = scheduler or BlockingScheduler(timezone=cron.timezone)
    scheduler.add_job(nightly_job, cron, args=[runtime], id=JOB_ID, name="nightly precompute",
                      max_instances=1, coalesce=True, misfire_grace_time=3600, replace_existing=True)
    return scheduler
