"""Precompute: synthesize what callers will hear before they call.

``plan`` (pure) decides what to make; ``mine`` counts what callers heard (turn events, corpus
files, every host's from the private events store, see ``app.events_ship``); ``runner`` makes it
(bounded, retrying, idempotent, locked); ``scheduler`` runs it nightly; ``cli`` holds the commands.
Importing this package does nothing; :func:`init_app` registers the ``precompute`` CLI group and
the ``admin_precompute`` blueprint (idempotent).
"""

from __future__ import annotations


def init_app(app) -> None:
    from app.admin import precompute_views
    from precompute.cli import precompute_cli

    if precompute_views.bp.name not in app.blueprints:
        app.register_blueprint(precompute_views.bp)
    if precompute_cli.name not in app.cli.commands:
        app.cli.add_command(precompute_cli)
