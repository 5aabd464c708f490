"""``flask report``: the cache-hit report in the terminal (table), or as JSON / CSV for tools."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from app.report import report_from_runtime
from app.report.render import FORMATS, render


@click.command("report")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="first day (UTC), default 13 days before --until")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="last day (UTC), default today")
@click.option("--business", metavar="ID", help="one business only")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@with_appcontext
def report_command(since: datetime | None, until: datetime | None, business: str | None, fmt: str) -> None:
    """Cache hits, latencies, fallbacks and top missed sentences from the turn log."""
    if since and until and since > until:
        raise click.BadParameter("--since is after --until", param_hint="--since")
    runtime = current_app.extensions["warmline"]
    if business is not None and runtime.businesses.get(business) is None:
        raise click.BadParameter(f"unknown business {business!r}", param_hint="--business")
    report = report_from_runtime(
        runtime, since=since.date() if since else None, until=until.date() if until else None, business=business,
    )
    click.echo(render(report, fmt), nl=False)


def init_app(app) -> None:
    """Register ``flask report``."""
    app.cli.add_command(report_command)
