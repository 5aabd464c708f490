"""verbalize(): numbers the way a receptionist says them, in the one text step that makes the key."""

from __future__ import annotations

import pytest

from app.speech.canon import canon
from app.speech.keys import content_key
from app.speech.verbalize import cardinal, ordinal, pairs, verbalize, year
from app.speech.voices import Voice

CASES = [
    # phone numbers: digit by digit, in their groups, "oh" for zero
    ("Call 510-581-1274.", "Call five one oh, five eight one, one two seven four."),
    ("Their contact number is (650) 340-8974", "Their contact number is six five oh, three four oh, eight nine seven four"),
    ("Dial 415.555.0100 now", "Dial four one five, five five five, oh one oh oh now"),
    ("Dial +1 212 555 0199", "Dial two one two, five five five, oh one nine nine"),
    # prices
    ("It costs $12.50.", "It costs twelve dollars and fifty cents."),
    ("It costs $1,200", "It costs one thousand two hundred dollars"),
    ("Only $5.00 today", "Only five dollars today"),
    ("Just $1 each", "Just one dollar each"),
    ("That is $0.01", "That is zero dollars and one cent"),
    ("A total of $5,150.", "A total of five thousand one hundred fifty dollars."),
    # times
    ("At 1:15 pm.", "At one fifteen p.m."),
    ("At 1:05 PM", "At one oh five p.m."),
    ("Opens at 4:00", "Opens at four o'clock"),
    ("Meet at 7.30 p.m.", "Meet at seven thirty p.m."),
    ("An opening at 14:00?", "An opening at two p.m.?"),
    ("From 11 am", "From eleven a.m."),
    ("By 3pm", "By three p.m."),
    ("At 12:30 am", "At twelve thirty a.m."),
    ("Open 9am-5pm", "Open nine a.m. to five p.m."),
    ("Open 9-5", "Open nine to five"),
    # dates and ordinals
    ("On March 13th", "On March thirteenth"),
    ("On march 2", "On march second"),
    ("Check out on March 13th 2019.", "Check out on March thirteenth, twenty nineteen."),
    ("Due 3/13", "Due march thirteenth"),
    ("Due 3/13/2019", "Due march thirteenth, twenty nineteen"),
    ("Due 2019-03-13", "Due march thirteenth, twenty nineteen"),
    ("The 2nd of March", "The second of March"),
    ("Sept 5", "september fifth"),
    ("Your 21st visit", "Your twenty first visit"),
    ("The 100th caller", "The one hundredth caller"),
    ("You may 2 more", "You may two more"),  # "may" without a suffix is not a month
    # street numbers, codes, long digit strings
    ("It is at 3468 Mount Diablo Boulevard", "It is at thirty four sixty eight Mount Diablo Boulevard"),
    ("947 Branham Lane", "nine forty seven Branham Lane"),
    ("1001 Broadway", "ten oh one Broadway"),
    ("100 Greenwich Street", "one hundred Greenwich Street"),
    ("1532 20th St", "fifteen thirty two twentieth St"),
    ("Your code is ABC123", "Your code is ABC one two three"),
    ("At 2g Japanese Brasserie", "At two g Japanese Brasserie"),
    ("Reference #4821", "Reference number four eight two one"),
    ("Lane # C", "Lane number C"),
    ("Zip 20037", "Zip two oh oh three seven"),
    # years, percentages, plain numbers
    ("Since 1998", "Since nineteen ninety eight"),
    ("In 2005", "In two thousand five"),
    ("Save 20%", "Save twenty percent"),
    ("A 4.3 rating", "A four point three rating"),
    ("I found 10 hotels", "I found ten hotels"),
    ("For 2 people", "For two people"),
    ("About 1,200 guests", "About one thousand two hundred guests"),
    ("Room 007", "Room zero zero seven"),
    # text without digits is returned as it is
    ("No numbers here.", "No numbers here."),
    ("Dr. Smith, 3rd floor", "Dr. Smith, third floor"),
]


@pytest.mark.parametrize(("text", "spoken"), CASES)
def test_verbalize(text: str, spoken: str) -> None:
    assert verbalize(text) == spoken


@pytest.mark.parametrize(("text", "_"), CASES)
def test_verbalize_is_idempotent(text: str, _: str) -> None:
    assert verbalize(verbalize(text)) == verbalize(text)


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (100, "one hundred"),
     (101, "one hundred one"), (1000, "one thousand"), (1204, "one thousand two hundred four"),
     (2_000_019, "two million nineteen")],
)
def test_cardinal(n: int, words: str) -> None:
    assert cardinal(n) == words


@pytest.mark.parametrize(("n", "words"), [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"),
                                          (9, "ninth"), (12, "twelfth"), (20, "twentieth"), (22, "twenty second"),
                                          (31, "thirty first")])
def test_ordinal(n: int, words: str) -> None:
    assert ordinal(n) == words


@pytest.mark.parametrize(("n", "words"), [(2019, "twenty nineteen"), (2000, "two thousand"), (1900, "nineteen hundred"),
                                          (1905, "nineteen oh five")])
def test_year(n: int, words: str) -> None:
    assert year(n) == words


@pytest.mark.parametrize(("n", "words"), [(947, "nine forty seven"), (1234, "twelve thirty four"),
                                          (2500, "twenty five hundred"), (300, "three hundred"), (12, "twelve")])
def test_pairs(n: int, words: str) -> None:
    assert pairs(n) == words


VOICE = Voice("piper", "en_US-joe-medium")


@pytest.mark.parametrize(
    ("a", "b"),
    [("We open at 9 am.", "We open at 9:00 AM."), ("On March 2nd.", "On 3/2."), ("$50.", "$50.00"),
     ("Call 510-581-1274.", "Call (510) 581-1274.")],
)
def test_what_is_said_the_same_way_shares_one_key(a: str, b: str) -> None:
    """Verbalization runs inside canon(), the one step that makes the key: precompute and the live
    path, which both key ``canon(text)``, cannot disagree about a number."""
    assert canon(a) == canon(b)
    assert content_key(a, VOICE) == content_key(b, VOICE)
