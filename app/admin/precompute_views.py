"""Admin actions of precompute (bearer token only; a cookie never triggers them).

    POST /admin/filler/<business_id>   synthesize + publish the business's fillers and greeting now;
                                       200 {"business", "clips": [{"kind", "text", "key", "url", "source"}]}
    POST /admin/precompute             start a run in the background and return at once;
                                       202 {"status": "started"} | 409 {"status": "already running"}
                                       optional JSON body {"business": ID, "budget_chars": N, "fixed_only": bool}

Views are thin: parse, call one function, render JSON. Thread-safe (the run lock is a file lock,
the background run owns its thread).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from app.admin.auth import admin_required
from app.errors import PrecomputeLocked, WarmlineError
from precompute.runner import RunLock, RunOptions, lock_for, precompute

log = logging.getLogger("warmline.precompute")

bp = Blueprint("admin_precompute", __name__, url_prefix="/admin")


def _json(body: dict[str, Any], status: int = 200):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def publish_fixed(runtime: Any, business: Any) -> list[dict[str, Any]]:
    """Publish ``business``'s fillers (short ones too) and greeting now; their clips, in order. Raises WarmlineError."""
    texts = [("filler", f) for f in (*business.fillers, *business.short_fillers)] + [("greeting", business.greeting)]
    clips = []
    for kind, text in texts:
        clip = runtime.synthesizer.clip(text, business.voice)
        clips.append({"kind": kind, "text": clip.text, "key": clip.key, "url": clip.url, "source": clip.source})
    return clips


@bp.post("/filler/<business_id>")
@admin_required
def filler(business_id: str):
    runtime = current_app.extensions["warmline"]
    business = runtime.businesses.get(business_id)
    if business is None:
        return _json({"error": "not_found", "detail": f"no business {business_id!r}"}, 404)
    try:
        clips = publish_fixed(runtime, business)
    except WarmlineError as exc:
        log.warning("filler synthesis for %s failed: %s: %s", business_id, type(exc).__name__, exc)
        return _json({"error": "synthesis_failed", "detail": f"{type(exc).__name__}: {exc}"}, 502)
    return _json({"business": business.id, "clips": clips})


def _options(body: Any, runtime: Any) -> RunOptions | str:
    if body is None:
        return RunOptions()
    if not isinstance(body, dict):
        return "body must be a JSON object"
    business = body.get("business")
    if business is not None and (not isinstance(business, str) or runtime.businesses.get(business) is None):
        return f"no business {business!r}"
    budget = body.get("budget_chars")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
        return "budget_chars must be a non-negative integer"
    fixed_only = body.get("fixed_only", False)
    if not isinstance(fixed_only, bool):
        return "fixed_only must be true or false"
    return RunOptions(business_ids=(business,) if business else None, budget_chars=budget, fixed_only=fixed_only)


def _background(runtime: Any, options: RunOptions, lock: RunLock) -> None:
    try:
        summary = precompute(runtime, options, lock=lock)
    except WarmlineError as exc:
        log.error("admin precompute run failed: %s: %s", type(exc).__name__, exc)
        return
    for line in summary.lines():
        log.info("precompute: %s", line)


@bp.post("/precompute")
@admin_required
def start_precompute():
    runtime = current_app.extensions["warmline"]
    options = _options(request.get_json(silent=True) if request.data else None, runtime)
    if isinstance(options, str):
        return _json({"error": "bad_request", "detail": options}, 400)
    lock = lock_for(runtime)
    try:
        lock.acquire()
    except PrecomputeLocked as exc:
        return _json({"status": "already running", "detail": str(exc)}, 409)
    thread = threading.Thread(target=_background, args=(runtime, options, lock), name="precompute-admin", daemon=True)
    thread.start()
    return _json({"status": "started"}, 202)
