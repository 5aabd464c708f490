"""``make bench``: dead air per turn, three arms side by side, on the same recorded dialogues.

    python -m simulator bench [--dialogues 48] [--concurrency 12] [--speed 1] [--json OUT] ...

The arms (one gunicorn each, 2 gthread workers, each with its own data directory, store, index,
state and turn log, so no arm sees another's clips):

    control          the blocking reference flow: rollout_percent = 0 (AI, then TTS of the whole
                     reply with a timeout, then <Play>; <Say> on timeout). Fixed phrases precomputed.
    filler-after-ai  the refactoring plan as written: a filler at once (instant_budget_ms = 0),
                     whole-response keys (splice = "whole"), fixed phrases precomputed, nothing mined.
    warmline         full Warmline: instant budget 300 ms, sentence clips, fixed phrases plus the
                     pieces mined from the FIRST ``split`` (70 %) of the corpus's dialogues
                     (the product's precompute runner with its default budget and min count).

Traffic: dialogues drawn (seeded) from the REST of the corpus (disjoint from what was mined);
every arm places the same dialogues, the caller speaking the recorded user turns. The AI is
``simulator.llm_emulator`` behind the real OpenAI-compatible responder (``WARMLINE_LLM_URL``),
replaying each dialogue's recorded system turn with a latency drawn uniformly from
``--ai-ms`` (default 500-1500) -- seeded per (dialogue, turn), so a turn waits exactly as long
for the AI in every arm. TTS is ``simulator.deepgram_emulator`` (one per arm, 15 concurrent
requests like a Deepgram project) with a Deepgram-like latency: first byte after
``ttfb + per_char x chars`` (+ uniform jitter). The store upload of a new clip is modelled as
``--upload-ms`` at the store itself (:mod:`simulator.modeled_upload`, in the arms' workers): on a miss
the clip is synthesized and then uploaded, one after the other, in every arm, and a clip assembled
from cached pieces (the ``phrase`` level) is uploaded too (the local store itself takes ~1 ms).
Audio: by default the emulator speaks a tone whose length follows Piper's measured
speaking rate (19 characters a second) so that the emulator's own CPU does not compete with the
server on a small machine; ``--voice piper`` speaks with Piper instead (slow to warm up).
Twilio's side: ``simulator.twilio_client`` with an 80 ms round trip, 120 ms first media fetch,
5 ms cached fetch (one Twilio media cache per arm).

Per arm (caller turns only; the greeting is not a turn): p50/p95/max of time to first audio,
longest silence and time to answer audio (client-side, simulated seconds; see
:mod:`simulator.timeline`), turns served fully from cache and the fallback rate (server turn
log), server CPU seconds per turn (utime+stime of master and workers over the run, from
/proc), peak RSS per worker (VmHWM), simulator failures.

Time to answer audio is the timeline's (:func:`simulator.timeline.is_answer_audio`: a ready
*prefix* of the answer counts as answer); ``caller_heard`` counts what each turn's answer was
(:class:`simulator.timeline.HeardRule`: own-voice clips, another voice, <Say>, apology, none).

Thread safety: one bench run per process (it owns its emulators, servers and threads).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.events import answer_wait_s
from precompute.corpus import BadDialogue, Dialogue, parse_dialogue
from simulator.support import host_cpu_shares, host_cpu_ticks, http_client, work_dir

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "sgd-dev.jsonl"
TOKEN = "bench-twilio-auth-token"
DEEPGRAM_KEY = "bench-deepgram-key"
LLM_KEY = "bench-llm-key"
VOICE_MODEL = "aura-2-thalia-en"
CLIENT_KEEPALIVE_S = 2.0
"""The simulated Twilio drops idle keep-alive connections after this; gunicorn closes them after 5 s,
and a request sent as the server closes its end fails as if the server had hung up."""
CHARS_PER_S = 19.0
"""Piper's (en_US-joe-medium) measured speaking rate, trimmed clip, pads included."""

FILLERS = ("Let me check that for you.", "One moment, please.", "Sure, let me have a look.",
           "Good question, one second.")
BUSINESS_NAME = "Harbourside Concierge"
GREETING = f"Thanks for calling {BUSINESS_NAME}. How can I help you today?"


@dataclass(frozen=True)
class Arm:
    """One arm: its business id and the business settings that make it what it is.

    ``stream``: the LLM reply is streamed and each sentence's clip starts at once
    (``WARMLINE_LLM_STREAM``); ``clips_per_turn``: clips of one answer made side by side
    (``WARMLINE_CLIPS_PER_TURN``); ``speculate``: partial results on and speculative turns;
    ``barge_in``: the answer plays inside the <Gather>; ``edge_first``: a fresh clip plays from the
    host's edge while it uploads (``WARMLINE_EDGE_FIRST``; off for the arms that stand for the
    flows before Warmline, which play a clip once the store has it); ``early_clause``: a long first
    sentence of a streamed reply plays from its opening clauses (the business's ``early_clause``).
    """

    id: str
    label: str
    rollout_percent: int
    instant_budget_ms: int
    splice: str
    mined: bool
    stream: bool = False
    clips_per_turn: int = 1
    speculate: bool = False
    barge_in: bool = False
    edge_first: bool = False
    early_clause: bool = True


def arms(instant_budget_ms: int = 300) -> dict[str, Arm]:
    return {
        "control": Arm("control", "control (blocking)", 0, 0, "whole", False),
        "filler-after-ai": Arm("filler-after-ai", "filler-after-AI", 100, 0, "whole", False),
        "warmline-classic": Arm("warmline-classic", "Warmline, whole reply first", 100, instant_budget_ms, "sentence",
                                True),
        "warmline-no-spec": Arm("warmline-no-spec", "Warmline without speculation", 100, instant_budget_ms,
                                "sentence", True, stream=True, clips_per_turn=3, barge_in=True, edge_first=True),
        "warmline": Arm("warmline", "full Warmline", 100, instant_budget_ms, "sentence", True, stream=True,
                        clips_per_turn=3, speculate=True, barge_in=True, edge_first=True),
        "warmline-sentences": Arm("warmline-sentences", "full Warmline, first sentence whole", 100,
                                  instant_budget_ms, "sentence", True, stream=True, clips_per_turn=3, speculate=True,
                                  barge_in=True, edge_first=True, early_clause=False),
        "warmline-phrase": Arm("warmline-phrase", "full Warmline, phrase level", 100, instant_budget_ms, "phrase",
                               True, stream=True, clips_per_turn=3, speculate=True, barge_in=True, edge_first=True),
    }


