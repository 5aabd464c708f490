"""Admin surface: authentication (bearer token / cookie), the report page and JSON, ``flask report``.

``init_app(app)`` registers the ``admin_auth``, ``admin_report`` and ``admin_precompute`` blueprints, the ``/metrics``
blueprint (:mod:`app.metrics`) and the ``report`` CLI command. Idempotent: a blueprint already
registered under its name is skipped, so calling ``app.metrics.init_app`` as well is harmless.
"""

from __future__ import annotations


def init_app(app) -> None:
    from app import metrics
    from app.admin import auth, precompute_views, report_views
    from app.report import cli

    for bp in (auth.bp, report_views.bp, precompute_views.bp):
        if bp.name not in app.blueprints:
            app.register_blueprint(bp)
    metrics.init_app(app)
    if "report" not in app.cli.commands:
        cli.init_app(app)
