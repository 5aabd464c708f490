"""A bare Flask app, the baseline of the cache-hit benchmark (``simulator capacity``).

``POST /bare`` parses the form (as every Warmline webhook does) and answers a constant, small
TwiML document: what Flask under the project's gunicorn settings costs per request, with none of
Warmline's work. Served by ``gunicorn -c gunicorn.conf.py simulator.bare_app:app``. Thread-safe.
"""

from __future__ import annotations

from flask import Flask, Response, request

BODY = ('<?xml version="1.0" encoding="UTF-8"?><Response><Play>http://127.0.0.1/cdn/tts/v1/x/00/'
        + "0" * 64 + '.wav</Play><Gather action="/voice/process" input="speech" method="POST" speechTimeout="auto" />'
        "</Response>")

app = Flask("warmline-bare")


@app.post("/bare")
def bare() -> Response:
    """The constant answer (the form is parsed, not used)."""
    request.form.get("CallSid")
    return Response(BODY, content_type="text/xml")


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status": "ok"}', content_type="application/json")