@dataclass(frozen=True)
class BenchConfig:
    """Every knob of a run. Times in ms unless named _s; ``speed`` is the simulated clock speed."""

    corpus: Path = CORPUS
    split: float = 0.7
    dialogues: int = 20  # per end-of-speech setting (each setting gets its own dialogues)
    concurrency: int = 10
    speed: float = 1.0
    max_user_turns: int = 8
    ai_min_ms: float = 500.0
    ai_max_ms: float = 1500.0
    ttft_share: float = 0.6  # of a reply's AI latency spent before its first token (streamed arms see it)
    deepgram_ttfb_ms: float = 200.0
    deepgram_per_char_ms: float = 4.0
    deepgram_jitter_ms: float = 100.0
    upload_ms: float = 200.0
    instant_budget_ms: int = 300
    hop_s: float | None = None  # the server's WARMLINE_HOP_S for every arm; None = the product default (2.5 s)
    budget_chars: int | None = None  # mined precompute budget; None = the product default (settings)
    min_count: int | None = None  # None = the product default (settings)
    rtt_ms: float = 80.0
    media_fetch_ms: float = 120.0
    media_cached_ms: float = 5.0
    endpoint_ms: tuple[float, ...] = (0.0, 700.0, 1000.0)  # Twilio's end-of-speech delay, one run each
    partial_cadence_ms: float = 250.0
    partial_stability: float = 0.9
    partial_reorder_rate: float = 0.1
    play_gap_ms: float = 40.0
    barge_in_after_s: float | None = 2.5
    barge_in_rate: float = 0.15
    stagger_s: float = 1.0
    workers: int = 2
    threads: int = 8
    voice: str = "model"  # "model" (tone at Piper's rate) or "piper"
    seed: int = 7
    transcripts: Path | None = None  # write each call's transcript here (<arm>/<n>.txt)
    arms: tuple[str, ...] = ("control", "filler-after-ai", "warmline-no-spec", "warmline")
    work_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["corpus"] = str(self.corpus)
        data["work_dir"] = None if self.work_dir is None else str(self.work_dir)
        data["transcripts"] = None if self.transcripts is None else str(self.transcripts)
        data["speed"] = None if math.isinf(self.speed) else self.speed
        data["arms"] = list(self.arms)
        data["endpoint_ms"] = list(self.endpoint_ms)
        return data


# --- traffic ------------------------------------------------------------------------------------


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def replies(dialogue: Dialogue) -> list[str] | None:
    """The system turn(s) after each user turn, joined; None if a user turn has no reply."""
    out: list[str] = []
    current: list[str] | None = None
    for turn in dialogue.turns:
        if turn.speaker == "user":
            if current is not None:
                if not current:
                    return None
                out.append(" ".join(current))
            current = []
        elif current is not None:
            current.append(turn.text)
    if current is not None:
        if not current:
            return None
        out.append(" ".join(current))
    return out


def split_corpus(path: Path, split: float) -> tuple[list[str], list[Dialogue]]:
    """(the raw JSON lines of the first ``split`` of the dialogues, the rest parsed)."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    cut = int(len(lines) * split)
    test = []
    for line in lines[cut:]:
        try:
            test.append(parse_dialogue(json.loads(line)))
        except (ValueError, BadDialogue):
            continue
    return lines[:cut], test


def select_dialogues(test: Sequence[Dialogue], n: int, *, max_user_turns: int, seed: int) -> list[Dialogue]:
    """``n`` test dialogues, seeded: every user turn answered, at most ``max_user_turns`` user turns
    (the responder sends the model the last 20 history items, so a replay keyed by the call's first
    utterance needs short calls), first utterances distinct (they identify the dialogue)."""
    if max_user_turns > 10:
        raise ValueError("max_user_turns must be at most 10 (the responder keeps 20 history items)")
    pool = [d for d in test if 0 < len(d.utterances()) <= max_user_turns and replies(d) is not None]
    random.Random(seed).shuffle(pool)
    chosen: list[Dialogue] = []
    firsts: set[str] = set()
    for dialogue in pool:
        first = _key(dialogue.utterances()[0])
        if first in firsts:
            continue
        firsts.add(first)
        chosen.append(dialogue)
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} usable test dialogues for {n} requested")
    return chosen


class ReplayLLM:
    """The LLM emulator's ``responses``: the recorded system turn after the caller's N-th line.

    The dialogue is found by the call's first caller line (in the request's history); the AI
    latency is drawn uniformly from [min_ms, max_ms] with a seed of (seed, dialogue, turn), so the
    same turn waits the same in every arm. It is slept here (``sleep``) unless the emulator is given
    :meth:`timing`, which spreads it over a streamed reply: ``ttft_share`` of it before the first
    token, the rest evenly between tokens -- the last token comes when the unstreamed reply would.
    The last reply carries ``[END]``. A speculative request on a transcript the final result later
    revised may name no recorded dialogue: counted in ``unknown``. Thread-safe.
    """

    def __init__(self, dialogues: Sequence[Dialogue], *, min_ms: float, max_ms: float, seed: int,
                 sleep: Any = time.sleep, ttft_share: float = 0.6) -> None:
        self.by_first = {_key(d.utterances()[0]): d for d in dialogues}
        self.replies = {d.id: replies(d) or [] for d in dialogues}
        self.min_ms, self.max_ms, self.seed = min_ms, max_ms, seed
        self.ttft_share = ttft_share
        self._sleep = sleep
        self._lock = threading.Lock()
        self.unknown = 0

    def latency_s(self, dialogue_id: str, position: int) -> float:
        rng = random.Random(f"{self.seed}|{dialogue_id}|{position}")
        return rng.uniform(self.min_ms, self.max_ms) / 1000.0

    def _locate(self, request: dict[str, Any]) -> tuple[Dialogue | None, int]:
        users = [m["content"] for m in request["messages"] if m["role"] == "user"]
        dialogue = self.by_first.get(_key(users[0])) if users else None
        return dialogue, len(users) - 1

    def timing(self, request: dict[str, Any], content: str) -> tuple[float, float]:
        """(seconds to the first token, seconds per further token) for the emulator (see the class docstring)."""
        from simulator.llm_emulator import tokens

        dialogue, position = self._locate(request)
        total = self.latency_s(dialogue.id, position) if dialogue is not None else (self.min_ms / 1000.0)
        first = total * self.ttft_share
        rest = max(1, len(tokens(content)) - 1)
        return first, (total - first) / rest

    def __call__(self, request: dict[str, Any]) -> str:
        dialogue, position = self._locate(request)
        if dialogue is None:
            with self._lock:
                self.unknown += 1
            return "Sorry, I didn't catch that. Could you say it again?"
        self._sleep(self.latency_s(dialogue.id, position))
        lines = self.replies[dialogue.id]
        if position >= len(lines):
            return "Thanks for calling. Goodbye! [END]"
        return lines[position] + (" [END]" if position == len(lines) - 1 else "")


class ToneSpeaker:
    """A Deepgram-emulator speaker that is nearly free: a quiet tone as long as Piper would speak.

    Length: ``len(text) / CHARS_PER_S`` seconds (the emulator then trims and pads like every clip).
    Thread-safe (pure).
    """

    rate = 8000

    def synthesize_pcm(self, text: str, speed: float = 1.0) -> tuple[np.ndarray, int]:
        seconds = max(0.25, len(text) / CHARS_PER_S / speed - 0.12)
        t = np.arange(int(seconds * self.rate)) / self.rate
        return (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16), self.rate


# --- businesses and servers --------------------------------------------------------------------


def business_toml(arm: Arm) -> str:
    fillers = ", ".join(json.dumps(f) for f in FILLERS)
    return f"""[{arm.id}]
