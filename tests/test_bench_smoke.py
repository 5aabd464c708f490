"""The benchmark's code path, tiny and fast: 2 dialogues per arm, no waits, no latency.

Not a timing test: it proves the three arms are wired as the issue describes (control = the
blocking flow, filler-after-AI = always a filler and whole-response clips, full Warmline =
sentence clips plus a mined precompute) and that every number in the table comes from a real run.
Also unit tests of the pieces the numbers depend on (the replayed AI).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from app.responders.stream import SentenceCutter
from app.speech.pieces import split_pieces
from simulator.bench import (
    CORPUS,
    BenchConfig,
    ReplayLLM,
    format_table,
    read_events,
    replies,
    run_bench,
    select_dialogues,
    split_corpus,
)
from simulator.llm_emulator import tokens
from precompute.corpus import Dialogue, Turn

pytestmark = pytest.mark.slow


def streamed_pieces(answer: str) -> int:
    """Sentence clips of ``answer`` as the emulator streams it (a long first sentence from its opening)."""
    cutter = SentenceCutter(early_clause=True)
    units = [unit for token in tokens(answer) for unit in cutter.feed(token)] + cutter.finish()
    return sum(len(split_pieces(unit, "sentence")) for unit in units)


def _dialogue(did: str, *lines: tuple[str, str]) -> Dialogue:
    return Dialogue(id=did, turns=tuple(Turn(speaker, text) for speaker, text in lines))


def test_replay_llm_answers_by_first_utterance_and_position_with_the_same_latency_in_every_arm():
    d1 = _dialogue("d1", ("user", "I need a table."), ("system", "For how many?"), ("user", "Two."),
                   ("system", "Booked."), ("system", "Anything else?"))
    d2 = _dialogue("d2", ("user", "Find me a hotel!"), ("system", "Which city?"))
    slept: list[float] = []
    llm = ReplayLLM([d1, d2], min_ms=500, max_ms=1500, seed=3, sleep=slept.append)

    def ask(*users: str) -> str:
        messages = [{"role": "system", "content": "prompt"}]
        for i, text in enumerate(users):
            if i:
                messages.append({"role": "assistant", "content": "..."})
            messages.append({"role": "user", "content": text})
        return llm({"messages": messages})

    assert ask("i need a TABLE") == "For how many?"
    assert ask("I need a table.", "Two.") == "Booked. Anything else? [END]"
    assert ask("Find me a hotel") == "Which city? [END]"
    assert ask("Something else") == "Sorry, I didn't catch that. Could you say it again?"
    assert llm.unknown == 1
    assert len(slept) == 3 and all(0.5 <= s <= 1.5 for s in slept)
    again: list[float] = []
    other_arm = ReplayLLM([d1, d2], min_ms=500, max_ms=1500, seed=3, sleep=again.append)
    other_arm({"messages": [{"role": "user", "content": "Find me a hotel"}]})
    other_arm({"messages": [{"role": "user", "content": "I need a table."}]})
    assert again == [slept[2], slept[0]]


def test_the_arms_run_side_by_side_on_the_same_dialogues_at_each_end_of_speech_delay(tmp_path: Path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(CORPUS.read_text(encoding="utf-8").splitlines(keepends=True)[:60]), encoding="utf-8")
    config = BenchConfig(corpus=corpus, dialogues=2, concurrency=2, speed=math.inf, ai_min_ms=0, ai_max_ms=0,
                         deepgram_ttfb_ms=0, deepgram_per_char_ms=0, deepgram_jitter_ms=0, upload_ms=0, min_count=1,
                         stagger_s=0, work_dir=tmp_path / "work", transcripts=tmp_path / "transcripts",
                         endpoint_ms=(0.0, 700.0), partial_stability=1.0, barge_in_after_s=None)
    _, test = split_corpus(corpus, config.split)
    chosen = select_dialogues(test, 4, max_user_turns=config.max_user_turns, seed=config.seed)
    per_delay = {"0": chosen[:2], "700": chosen[2:]}

    summary = run_bench(config, out=io.StringIO())

    assert list(summary["by_endpoint_ms"]) == ["0", "700"]
    assert summary["arms"] == summary["by_endpoint_ms"]["0"]["arms"]
    assert summary["dialogues"] == [d.id for d in per_delay["0"]]
    assert summary["llm_unknown_dialogues"] == 0
    for ms, dialogues in per_delay.items():
        run = summary["by_endpoint_ms"][ms]
        assert run["dialogues"] == [d.id for d in dialogues]
        turns = sum(len(d.utterances()) for d in dialogues)
        answers = [text for d in dialogues for text in replies(d)]
        arms = run["arms"]
        assert list(arms) == ["control", "filler-after-ai", "warmline-no-spec", "warmline"]
        for arm in arms.values():
            assert arm["calls"] == 2 and arm["caller_turns"] == turns and arm["server_turn_events"] == turns
            assert arm["failures"] == 0 and arm["ended_by"] == {"hangup": 2}
            assert arm["caller_heard"] == {"clips": turns, "other_voice": 0, "say": 0, "apology": 0, "unanswered": 0}
            assert arm["time_to_first_audio_s"]["n"] == turns and arm["time_to_answer_audio_s"]["missing"] == 0
            assert arm["server_cpu_s"] > 0 and len(arm["peak_rss_mb_per_worker"]) == 2
            assert all(mb > 20 for mb in arm["peak_rss_mb_per_worker"])
            assert len(list((tmp_path / "transcripts" / ms / arm["arm"]).glob("*.txt"))) == 2
            assert 0 <= arm["turns_with_filler"] <= 1 and arm["answer_fetch_wait_s"]["n"] == turns
            assert arm["barge_in"]["interruptions"] == 0
        for arm in ("control", "filler-after-ai", "warmline-no-spec"):  # no speculation: one call per turn
            assert arms[arm]["responder_calls"] == turns and arms[arm]["speculation"]["speculative_calls"] == 0
        assert arms["warmline"]["responder_calls"] >= turns
        # the server logs when each Warmline answer became playable; the blocking arms have no such moment
        for arm in ("warmline-no-spec", "warmline"):
            assert arms[arm]["answer_wait_when_playable_s"]["n"] == turns
            assert arms[arm]["answer_wait_when_playable_s"]["p50"] >= 0
        assert arms["control"]["answer_wait_when_playable_s"]["n"] == 0
        assert arms["control"]["outcomes"] == {"control": turns}
        assert arms["control"]["arms_logged"] == {"control": turns}
        assert arms["filler-after-ai"]["outcomes"] == {"filler": turns}  # instant budget 0: never instant
        assert arms["warmline"]["arms_logged"] == {"warmline": turns}
        # Whole-response clips in the first two arms, sentence clips in the Warmline arms -- exactly.
        calls = {arm: {t["dialogue"] for t in arms[arm]["turns"]} for arm in arms}
        assert all(c == {d.id for d in dialogues} for c in calls.values())
        events = {arm: [e for e in read_events(tmp_path / "work" / arm) if e.get("turn") is not None
                        and e["call"] in {r for r in _calls_of(tmp_path, ms, arm)}] for arm in arms}
        pieces = {arm: sum(len(e["sentences"]) for e in events[arm]) for arm in arms}
        assert pieces["control"] == pieces["filler-after-ai"] == turns
        assert pieces["warmline"] == pieces["warmline-no-spec"] == sum(streamed_pieces(a) for a in answers)
        for arm in arms:  # every live synthesis the server logged is one request to its Deepgram emulator
            synthesized = sum(1 for e in events[arm] for p in e["sentences"] if p["source"] == "synth")
            if arm == "warmline":  # a speculation the final result discarded may have synthesized more
                assert arms[arm]["deepgram"]["requests_total"] >= synthesized
            else:
                assert arms[arm]["deepgram"]["requests_total"] == synthesized
    # Only the Warmline arms mined the (disjoint) training dialogues; every arm has the fixed phrases.
    arms = summary["arms"]
    fixed = arms["control"]["precompute"]["new"]
    assert arms["filler-after-ai"]["precompute"]["new"] == fixed
    assert arms["warmline"]["precompute"]["new"] > fixed

    json.loads(json.dumps(summary, allow_nan=False))
    table = format_table(summary)
    for label in ("control (blocking)", "filler-after-AI", "full Warmline", "Warmline without speculation",
                  "turns fully from cache", "turns with a filler", "responder calls / answered turn",
                  "server CPU s / turn", "warmline_p95_longest_silence_le_0.6s", "warmline_p50_answer_le_0.65x_control",
                  "== end-of-speech delay 700 ms =="):
        assert label in table


def _calls_of(tmp_path: Path, ms: str, arm: str) -> set[str]:
    """The CallSids of one arm's calls at one delay, from the transcripts the bench wrote."""
    out = set()
    for path in (tmp_path / "transcripts" / ms / arm).glob("*.txt"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("call CA"):
                out.add(line.split()[1])
    return out


def test_the_modeled_upload_delays_only_new_objects_of_the_store_it_models(tmp_path):
    from cdn.local import LocalStore
    from simulator.modeled_upload import modeled_put
    from tests.fakes import tone_wav

    waits: list[float] = []
    put = modeled_put(tmp_path / "cdn", 0.2, sleep=waits.append)
    store, spool = LocalStore(tmp_path / "cdn", "/cdn"), LocalStore(tmp_path / "spool", "/cdn")
    name, data = "tts/v2/x/ab/ab" + "c" * 62 + ".wav", tone_wav("hello")
    assert put(store, name, data) == "/cdn/" + name and waits == [0.2]
    assert put(store, name, data) == "/cdn/" + name and waits == [0.2]  # already there: no upload
    put(spool, name, data)
    assert waits == [0.2] and (tmp_path / "spool" / name).read_bytes() == data  # the spool is local disk
