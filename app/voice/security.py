"""Twilio request checks: signature, ids and caller text. Used by every ``/voice/*`` view."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from flask import abort, current_app, request
from twilio.request_validator import RequestValidator, compare

from app.ids import valid_call_sid

__all__ = ["clean_speech", "public_base", "public_url", "signature_valid", "twilio_signed", "valid_call_sid"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")


def public_base() -> str:
    """The public origin Twilio reaches us at (no trailing slash)."""
    base = current_app.extensions["warmline"].settings.public_url
    return (base or request.host_url).rstrip("/")


def public_url() -> str:
    """The URL Twilio called: the configured public base + path and query, or the request's own URL."""
    base = current_app.extensions["warmline"].settings.public_url
    if not base:
        return request.url
    qs = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{qs}" if qs else "")


def signature_valid() -> bool:
    """The request's ``X-Twilio-Signature`` matches the public URL and form (twilio's RequestValidator).

    The URL exactly as Twilio called it is checked first (one HMAC); only when that does not match
    does ``RequestValidator.validate`` run its full check (the URL with and without the port).
    """
    token = current_app.extensions["warmline"].settings.twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    validator = RequestValidator(token)
    url = public_url()
    if compare(validator.compute_signature(url, request.form), signature):
        return True
    return validator.validate(url, request.form, signature)


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """Reject (403) any request whose X-Twilio-Signature does not match the public URL and form."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not signature_valid():
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def clean_speech(text: str, max_chars: int) -> str:
    """Caller words made safe to keep: NFC, control and bidi-override characters removed, capped."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    text = " ".join(text.split())
    return text[:max_chars]