name = "{BUSINESS_NAME}"
greeting = "{GREETING}"
fillers = [{fillers}]
splice = "{arm.splice}"
instant_budget_ms = {arm.instant_budget_ms}
booking = true
speculate = {str(arm.speculate).lower()}
early_clause = {str(arm.early_clause).lower()}

[{arm.id}.listen]
speech_model = "deepgram_nova-3"
partial_results = {str(arm.speculate).lower()}
barge_in = {str(arm.barge_in).lower()}

[{arm.id}.voice]
provider = "deepgram"
model = "{VOICE_MODEL}"

[{arm.id}.say]
voice = "Polly.Joanna-Neural"
language = "en-US"

[{arm.id}.rollout]
use_proactive_filler = true
rollout_percent = {arm.rollout_percent}
"""


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process in MB (0.0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _host_cpu_note(host: dict[str, float] | None) -> str:
    """", host CPUs 61 % busy, 12 % stolen" for the report line ('' without a reading)."""
    return f", host CPUs {host['busy']:.0%} busy, {host['steal']:.0%} stolen" if host else ""


def machine() -> dict[str, Any]:
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_start": list(os.getloadavg())}


# --- metrics -----------------------------------------------------------------------------------


def stats(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """p50 / p95 / max (seconds, 3 decimals) of the non-None values, and how many were None."""
    real = [v for v in values if v is not None]
    if not real:
        return {"p50": None, "p95": None, "max": None, "n": 0, "missing": len(values)}
    p50, p95 = np.percentile(real, [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "max": round(float(max(real)), 3),
            "n": len(real), "missing": len(values) - len(real)}


def read_events(data_dir: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted((data_dir / "events").glob("turns-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


@dataclass
class ArmRun:
    """What one arm did at one end-of-speech setting (filled in by :func:`run_bench`)."""

    arm: Arm
    data_dir: Path
    warm: dict[str, Any] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list)
    dialogue_ids: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    rss_mb: list[float] = field(default_factory=list)
    deepgram: dict[str, Any] = field(default_factory=dict)
    llm_requests: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def _answer_fetch_wait(result: Any, turn: Any) -> float | None:
    """Media fetch time between the answer document's arrival and its first answer audio (None: no answer)."""
    events = result.events
    first = next((i for i, e in enumerate(events) if e.is_audio and e.detail.get("answer")
                  and turn.start_s <= e.t < turn.end_s and not e.detail.get("system")), None)
    if first is None:
        return None
    wait = 0.0
    for e in reversed(events[:first]):
        if e.kind == "webhook" and e.detail.get("via") != "partial":
            break
        if e.kind == "fetch":
            wait += e.duration_s
    return wait


def _silence_after_handover(result: Any, turn: Any) -> float:
    """The turn's longest silence counted from Twilio's handover (the Gather action request) rather than
    from the end of the caller's speech: Twilio's end-of-speech delay is silence no server can fill."""
    events = result.events
    handover = next((e.t for e in events if e.kind == "webhook" and e.detail.get("via") == "gather"
                     and turn.start_s <= e.t < turn.end_s), turn.start_s)
    audio = [e for e in events if e.is_audio and not e.detail.get("system") and turn.start_s <= e.t < turn.end_s]
    answers = [e for e in audio if e.detail.get("answer")]
    stop = answers[-1].end if answers else turn.end_s
    longest, cursor = 0.0, handover
    for e in audio:
        if e.t >= stop:
            break
        longest = max(longest, e.t - cursor)
        cursor = max(cursor, e.end)
    return max(longest, stop - cursor)


