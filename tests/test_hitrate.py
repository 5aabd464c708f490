"""The hit-rate measurement: exact fractions on a small hand-made corpus, and the command's JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.speech.canon import canon
from app.speech.pieces import split_pieces
from simulator import hitrate
from tests.precompute_support import ROOT


def dialogue(ident: str, *agent: str | tuple[str, list]) -> dict:
    turns = []
    for line in agent:
        text, slots = (line, []) if isinstance(line, str) else line
        turns.append({"speaker": "user", "text": "hello"})
        turns.append({"speaker": "system", "text": text, **({"slots": slots} if slots else {})})
    return {"id": ident, "turns": turns}


TRAIN = [
    dialogue("t1", "Hi there. How can I help?", ("Booked at Luigi's for 7 pm.", [["restaurant", 10, 17]])),
    dialogue("t2", "Hi there. How can I help?", ("Booked at Nando's for 8 pm.", [["restaurant", 10, 17]])),
    dialogue("t3", "Anything else?"),
]
TEST = [
    dialogue("s1", "Hi there. What do you need?"),                                  # first sentence cached
    dialogue("s2", "Hi there. How can I help?"),                                    # fully cached
    dialogue("s3", ("Booked at Bistro's for 7 pm.", [["restaurant", 10, 18]])),     # slot: fixed parts cached
    dialogue("s4", "Goodbye now."),                                                 # nothing
]


@pytest.fixture
def files(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(d) + "\n" for d in TRAIN))
    test.write_text("".join(json.dumps(d) + "\n" for d in TEST))
    return train, test


def _rates(files, splice: str, clips: int = 1000) -> hitrate.HitRate:
    train, test = hitrate.load_split(*files, split=0.7)
    return hitrate.run(train, test, [splice], [clips])[0]


def test_whole_response_keys(files):
    r = _rates(files, "whole")
    assert (r.test_turns, r.train_turns) == (4, 5)
    assert (r.turns_full, r.first_piece) == (0.25, 0.25)  # only "Hi there. How can I help?"
    total = sum(len(t) for t in ("hi there. what do you need?", "hi there. how can i help?",
                                 "booked at bistro's for seven p.m.", "goodbye now."))
    assert r.chars == round(len("hi there. how can i help?") / total, 4)


def test_sentence_keys(files):
    r = _rates(files, "sentence")
    assert r.turns_full == 0.25  # s2
    assert r.first_piece == 0.5  # s1 and s2 start with "hi there."
    cached = len("hi there.") * 2 + len("how can i help?")
    total = len("hi there.") * 2 + len("what do you need?") + len("how can i help?") + len(
        "booked at bistro's for seven p.m.") + len("goodbye now.")
    assert r.chars == round(cached / total, 4)


def test_slot_keys_cache_the_fixed_phrasing_around_values(files):
    r = _rates(files, "slot")
    text = TEST[2]["turns"][1]["text"]
    (s3,) = hitrate.pieces_of([hitrate.CorpusTurn("s3", text, (("restaurant", 10, 18),))], "slot")
    assert s3 == [canon(p) for p in split_pieces(text, "slot", [("restaurant", 10, 18)])]
    assert s3[:2] == ["booked at.", "bistro's."]  # the marked value is a piece of its own
    assert r.first_piece == 0.75  # s1, s2 and s3 ("booked at" was heard twice in training)
    assert r.turns_full == 0.25


def test_the_clip_budget_keeps_the_most_frequent(files):
    r = _rates(files, "sentence", clips=1)
    assert r.planned == 1
    assert (r.turns_full, r.first_piece) == (0.0, 0.5)  # only "hi there." (seen twice)


def test_the_command_writes_the_three_fractions(files, tmp_path):
    out = tmp_path / "r.json"
    train, test = files
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.hitrate", "--train", str(train), "--test", str(test), "--clips", "1000",
         "--splice", "sentence", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    assert "sentence" in proc.stdout
    body = json.loads(out.read_text())
    assert (body["turns_full"], body["first_piece"]) == (0.25, 0.5)
    assert 0 < body["chars"] < 1
    assert body["splice"] == "sentence" and body["clips"] == 1000


def test_split_of_one_file(files):
    train_path, _ = files
    train, test = hitrate.load_split(train_path, None, split=0.7)
    assert [t.dialogue for t in train] == ["t1", "t1", "t2", "t2"]  # first 2 of 3 dialogues
    assert [t.dialogue for t in test] == ["t3"]
