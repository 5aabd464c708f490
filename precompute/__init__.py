"""Precompute: synthesize what callers will hear before they call.

``plan`` (pure) decides what to make; ``mine`` counts what callers heard (turn events, corpus
files, every host's from the private events store, see ``app.events_ship``); ``runner`` makes it
(bounded, retrying, idempotent, locked); ``scheduler`` runs it nightly; ``cli`` holds the commands.
``corpus`` reads recorded dialogues (JSONL) for mining and for the simulator. Importing this package
does nothing; :func:`init_app` registers the ``precompute`` CLI group (idempotent). Its admin views
(``/admin/filler``, ``/admin/precompute``) live with the other admin views, in
:mod:`app.admin.precompute_views`; nothing here imports ``app.admin`` or ``simulator``.
"""

from __future__ import annotations


def init_app(app) -> None:
    from precompute.cli import precompute_cli

    if precompute_cli.name not in app.cli.commands:
        app.cli.add_command(precompute_cli)
