"""``make demo``: one scripted call to the sample business, printed with timings and written to a WAV.

    python -m simulator demo [--speed 1] [--wav var/demo-call.wav] [--data-dir DIR] [--with-caller]
    python -m simulator demo --url http://127.0.0.1:8350 --token TOKEN    # a running server (make stack)

What it does, with the embedded defaults (Piper voice, FAQ responder, local store, diskcache
state -- no account, no network):

1. warms the fixed phrases of the ``demo`` business (greeting, fillers, prompts, FAQ answers,
   opening hours, and the FAQ responder's own fixed phrasing) with the precompute runner, in this
   process, into a fresh data directory;
2. starts a real gunicorn (2 gthread workers) on a free loopback port;
3. places :data:`DEMO_SCRIPT` -- opening hours, where/parking, a price, then a booking (name, a
   day and time), which the responder confirms and hangs up -- with the Twilio-role client;
4. stops the server, prints what was heard (clip URLs replaced by their text) and the per-turn
   timings, and writes what the caller heard to ``var/demo-call.wav`` (see :mod:`simulator.render`).

With ``--url`` steps 1, 2 and 4's stop are skipped: the call goes to that running server (e.g. the
balancer of ``make stack``, which sends each request to the next host), signed with ``--token``.

The call runs in real time by default (``--speed 1``, about a minute): at higher speeds the
fillers cover less of the server's real background work (see :mod:`simulator.clock`).

Helpers shared with the benchmark and load mode live here too: :func:`warm` (precompute into a
data directory, in process) and :func:`start_server` (gunicorn on loopback).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from simulator.support import work_dir

ROOT = Path(__file__).resolve().parent.parent
DEMO_WAV = ROOT / "var" / "demo-call.wav"
DEMO_TOKEN = "demo-twilio-auth-token"
DEMO_BUSINESS = "demo"

DEMO_SCRIPT: tuple[str, ...] = (
    "Hi, what are your opening hours?",
    "Where are you located, and is there parking?",
    "How much is a check-up and clean?",
    "I'd like to book an appointment.",
    "It's Sam Jones.",
    "Next Tuesday at 3 pm, please.",
)
"""The caller's lines: two FAQ answers and the hours (cache hits), then a booking (live synthesis)."""


def faq_fixed_phrases() -> list[str]:
    """The FAQ responder's own fixed sentences (not in the business file), worth warming too."""
    from app.responders import faq

    return [faq.ANYTHING_ELSE, faq.BOOK_START, faq.ASK_TIME_Q, faq.NAME_AGAIN, faq.BOOKING_CANCELLED, faq.WELCOME,
            faq.TAKE_MESSAGE, faq.MESSAGE_TAKEN, "We'll send a reminder. Goodbye!"]


def warm(config: dict[str, Any], *, corpus: Path | None = None, budget_chars: int | None = None,
         extra: Iterable[str] = (), progress: Any = None) -> dict[str, Any]:
    """Precompute into the data directory of ``config`` (create_app overrides), in this process.

    Fixed phrases of every business always; with ``corpus`` also the pieces mined from it (within
    ``budget_chars``); then ``extra`` texts in every business's voice, split into pieces at the
    business's splice level (as the call flow splits an answer). Returns the runner's summary
    as a dict plus ``extra`` (clips made for ``extra``). Raises PrecomputeLocked if a run holds
    the directory. Not thread-safe (one run per data directory at a time, by the run lock).
    """
    from app import create_app
    from app.config import DEEPGRAM_URL
    from app.speech.pieces import split_pieces
    from app.speech.providers.deepgram import DeepgramProvider, make_deepgram_client
    from app.speech.providers.piper import PiperProvider
    from precompute.runner import RunOptions, precompute

    clients = []
    providers: dict[str, Any] = {"piper": PiperProvider()}  # loads its voice only if used
    if config.get("deepgram_api_key"):
        client = make_deepgram_client(max_connections=DeepgramProvider.max_concurrency,
                                      max_keepalive=DeepgramProvider.max_concurrency)
        clients.append(client)
        providers["deepgram"] = DeepgramProvider(client=client, api_key=config["deepgram_api_key"],
                                                 base_url=config.get("deepgram_url") or DEEPGRAM_URL)
    app = create_app({**config, "runtime": {"providers": providers}})
    rt = app.extensions["warmline"]
    try:
        options = RunOptions(fixed_only=corpus is None, corpus=corpus, budget_chars=budget_chars)
        summary = precompute(rt, options, progress_stream=progress if progress is not None else io.StringIO())
        made = 0
        texts = list(extra)
        for business in rt.businesses:
            for text in texts:
                for piece in split_pieces(text, business.splice):
                    if not rt.synthesizer.clip(piece, business.voice).hit:
                        made += 1
        out = summary.to_dict()
        out["extra"] = made
        return out
    finally:
        rt.shutdown()
        if "index" in rt.__dict__:
            rt.index.close()
        for client in clients:
            client.close()


def start_server(data_dir: Path, env: dict[str, str], *, workers: int | None = 2, threads: int | None = 8,
                 app: str = "wsgi:app"):
    """A started gunicorn (``simulator.server.GunicornServer``) serving ``data_dir`` with ``env``.

    ``workers`` / ``threads`` None: the project's defaults (gunicorn.conf.py). ``app``: the WSGI app.
    """
    if str(ROOT) not in sys.path:  # tests/ is a package at the project root
        sys.path.insert(0, str(ROOT))
    from simulator.server import GunicornServer

    return GunicornServer(data_dir, env=env, workers=workers, threads=threads, app=app).start(timeout=60.0)


