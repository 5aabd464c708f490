"""The precompute plan and the miner, on small fixture logs: counts, min_count, budget, ranking, skips."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from app.business import load_businesses
from app.events import EventLog
from app.speech.canon import canon
from app.speech.keys import content_key
from app.speech.pieces import split_pieces
from app.speech.voices import Voice
from precompute import mine
from precompute.plan import (
    CHARS_PER_S,
    PAD_S,
    build_plan,
    common_slot_values,
    estimate_seconds,
    fixed_pieces,
)

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date(2026, 11, 25)
PIPER = Voice("piper", "en_US-joe-medium")
AURA = Voice("deepgram", "aura-2-thalia-en")


@pytest.fixture(scope="module")
def demo():
    return load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")


_CALLS = itertools.count(1)


def turn(voice: Voice, *texts: str, call: str | None = None) -> dict:
    """One turn event; each in a call of its own unless ``call`` is given."""
    call = call if call is not None else f"CA{next(_CALLS):032x}"
    return {"business": "demo", "call": call, "turn": 1, "arm": "warmline", "voice": voice.slug,
            "outcome": "instant",
            "sentences": [{"key": content_key(t, voice), "text": t, "hit": False, "source": "synth",
                           "chars": len(t), "duration_s": 1.0} for t in texts]}


@pytest.fixture
def log_dir(tmp_path) -> Path:
    """Four days of events: one day is outside a 3-day window; one line is corrupt."""
    events = EventLog(tmp_path / "events")
    at = lambda day, hour=12: dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)
    for _ in range(5):
        events.append(turn(PIPER, "Is there anything else I can help you with?", "We open at 9 a.m."), when=at(25))
    for _ in range(3):
        events.append(turn(PIPER, "Is there  anything else I can help you with ?"), when=at(24))  # same canon
    events.append(turn(PIPER, "All booked."), when=at(23))
    events.append(turn(PIPER, "All booked."), when=at(23))
    events.append(turn(AURA, "Is there anything else I can help you with?"), when=at(24))
    for _ in range(9):
        events.append(turn(PIPER, "An old sentence nobody says any more."), when=at(21))  # outside the window
    with events.path_for(TODAY).open("a") as fh:
        fh.write("{not json\n\n[1, 2]\n")
    return tmp_path / "events"


def test_turns_keep_their_pieces_and_coverage_counts_only_completable_turns(tmp_path):
    events = EventLog(tmp_path / "events")
    when = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    one_call = "CA" + "1" * 32
    for _ in range(4):  # a caller who hears the same name four times: four turns, one call
        events.append(turn(PIPER, "Booked for Ann.", "Anything else?", call=one_call), when=when)
    events.append(turn(PIPER, "Anything else?"), when=when)
    mined = mine.mine_events(mine.read_local_events(tmp_path / "events", days=1, today=TODAY))
    assert dict(mined.counts[PIPER.slug]) == {"booked for ann.": 4, "anything else?": 5}
    assert mined.turn_sets[PIPER.slug] == [("anything else?", "booked for ann.")] * 4 + [("anything else?",)]
    assert dict(mined.for_voice(PIPER.slug).coverage) == {"anything else?": 5, "booked for ann.": 4}
    # heard in one call only, the name is left out: the four turns holding it cannot be completed
    two_calls = mined.for_voice(PIPER.slug, min_calls=2)
    assert dict(two_calls) == {"anything else?": 5}
    assert dict(two_calls.coverage) == {"anything else?": 1}


def test_turns_rank_puts_pieces_that_complete_turns_first():
    counts = mine.PieceCounts({"a common sentence.": 9, "one completes.": 3, "two completes.": 3},
                              coverage=Counter({"one completes.": 3, "two completes.": 3}))
    plan = build_plan([], None)  # nothing: no businesses
    assert plan.items == ()
    from app.business import Business

    biz = Business(id="b", name="b", voice=PIPER, say_voice="", language="en-US", greeting="-", fillers=("-",),
                   prompts={}, splice="sentence")
    by_turns = build_plan([biz], lambda v: counts, include_fixed=False, min_count=1, max_clips=2)
    by_count = build_plan([biz], lambda v: counts, include_fixed=False, min_count=1, max_clips=2, rank="count")
    assert [i.text for i in by_turns.items] == ["one completes.", "two completes."]
    assert [i.text for i in by_count.items] == ["a common sentence.", "one completes."]


def test_mining_counts_per_voice_by_canonical_text_within_the_window(log_dir):
    mined = mine.mine_events(mine.read_local_events(log_dir, days=3, today=TODAY))
    assert mined.turns == 5 + 3 + 2 + 1
    assert dict(mined.counts[PIPER.slug]) == {
        "is there anything else i can help you with?": 8,
        "we open at nine a.m.": 5,
        "all booked.": 2,
    }
    assert dict(mined.counts[AURA.slug]) == {"is there anything else i can help you with?": 1}
    assert [p.name for p in mine.local_event_files(log_dir, days=3, today=TODAY)] == [
        "turns-2026-11-23.jsonl", "turns-2026-11-24.jsonl", "turns-2026-11-25.jsonl"]
    wide = mine.mine_events(mine.read_local_events(log_dir, days=5, today=TODAY))
    assert wide.counts[PIPER.slug]["an old sentence nobody says any more."] == 9


def _counts(log_dir) -> Counter:
    return mine.mine_events(mine.read_local_events(log_dir, days=3, today=TODAY)).for_voice(PIPER.slug)


def test_min_count_ranking_and_keys(demo, log_dir):
    plan = build_plan([demo], lambda voice: _counts(log_dir), include_fixed=False, min_count=2)
    assert [(i.text, i.count, i.kind) for i in plan.items] == [
        ("is there anything else i can help you with?", 8, "mined"),
        ("we open at nine a.m.", 5, "mined"),
        ("all booked.", 2, "mined"),
    ]
    assert [i.key for i in plan.items] == [content_key(i.text, demo.voice) for i in plan.items]
    assert plan.below_min_count == 0
    strict = build_plan([demo], lambda voice: _counts(log_dir), include_fixed=False, min_count=3)
    assert [i.text for i in strict.items] == ["is there anything else i can help you with?", "we open at nine a.m."]
    assert strict.below_min_count == 1


def test_ranking_by_count_vs_by_benefit():
    counts = Counter({"ok.": 10, "a much longer sentence that takes a while to say.": 4, "b.": 4, "a.": 4})
    from app.business import Business

    biz = Business(id="x", name="x", voice=PIPER, say_voice="", language="en-US", greeting="hi",
                   fillers=("one moment.",), prompts={}, splice="sentence")  # no slot-value candidates
    by_count = build_plan([biz], lambda v: counts, include_fixed=False, min_count=1)  # no coverage: as "count"
    # occurrences first; equal counts: shorter (cheaper) first, then text
    assert [i.text for i in by_count.items] == ["ok.", "a.", "b.", "a much longer sentence that takes a while to say."]
    by_benefit = build_plan([biz], lambda v: counts, include_fixed=False, min_count=1, rank="benefit")
    assert [i.text for i in by_benefit.items][:2] == ["a much longer sentence that takes a while to say.", "ok."]
    long = by_benefit.items[0]
    assert long.benefit == pytest.approx(4 * (PAD_S + len(long.text) / CHARS_PER_S))
    assert estimate_seconds("x" * 30) == pytest.approx(PAD_S + 2.0)


def test_budget_cut_counts_fixed_first_and_fills_with_what_fits(demo, log_dir):
    fixed = build_plan([demo], None, fixed_only=True)
    fixed_chars = fixed.chars
    top = "is there anything else i can help you with?"
    plan = build_plan([demo], lambda v: _counts(log_dir), min_count=2,
                      budget_chars=fixed_chars + len(top) + len("all booked.") + 1)
    mined = [i.text for i in plan.mined]
    # the second-ranked piece does not fit after the first; the third, shorter one does
    assert mined == [top, "all booked."]
    assert plan.cut_by_budget == 1
    assert plan.chars == fixed_chars + len(top) + len("all booked.")
    assert len("we open at nine a.m.") > len("all booked.") + 1
    assert len(plan.fixed) == len(fixed.items)
    assert plan.est_cost(0.03) == pytest.approx(round(plan.chars / 1000 * 0.03, 4))
    tiny = build_plan([demo], lambda v: _counts(log_dir), min_count=2, budget_chars=10)
    assert tiny.mined == () and len(tiny.fixed) == len(fixed.items)  # fixed pieces are never cut
    clips = build_plan([demo], lambda v: _counts(log_dir), min_count=2, max_clips=len(fixed.items) + 1)
    assert [i.text for i in clips.mined] == [top]


def test_already_published_keys_are_skipped(demo, log_dir):
    published = {content_key("is there anything else i can help you with?", demo.voice),
                 content_key(demo.fillers[0], demo.voice)}
    plan = build_plan([demo], lambda v: _counts(log_dir), min_count=2, is_published=published.__contains__)
    texts = [i.text for i in plan.items]
    assert "is there anything else i can help you with?" not in texts
    assert canon(demo.fillers[0]) not in texts
    assert canon(demo.fillers[1]) in texts
    assert plan.already_published == 2
    assert len(plan.keys()) == len(plan.items)  # each key once


def test_fixed_pieces_are_what_the_call_flow_plays(demo):
    pieces = fixed_pieces(demo)
    kinds = Counter(kind for kind, _ in pieces)
    assert kinds == {"filler": 4 + 2, "greeting": 1, "prompt": 8, "faq": 9, "hours": 1}  # 4 fillers, 2 short ones
    # the bridges every waiting hop may play are made ahead, like the fillers
    assert {canon(demo.prompt(n)) for n in ("second_filler", "hold", "sorry_wait")} <= {t for k, t in pieces if k == "prompt"}
    texts = [t for _, t in pieces]
    assert texts[:7] == [canon(f) for f in (*demo.fillers, *demo.short_fillers)] + [canon(demo.greeting)]
    expected_faq = [canon(p) for f in demo.faq for p in split_pieces(f.answer, demo.splice)]
    assert [t for k, t in pieces if k == "faq"] == expected_faq
    assert len(set(texts)) == len(texts)


def test_a_voice_shared_by_two_businesses_is_planned_once(demo, log_dir):
    import dataclasses

    twin = dataclasses.replace(demo, id="twin")
    plan = build_plan([demo, twin], lambda v: _counts(log_dir), min_count=2)
    single = build_plan([demo], lambda v: _counts(log_dir), min_count=2)
    assert [i.key for i in plan.items] == [i.key for i in single.items]


CORPUS_LINES = [
    {"id": "d1", "turns": [
        {"speaker": "user", "text": "book me a table"},
        {"speaker": "system", "text": "Booked at Luigi's for 7 pm. Anything else?",
         "slots": [["restaurant_name", 10, 17], ["time", 22, 26]]},
    ]},
    {"id": "d2", "turns": [
        {"speaker": "user", "text": "book"},
        {"speaker": "system", "text": "Booked at Nando's for 7 pm. Anything else?",
         "slots": [["restaurant_name", 10, 17], ["time", 22, 26]]},
    ]},
]


def test_corpus_mining_uses_the_live_split_and_slot_marks(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in CORPUS_LINES) + "\nnot json\n")
    turns = list(mine.agent_turns(mine.read_corpus(path)))
    assert [(t.text[10:17], t.marks) for t in turns] == [
        ("Luigi's", (("restaurant_name", 10, 17), ("time", 22, 26))),
        ("Nando's", (("restaurant_name", 10, 17), ("time", 22, 26))),
    ]
    sentence = mine.mine_corpus(turns, "sentence").counts[""]
    assert sentence == Counter({"booked at luigi's for seven p.m.": 1, "booked at nando's for seven p.m.": 1,
                                "anything else?": 2})
    slot = mine.mine_corpus(turns, "slot")
    expected: Counter = Counter()
    for t in turns:
        expected.update(canon(p) for p in split_pieces(t.text, "slot", t.marks))
    assert slot.counts[""] == expected
    assert slot.counts[""]["seven p.m."] == 2
    assert slot.slot_values["seven p.m."] == 2
    whole = mine.mine_corpus(turns, "whole").counts[""]
    assert set(whole) == {canon(t.text) for t in turns}


def test_common_slot_values_join_only_for_slot_businesses(demo):
    import dataclasses

    values = common_slot_values()
    assert {"three p.m.", "eleven forty five a.m.", "march second.", "four.", "tomorrow."} <= set(values)
    assert len(values) == len(set(values))
    slotted = dataclasses.replace(demo, splice="slot")
    plan = build_plan([slotted], lambda v: Counter({"booked at": 5}), include_fixed=False, min_count=2)
    assert plan.items[0].text == "booked at."
    assert {i.kind for i in plan.items[1:]} == {"slot_value"}
    assert len(plan.items) == 1 + len(values)
    assert all(i.count == 2 for i in plan.items[1:])
    plain = build_plan([demo], lambda v: Counter({"booked at": 5}), include_fixed=False, min_count=2)
    assert [i.text for i in plain.items] == ["booked at."]