def summarize(run: ArmRun, business: Any, events: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One arm's figures. ``events``: its server turn log for these calls (default: all of its data dir)."""
    from simulator.timeline import HeardRule

    heard_rule = HeardRule.for_business(business)
    first, silence, answer, fetch_wait, rows, handover_silence = [], [], [], [], [], []
    failures: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    with_filler = interrupted = lost = 0
    barge_texts: list[str] = []
    for dialogue_id, result in zip(run.dialogue_ids, run.results):
        ended[result.ended_by] += 1
        for f in result.failures:
            failures[f"{f.code} {f.where}{' fatal' if f.fatal else ''}"] += 1
            lost += f.where == "caller"
        interrupted += sum(1 for e in result.events if e.is_audio and e.detail.get("interrupted"))
        barge_texts += [str(e.detail.get("text")) for e in result.events if e.kind == "speak" and e.detail.get("barge_in")]
        for turn in result.turns:
            to_answer = turn.time_to_answer_audio_s
            first.append(turn.time_to_first_audio_s)
            silence.append(turn.longest_silence_s)
            handover_silence.append(_silence_after_handover(result, turn))
            answer.append(to_answer)
            fetch_wait.append(_answer_fetch_wait(result, turn))
            with_filler += bool(turn.fillers)
            rows.append({"dialogue": dialogue_id, "turn": turn.index, "first_audio_s": turn.time_to_first_audio_s,
                         "longest_silence_s": round(turn.longest_silence_s, 4), "answer_audio_s": to_answer,
                         "fillers": len(turn.fillers), "hops": turn.hops, "failures": len(turn.failures)})
    if events is None:
        events = read_events(run.data_dir)
    events = [e for e in events if e.get("turn") is not None and e.get("outcome") != "reprompt"]
    n = len(events)
    full = sum(1 for e in events if e.get("sentences") and all(s.get("hit") for s in e["sentences"]))
    fallback = sum(1 for e in events if e.get("fallback"))
    turns = len(first)
    answered = sum(1 for a in answer if a is not None)
    # what a playable answer waited for Twilio's schedule (a phrase to end, the next hop), on the server's clock
    waited = [w for w in map(answer_wait_s, events) if w is not None]
    fates = Counter(e.get("speculation") for e in events if e.get("speculation") in ("adopted", "discarded"))
    settled = fates["adopted"] + fates["discarded"]
    last_user = [next((m["content"] for m in reversed(r["messages"]) if m["role"] == "user"), "")
                 for r in run.llm_requests]
    return {
        "arm": run.arm.id,
        "label": run.arm.label,
        "business": {"rollout_percent": run.arm.rollout_percent, "instant_budget_ms": run.arm.instant_budget_ms,
                     "splice": run.arm.splice, "mined_precompute": run.arm.mined, "stream": run.arm.stream,
                     "clips_per_turn": run.arm.clips_per_turn, "speculate": run.arm.speculate,
                     "barge_in": run.arm.barge_in},
        "precompute": run.warm,
        "calls": len(run.results),
        "caller_turns": turns,
        "time_to_first_audio_s": stats(first),
        "longest_silence_s": stats(silence),
        "longest_silence_after_handover_s": stats(handover_silence),
        "time_to_answer_audio_s": stats(answer),
        "answer_fetch_wait_s": stats(fetch_wait),
        "answer_wait_when_playable_s": stats(waited),
        "turns_with_filler": round(with_filler / turns, 4) if turns else None,
        "caller_heard": heard_rule.count(t for r in run.results for t in r.turns),
        "responder_calls": len(run.llm_requests),
        "responder_calls_per_answered_turn": round(len(run.llm_requests) / answered, 3) if answered else None,
        "speculation": {
            "turns_speculated": settled,
            "adopted": fates["adopted"],
            "discarded": fates["discarded"],
            "adoption_rate": round(fates["adopted"] / settled, 4) if settled else None,
            "speculative_calls": sum(int(e.get("speculative_calls") or 0) for e in events),
        },
        "barge_in": {
            "interrupted_answers": interrupted,
            "interruptions": len(barge_texts),
            "interruption_words_reached_responder": sum(1 for t in barge_texts if t in last_user),
            "words_lost_over_uninterruptible_audio": lost,
        },
        "server_turn_events": n,
        "turns_fully_from_cache": round(full / n, 4) if n else None,
        "fallback_rate": round(fallback / n, 4) if n else None,
        "outcomes": dict(Counter(e.get("outcome") for e in events)),
        "arms_logged": dict(Counter(e.get("arm") for e in events)),
        "chars_live": sum(e.get("chars_live") or 0 for e in events),
        "chars_cached": sum(e.get("chars_cached") or 0 for e in events),
        "server_cpu_s": round(run.cpu_s, 3),
        "server_cpu_s_per_turn": round(run.cpu_s / turns, 4) if turns else None,
        "peak_rss_mb_per_worker": [round(r, 1) for r in run.rss_mb],
        "deepgram": run.deepgram,
        "failures": sum(failures.values()),
        "failure_kinds": dict(failures),
        "ended_by": dict(ended),
        "wall_s": round(run.wall_s, 1),
        "turns": rows,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def goals(arms_summary: dict[str, dict[str, Any]], endpoint_ms: float | None = None) -> dict[str, Any]:
    """The issues' goals, checked where the arms they need were run (for one end-of-speech setting)."""
    out: dict[str, Any] = {}
    full = arms_summary.get("warmline")
    control = arms_summary.get("control")
    plan = arms_summary.get("filler-after-ai")
    nospec = arms_summary.get("warmline-no-spec")
    if full:
        p95 = full["longest_silence_after_handover_s"]["p95"]
        out["warmline_p95_longest_silence_le_0.6s"] = {"value": p95, "met": p95 is not None and p95 <= 0.6,
                                                       "counted_from": "Twilio's handover (the Gather action)"}
        out["warmline_p95_longest_silence_incl_end_of_speech_delay"] = {"value": full["longest_silence_s"]["p95"]}
    if control:
        s = control["longest_silence_s"]
        out["control_longest_silence_p50_p95"] = {"value": [s["p50"], s["p95"]], "reference": [1.6, 3.8]}
    if full and control:
        a, c = full["time_to_answer_audio_s"], control["time_to_answer_audio_s"]
        r50, r95 = _ratio(a["p50"], c["p50"]), _ratio(a["p95"], c["p95"])
        out["warmline_p50_answer_le_0.65x_control"] = {"value": r50, "met": r50 is not None and r50 <= 0.65}
        out["warmline_p95_answer_le_0.9x_control"] = {"value": r95, "met": r95 is not None and r95 <= 0.9}
    if full and plan:
        a, b = full["time_to_answer_audio_s"]["p50"], plan["time_to_answer_audio_s"]["p50"]
        out["warmline_p50_answer_le_filler_after_ai"] = {"value": [a, b], "met": a is not None and b is not None
                                                         and a <= b}
    if full and full["business"]["speculate"]:
        spec = full["speculation"]
        calls = full["responder_calls_per_answered_turn"]
        out["speculation_adoption_rate"] = {"value": spec["adoption_rate"]}
        out["responder_calls_per_answered_turn_le_1.5"] = {"value": calls, "met": calls is not None and calls <= 1.5}
    if full and nospec:
        a, b = full["time_to_answer_audio_s"], nospec["time_to_answer_audio_s"]
        gain = [None if a[q] is None or b[q] is None else round(b[q] - a[q], 3) for q in ("p50", "p95")]
        out["speculation_gain_p50_p95_s"] = {"value": gain}
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def format_arms(arms_s: dict[str, dict[str, Any]], goals_s: dict[str, Any]) -> str:
    """One table (rows: metrics, columns: arms) and the goals, for one end-of-speech setting."""
    ids = list(arms_s)
    rows: list[tuple[str, list[str]]] = [("", [arms_s[a]["label"] for a in ids])]
    rows.append(("calls / caller turns", [f"{arms_s[a]['calls']} / {arms_s[a]['caller_turns']}" for a in ids]))
    for metric, name in (("time_to_first_audio_s", "time to first audio"), ("longest_silence_s", "longest silence"),
                         ("longest_silence_after_handover_s", "silence after handover"),
                         ("time_to_answer_audio_s", "time to answer audio")):
        for q in ("p50", "p95", "max"):
            rows.append((f"{name} {q} (s)", [_fmt(arms_s[a][metric][q]) for a in ids]))
    rows.append(("answer media fetch wait p50/p95 (s)",
                 [f"{_fmt(arms_s[a]['answer_fetch_wait_s']['p50'])}/{_fmt(arms_s[a]['answer_fetch_wait_s']['p95'])}"
                  for a in ids]))
    rows.append(("playable answer waited p50/p95 (s)",
                 [f"{_fmt(arms_s[a]['answer_wait_when_playable_s']['p50'])}/"
                  f"{_fmt(arms_s[a]['answer_wait_when_playable_s']['p95'])}"
                  if arms_s[a].get("answer_wait_when_playable_s", {}).get("n") else "-" for a in ids]))
    rows.append(("turns with a filler", [_pct(arms_s[a]["turns_with_filler"]) for a in ids]))
    rows.append(("responder calls / answered turn", [_fmt(arms_s[a]["responder_calls_per_answered_turn"])
                                                     for a in ids]))
    rows.append(("speculations adopted / settled",
                 [f"{arms_s[a]['speculation']['adopted']} / {arms_s[a]['speculation']['turns_speculated']}"
                  for a in ids]))
    rows.append(("interrupted answers (words heard)",
                 [f"{arms_s[a]['barge_in']['interrupted_answers']} "
                  f"({arms_s[a]['barge_in']['interruption_words_reached_responder']})" for a in ids]))
    rows.append(("words lost (not interruptible)", [str(arms_s[a]["barge_in"]["words_lost_over_uninterruptible_audio"])
                                                    for a in ids]))
    rows.append(("turns fully from cache", [_pct(arms_s[a]["turns_fully_from_cache"]) for a in ids]))
    rows.append(("fallback rate", [_pct(arms_s[a]["fallback_rate"]) for a in ids]))
    rows.append(("server CPU s / turn", [_fmt(arms_s[a]["server_cpu_s_per_turn"]) for a in ids]))
    rows.append(("peak RSS / worker (MB)",
                 [" ".join(f"{r:.0f}" for r in arms_s[a]["peak_rss_mb_per_worker"]) or "-" for a in ids]))
    rows.append(("live TTS requests", [str(arms_s[a]["deepgram"].get("requests_total", "-")) for a in ids]))
    rows.append(("simulator failures", [str(arms_s[a]["failures"]) for a in ids]))
    width0 = max(len(r[0]) for r in rows)
    widths = [max(len(r[1][i]) for r in rows) for i in range(len(ids))]
    lines = [f"{label:<{width0}}  " + "  ".join(f"{cell:>{w}}" for cell, w in zip(cells, widths))
             for label, cells in rows]
    lines.append("")
    for name, goal in goals_s.items():
        met = goal.get("met")
        lines.append(f"{name}: {goal['value']}" + ("" if met is None else f"  {'MET' if met else 'NOT MET'}")
                     + (f"  (reference {goal['reference']})" if "reference" in goal else ""))
    return "\n".join(lines)


def format_table(summary: dict[str, Any]) -> str:
    """Every end-of-speech setting's table, one after the other (the first is ``summary["arms"]``)."""
    by = summary.get("by_endpoint_ms") or {"": {"arms": summary["arms"], "goals": summary["goals"]}}
    parts = []
    for ms, run in by.items():
        title = f"== end-of-speech delay {ms} ms ==" if ms != "" else ""
        parts.append((title + "\n" if title else "") + format_arms(run["arms"], run["goals"]))
    return "\n\n".join(parts)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


# --- the run -----------------------------------------------------------------------------------


def _endpoint_label(ms: float) -> str:
    return f"{ms:g}"


def run_bench(config: BenchConfig, out: Any = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the summary (what ``--json`` writes).

    One set of servers; for each end-of-speech delay in ``config.endpoint_ms`` (in order) every arm
    places the same ``config.dialogues`` calls side by side, a different set of dialogues per delay
    (so no delay runs on clips another delay made). ``summary["arms"]`` is the first delay's arms;
    ``summary["by_endpoint_ms"]`` has every delay's arms and goals.
    """
    from app.business import load_businesses
    from simulator.deepgram_emulator import DeepgramEmulator
    from simulator.demo import start_server, warm
    from simulator.llm_emulator import LLMEmulator
    from simulator.twilio_client import CallConfig, Knobs, MediaCache, format_transcript, run_call

    out = out or sys.stdout

    def say(msg: str) -> None:
        print(msg, file=out, flush=True)

    all_arms = arms(config.instant_budget_ms)
    chosen_arms = [all_arms[a] for a in config.arms]
    delays = list(config.endpoint_ms) or [0.0]
    work, tmp = work_dir(config.work_dir, "warmline-bench-")
    started = time.monotonic()
    info = machine()
    host_before = host_cpu_ticks()
    emulators: list[Any] = []
    servers: list[Any] = []
    try:
        train_lines, test = split_corpus(config.corpus, config.split)
        train_path = work / "train.jsonl"
        train_path.write_text("\n".join(train_lines) + "\n", encoding="utf-8")
        everything = select_dialogues(test, config.dialogues * len(delays), max_user_turns=config.max_user_turns,
                                      seed=config.seed)
        sets = {ms: everything[i * config.dialogues:(i + 1) * config.dialogues] for i, ms in enumerate(delays)}
        say(f"corpus {config.corpus.name}: {len(train_lines)} dialogues mined, {len(test)} held out; "
            + "; ".join(f"{len(ds)} test dialogues ({sum(len(d.utterances()) for d in ds)} caller turns) per arm at "
                        f"{_endpoint_label(ms)} ms" for ms, ds in sets.items()))
        speaker: Any
        if config.voice == "piper":
            from app.speech.providers.piper import PiperProvider

            speaker = PiperProvider()
        else:
            speaker = ToneSpeaker()
        replay = ReplayLLM(everything, min_ms=config.ai_min_ms, max_ms=config.ai_max_ms, seed=config.seed,
                           sleep=lambda _s: None, ttft_share=config.ttft_share)
        llms: dict[str, Any] = {}
        for arm in chosen_arms:  # one per arm: its requests are that arm's responder calls
            llm = LLMEmulator(api_key=LLM_KEY, responses=replay, timing=replay.timing)
            emulators.append(llm)
            llm.start()
            llms[arm.id] = llm

        runs: dict[str, ArmRun] = {}
        warm_dg = DeepgramEmulator(api_key=DEEPGRAM_KEY, ttfb_ms=0.0, per_char_ms=0.0, speaker=speaker)
        warm_dg.start()
        try:
            for arm in chosen_arms:
                data_dir = work / arm.id
                data_dir.mkdir(parents=True, exist_ok=True)
                toml = work / f"{arm.id}.toml"
                toml.write_text(business_toml(arm), encoding="utf-8")
                cfg: dict[str, Any] = {"env": "testing", "data_dir": data_dir, "businesses": toml,
                                       "twilio_auth_token": TOKEN, "deepgram_api_key": DEEPGRAM_KEY,
                                       "deepgram_url": warm_dg.base_url, "llm_url": llms[arm.id].base_url,
                                       "llm_api_key": LLM_KEY}
                if config.min_count is not None:
                    cfg["precompute_min_count"] = config.min_count
                t0 = time.monotonic()
                summary = warm(cfg, corpus=train_path if arm.mined else None,
                               budget_chars=config.budget_chars if arm.mined else None)
                kept = {k: summary[k] for k in ("planned", "new", "failed", "chars")}
                runs[arm.id] = ArmRun(arm, data_dir, warm=kept)
                say(f"  {arm.id}: precomputed {summary['new']} clips ({summary['chars']} chars, "
                    f"{summary['failed']} failed) in {time.monotonic() - t0:.1f} s")
        finally:
            warm_dg.stop()
        warm_requests = {a: len(llm.requests) for a, llm in llms.items()}

        servers_by_arm: dict[str, Any] = {}
        dgs: dict[str, Any] = {}
        for arm in chosen_arms:
            dg = DeepgramEmulator(api_key=DEEPGRAM_KEY, ttfb_ms=config.deepgram_ttfb_ms,
                                  per_char_ms=config.deepgram_per_char_ms, jitter_ms=config.deepgram_jitter_ms,
                                  seed=config.seed, speaker=speaker)
            dg.start()
            emulators.append(dg)
            dgs[arm.id] = dg

        def boot(arm: Arm) -> None:
            env = {"WARMLINE_BUSINESSES": str(work / f"{arm.id}.toml"), "WARMLINE_TWILIO_AUTH_TOKEN": TOKEN,
                   "WARMLINE_DEEPGRAM_URL": dgs[arm.id].base_url, "WARMLINE_DEEPGRAM_API_KEY": DEEPGRAM_KEY,
                   "WARMLINE_LLM_URL": llms[arm.id].base_url, "WARMLINE_LLM_API_KEY": LLM_KEY,
                   "WARMLINE_LLM_MODEL": "replay", "WARMLINE_LLM_STREAM": "true" if arm.stream else "false",
                   "WARMLINE_CLIPS_PER_TURN": str(arm.clips_per_turn), "SIMULATOR_UPLOAD_MS": f"{config.upload_ms:g}",
                   "WARMLINE_EDGE_FIRST": "true" if arm.edge_first else "false"}
            if config.hop_s is not None:
                env["WARMLINE_HOP_S"] = f"{config.hop_s:g}"
            server = start_server(runs[arm.id].data_dir, env, workers=config.workers, threads=config.threads,
                                  app="simulator.bench_wsgi:app")
            servers_by_arm[arm.id] = server
            servers.append(server)  # stopped in the finally below, even if another arm's server fails

        with ThreadPoolExecutor(max_workers=len(chosen_arms)) as boots:
            for future in [boots.submit(boot, arm) for arm in chosen_arms]:
                future.result()

        def pids(server: Any) -> list[int]:
            return [server.proc.pid, *server.worker_pids()]

        by_delay: dict[str, Any] = {}
        for ms in delays:
            dialogues = sets[ms]
            knobs = Knobs(network_rtt_ms=config.rtt_ms, media_fetch_ms=config.media_fetch_ms,
                          media_cached_ms=config.media_cached_ms, speech_endpoint_ms=ms,
                          partial_cadence_ms=config.partial_cadence_ms, partial_stability=config.partial_stability,
                          partial_reorder_rate=config.partial_reorder_rate, play_gap_ms=config.play_gap_ms,
                          barge_in_after_s=config.barge_in_after_s, barge_in_rate=config.barge_in_rate)
            say(f"end-of-speech delay {_endpoint_label(ms)} ms: placing {len(dialogues)} calls per arm, "
                f"{config.concurrency} at a time per arm, clock speed {config.speed:g}x, arms side by side: "
                f"{', '.join(a.id for a in chosen_arms)}")
            cpu_before = {a: sum(proc_cpu_s(p) for p in pids(s)) for a, s in servers_by_arm.items()}
            dg_before = {a: dg.stats().get("requests_total", 0) for a, dg in dgs.items()}
            llm_before = {a: len(llm.requests) for a, llm in llms.items()}
            delay_runs = {a.id: ArmRun(a, runs[a.id].data_dir, warm=runs[a.id].warm) for a in chosen_arms}

            def run_arm(arm: Arm, dialogues: list[Dialogue] = dialogues, knobs: Any = knobs,
                        delay_runs: dict[str, ArmRun] = delay_runs, ms: float = ms) -> None:
                server = servers_by_arm[arm.id]
                cache = MediaCache()
                run = delay_runs[arm.id]
                t0 = time.monotonic()

                def one(i: int, dialogue: Dialogue) -> Any:
                    if i < config.concurrency and config.stagger_s > 0:
                        time.sleep(i * config.stagger_s)
                    call = CallConfig(base_url=server.base_url, business_id=arm.id, auth_token=TOKEN,
                                      script=dialogue.utterances(), knobs=knobs, speed=config.speed,
                                      media_cache=cache)
                    with http_client(limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_S)) as client:
                        return run_call(call, client=client)

                with ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix=f"call-{arm.id}") as pool:
                    futures = [pool.submit(one, i, d) for i, d in enumerate(dialogues)]
                    run.results = [f.result() for f in futures]
                run.dialogue_ids = [d.id for d in dialogues]
                run.wall_s = time.monotonic() - t0
                if config.transcripts is not None:
                    folder = config.transcripts / _endpoint_label(ms) / arm.id
                    folder.mkdir(parents=True, exist_ok=True)
                    for i, (d, result) in enumerate(zip(dialogues, run.results)):
                        text = f"dialogue {d.id}\n" + format_transcript(result)
                        (folder / f"{i:03d}.txt").write_text(text + "\n", encoding="utf-8")

            with ThreadPoolExecutor(max_workers=len(chosen_arms), thread_name_prefix="arm") as side_by_side:
                for future in [side_by_side.submit(run_arm, arm) for arm in chosen_arms]:
                    future.result()
            time.sleep(0.5)  # let the last status callbacks' turn events land
            result_arms = {}
            for arm in chosen_arms:
                run = delay_runs[arm.id]
                server = servers_by_arm[arm.id]
                run.cpu_s = sum(proc_cpu_s(p) for p in pids(server)) - cpu_before[arm.id]
                run.rss_mb = [vm_hwm_mb(p) for p in server.worker_pids()]
                stats_now = dgs[arm.id].stats()
                run.deepgram = {k: v for k, v in stats_now.items()
                                if k in ("by_status", "max_in_flight", "chars_total")}
                run.deepgram["requests_total"] = stats_now.get("requests_total", 0) - dg_before[arm.id]
                run.llm_requests = list(llms[arm.id].requests[llm_before[arm.id]:])
                calls = {r.call_sid for r in run.results}
                events = [e for e in read_events(run.data_dir) if e.get("call") in calls]
                business = load_businesses(work / f"{arm.id}.toml").get(arm.id)
                result_arms[arm.id] = summarize(run, business, events)
            by_delay[_endpoint_label(ms)] = {"endpoint_ms": ms, "dialogues": [d.id for d in dialogues],
                                             "arms": result_arms, "goals": goals(result_arms, ms)}
        info["loadavg_end"] = list(os.getloadavg())
        info["host_cpu"] = host_cpu_shares(host_before, host_cpu_ticks())  # busy / idle / steal over the run
        first = by_delay[_endpoint_label(delays[0])]
        summary = {
            "config": config.to_dict(),
            "machine": info,
            "dialogues": first["dialogues"],
            "llm_unknown_dialogues": replay.unknown,
            "llm_warm_requests": warm_requests,
            "arms": first["arms"],
            "goals": first["goals"],
            "by_endpoint_ms": by_delay,
            "wall_s": round(time.monotonic() - started, 1),
        }
        return summary
    finally:
        for server in servers:
            server.stop()
        for emulator in emulators:
            emulator.stop()
        if tmp is not None:
            tmp.cleanup()


def _range(raw: str) -> tuple[float, float]:
    lo, _, hi = raw.partition(",")
    a, b = float(lo), float(hi or lo)
    if not 0 <= a <= b:
        raise argparse.ArgumentTypeError(f"need 0 <= MIN <= MAX, got {raw!r}")
    return a, b


def main(argv: Sequence[str] | None = None) -> int:
    d = BenchConfig()
    p = argparse.ArgumentParser(prog="python -m simulator bench", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", type=Path, default=d.corpus, help="dialogues (JSONL)")
    p.add_argument("--split", type=float, default=d.split, help="fraction of dialogues mined; the rest is traffic")
    p.add_argument("--dialogues", type=int, default=d.dialogues, help="dialogues (calls) per arm")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="concurrent calls per arm")
    p.add_argument("--speed", type=float, default=d.speed, help="simulated clock speed (1 = real time; inf = no waits)")
    p.add_argument("--max-user-turns", type=int, default=d.max_user_turns, help="longest dialogue used (<= 10)")
    p.add_argument("--ai-ms", type=_range, default=(d.ai_min_ms, d.ai_max_ms), metavar="MIN,MAX",
                   help="AI latency, uniform")
    p.add_argument("--deepgram-ttfb-ms", type=float, default=d.deepgram_ttfb_ms)
    p.add_argument("--deepgram-per-char-ms", type=float, default=d.deepgram_per_char_ms)
    p.add_argument("--deepgram-jitter-ms", type=float, default=d.deepgram_jitter_ms)
    p.add_argument("--upload-ms", type=float, default=d.upload_ms, help="store upload per new clip (at the store)")
    p.add_argument("--instant-budget-ms", type=int, default=d.instant_budget_ms, help="full Warmline's instant budget")
    p.add_argument("--hop-s", type=float, default=None,
                   help="the server's longest wait per tts-ready hop before a second filler (default: the product's)")
    p.add_argument("--budget-chars", type=int, default=None, help="mined precompute budget (default: the product's)")
    p.add_argument("--min-count", type=int, default=None, help="mined precompute min count (default: the product's)")
    p.add_argument("--rtt-ms", type=float, default=d.rtt_ms, help="network round trip Twilio <-> server")
    p.add_argument("--media-fetch-ms", type=float, default=d.media_fetch_ms, help="Twilio's first fetch of a clip")
    p.add_argument("--endpoint-ms", default=",".join(f"{x:g}" for x in d.endpoint_ms),
                   help="Twilio's end-of-speech delays to run, comma-separated (each with its own dialogues)")
    p.add_argument("--ttft-share", type=float, default=d.ttft_share,
                   help="share of a reply's AI latency before its first token (streamed arms)")
    p.add_argument("--partial-cadence-ms", type=float, default=d.partial_cadence_ms)
    p.add_argument("--partial-stability", type=float, default=d.partial_stability,
                   help="chance the running transcript ends as the final SpeechResult")
    p.add_argument("--partial-reorder-rate", type=float, default=d.partial_reorder_rate)
    p.add_argument("--play-gap-ms", type=float, default=d.play_gap_ms, help="Twilio's gap between consecutive plays")
    p.add_argument("--barge-in-after-s", type=float, default=d.barge_in_after_s,
                   help="the caller talks over an answer this far in (a negative value: never)")
    p.add_argument("--barge-in-rate", type=float, default=d.barge_in_rate, help="share of turns the caller does")
    p.add_argument("--stagger-s", type=float, default=d.stagger_s, help="gap between the first calls' starts")
    p.add_argument("--workers", type=int, default=d.workers, help="gunicorn workers per arm")
    p.add_argument("--threads", type=int, default=d.threads, help="gunicorn threads per worker")
    p.add_argument("--voice", choices=("model", "piper"), default=d.voice,
                   help="what the Deepgram emulator speaks with: a tone at Piper's rate, or Piper")
    p.add_argument("--arms", default=",".join(d.arms), help="comma-separated subset of " + ", ".join(arms()))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--work-dir", type=Path, help="keep data dirs and logs here (default: a temporary dir)")
    p.add_argument("--json", type=Path, help="write the summary as JSON here")
    p.add_argument("--transcripts", type=Path, help="write every call's transcript under this directory")
    a = p.parse_args(argv)
    chosen = tuple(x for x in a.arms.split(",") if x)
    unknown = [x for x in chosen if x not in arms()]
    if unknown or not chosen:
        p.error(f"--arms: unknown {unknown}; choose from {', '.join(arms())}")
    if not a.speed > 0:
        p.error("--speed must be positive")
    if not 0 < a.split < 1:
        p.error("--split must be between 0 and 1")
    config = replace(d, corpus=a.corpus, split=a.split, dialogues=a.dialogues, concurrency=a.concurrency,
                     speed=a.speed, max_user_turns=a.max_user_turns, ai_min_ms=a.ai_ms[0], ai_max_ms=a.ai_ms[1],
                     deepgram_ttfb_ms=a.deepgram_ttfb_ms, deepgram_per_char_ms=a.deepgram_per_char_ms,
                     deepgram_jitter_ms=a.deepgram_jitter_ms, upload_ms=a.upload_ms,
                     instant_budget_ms=a.instant_budget_ms, hop_s=a.hop_s, budget_chars=a.budget_chars,
                     min_count=a.min_count,
                     rtt_ms=a.rtt_ms, media_fetch_ms=a.media_fetch_ms, stagger_s=a.stagger_s, workers=a.workers,
                     endpoint_ms=tuple(float(x) for x in a.endpoint_ms.split(",") if x.strip()),
                     ttft_share=a.ttft_share, partial_cadence_ms=a.partial_cadence_ms,
                     partial_stability=a.partial_stability, partial_reorder_rate=a.partial_reorder_rate,
                     play_gap_ms=a.play_gap_ms,
                     barge_in_after_s=None if a.barge_in_after_s is None or a.barge_in_after_s < 0 else a.barge_in_after_s,
                     barge_in_rate=a.barge_in_rate,
                     threads=a.threads, voice=a.voice, arms=chosen, seed=a.seed, work_dir=a.work_dir,
                     transcripts=a.transcripts)
    summary = run_bench(config)
    summary["command"] = " ".join(["python -m simulator bench", *(argv if argv is not None else sys.argv[2:])])
    print()
    print(format_table(summary))
    print(f"\n{summary['wall_s']:.0f} s; machine: {summary['machine']['nproc']} x {summary['machine']['cpu_model']}, "
          f"load average {summary['machine']['loadavg_start'][0]:.1f} -> {summary['machine']['loadavg_end'][0]:.1f}"
          + _host_cpu_note(summary['machine'].get('host_cpu')))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {a.json}")
    return 0
