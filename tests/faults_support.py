"""Helpers for the fault tests: drive a call like Twilio, check the store, script the emulators.

- :class:`Caller` posts signed webhooks to a real server and follows ``<Redirect>`` hops until
  the answer, returning every document it saw.
- :func:`audit_store` / :func:`audit_index` check that every published object is a valid clip
  and every index entry points at one (nothing invalid is ever published or indexed).
- :class:`ScriptedDeepgram` is the Deepgram emulator with per-text fault plans.
- :class:`GcsEmulator` is a ``gcp-storage-emulator`` process that can be frozen (SIGSTOP: a slow,
  hung store), thawed, killed and restarted on the same port.
- :func:`write_businesses` writes a businesses file with a Deepgram-voiced business.

Every server these start is stopped by its owner (context managers), bounded in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx

from app.speech.canon import canon
from app.speech.keys import content_key, object_name
from app.speech.voices import Voice
from app.speech.wav import validate_ulaw_wav
from cdn.index import KeyIndex
from cdn.store import is_valid_name
from simulator.deepgram_emulator import DeepgramEmulator
from tests.conftest import TWILIO_TOKEN, sign, twilio_form
from tests.gcs_support import emulator_command
from tests.support import free_port, stop_process, wait_for_port
from tests.twiml_support import verbs

ANSWER_TAIL = ["Gather", "Say", "Gather", "Say", "Hangup"]
PIPER = Voice("piper", "en_US-joe-medium")


def listens(doc: list) -> bool:
    """True when ``doc`` ends like an answer that listens: Gather, still-there, Gather, goodbye, Hangup."""
    tags = [v[0] for v in doc][-5:]
    return (len(tags) == 5 and tags[0] == tags[2] == "Gather" and tags[4] == "Hangup"
            and {tags[1], tags[3]} <= {"Say", "Play"})


def answer_name(scenario: str, voice: Voice = PIPER) -> str:
    """The object name of the echo answer to ``scenario`` in ``voice``."""
    return object_name(content_key(canon(f"Here is the {scenario} answer."), voice), voice)


def echo_responses(request: dict) -> str:
    """LLM emulator replies: one sentence naming what the caller said ("storm" -> "Here is the storm answer.")."""
    last = next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")
    return f"Here is the {last.strip().rstrip('.?!')} answer."



# --- a Twilio-like caller ----------------------------------------------------------------------
@dataclass
class Turn:
    """Everything one turn sent back: the documents in order, the answer's plays and says."""

    docs: list[list] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)

    @property
    def final(self) -> list:
        return self.docs[-1]

    @property
    def answer(self) -> list:
        """The verbs of the answer (the final document without its listen/goodbye tail)."""
        tail = len(ANSWER_TAIL) if listens(self.final) else 1
        return self.final[:-tail]

    def plays(self, fixed: set[str] = frozenset()) -> list[str]:
        """Clip URLs of the answer: the final document's, and any hop's before it (not the first
        document's filler), leaving out ``fixed`` phrases (a second filler)."""
        urls = []
        for i, doc in enumerate(self.docs):
            if i == len(self.docs) - 1:
                body = self.answer
            elif i == 0:
                continue
            else:
                body = doc
            urls += [v[2] for v in body if v[0] == "Play" and v[2] not in fixed]
        return urls

    def says(self) -> list[str]:
        return [v[2] for v in self.answer if v[0] == "Say"]


