"""Fillers chosen from the predicted wait."""

from __future__ import annotations

import pytest

from app.voice.fillers import DEFAULT_WAIT_S, OVERHEAD_S, WaitPredictor, choose, worth_bridging

PHRASES = [("Sure.", 0.32), ("Okay.", 0.36), ("Just a moment.", 0.78), ("Let me check that for you.", 1.43)]


@pytest.mark.parametrize(("remaining", "expected"), [
    (0.0, "Sure."),                       # the answer is (nearly) there: the shortest
    (0.32 + OVERHEAD_S, "Sure."),
    (0.36 + OVERHEAD_S, "Okay."),
    (0.9, "Okay."),                       # "Just a moment." would end after the answer is ready
    (0.78 + OVERHEAD_S, "Just a moment."),
    (1.4, "Just a moment."),
    (1.43 + OVERHEAD_S, "Let me check that for you."),  # only a long wait earns the long filler
    (5.0, "Let me check that for you."),
])
def test_the_longest_phrase_that_ends_before_the_answer(remaining, expected):
    assert choose(PHRASES, remaining) == expected


def test_never_the_same_phrase_twice_in_a_row_when_another_exists():
    assert choose(PHRASES, 0.0, avoid="Sure.") == "Okay."
    assert choose(PHRASES, 5.0, avoid="Let me check that for you.") == "Just a moment."
    assert choose([("Sure.", 0.3)], 0.0, avoid="Sure.") == "Sure."
    with pytest.raises(ValueError):
        choose([], 1.0)


def test_no_bridge_when_the_answer_is_expected_within_the_shortest_phrase():
    assert not worth_bridging(PHRASES, 0.3) and worth_bridging(PHRASES, 0.33) and not worth_bridging([], 9)


def test_the_predictor_learns_per_business_and_counts_what_already_elapsed():
    p = WaitPredictor(window=5, quantile=0.5)
    assert WaitPredictor().quantile == 0.25
    assert p.expected_s("a") == DEFAULT_WAIT_S
    for s in (0.4, 0.9, 0.5, None, -1, 2.0):
        p.observe("a", s)
    assert p.expected_s("a") == 0.9 and p.expected_s("b") == DEFAULT_WAIT_S
    for s in (0.1, 0.1, 0.1):
        p.observe("a", s)  # the window keeps the last 5: 0.5, 2.0, 0.1, 0.1, 0.1
    assert p.expected_s("a") == 0.1
    assert p.remaining_s("b", 0.5) == pytest.approx(DEFAULT_WAIT_S - 0.5) and p.remaining_s("b", 9.0) == 0.0
    with pytest.raises(ValueError):
        WaitPredictor(quantile=1.0)