_KEY_IN_URL = re.compile(r"https?://\S+/([0-9a-f]{64})\.wav")


def clip_texts(data_dir: Path | None, texts: Iterable[str], voices: Iterable[Any]) -> dict[str, str]:
    """content key -> text, from ``texts`` in ``voices`` and every sentence in the data dir's turn log."""
    import json

    from app.speech.canon import canon
    from app.speech.keys import content_key

    out: dict[str, str] = {}
    for voice in voices:
        for text in texts:
            out[content_key(canon(text), voice)] = text
    for path in sorted((data_dir / "events").glob("turns-*.jsonl")) if data_dir is not None else []:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            for sentence in event.get("sentences") or []:
                if sentence.get("key") and sentence.get("text"):
                    out[sentence["key"]] = sentence["text"]
    return out


def label_clips(transcript: str, texts: dict[str, str]) -> str:
    """``transcript`` with every clip URL whose key is known replaced by its text in quotes."""
    def sub(match: re.Match[str]) -> str:
        text = texts.get(match.group(1))
        return f"{text!r}" if text else match.group(0)

    return _KEY_IN_URL.sub(sub, transcript)


def run_demo(*, wav: Path = DEMO_WAV, data_dir: Path | None = None, speed: float = 1.0, with_caller: bool = False,
             script: Sequence[str] = DEMO_SCRIPT, out: Any = None, url: str | None = None,
             token: str = DEMO_TOKEN) -> int:
    """Warm, serve, call, render (see the module docstring). Returns 0 when the call went as scripted.

    ``url``: call that running server instead (no warming, no server of our own), signed with ``token``.
    """
    from app.business import load_businesses
    from app.config import load_settings
    from simulator.render import write_call_wav
    from simulator.twilio_client import CallConfig, format_transcript, run_call

    out = out or sys.stdout
    if url is not None:
        print(f"calling {DEMO_BUSINESS!r} at {url} at speed {speed:g}x ({len(script)} caller lines) ...", file=out,
              flush=True)
        result = run_call(CallConfig(base_url=url, business_id=DEMO_BUSINESS, auth_token=token, script=script,
                                     speed=speed))
        return _report(result, wav, with_caller, script, None, out)
    data_dir, tmp = work_dir(data_dir, "warmline-demo-")
    try:
        config = {"env": "testing", "data_dir": data_dir, "twilio_auth_token": DEMO_TOKEN}
        print(f"warming the fixed phrases of {DEMO_BUSINESS!r} into {data_dir} ...", file=out, flush=True)
        summary = warm(config, extra=faq_fixed_phrases())
        print(f"  {summary['new'] + summary['extra']} clips synthesized", file=out, flush=True)
        server = start_server(data_dir, {"WARMLINE_TWILIO_AUTH_TOKEN": DEMO_TOKEN})
        try:
            print(f"gunicorn on {server.base_url} (2 workers); calling {DEMO_BUSINESS!r} at speed {speed:g}x "
                  f"({len(script)} caller lines) ...", file=out, flush=True)
            result = run_call(CallConfig(base_url=server.base_url, business_id=DEMO_BUSINESS, auth_token=DEMO_TOKEN,
                                         script=script, speed=speed))
        finally:
            server.stop()
        return _report(result, wav, with_caller, script, data_dir, out)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _report(result: Any, wav: Path, with_caller: bool, script: Sequence[str], data_dir: Path | None, out: Any) -> int:
    """Print the labelled transcript, write the WAV; 0 when the call went as scripted."""
    from app.business import load_businesses
    from app.config import load_settings
    from simulator.render import write_call_wav
    from simulator.twilio_client import format_transcript

    settings = load_settings(environ={}, overrides={"env": "testing"})
    businesses = list(load_businesses(settings.businesses))
    fixed = [t for b in businesses for t in (b.greeting, *b.fillers, *b.short_fillers, *b.prompts.values(),
                                             *faq_fixed_phrases())]
    texts = clip_texts(data_dir, fixed, {b.voice for b in businesses})
    print(label_clips(format_transcript(result), texts), file=out)
    path = write_call_wav(result, wav, include_caller=with_caller)
    print(f"\nwhat the caller heard: {path} ({result.duration_s:.1f} s)", file=out)
    ok = not result.failures and result.ended_by == "hangup" and len(result.turns) == len(script)
    if not ok:
        print(f"the call did not go as scripted: ended by {result.ended_by}, {len(result.failures)} failure(s)",
              file=out)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator demo", description=__doc__.split("\n")[0])
    parser.add_argument("--wav", type=Path, default=DEMO_WAV, help="where to write what the caller heard")
    parser.add_argument("--data-dir", type=Path, help="data directory to use (default: a fresh temporary one)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated clock speed (1 = real time)")
    parser.add_argument("--with-caller", action="store_true", help="also speak the caller's lines in the WAV")
    parser.add_argument("--url", help="call this running server (e.g. make stack's balancer) instead of starting one")
    parser.add_argument("--token", default=None,
                        help="Twilio auth token to sign with, with --url (default: $WARMLINE_TWILIO_AUTH_TOKEN)")
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error("--speed must be positive")
    token = args.token or os.environ.get("WARMLINE_TWILIO_AUTH_TOKEN") or DEMO_TOKEN
    if args.url and not (args.token or os.environ.get("WARMLINE_TWILIO_AUTH_TOKEN")):
        parser.error("--url needs --token (or $WARMLINE_TWILIO_AUTH_TOKEN): the server's Twilio auth token")
    return run_demo(wav=args.wav, data_dir=args.data_dir, speed=args.speed, with_caller=args.with_caller,
                    url=args.url, token=token)