class Caller:
    """Posts Twilio-signed webhooks to ``base`` (a real server) as one call. Thread-safe per instance use."""

    def __init__(self, base: str, call_sid: str, business: str = "demo", *, token: str = TWILIO_TOKEN) -> None:
        self.base = base
        self.call_sid = call_sid
        self.business = business
        self.token = token

    def post(self, path_or_url: str, **extra: str) -> httpx.Response:
        parts = urlsplit(path_or_url)
        path = parts.path + ("?" + parts.query if parts.query else "")
        params = twilio_form(self.call_sid, **extra)
        url = self.base + path
        response = httpx.post(url, data=params, headers={"X-Twilio-Signature": sign(url, params, self.token)},
                              timeout=16)
        assert response.status_code == 200, (response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("text/xml"), response.headers["content-type"]
        return response

    def turn(self, speech: str, *, max_hops: int = 40) -> Turn:
        """Say ``speech``; follow redirects until a document that does not redirect.

        No audio plays between hops here, and each hop waits at most the silence budget before it
        bridges, so a turn of several seconds is many hops.
        """
        result = Turn()
        response = self.post(f"/voice/process/{self.business}/{self.call_sid}", SpeechResult=speech)
        for _ in range(max_hops + 1):
            doc = verbs(response.content)
            result.docs.append(doc)
            result.workers.append(response.headers.get("X-Warmline-Worker", ""))
            if doc[-1][0] != "Redirect":
                return result
            response = self.post(doc[-1][2])
        raise AssertionError(f"no answer after {max_hops} hops: {result.docs[-1]}")


def fetch_clip(url: str) -> float:
    """GET a clip URL; assert 200 audio/wav and return its validated duration in seconds."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code)
    assert response.headers["content-type"] == "audio/wav"
    return validate_ulaw_wav(response.content)


# --- nothing invalid is published or indexed ---------------------------------------------------
def audit_store(root: Path, *, settle_s: float = 15.0) -> list[str]:
    """Every file under a LocalStore ``root`` is a well-formed object name holding a valid clip; returns the names.

    A ``.tmp-*.part`` file is a write in flight (a server that is still running may be publishing
    in the background): it must become an object or disappear within ``settle_s``; one that stays
    is a leak and fails the audit like any stray file.
    """
    names = []
    if not root.exists():
        return names
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            continue
        if path.name.startswith(".tmp-") and path.name.endswith(".part"):
            try:
                wait_until(lambda: not path.exists(), settle_s, f"the write in flight {path.name} to finish")
                continue
            except AssertionError:
                pass  # still there: a leak, failed below like any stray file
        name = path.relative_to(root).as_posix()
        assert is_valid_name(name), f"stray file in the store: {name}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # removed while the audit ran (the spool expires what was published)
        validate_ulaw_wav(data)
        names.append(name)
    return names


def audit_index(index_dir: Path, read) -> int:
    """Every index entry names an object whose bytes (``read(name)``) are a valid clip of the recorded size."""
    index = KeyIndex(index_dir)
    try:
        keys = index.keys()
        for key in keys:
            entry = index.get(key)
            assert entry is not None and entry.name.endswith(f"/{key}.wav"), (key, entry)
            data = read(entry.name)
            assert len(data) == entry.bytes, (entry.name, len(data), entry.bytes)
            validate_ulaw_wav(data)
        return len(keys)
    finally:
        index.close()


# --- Deepgram with a fault plan per text ---------------------------------------------------------
class ScriptedDeepgram(DeepgramEmulator):
    """The Deepgram emulator, where chosen texts fail in chosen ways (thread-safe).

    ``plan(text, modes)``: the next requests for ``canon(text)`` fail with ``modes`` in order
    (``None`` = answer normally; ``"silent"`` = accept and never answer: a read timeout).
    ``always(text, mode)``: every request for it fails so. ``seen`` counts requests per text.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._plans: dict[str, deque[str | None]] = {}
        self._always: dict[str, str] = {}
        self.seen: Counter[str] = Counter()

    def plan(self, text: str, modes: list[str | None]) -> None:
        with self._lock:
            self._plans[canon(text)] = deque(modes)

    def always(self, text: str, mode: str) -> None:
        with self._lock:
            self._always[canon(text)] = mode

    def _draw(self, text: str) -> tuple[str | None, float]:
        mode, ttfb = super()._draw(text)
        with self._lock:
            self.seen[text] += 1
            plan = self._plans.get(text)
            if plan:
                mode = plan.popleft()
            elif text in self._always:
                mode = self._always[text]
        if mode == "silent":
            return None, 3600.0  # the emulator sleeps (until stopped) before the first byte
        return mode, ttfb


# --- a GCS emulator process we can freeze and kill ------------------------------------------------
class GcsEmulator:
    """``gcp-storage-emulator`` on a fixed loopback port with a default bucket, kept in ``data_dir``
    (so a restart keeps the objects, as a real bucket does). One owner."""

    def __init__(self, data_dir: Path, bucket: str = "warmline-test") -> None:
        self.bucket = bucket
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsEmulator:
        self.proc = subprocess.Popen(
            [emulator_command(), "-d", str(self.data_dir), "start", "--host", "127.0.0.1", "--port", str(self.port),
             "--quiet", "--default-bucket", self.bucket],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for_port(self.port, timeout=15)
        return self

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing answers (a hung store)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)
        stop_process(proc)

    def get(self, name: str, prefix: str) -> bytes | None:
        """The bytes of object ``<prefix>/<name>`` (None when absent), over the emulator's public GET."""
        response = httpx.get(f"{self.base_url}/{self.bucket}/{prefix}/{name}", timeout=5)
        return response.content if response.status_code == 200 else None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def gcs_server_env(gcs: "GcsEmulator", llm, prefix: str, **extra: str) -> dict[str, str]:
    """A Warmline server's environment publishing to ``gcs`` (under ``prefix``), answered by ``llm``."""
    return {
        "WARMLINE_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "WARMLINE_LLM_URL": llm.base_url,
        "WARMLINE_LLM_API_KEY": llm.api_key, "WARMLINE_STORE": f"gs://{gcs.bucket}/{prefix}",
        "WARMLINE_CDN_BASE_URL": f"{gcs.base_url}/{gcs.bucket}", "STORAGE_EMULATOR_HOST": gcs.base_url,
        "WARMLINE_TURN_DEADLINE_S": "8", "WARMLINE_HOP_S": "1.0", **extra,
    }


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.1):
    """Poll ``predicate()`` until truthy (returned) or raise AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


# --- businesses ------------------------------------------------------------------------------------
DG_BUSINESS = """
[dg]
name = "Harbourside Dental"
greeting = "Thanks for calling Harbourside Dental. How can I help you today?"
splice = "sentence"
fillers = ["Let me check that for you."]
numbers = ["+15005550007"]
instant_budget_ms = 200
booking = false

[dg.voice]
provider = "deepgram"
model = "aura-2-thalia-en"

[dg.say]
voice = "Polly.Joanna-Neural"
language = "en-US"

"""



def write_businesses(path: Path, text: str = DG_BUSINESS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class Threads:
    """Run callables concurrently and collect results or the first error (bounded join)."""

    def __init__(self) -> None:
        self.results: dict[int, object] = {}
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def start(self, i: int, fn) -> None:
        def run() -> None:
            try:
                self.results[i] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised by join() in the test thread
                self.errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, timeout_s: float) -> dict[int, object]:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "calls still running after the timeout"
        if self.errors:
            raise self.errors[0]
        return self.results
