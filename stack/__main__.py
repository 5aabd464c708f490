"""``python -m stack`` (``make stack``): start the two-host deployment, print its URLs, stop on Ctrl-C.

    python -m stack [--dir var/stack] [--base-port 8350] [--redis-port 6390] [--gcs-port 9350]

``--base-port`` is the balancer's port; the hosts take the next two. ``--base-port 0`` picks free
ports for everything (what the tests do). SIGINT, SIGTERM and SIGHUP stop every process of the
stack and exit 0; ``var/stack/stack.json`` says what runs where (URLs, tokens, PIDs).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from stack.services import ROOT, Ports, Stack


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "stack", help="where the stack keeps its state")
    parser.add_argument("--base-port", type=int, default=8350, help="balancer port; the hosts use the next two")
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--gcs-port", type=int, default=9350)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per host")
    args = parser.parse_args(argv)
    if args.base_port:
        ports = Ports.from_base(args.base_port, args.redis_port, args.gcs_port)
    else:
        ports = Ports()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    stack = Stack(args.dir.resolve(), ports=ports, workers=args.workers)
    try:
        stack.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"stack: could not start: {exc}", file=sys.stderr)
        return 1
    try:
        while not stop.wait(1.0):
            dead = [name for name, service in stack.services.items() if not service.running()]
            if dead:
                print(f"stack: {', '.join(dead)} exited; stopping everything", file=sys.stderr, flush=True)
                return_code = 1
                break
        else:
            return_code = 0
    finally:
        print("stack: stopping ...", flush=True)
        stack.stop()
        print("stack: stopped", flush=True)
    return return_code


if __name__ == "__main__":
    sys.exit(main())
