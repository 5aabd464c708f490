"""End to end: the scripted demo call against a real gunicorn (2 workers), FAQ responder, Piper voice.

Nothing is faked: the Twilio-role client signs and posts every webhook, fetches every clip over
HTTP and follows the TwiML; the server answers from its own processes with the embedded defaults.
"""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from app.business import load_businesses
from app.speech.canon import canon
from app.speech.keys import content_key
from app.speech.ulaw import lin2ulaw
from app.speech.wav import ulaw_wav
from app.state import open_state
from simulator.demo import DEMO_SCRIPT
from simulator.render import render_call
from simulator.twilio_client import CallConfig, MediaCache, run_call, say_duration_s
from tests.server_support import ROOT, GunicornServer

pytestmark = pytest.mark.slow

TOKEN = "e2e-twilio-token"
CONFIRMATION = ("Great, Sam Jones, you're booked for next Tuesday at 3 p.m.", "We'll send a reminder.", "Goodbye!")


def _events(data_dir: Path) -> list[dict]:
    lines = []
    for path in sorted((data_dir / "events").glob("turns-*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines


def test_scripted_call_books_and_hangs_up_with_no_failures(tmp_path):
    data_dir = tmp_path / "var"
    demo = load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")
    with GunicornServer(data_dir, env={"WARMLINE_TWILIO_AUTH_TOKEN": TOKEN}, workers=2, threads=8) as server:
        assert len(server.worker_pids()) == 2
        cache = MediaCache()
        result = run_call(CallConfig(base_url=server.base_url, business_id="demo", auth_token=TOKEN,
                                     script=DEMO_SCRIPT, speed=10.0, media_cache=cache))
        events = _events(data_dir)
        calls_left = open_state(data_dir / "state").count_calls()

    assert result.failures == []
    assert result.ended_by == "hangup"
    assert [t.utterance for t in result.turns] == list(DEMO_SCRIPT)
    assert all(t.time_to_answer_audio_s is not None for t in result.turns)
    assert result.greeting.time_to_first_audio_s is not None

    mine = [e for e in events if e["call"] == result.call_sid]
    assert [e["turn"] for e in mine] == [1, 2, 3, 4, 5, 6]
    assert {e["arm"] for e in mine} == {"warmline"}
    assert [e["action"] for e in mine] == ["continue"] * 5 + ["end"]
    assert [s["text"] for s in mine[-1]["sentences"]] == list(CONFIRMATION)

    # The caller heard the confirmation itself, last: each sentence as its clip or -- when the
    # server fell back to <Say> (a cold, loaded machine can pass the 8 s turn deadline) -- as text.
    heard = result.turns[-1].heard
    spoken = [next(i for i, item in enumerate(heard) if content_key(canon(text), demo.voice) in item or text in item)
              for text in CONFIRMATION]
    assert spoken == sorted(spoken) and spoken[-1] == len(heard) - 1
    # The status callback cleared the call's state.
    assert calls_left == 0

    # What the caller heard, as a WAV: silence until the greeting, then audio, as long as the call.
    # (<Say>, if the server fell back to it, is spoken by a stand-in exactly as long as the simulator assumed.)
    def speak(text: str, voice) -> bytes:
        return ulaw_wav(lin2ulaw(np.full(round(say_duration_s(text) * 8000), 1000, dtype=np.int16)))

    with wave.open(io.BytesIO(render_call(result, speak=speak))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    pieces = len(result.audio_segments)
    assert abs(len(samples) - result.duration_s * 8000) <= pieces
    first = result.audio_segments[0].start_s * 8000  # the greeting starts; its clip opens with a 60 ms pad
    assert first - 1 <= np.flatnonzero(samples)[0] <= first + 0.1 * 8000
