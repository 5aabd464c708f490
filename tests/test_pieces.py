"""split_pieces: the clips an answer becomes at each splice level (the live path and precompute share it)."""

from __future__ import annotations

import pytest

from app.speech.pieces import split_pieces, value_marks

BOOKED = "Great, Sam, you're booked for Tuesday at 3:30 p.m. We'll send a reminder. Goodbye!"
MARKS = [("name", 7, 10), ("time", 29, 51)]


@pytest.mark.parametrize(
    "text, splice, marks, pieces",
    [
        (BOOKED, "sentence", (), ["Great, Sam, you're booked for Tuesday at 3:30 p.m.", "We'll send a reminder.", "Goodbye!"]),
        (BOOKED, "whole", (), [BOOKED]),
        (BOOKED, "slot", MARKS, ["Great,", "Sam", ", you're booked for", "Tuesday at 3:30 p.m.", "We'll send a reminder.", "Goodbye!"]),
        ("I found 10 salons near you. The first one costs $2,350.", "slot", (),
         ["I found", "10", "salons near you.", "The first one costs", "$2,350."]),
        ("Sure, we can do that, but it will take a while; is that okay?", "clause", (),
         ["Sure, we can do that,", "but it will take a while;", "is that okay?"]),
        ("!!!", "sentence", (), []),
        ("Hi! ...", "sentence", (), ["Hi! ..."]),
        ("", "slot", (), []),
    ],
)
def test_pieces(text, splice, marks, pieces):
    assert split_pieces(text, splice, marks) == pieces


@pytest.mark.parametrize("splice", ["sentence", "clause", "slot", "whole"])
def test_pieces_say_everything_that_was_written(splice):
    joined = " ".join(split_pieces(BOOKED, splice, MARKS if splice == "slot" else ()))
    assert joined.replace(" ", "").replace(",", "") == BOOKED.replace(" ", "").replace(",", "")


def test_out_of_range_and_overlapping_marks_are_ignored():
    assert split_pieces("Call us at noon.", "slot", [("x", 5, 500), ("y", 11, 15), ("z", 12, 14)]) == ["Call us at", "noon."]


@pytest.mark.parametrize(
    "text, values",
    [
        ("Open 9 to 5 on March 2nd.", ["9", "5", "March 2nd"]),
        ("Call 650-299-4827 at 11:45 am", ["650-299-4827", "11:45 am"]),
        ("It costs $1,200.50 now", ["$1,200.50"]),
        ("Room B12 and version 3.5.1x", []),
    ],
)
def test_value_marks(text, values):
    assert [text[s:e] for _, s, e in value_marks(text)] == values


def test_remembered_split_hands_out_a_fresh_list_and_keys_on_the_marks():
    first = split_pieces("Call us at noon. We open at 9.", "slot")
    first.append("changed by the caller")
    assert split_pieces("Call us at noon. We open at 9.", "slot") == ["Call us at noon.", "We open at", "9."]
    # the same text with a responder mark is split again, not served from the unmarked entry
    assert split_pieces("Ask for Sam Jones today.", "slot", [["name", 8, 17]]) == ["Ask for", "Sam Jones", "today."]
    assert split_pieces("Ask for Sam Jones today.", "slot") == ["Ask for Sam Jones today."]


def test_a_period_that_does_not_end_the_sentence_is_no_pause():
    assert split_pieces("We open at 8 a.m. to 6 p.m., and Sat.", "phrase") == [
        "We open at~", "~8 a.m.~", "~to~", "~6 p.m.,", "and Sat."]
    assert split_pieces("Your table is at 7 p.m. Is that right?", "phrase") == [
        "Your table is at~", "~7 p.m.", "Is that right?"]
