"""/healthz: is this process able to serve calls? Checks the store, the state backend and the events store.

Always a JSON answer: 200 ``{"status": "ok"}``, or 503 ``{"status": "degraded", "problems":
{part: reason}}`` naming every failing part. A part that cannot even be built (a GCS client
without credentials, an unreachable emulator) is that part failing, not a 500 page.
Thread-safe (reads the runtime's lazily built services).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.errors import WarmlineError

HEALTH_OBJECT = "tts/v1/health/00/" + "0" * 64 + ".wav"


def _probe(problems: dict[str, str], part: str, check: Callable[[], Any]) -> None:
    try:
        check()
    except WarmlineError as exc:
        problems[part] = f"{type(exc).__name__}: {exc}"[:300]
    except Exception as exc:  # noqa: BLE001 - the health boundary: any failure to build or reach a part is that part failing
        problems[part] = f"{type(exc).__name__}: {exc}"[:300]


def check(runtime: Any) -> tuple[dict[str, Any], int]:
    """Return (body, HTTP status): 200 {"status": "ok"} or 503 with what failed."""
    problems: dict[str, str] = {}
    _probe(problems, "store", lambda: runtime.store.exists(HEALTH_OBJECT))
    _probe(problems, "state", lambda: runtime.state.ping())
    if runtime.settings.events_store:
        _probe(problems, "events_store", lambda: runtime.events_store.ping())
    if problems:
        return {"status": "degraded", "problems": problems}, 503
    return {"status": "ok"}, 200
