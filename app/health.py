"""/healthz: is this process able to serve calls? Checks the store, the state backend and the events store.

Always a JSON answer, quickly: 200 ``{"status": "ok"}``, or 503 ``{"status": "degraded",
"problems": {part: reason}}`` naming every failing part. A part that cannot even be built (a GCS
client without credentials) or does not answer within ``timeout_s`` (a store that retries an
unreachable host for minutes) is that part failing, not a 500 page or a hung probe. Each probe
runs on its own daemon thread, so an abandoned one never holds the request. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

HEALTH_OBJECT = "tts/v1/health/00/" + "0" * 64 + ".wav"
PROBE_TIMEOUT_S = 3.0


def _start(check: Callable[[], Any]) -> tuple[threading.Event, dict[str, str | None]]:
    """Run ``check()`` on a daemon thread; the event is set when it is done, the dict holds its error."""
    outcome: dict[str, str | None] = {}
    done = threading.Event()

    def run() -> None:
        try:
            check()
            outcome["error"] = None
        except Exception as exc:  # noqa: BLE001 - the health boundary: any failure to build or reach a part is that part failing
            outcome["error"] = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            done.set()

    threading.Thread(target=run, name="health-probe", daemon=True).start()
    return done, outcome


def check(runtime: Any, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[dict[str, Any], int]:
    """Return (body, HTTP status): 200 {"status": "ok"} or 503 with what failed. The probes run at once,
    so the answer comes within ``timeout_s`` seconds whatever hangs."""
    probes: dict[str, Callable[[], Any]] = {
        "store": lambda: runtime.store.exists(HEALTH_OBJECT),
        "state": lambda: runtime.state.ping(),
    }
    if runtime.settings.events_store:
        probes["events_store"] = lambda: runtime.events_store.ping()
    started = {part: _start(fn) for part, fn in probes.items()}
    deadline = time.monotonic() + timeout_s
    problems: dict[str, str] = {}
    for part, (done, outcome) in started.items():
        if not done.wait(max(0.0, deadline - time.monotonic())):
            problems[part] = f"no answer within {timeout_s:g} s"
        elif outcome["error"] is not None:
            problems[part] = outcome["error"]
    if problems:
        return {"status": "degraded", "problems": problems}, 503
    return {"status": "ok"}, 200
