"""The load runs' emulators, each in a process of its own: real HTTP between processes, and no GIL
shared with the callers.

In one Python process with 200 caller threads, the LLM emulator's streamed tokens and the Deepgram
emulator's audio compete with the callers for one interpreter: a caller whose timer fired waits for
it, and that wait is measured as the server's silence. :class:`EmulatorProcess` runs one emulator
in a child (``python -m simulator.emulator_process <kind> <spec.json> <records.json>``), reads its
base URL from the child's first line of output and, when stopped (SIGTERM), reads back what the
load's checks need: the LLM's requests and the replies it produced for each conversation.

Benchmark-only: the product never imports this module. One owner per instance (not thread-safe).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 60.0


class _Produced:
    """Stands in for the parent's ``RecordingResponses`` after the child's records were read."""

    def __init__(self, produced: dict[tuple[tuple[str, str], ...], set[str]]) -> None:
        self.produced = produced


class EmulatorProcess:
    """One emulator (``kind`` "llm" or "deepgram") in a child process; ``start()`` -> base URL, ``stop()``.

    ``spec``: the emulator's keyword arguments (JSON-able), plus for "llm" ``businesses`` (a TOML
    path: it answers like the FAQ responder and records its replies) and for "deepgram" nothing
    else (it speaks with the benchmark's tone speaker). After ``stop()``, an LLM's ``requests``
    and ``responses.produced`` hold what the child recorded.
    """

    def __init__(self, kind: str, spec: dict[str, Any]) -> None:
        if kind not in ("llm", "deepgram"):
            raise ValueError(f"unknown emulator kind {kind!r}")
        self.kind = kind
        self.spec = dict(spec)
        self.api_key = str(spec.get("api_key", ""))
        self.requests: list[dict[str, Any]] = []
        self.responses: _Produced = _Produced({})
        self._proc: subprocess.Popen[str] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator is not running")
        return self._base_url

    def start(self) -> str:
        self._dir = tempfile.TemporaryDirectory(prefix=f"emulator-{self.kind}-")
        spec, records = Path(self._dir.name) / "spec.json", Path(self._dir.name) / "records.json"
        spec.write_text(json.dumps(self.spec), encoding="utf-8")
        root = Path(__file__).resolve().parent.parent
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "simulator.emulator_process", self.kind, str(spec), str(records)],
            cwd=root, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not line or not line[0].startswith("http://"):
            self.stop()
            raise RuntimeError(f"the {self.kind} emulator did not start: {line[0] if line else 'no output'!r}")
        self._base_url = line[0].strip()
        return self._base_url

    def stop(self) -> None:
        """Stop the child and read its records. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        records = Path(self._dir.name) / "records.json" if self._dir is not None else None
        if records is not None and records.is_file():
            data = json.loads(records.read_text(encoding="utf-8"))
            self.requests = data.get("requests", [])
            self.responses = _Produced({tuple(tuple(m) for m in key): set(values)
                                        for key, values in data.get("produced", [])})
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _serve(kind: str, spec_path: str, records_path: str) -> None:
    """The child: run the emulator until SIGTERM, then write its records."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    recording = None
    if kind == "llm":
        from app.business import load_businesses
        from simulator.llm_emulator import LLMEmulator, faq_responses
        from simulator.history import RecordingResponses

        recording = RecordingResponses(faq_responses(load_businesses(Path(spec.pop("businesses")))))
        emulator: Any = LLMEmulator(responses=recording, **spec)
    else:
        from simulator.bench import ToneSpeaker
        from simulator.deepgram_emulator import DeepgramEmulator

        emulator = DeepgramEmulator(speaker=ToneSpeaker(), **spec)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(emulator.start(), flush=True)
    while not stop.wait(0.5):
        pass
    emulator.stop()
    records: dict[str, Any] = {}
    if recording is not None:
        records = {"requests": emulator.requests,
                   "produced": [[list(map(list, key)), sorted(values)] for key, values in recording.produced.items()]}
    Path(records_path).write_text(json.dumps(records), encoding="utf-8")


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
