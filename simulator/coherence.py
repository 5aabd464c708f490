"""Coherence run: the load command against an LLM-backed server, with every AI request audited.

    python -m simulator.coherence --calls 60 --minutes 1 --turn-workers 2 --lease-s 1

Starts the OpenAI-compatible emulator (answers like the FAQ responder, 0.5-1.5 s per reply) with a
:class:`~simulator.llm_emulator.HistoryAudit`, warms the fixed phrases, starts gunicorn with the
given turn-engine knobs (``WARMLINE_TURN_WORKERS``, ``WARMLINE_LEASE_S``, the rest at defaults)
pointed at the emulator, and runs ``simulator load`` against it. Prints the load summary, then the
audit: how many AI requests, how many agent lines were checked, and every incoherent conversation
(roles not alternating, or an agent line that is not the reply produced for what preceded it).
Exit status 1 when any conversation was incoherent or the longest silence exceeded ``--max-silence-s``.

Single-threaded driver; the server, emulator and callers run on their own threads/processes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.support import work_dir


def run(calls: int, minutes: float, turn_workers: int, lease_s: float, *, gunicorn_threads: int = 64,
        max_silence_s: float = 1.2, data_dir: Path | None = None, port: int | None = None,
        llm_base_ms: float = 1000.0, llm_jitter_ms: float = 500.0, out: Any = None) -> dict[str, Any]:
    from app.business import load_businesses
    from app.config import load_settings
    from simulator.demo import faq_fixed_phrases, start_server, warm
    from simulator.llm_emulator import HistoryAudit, LLMEmulator, faq_responses
    from simulator.load import LoadConfig, format_summary, run_load

    out = out or sys.stdout
    businesses = load_businesses(load_settings(environ={}).businesses)
    audit = HistoryAudit([b.prompt(name) for b in businesses for name in b.prompts])
    token = "coherence-twilio-token"
    data, tmp = work_dir(data_dir, "warmline-coherence-")
    try:
        with LLMEmulator(responses=faq_responses(businesses), base_ms=llm_base_ms, jitter_ms=llm_jitter_ms,
                         seed=7, audit=audit) as llm:
            print("warming the fixed phrases ...", file=out, flush=True)
            warm({"env": "testing", "data_dir": data, "twilio_auth_token": token}, extra=faq_fixed_phrases())
            env = {"WARMLINE_TWILIO_AUTH_TOKEN": token, "WARMLINE_LLM_URL": llm.base_url,
                   "WARMLINE_LLM_API_KEY": llm.api_key, "WARMLINE_TURN_WORKERS": str(turn_workers),
                   "WARMLINE_LEASE_S": str(lease_s)}
            from simulator.server import GunicornServer

            server = (GunicornServer(data, env=env, workers=2, threads=gunicorn_threads, port=port).start(timeout=60.0)
                      if port else start_server(data, env, workers=2, threads=gunicorn_threads))
            try:
                started = time.monotonic()
                summary = run_load(LoadConfig(calls=calls, minutes=minutes, url=server.base_url, token=token), out=out)
                log = server.log_tail(2_000_000)
            finally:
                server.stop()
            summary["coherence"] = {**audit.summary(), "llm_status_counts": dict(llm.status_counts),
                                    "takeovers_logged": log.count("took over turn"),
                                    "refused_overloaded": log.count("turn pool full"),
                                    "wall_s": round(time.monotonic() - started, 1)}
        print(format_summary(summary), file=out)
        c = summary["coherence"]
        print(f"AI requests {c['requests']}, agent lines checked {c['checked_agent_lines']}, incoherent "
              f"{c['incoherent']}; takeovers {c['takeovers_logged']}, turns refused (overloaded) "
              f"{c['refused_overloaded']}", file=out)
        for problem in c["problems"]:
            print(f"  incoherent: {problem}", file=out)
        summary["ok"] = c["incoherent"] == 0 and (summary["longest_silence_s"]["max"] or 0) <= max_silence_s
        return summary
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulator.coherence", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=60)
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--turn-workers", type=int, default=2)
    p.add_argument("--lease-s", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=64, help="gunicorn threads per worker")
    p.add_argument("--max-silence-s", type=float, default=1.2)
    p.add_argument("--port", type=int, help="bind gunicorn here (default: a free port)")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--json", type=Path, help="write the summary (load + coherence) here")
    a = p.parse_args(argv)
    summary = run(a.calls, a.minutes, a.turn_workers, a.lease_s, gunicorn_threads=a.threads,
                  max_silence_s=a.max_silence_s, data_dir=a.data_dir, port=a.port)
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
