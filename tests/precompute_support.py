"""Helpers for the precompute tests: a fast speaker for the Deepgram emulator, a Deepgram business,
and a child-process precompute run (``python -m tests.precompute_support DATA_DIR CALLS_FILE DELAY_S``)
that tests kill with SIGKILL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

DEEPGRAM_BUSINESS = """
[aura]
name = "Aura Test Clinic"
greeting = "Thanks for calling Aura Test Clinic. How can I help?"
fillers = ["Let me check that for you.", "One moment, please.", "Sure, let me look.", "Good question, one second."]
hours = "We're open Monday to Friday from 8 a.m. to 6 p.m."
splice = "sentence"

[aura.voice]
provider = "deepgram"
model = "aura-2-thalia-en"

[aura.say]
voice = "Polly.Joanna-Neural"
language = "en-US"

[[aura.faq]]
keywords = ["where"]
answer = "We're at 12 Harbour Street. There's free parking behind the building. Take the lift to level 2."

[[aura.faq]]
keywords = ["price"]
answer = "A check-up is $120. We can claim insurance on the spot. Payment plans are available too."
"""


class ToneSpeaker:
    """What the Deepgram emulator speaks with in tests: a 22.05 kHz tone, 50 ms a character. Thread-safe."""

    rate = 22050

    def synthesize_pcm(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
        n = max(int(self.rate * 0.3), int(self.rate * 0.05 * len(text)))
        t = np.arange(n) / self.rate
        return (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16), self.rate


def write_deepgram_business(directory: Path) -> Path:
    path = Path(directory) / "businesses.toml"
    path.write_text(DEEPGRAM_BUSINESS)
    return path


def child_run(data_dir: str, calls_file: str, delay_s: str) -> None:
    """A whole fixed-only precompute run of the demo business with a slow fake provider; prints the summary."""
    from app import create_app
    from precompute.runner import RunOptions, precompute
    from tests.fakes import ToneProvider

    provider = ToneProvider(delay_s=float(delay_s), calls_file=Path(calls_file))
    app = create_app({"env": "testing", "data_dir": Path(data_dir),
                      "runtime": {"providers": {"piper": provider}}})
    summary = precompute(app.extensions["warmline"], RunOptions(fixed_only=True))
    print(json.dumps(summary.to_dict()), flush=True)


if __name__ == "__main__":
    child_run(*sys.argv[1:4])
