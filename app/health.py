"""/healthz: is this process able to serve calls? Checks the store and the state backend."""

from __future__ import annotations

from typing import Any

from app.errors import StateError, StoreError


def check(runtime: Any) -> tuple[dict[str, Any], int]:
    """Return (body, HTTP status): 200 {"status": "ok"} or 503 with what failed."""
    problems: dict[str, str] = {}
    try:
        runtime.store.exists("tts/v1/health/00/" + "0" * 64 + ".wav")
    except StoreError as exc:
        problems["store"] = str(exc)
    try:
        runtime.state.ping()
    except StateError as exc:
        problems["state"] = str(exc)
    if problems:
        return {"status": "degraded", "problems": problems}, 503
    return {"status": "ok"}, 200
