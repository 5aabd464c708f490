"""Warmline: the audio side of an AI phone receptionist on Twilio, with no dead air.

Only :func:`create_app` builds the app (``wsgi.py`` and the tests call it).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from app.business import load_businesses
from app.config import load_settings
from app.runtime import Runtime


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    ``test_config`` may hold settings overrides (any :class:`~app.config.Settings` field) and,
    under the key ``"runtime"``, objects to pre-seed the runtime with (``store``, ``providers``,
    ``responder``, ...) — fakes at the boundary for tests.
    """
    test_config = dict(test_config or {})
    runtime_overrides = test_config.pop("runtime", {})
    settings = load_settings(overrides=test_config)
    businesses = load_businesses(settings.businesses)
    app = Flask(__name__)
    app.config.update(
        TESTING=settings.env == "testing",
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
    )
    app.extensions["warmline"] = Runtime(settings, businesses, runtime_overrides)
    if not settings.public_url:
        # Behind a TLS-terminating proxy, see the scheme and host Twilio used (for signatures).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    _configure_logging(settings.env)

    from app import cli, doctor, metrics
    from app.admin import init_app as init_admin
    from app.voice import init_app as init_voice
    from cdn.edge import edge as edge_bp
    from precompute import init_app as init_precompute

    app.register_blueprint(edge_bp)
    init_voice(app)
    init_admin(app)
    metrics.init_app(app)
    cli.init_app(app)
    doctor.init_app(app)
    init_precompute(app)

    @app.after_request
    def _served_by(response):
        # Which worker answered: lets ops (and the tests) see requests of one call move between workers.
        response.headers["X-Warmline-Worker"] = str(os.getpid())
        return response

    @app.get("/healthz")
    def healthz():
        from app.health import check

        body, status = check(app.extensions["warmline"])
        response = jsonify(body)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _configure_logging(env: str) -> None:
    """Structured logs: every ``warmline.*`` record as one JSON line on stderr (gunicorn collects it).

    Under ``testing`` the records only propagate (pytest's capture reads them). Idempotent: the
    handler is installed once per process however many apps are built.
    """
    from app.metrics import JsonFormatter

    logger = logging.getLogger("warmline")
    logger.setLevel(logging.INFO)
    if env == "testing" or any(getattr(h, "_warmline", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler._warmline = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
