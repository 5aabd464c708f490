"""The Twilio voice webhooks."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from app.voice.views import bp

    app.register_blueprint(bp)
