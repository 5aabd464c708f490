"""``GET /admin/report`` (HTML) and ``GET /admin/report.json``: the cache-hit report (admin only).

Query parameters: ``since``, ``until`` (YYYY-MM-DD, UTC; default the 14 days ending today),
``business`` (an id; empty = all) and ``host`` (a host id; empty = all). Bad parameters get 400
JSON; an unknown business 404; an unreadable events store 503 JSON.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, request

from app.admin.auth import admin_required
from app.errors import StoreError
from app.report import report_from_runtime
from app.report.page import render_page

bp = Blueprint("admin_report", __name__, url_prefix="/admin")
MAX_DAYS = 366
_HOST_RE = re.compile(r"[a-z0-9-]{1,64}")


class _BadQuery(ValueError):
    pass


def _date(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise _BadQuery(f"{name} must be a date like 2026-11-25") from exc


def _params() -> tuple[date | None, date | None, str | None, str | None]:
    since, until = _date("since"), _date("until")
    if since and until and since > until:
        raise _BadQuery("since is after until")
    if since and until and (until - since).days >= MAX_DAYS:
        raise _BadQuery(f"at most {MAX_DAYS} days per report")
    business = request.args.get("business", "").strip() or None
    host = request.args.get("host", "").strip() or None
    if host is not None and not _HOST_RE.fullmatch(host):
        raise _BadQuery("host must be a host id like web-1")
    return since, until, business, host


def _report() -> Any:
    runtime = current_app.extensions["warmline"]
    try:
        since, until, business, host = _params()
    except _BadQuery as exc:
        resp = jsonify(error="bad_request", detail=str(exc))
        resp.status_code = 400
        return None, resp
    if business is not None and runtime.businesses.get(business) is None:
        resp = jsonify(error="not_found", detail=f"unknown business {business!r}")
        resp.status_code = 404
        return None, resp
    try:
        return report_from_runtime(runtime, since=since, until=until, business=business, host=host), None
    except StoreError as exc:
        resp = jsonify(error="events_store_unavailable", detail=str(exc)[:300])
        resp.status_code = 503
        return None, resp


@bp.get("/report")
@admin_required
def report_page() -> Response:
    report, error = _report()
    if error is not None:
        return error
    query = {k: v for k, v in request.args.items() if k in ("since", "until", "business", "host") and v}
    html = render_page(
        report, business_ids=current_app.extensions["warmline"].businesses.ids(),
        json_href="report.json" + ("?" + urlencode(query) if query else ""),
    )
    resp = Response(html, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@bp.get("/report.json")
@admin_required
def report_json() -> Response:
    report, error = _report()
    if error is not None:
        return error
    resp = jsonify(report.to_dict())
    resp.headers["Cache-Control"] = "no-store"
    return resp
