"""``flask --app wsgi precompute run|schedule``: the precompute commands.

    precompute run [--business ID]... [--dry-run] [--budget-chars N] [--from-corpus FILE] [--fixed-only]
    precompute schedule [--now]

Exit status of ``run``: 0 when every planned clip is published, 1 when some failed, 2 when
another run holds the lock (nothing was done), 3 for a configuration error.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.errors import ConfigError, PrecomputeLocked, WarmlineError
from precompute.runner import RunOptions, plan_for, precompute

precompute_cli = AppGroup("precompute", help="Synthesize what callers will hear before they call.")

EXIT_FAILED = 1
EXIT_LOCKED = 2
EXIT_CONFIG = 3


def _runtime():
    return current_app.extensions["warmline"]


def _log_to_stderr() -> None:
    logger = logging.getLogger("warmline")
    if not any(getattr(h, "_precompute", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._precompute = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@precompute_cli.command("run")
@click.option("--business", "business_ids", multiple=True, help="Only this business (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan and its estimated cost; synthesize nothing.")
@click.option("--budget-chars", type=click.IntRange(min=0), default=None,
              help="Character budget of this run (default: WARMLINE_PRECOMPUTE_BUDGET_CHARS).")
@click.option("--from-corpus", "corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Also mine this corpus (JSONL dialogues), e.g. for a first start-up.")
@click.option("--fixed-only", is_flag=True, help="Only fillers, greeting, prompts and FAQ answers (quick).")
def run_command(business_ids: tuple[str, ...], dry_run: bool, budget_chars: int | None, corpus: Path | None,
                fixed_only: bool) -> None:
    """Plan, synthesize and publish the clips callers are about to hear."""
    rt = _runtime()
    _log_to_stderr()
    options = RunOptions(business_ids=business_ids or None, dry_run=dry_run, budget_chars=budget_chars,
                         corpus=corpus, fixed_only=fixed_only)
    price = rt.settings.price_per_1k_chars
    try:
        if dry_run:
            plan = plan_for(rt, options)
            click.echo(f"{'kind':<10} {'count':>6} {'chars':>5}  text")
            for item in plan.items[:50]:
                click.echo(f"{item.kind:<10} {item.count:>6} {item.chars:>5}  {item.text[:70]}")
            if len(plan.items) > 50:
                click.echo(f"... and {len(plan.items) - 50} more")
            click.echo(f"planned {len(plan.items)} clips ({len(plan.fixed)} fixed, {len(plan.mined)} mined), "
                       f"{plan.chars} characters, estimated cost {plan.est_cost(price):.4f} "
                       f"(at {price:g} per 1,000 characters)")
            click.echo(f"skipped: {plan.already_published} already published, {plan.below_min_count} below "
                       f"min_count {rt.settings.precompute_min_count}, {plan.cut_by_budget} cut by the budget")
            click.echo("dry run: nothing synthesized")
            return
        summary = precompute(rt, options)
    except PrecomputeLocked as exc:
        click.echo(f"precompute: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    except ConfigError as exc:
        click.echo(f"precompute: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except WarmlineError as exc:
        click.echo(f"precompute failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        sys.exit(EXIT_FAILED)


@precompute_cli.command("schedule")
@click.option("--now", is_flag=True, help="Also run once right away (a new deployment's first clips).")
def schedule_command(now: bool) -> None:
    """Run precompute on the configured cron schedule, in this one process, until interrupted.

    Exactly one scheduler per deployment: this process holds a lock for its life (a flock on the
    data dir; with Redis state also a deployment-wide lease), and a second one exits with status 2.
    """
    from precompute.runner import scheduler_lock_for
    from precompute.scheduler import build_scheduler, nightly_job

    rt = _runtime()
    _log_to_stderr()
    try:
        scheduler = build_scheduler(rt)
    except ConfigError as exc:
        click.echo(f"precompute: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    try:
        held = scheduler_lock_for(rt).acquire()
    except PrecomputeLocked as exc:
        click.echo(f"precompute: {exc}; exactly one scheduler per deployment", err=True)
        sys.exit(EXIT_LOCKED)
    # SIGTERM (a service manager's stop) ends it like Ctrl-C: the lease is released, not left to lapse.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    if now:
        scheduler.add_job(nightly_job, args=[rt], id="precompute-now", name="precompute at start")
    click.echo(f"precompute scheduled: cron {rt.settings.precompute_cron!r} in {rt.settings.precompute_timezone}"
               f"{', and once now' if now else ''}; Ctrl-C to stop", )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        held.release()
