"""``flask report``: the cache-hit report in the terminal (table), or as JSON / CSV for tools."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from app.errors import StoreError
from app.report import report_from_runtime
from app.report.render import FORMATS, render


@click.command("report")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="first day (UTC), default 13 days before --until")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="last day (UTC), default today")
@click.option("--business", metavar="ID", help="one business only")
@click.option("--host", metavar="HOST", help="one host's turns only (a WARMLINE_HOST_ID)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--wide", is_flag=True, help="table: every percentile, characters and cost per business and day (> 120 columns)")
@with_appcontext
def report_command(since: datetime | None, until: datetime | None, business: str | None, host: str | None,
                   fmt: str, wide: bool) -> None:
    """What callers heard: cache hits, <Say>, fallback voices, apologies, latencies, missed sentences (every host)."""
    if since and until and since > until:
        raise click.BadParameter("--since is after --until", param_hint="--since")
    runtime = current_app.extensions["warmline"]
    if business is not None and runtime.businesses.get(business) is None:
        raise click.BadParameter(f"unknown business {business!r}", param_hint="--business")
    try:
        report = report_from_runtime(
            runtime, since=since.date() if since else None, until=until.date() if until else None,
            business=business, host=host,
        )
    except StoreError as exc:
        raise click.ClickException(f"cannot read the events store: {exc}") from exc
    click.echo(render(report, fmt, wide=wide), nl=False)


@click.group("events")
def events_group() -> None:
    """This host's turn events and the private events store."""


@events_group.command("ship")
@with_appcontext
def ship_command() -> None:
    """Ship this host's new turn events (and closed days' rollups) to WARMLINE_EVENTS_STORE now."""
    from app.events_ship import shipper_for

    shipper = shipper_for(current_app.extensions["warmline"])
    if shipper is None:
        raise click.ClickException("WARMLINE_EVENTS_STORE is not set: nothing to ship to")
    try:
        result = shipper.ship_once()
    except StoreError as exc:
        raise click.ClickException(f"shipping failed: {exc}") from exc
    finally:
        shipper.close()
    if result.locked_out:
        click.echo("another process of this host is shipping (it holds the ship lock); nothing done")
        return
    click.echo(f"shipped {len(result.chunks)} chunks ({result.bytes:,} bytes) and {len(result.rollups)} rollups "
               f"to {shipper.store.location}")


def init_app(app) -> None:
    """Register ``flask report`` and ``flask events``."""
    app.cli.add_command(report_command)
    app.cli.add_command(events_group)
