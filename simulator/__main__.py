"""``python -m simulator <command> [options]``: the simulator's command line.

    call      place one simulated call against a running server (Twilio's part)
    demo      start a server, place the scripted demo call, print it, write var/demo-call.wav
    bench     the three-arm benchmark (control / filler-after-AI / full Warmline)
    load      N concurrent calls for M minutes against a server; errors and latency percentiles
    soak      many calls for minutes with TTS faults and worker kills; nothing may be lost
    capacity  the calls one host carries within the latency goals, and cache hits beside a bare endpoint
    deepgram  run the Deepgram-compatible TTS emulator in the foreground
    llm       run the OpenAI-compatible chat-completions emulator in the foreground
    hitrate   cache hit rate of a precompute plan mined from one corpus on another
    listen    the listening benchmark: joins as the caller hears them vs the reply spoken whole

``python -m simulator <command> --help`` shows each command's options. Commands are imported only
when chosen, so ``--help`` here costs nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

COMMANDS: dict[str, tuple[str, str]] = {
    "call": ("simulator.__main__:call_main", "place one simulated call against a running server"),
    "demo": ("simulator.demo:main", "start a server, place the scripted demo call, write var/demo-call.wav"),
    "bench": ("simulator.bench:main", "the three-arm benchmark (control / filler-after-AI / full Warmline)"),
    "load": ("simulator.load:main", "N concurrent calls for M minutes; errors and latency percentiles"),
    "soak": ("simulator.soak:main", "many calls for minutes with TTS faults and worker kills; nothing may be lost"),
    "capacity": ("simulator.capacity:main", "calls one host carries within the latency goals; cache-hit throughput"),
    "deepgram": ("simulator.deepgram_emulator:main", "run the Deepgram-compatible TTS emulator"),
    "llm": ("simulator.llm_emulator:main", "run the OpenAI-compatible chat-completions emulator"),
    "hitrate": ("simulator.hitrate:main", "cache hit rate of a plan mined from one corpus on another"),
    "listen": ("simulator.listen:main", "the listening benchmark: joins as heard vs the reply spoken whole"),
}


def _resolve(target: str) -> Callable[[list[str]], Any]:
    module, _, name = target.partition(":")
    if module == "simulator.__main__":  # this very module (run as __main__ under ``python -m``)
        return globals()[name]
    return getattr(importlib.import_module(module), name)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m simulator <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "python -m simulator <command> --help for a command's options"]
    return "\n".join(lines)


def call_main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulator call``: one call against a running server; prints the transcript."""
    from simulator.twilio_client import CallConfig, Knobs, format_transcript, run_call

    parser = argparse.ArgumentParser(prog="python -m simulator call", description=call_main.__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
    parser.add_argument("--business", default="demo", help="business id (/voice/incoming/<id>)")
    parser.add_argument("--token", default=os.environ.get("WARMLINE_TWILIO_AUTH_TOKEN") or "dev-twilio-auth-token",
                        help="Twilio auth token to sign with (default: $WARMLINE_TWILIO_AUTH_TOKEN or the dev token)")
    parser.add_argument("--say", action="append", default=[], metavar="TEXT", help="a caller line (repeatable)")
    parser.add_argument("--script", type=Path, help="a file with one caller line per line (after any --say)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated clock speed (1 = real time)")
    parser.add_argument("--rtt-ms", type=float, default=80.0, help="network round trip to the server")
    parser.add_argument("--media-fetch-ms", type=float, default=120.0, help="first fetch of a clip by Twilio")
    parser.add_argument("--from", dest="from_", default="+15551230000")
    parser.add_argument("--to", default="+15005550006")
    parser.add_argument("--json", type=Path, help="write the whole result (events, turns) as JSON here")
    parser.add_argument("--wav", type=Path, help="write what the caller heard here (Piper renders <Say>)")
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be positive")
    script = list(args.say)
    if args.script:
        script += [line.strip() for line in args.script.read_text(encoding="utf-8").splitlines() if line.strip()]
    knobs = Knobs(network_rtt_ms=args.rtt_ms, media_fetch_ms=args.media_fetch_ms)
    result = run_call(CallConfig(base_url=args.url, business_id=args.business, auth_token=args.token,
                                 from_=args.from_, to=args.to, script=script, knobs=knobs, speed=args.speed))
    print(format_transcript(result))
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    if args.wav:
        from simulator.render import write_call_wav

        print(f"wrote {write_call_wav(result, args.wav)}")
    return 1 if any(f.fatal for f in result.failures) else 0


def stop_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a CI timeout) interrupt the main thread like Ctrl-C, so a command's
    ``finally`` blocks stop the gunicorn servers and emulators it started (they run in process
    groups of their own and would otherwise be left behind). Main thread only."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    code = _resolve(COMMANDS[command][0])(rest)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
