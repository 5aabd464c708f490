"""Sentence and clause splitting: a table of real receptionist phrasing, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.speech.segment import split_clauses, split_sentences

SENTENCES = [
    # plain
    ("Hello.", ["Hello."]),
    ("Hello. How can I help?", ["Hello.", "How can I help?"]),
    ("We're open! Come in? Sure.", ["We're open!", "Come in?", "Sure."]),
    ("No final stop", ["No final stop"]),
    ("What?! Really!!", ["What?!", "Really!!"]),
    ("", []),
    ("   \n\t ", []),
    # whitespace normalized
    ("  Hi   there.\n\nBye  now. ", ["Hi there.", "Bye now."]),
    ("One.\tTwo.", ["One.", "Two."]),
    # titles never end a sentence
    ("Dr. Smith can see you at 3.", ["Dr. Smith can see you at 3."]),
    ("Mr. and Mrs. Jones are here.", ["Mr. and Mrs. Jones are here."]),
    ("Ms. Lee and Prof. Brown will call.", ["Ms. Lee and Prof. Brown will call."]),
    ("Ask for Dr. Patel. She is in today.", ["Ask for Dr. Patel.", "She is in today."]),
    # St. as Saint mid-sentence, as Street at the end
    ("We're near St. Kilda beach.", ["We're near St. Kilda beach."]),
    ("We're on 12 George St. in the city.", ["We're on 12 George St. in the city."]),
    ("We're on 12 George St. The entrance is at the back.", ["We're on 12 George St.", "The entrance is at the back."]),
    # companies
    ("Harbour Dental Pty. Ltd. is our name.", ["Harbour Dental Pty. Ltd. is our name."]),
    ("Acme Inc. Sydney office is closed.", ["Acme Inc. Sydney office is closed."]),
    ("We work with Acme Inc. They do our billing.", ["We work with Acme Inc.", "They do our billing."]),
    # vs., etc., e.g., i.e.
    ("It's Smith vs. Jones tonight.", ["It's Smith vs. Jones tonight."]),
    ("Bring ID, forms, etc. and arrive early.", ["Bring ID, forms, etc. and arrive early."]),
    ("Bring ID, forms, etc. Then take a seat.", ["Bring ID, forms, etc.", "Then take a seat."]),
    ("Some cities, e.g. Sydney, are busy.", ["Some cities, e.g. Sydney, are busy."]),
    ("Weekdays, i.e. Monday to Friday.", ["Weekdays, i.e. Monday to Friday."]),
    ("Use a card, e.g. Visa. We take cash too.", ["Use a card, e.g. Visa.", "We take cash too."]),
    # a.m. / p.m.
    ("We open at 9 a.m. on Monday.", ["We open at 9 a.m. on Monday."]),
    ("We open at 9 a.m. Call us then.", ["We open at 9 a.m.", "Call us then."]),
    ("We open at 9 a.m. Monday to Friday.", ["We open at 9 a.m. Monday to Friday."]),
    ("Open 9 a.m. to 5 p.m. We close for lunch.", ["Open 9 a.m. to 5 p.m.", "We close for lunch."]),
    ("Come at 8 p.m. sharp.", ["Come at 8 p.m. sharp."]),
    ("Doors open at 7a.m. Please be early.", ["Doors open at 7a.m.", "Please be early."]),
    ("We close at 5 P.M. Thanks for calling.", ["We close at 5 P.M.", "Thanks for calling."]),
    # dotted acronyms
    ("We ship in the U.S. and Canada.", ["We ship in the U.S. and Canada."]),
    ("The U.S. Postal Service delivers.", ["The U.S. Postal Service delivers."]),
    ("We ship to the U.S. It takes a week.", ["We ship to the U.S.", "It takes a week."]),
    ("She has a Ph.D. in dentistry.", ["She has a Ph.D. in dentistry."]),
    ("Ask for J. Smith at the desk.", ["Ask for J. Smith at the desk."]),
    ("Take Plan B. It costs less.", ["Take Plan B.", "It costs less."]),
    # numbers stay whole
    ("It is 3.5 km away. Parking is free.", ["It is 3.5 km away.", "Parking is free."]),
    ("Arrive by 11:45. We start at 12.", ["Arrive by 11:45.", "We start at 12."]),
    ("The tour is at 9.30. Bring water.", ["The tour is at 9.30.", "Bring water."]),
    ("A clean costs $12.50. A check-up is $80.", ["A clean costs $12.50.", "A check-up is $80."]),
    ("That's 1,200.50 in total. Pay at the desk.", ["That's 1,200.50 in total.", "Pay at the desk."]),
    ("Call 555-123-4567. We answer fast.", ["Call 555-123-4567.", "We answer fast."]),
    ("Call (02) 9876 5432 today. Thanks.", ["Call (02) 9876 5432 today.", "Thanks."]),
    ("Dial +1 415 555 0100. Ask for Sam.", ["Dial +1 415 555 0100.", "Ask for Sam."]),
    ("Room No. 5 is upstairs.", ["Room No. 5 is upstairs."]),
    ("Is it free? No. It costs $5.", ["Is it free?", "No.", "It costs $5."]),
    # e-mail and URLs
    ("Email info@harbour.com.au. We reply in a day.", ["Email info@harbour.com.au.", "We reply in a day."]),
    ("Email info@harbour.com.au for help.", ["Email info@harbour.com.au for help."]),
    ("See www.example.com/path. It has a map.", ["See www.example.com/path.", "It has a map."]),
    ("Go to https://example.com/a.b?x=1 now.", ["Go to https://example.com/a.b?x=1 now."]),
    # ellipses
    ("Well... maybe.", ["Well... maybe."]),
    ("Well... Maybe later.", ["Well...", "Maybe later."]),
    ("Hmm\u2026 let me see.", ["Hmm\u2026 let me see."]),
    ("Let me check... One moment.", ["Let me check...", "One moment."]),
    # quotes and brackets
    ('She said "Hi." Then left.', ['She said "Hi."', "Then left."]),
    ('"Hi!" she said.', ['"Hi!" she said.']),
    ("He asked \u201cReady?\u201d Then we went.", ["He asked \u201cReady?\u201d", "Then we went."]),
    ("(We are closed on Sundays.) Call Monday.", ["(We are closed on Sundays.)", "Call Monday."]),
    ("It's 'free.' Really.", ["It's 'free.'", "Really."]),
    # lower case after a stop: not a boundary
    ("We open at 9. then close at 5.", ["We open at 9. then close at 5."]),
    # punctuation-only pieces join a neighbour
    ("... Hello there.", ["... Hello there."]),
    ("Hello there. !!", ["Hello there. !!"]),
    ("Hi. - Bye.", ["Hi.", "- Bye."]),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCES)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


CLAUSES = [
    ("Hello.", ["Hello."]),
    ("", []),
    (
        "We have 1,200 seats, plenty of parking, and a lovely view.",
        ["We have 1,200 seats,", "plenty of parking,", "and a lovely view."],
    ),
    ("Yes, we are open today.", ["Yes, we are open today."]),
    ("We are open today, yes.", ["We are open today, yes."]),
    (
        "Our hours are simple: nine to five on weekdays.",
        ["Our hours are simple:", "nine to five on weekdays."],
    ),
    (
        "Bring your card; we will do the rest for you.",
        ["Bring your card;", "we will do the rest for you."],
    ),
    (
        "The clinic is upstairs - take the lift to level two.",
        ["The clinic is upstairs -", "take the lift to level two."],
    ),
    (
        "The clinic is upstairs \u2014 take the lift to level two.",
        ["The clinic is upstairs \u2014", "take the lift to level two."],
    ),
    ("A well-known place-name stays whole.", ["A well-known place-name stays whole."]),
    ("Arrive at 11:45 and pay $1,200.50 at the desk.", ["Arrive at 11:45 and pay $1,200.50 at the desk."]),
    (
        "Some cities, e.g., Sydney and Melbourne, are busy.",
        ["Some cities,", "e.g., Sydney and Melbourne, are busy."],
    ),
    (
        "First sentence here, with a pause. Second one, too.",
        ["First sentence here,", "with a pause.", "Second one, too."],
    ),
    (
        'He said "sure," and then we booked the appointment.',
        ['He said "sure,"', "and then we booked the appointment."],
    ),
]


@pytest.mark.parametrize(("text", "expected"), CLAUSES)
def test_split_clauses(text: str, expected: list[str]) -> None:
    assert split_clauses(text) == expected


def test_split_clauses_min_chars_controls_merging() -> None:
    text = "Yes, sure, of course, we can do that."
    assert split_clauses(text, min_chars=1) == ["Yes,", "sure,", "of course,", "we can do that."]
    assert split_clauses(text, min_chars=12) == ["Yes, sure, of course,", "we can do that."]
    assert split_clauses(text, min_chars=100) == [text]


def test_clauses_never_cross_sentences() -> None:
    assert split_clauses("Hi. Yes, ok. Bye.", min_chars=50) == ["Hi.", "Yes, ok.", "Bye."]


_ALPHABET = st.sampled_from(
    list("abcXYZ019 .,;:!?'\"()-$@/\u2026\u201c\u201d\n\t")
    + ["Dr.", "a.m.", "U.S.", "e.g.", " - ", "...", "St.", "3.5", "1,200", "\u00a0", "\u2014"]
)
_TEXT = st.lists(_ALPHABET, max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_sentences_lose_no_character(text: str) -> None:
    pieces = split_sentences(text)
    assert " ".join(pieces) == " ".join(text.split())
    assert all(piece and piece == piece.strip() for piece in pieces)


@settings(max_examples=400, deadline=None)
@given(_TEXT, st.integers(min_value=0, max_value=40))
def test_clauses_lose_no_character(text: str, min_chars: int) -> None:
    pieces = split_clauses(text, min_chars=min_chars)
    assert " ".join(pieces) == " ".join(text.split())
    assert all(piece and piece == piece.strip() for piece in pieces)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_unicode_text_loses_no_character(text: str) -> None:
    assert " ".join(split_sentences(text)) == " ".join(text.split())
    assert " ".join(split_clauses(text)) == " ".join(text.split())


@pytest.mark.parametrize(("text", "whole"), [
    ("We open at nine.", True),
    ("Is that right?", True),
    ("Great!", True),
    ('She said "see you then."', True),
    ("(See you then.)", True),
    ("Well\u2026", True),
    ("We open at nine.  ", True),
    ("We open at", False),
    ("We open at nine,", False),
    ("Call 555-0100 ext", False),
    ("", False),
])
def test_ends_with_terminal_is_the_one_reading_of_a_finished_last_sentence(text: str, whole: bool) -> None:
    from app.speech.segment import ends_with_terminal

    assert ends_with_terminal(text) is whole
