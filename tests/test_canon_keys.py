"""canon() and content keys: what must share a key (sounds the same) and what must not."""

from __future__ import annotations

import hashlib

import pytest

from app.speech.canon import canon, is_speakable
from app.speech.keys import KEY_VERSION, OBJECT_PREFIX, assembled_key, content_key, object_name
from cdn.names import CLIP_KEY_VERSIONS, is_object_name
from app.speech.voices import Voice

JOE = Voice("piper", "en_US-joe-medium")
KEY = content_key("Hello.", JOE)

CANON = [
    ("Hello", "hello."),
    ("  Hello \n\t  world  ", "hello world."),
    ("HELLO", "HELLO."),
    ("We ship across the US", "we ship across the US."),
    ("Bring your ID please", "bring your ID please."),
    ("I am here", "i am here."),
    ("A", "a."),
    ("Don\u2019t worry", "don't worry."),
    ("\u201cHi\u201d", '"hi".'),
    ("Say \"hi\"", 'say "hi".'),
    ("(closed)", "(closed)."),
    ('Ok."', 'ok."'),
    ('Yes!"', 'yes!"'),
    ("Open 9\u20135", "open nine to five."),
    ("Open 9\u20145", "open nine to five."),
    ("Wait\u2026", "wait..."),
    ("Wait.....", "wait..."),
    ("Hmm...", "hmm..."),
    ("Really?!", "really?"),
    ("Really!!!", "really!"),
    ("What??", "what?"),
    ("Hello?!.", "hello?"),
    ("Yes , please", "yes, please."),
    ("It costs $12.50", "it costs twelve dollars and fifty cents."),
    ("Call 555-123-4567", "call five five five, one two three, four five six seven."),
    ("We open at 9 a.m.", "we open at nine a.m."),
    ("Dr. Smith", "dr. smith."),
    ("\uff26\uff55\uff4c\uff4c width", "full width."),  # NFKC
    ("x\u00a0y", "x y."),
    ("a\x00b", "a b."),
    ("O\u2019Brien", "o'brien."),
    ("Bring your IDs", "bring your IDs."),
    ("Read the FAQs", "read the FAQs."),
    ("NASA\u2019s launch", "NASA's launch."),
    ("U.S. mail", "u.s. mail."),
    ("Open at 9 A.M. daily", "open at nine a.m. daily."),
    ("", ""),
    ("   \n ", ""),
    # a clause that continues keeps its comma: no full stop, no falling tone
    ("Sure,", "sure,"),
    ("For two people;", "for two people;"),
    # join marks (pieces cut where the voice does not pause) are kept, and no full stop is added
    ("booking an appointment on~", "booking an appointment on~"),
    ("~March 13th~", "~march thirteenth~"),
    ("~at 1:15 pm.", "~at one fifteen p.m."),
    ("~ok.~", "~ok~"),
    ("a ~ b", "a b."),
    ("~ ~", ""),
]


@pytest.mark.parametrize(("text", "expected"), CANON)
def test_canon(text: str, expected: str) -> None:
    assert canon(text) == expected


@pytest.mark.parametrize("text", [c for _, c in CANON])
def test_canon_is_idempotent(text: str) -> None:
    assert canon(canon(text)) == canon(text)


SAME_KEY = [
    ("Hello.", "hello"),
    ("Hello.", "  HELLO.  ".lower()),
    ("We're open until 5 pm.", "We\u2019re open until 5 pm"),
    ("We're open until 5 pm.", "we're   open\nuntil 5 pm."),
    ("Let me check that for you.", "Let me check that for you"),
    ("Is there anything else?", "Is there anything else??"),
    ("Is there anything else?", "Is there anything else ?"),
    ("One moment...", "One moment\u2026"),
    ("Open 9-5.", "Open 9\u20135."),
    ("Thanks, bye!", "thanks,  bye!!!"),
    ("We open at 9 A.M.", "We open at 9 a.m."),
    ("Mail it in the U.S.", "mail it in the u.s."),
    ("We open at 9 am.", "We open at 9:00 a.m."),
    ("Your visit is on March 13th.", "Your visit is on 3/13."),
    ("It is $12.", "It is 12 dollars."),
    ("Call 510-581-1274.", "Call (510) 581-1274."),
]


@pytest.mark.parametrize(("a", "b"), SAME_KEY)
def test_equivalent_texts_share_a_key(a: str, b: str) -> None:
    assert content_key(a, JOE) == content_key(b, JOE)


DIFFERENT_KEY = [
    ("We ship to the US.", "We ship to us."),
    ("Come at 2 pm.", "Come at 12 pm."),
    ("Is that right.", "Is that right?"),
    ("Yes!", "Yes."),
    ("It costs $12.50.", "It costs $12.05."),
    ("Bring your ID.", "Bring your id."),
    ("Hello there.", "Hello, there."),
    ("Wait...", "Wait."),
    ("Bring your IDs.", "Bring your ids."),
    ("~March 13th~", "March 13th."),
    ("~at~", "at."),
    ("booking on~", "booking on."),
    ("Sure,", "Sure."),
    ("Call 510-581-1274.", "Call 510-581-1275."),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT_KEY)
def test_different_sounding_texts_do_not_share_a_key(a: str, b: str) -> None:
    assert content_key(a, JOE) != content_key(b, JOE)


