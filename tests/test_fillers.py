"""Fillers chosen from the predicted wait."""

from __future__ import annotations

import pytest

from app.voice.fillers import (
    DEFAULT_WAIT_S,
    OVERHEAD_S,
    WaitPredictor,
    answer_start_s,
    choose,
    choose_by_start,
    worth_bridging,
)

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


def test_answer_start_counts_the_phrase_the_hop_and_the_bridges():
    # A phrase from 0.1 to 0.42 s, Twilio's next request at 0.57 s waiting until 0.97 s.
    assert answer_start_s(0.5, 0.1, 0.32, 0.32, 0.4) == pytest.approx(0.57)   # ready while it played
    assert answer_start_s(0.8, 0.1, 0.32, 0.32, 0.4) == pytest.approx(0.8)    # ready while the request waits
    # Not by 0.97 s: a 0.32 s bridge, the next request at 1.44 s.
    assert answer_start_s(1.2, 0.1, 0.32, 0.32, 0.4) == pytest.approx(1.44)
    assert answer_start_s(1.6, 0.1, 0.32, 0.32, 0.4) == pytest.approx(1.6)


def test_the_phrase_after_which_the_answer_starts_soonest():
    soon, later = [0.6] * 8, [1.2] * 8
    assert choose_by_start(PHRASES, soon, 0.1, window_s=0.4) == "Sure."
    # After "Sure." the request waits until 0.97 s and a 1.2 s answer misses it by a bridge (1.44 s);
    # "Just a moment." ends later but lets it start the moment it is ready.
    assert choose_by_start(PHRASES, later, 0.1, window_s=0.4) == "Just a moment."
    # Half the answers cached (0.5 s), half not (1.2 s): "Sure." (mean start 1.005 s) beats "Just a
    # moment." (1.115 s), which would hold every quick answer back to 1.03 s.
    assert choose_by_start(PHRASES, [0.5, 1.2] * 4, 0.1, window_s=0.4) == "Sure."
    assert choose_by_start(PHRASES, later, 0.1, window_s=0.4, avoid="Just a moment.") != "Just a moment."


def test_without_enough_pending_samples_there_is_no_choice_by_start():
    assert choose_by_start(PHRASES, [1.0] * 3, 0.1, window_s=0.4) is None
    assert choose_by_start(PHRASES, [0.5] * 20, 0.6, window_s=0.4) is None  # every sample is already over
    p = WaitPredictor(window=3)
    for s in (0.4, 0.5, 0.6, 0.7):
        p.observe("a", s)
    assert p.recent("a") == [0.5, 0.6, 0.7] and p.recent("b") == []
