"""Admin authentication: a bearer token for tools, a cookie for a browser.

- Tools send ``Authorization: Bearer <WARMLINE_ADMIN_TOKEN>`` on every request (any method).
- A browser opens ``GET /admin/login?token=...`` once (or posts the small form at
  ``/admin/login``): the response sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the
  token (never the token itself) and redirects to ``next`` (a local ``/admin/...`` path). The
  cookie is accepted for GET/HEAD only, so it can read reports but cannot trigger admin actions
  (precompute, filler synthesis); those need the header. Rotating the token invalidates cookies.
- Everything else gets ``401`` with a JSON body and ``WWW-Authenticate: Bearer``.

Comparisons use :func:`hmac.compare_digest`. Stateless; safe across threads and processes.
Note: a token in a login URL can end up in proxy access logs; prefer the form on shared setups.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, redirect, request
from markupsafe import escape

COOKIE = "warmline_admin"
COOKIE_PATH = "/admin"
COOKIE_MAX_AGE_S = 12 * 3600
_COOKIE_CONTEXT = b"warmline admin cookie v1"
SAFE_METHODS = frozenset(("GET", "HEAD"))

bp = Blueprint("admin_auth", __name__, url_prefix="/admin")
F = TypeVar("F", bound=Callable[..., Any])


def _token() -> str:
    return current_app.extensions["warmline"].settings.admin_token


def cookie_value(token: str) -> str:
    """The cookie that proves knowledge of ``token``: HMAC-SHA256(token, fixed context), hex."""
    return hmac.new(token.encode(), _COOKIE_CONTEXT, hashlib.sha256).hexdigest()


def _token_ok(candidate: str) -> bool:
    token = _token()
    return bool(token) and hmac.compare_digest(candidate.encode(), token.encode())


def is_admin() -> bool:
    """Whether the current request carries the admin bearer token (or, for GET/HEAD, the cookie)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return _token_ok(value.strip())
    cookie = request.cookies.get(COOKIE)
    if cookie and request.method in SAFE_METHODS and _token():
        return hmac.compare_digest(cookie.encode(), cookie_value(_token()).encode())
    return False


def unauthorized() -> Response:
    resp = jsonify(error="unauthorized", detail="admin bearer token required")
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = 'Bearer realm="warmline-admin"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def admin_required(view: F) -> F:
    """Guard a view: 401 JSON unless the request is authenticated as admin."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_admin():
            return unauthorized()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _safe_next(target: str | None) -> str:
    """Only local admin paths: no scheme, no host, no '//' or backslash tricks."""
    if not target or not target.startswith("/admin/") or target.startswith("//") or "\\" in target:
        return "/admin/report"
    if any(ord(c) < 32 for c in target):
        return "/admin/report"
    return target


LOGIN_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Warmline admin</title>
<style>body{font:16px system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
input,button{font:inherit;padding:.5rem;width:100%;box-sizing:border-box;margin:.4rem 0}</style></head>
<body><h1>Warmline admin</h1><form method="post" action="/admin/login">
<label for="token">Admin token</label><input id="token" name="token" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}"><button type="submit">Sign in</button></form></body></html>"""


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Exchange the admin token for the cookie, then redirect to ``next``."""
    token = request.values.get("token", "")
    target = _safe_next(request.values.get("next"))
    if request.method == "GET" and not token:
        resp = Response(LOGIN_FORM.replace("{next}", str(escape(target))), mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        return resp
    if not _token_ok(token):
        return unauthorized()
    resp = redirect(target, code=303)
    resp.set_cookie(
        COOKIE, cookie_value(_token()), max_age=COOKIE_MAX_AGE_S, path=COOKIE_PATH, httponly=True,
        samesite="Strict", secure=request.is_secure or current_app.extensions["warmline"].settings.production,
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.post("/logout")
def logout() -> Any:
    resp = redirect("/admin/login", code=303)
    resp.delete_cookie(COOKIE, path=COOKIE_PATH)
    return resp