@pytest.mark.parametrize(
    "other",
    [
        Voice("deepgram", "en_US-joe-medium"),
        Voice("piper", "en_US-lessac-medium"),
        Voice("piper", "en_US-joe-medium", encoding="alaw"),
        Voice("piper", "en_US-joe-medium", sample_rate=16000),
        Voice("piper", "en_US-joe-medium", speed=1.1),
    ],
)
def test_every_voice_field_changes_the_key(other: Voice) -> None:
    assert content_key("Hello.", other) != KEY


def test_speed_spelling_does_not_change_the_key() -> None:
    assert content_key("Hello.", Voice("piper", "en_US-joe-medium", speed=1)) == KEY


def test_key_is_the_documented_sha256() -> None:
    parts = ["v2", "piper", "en_US-joe-medium", "mulaw", "8000", "1", "hello."]
    assert hashlib.sha256("|".join(parts).encode()).hexdigest() == KEY
    assert len(KEY) == 64 and set(KEY) <= set("0123456789abcdef")


def test_the_current_key_version_is_one_stores_accept() -> None:
    assert KEY_VERSION in CLIP_KEY_VERSIONS and OBJECT_PREFIX == f"tts/{KEY_VERSION}/"


def test_object_name() -> None:
    assert JOE.slug == "piper-en_us-joe-medium"
    assert object_name(KEY, JOE) == f"tts/v2/piper-en_us-joe-medium/{KEY[:2]}/{KEY}.wav"
    assert object_name(KEY, JOE).startswith(OBJECT_PREFIX)
    assert is_object_name(object_name(KEY, JOE))


def test_v1_objects_published_before_v2_stay_valid_names() -> None:
    """URLs of v1 clips already handed out keep being served by the edge (migration by regeneration)."""
    old = f"tts/v1/piper-en_us-joe-medium/{KEY[:2]}/{KEY}.wav"
    assert is_object_name(old)
    assert not is_object_name(f"tts/v3/piper-en_us-joe-medium/{KEY[:2]}/{KEY}.wav")


def test_text_without_numbers_or_marks_keys_the_same_words_as_v1() -> None:
    """Only the version moved for plain sentences: the spoken text hashed is what v1 hashed."""
    for text in ("Let me check that for you.", "Is there anything else I can help you with?", "Dr. Smith"):
        v1 = hashlib.sha256("|".join(["v1", "piper", "en_US-joe-medium", "mulaw", "8000", "1",
                                      canon(text)]).encode()).hexdigest()
        assert content_key(text, JOE) == hashlib.sha256(
            "|".join(["v2", "piper", "en_US-joe-medium", "mulaw", "8000", "1", canon(text)]).encode()).hexdigest()
        assert content_key(text, JOE) != v1  # every clip is levelled and faded now: nothing v1 is reused


def test_assembled_key_names_its_parts_and_joins() -> None:
    a, b = content_key("booking on~", JOE), content_key("~march thirteenth.", JOE)
    assert assembled_key([a, b], [0], JOE) == hashlib.sha256(
        "|".join(["v2", "assembled", JOE.slug, a, "0", b]).encode()).hexdigest()
    assert assembled_key([a, b], [0], JOE) != assembled_key([a, b], [200], JOE)
    assert assembled_key([a, b], [0], JOE) != assembled_key([b, a], [0], JOE)
    with pytest.raises(ValueError):
        assembled_key([a, b], [], JOE)


@pytest.mark.parametrize(
    "name",
    [
        f"tts/v1/piper-en_us-joe-medium/{KEY[:2]}/{KEY}",
        f"tts/v1/piper-en_us-joe-medium/{KEY[:2]}/{KEY}.mp3",
        f"tts/v3/piper-en_us-joe-medium/{KEY[:2]}/{KEY}.wav",
        f"/tts/v1/piper-en_us-joe-medium/{KEY[:2]}/{KEY}.wav",
        f"tts/v1/../{KEY[:2]}/{KEY}.wav",
        f"tts/v1/piper-en_us-joe-medium/../{KEY}.wav",
        f"tts/v1/Piper/{KEY[:2]}/{KEY}.wav",
        f"tts/v1/piper-en_us-joe-medium/{'00' if KEY[:2] != '00' else '11'}/{KEY}.wav",
        f"tts/v1/piper-en_us-joe-medium/{KEY[:2].upper()}/{KEY.upper()}.wav",
        f"tts/v1/piper-en_us-joe-medium/{KEY[:2]}/{KEY[:-1]}.wav",
        f"tts/v1/piper-en_us-joe-medium/{KEY[:2]}/{KEY}.wav\n",
        f"tts/v1/piper-en_us-joe-medium/x/{KEY[:2]}/{KEY}.wav",
        f"tts/v1//{KEY[:2]}/{KEY}.wav",
        "",
    ],
)
def test_is_object_name_rejects(name: str) -> None:
    assert not is_object_name(name)


@pytest.mark.parametrize(
    ("text", "speakable"),
    [("Hi", True), ("42", True), ("...", False), ("?!", False), ("\U0001f600", False), ("", False), ("\u00e9", True)],
)
def test_is_speakable(text: str, speakable: bool) -> None:
    assert is_speakable(text) is speakable
