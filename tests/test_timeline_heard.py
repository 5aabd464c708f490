"""The one "answer audio" rule and the client-side classification of what each turn's answer was."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.business import load_businesses
from app.speech.canon import canon
from app.speech.fallback import chain_for
from app.speech.keys import content_key, object_name
from app.speech.pieces import split_pieces
from simulator.timeline import HeardRule, TurnMetrics, heard_problems_line, is_answer_audio, played_count

ROOT = Path(__file__).resolve().parent.parent
READY = "http://h/voice/tts-ready/demo/CA1?turn=2&played="


@pytest.mark.parametrize(("url", "played"), [
    (READY + "3", 3), ("http://h/voice/process/demo/CA1", 0), (READY + "x", 0), (READY + "-2", 0), (None, 0),
])
def test_played_count(url: str | None, played: int) -> None:
    assert played_count(url) == played


@pytest.mark.parametrize(("tags", "index", "doc", "redirect", "answer"), [
    (["Play", "Redirect"], 0, "http://h/voice/process/demo/CA1", READY + "0", False),  # first filler
    (["Play", "Redirect"], 0, READY + "0", READY + "0", False),  # bridge: played unchanged
    (["Play", "Play", "Redirect"], 1, READY + "0", READY + "2", True),  # a ready prefix of two pieces
    (["Play", "Redirect"], 0, READY + "2", READY + "3", True),  # the next piece of the answer, mid-answer
    (["Play", "Redirect"], 0, READY + "2", READY + "2", False),  # a bridge mid-answer
    (["Play", "Gather", "Play"], 0, READY + "0", None, True),  # answer + listen
    (["Say", "Hangup"], 0, READY + "1", None, True),  # deadline <Say> + hang up
    (["Play", "Redirect", "Gather"], 0, READY + "0", READY + "0", True),  # a terminal verb: the old rule, kept
    (["Play"], 0, READY + "0", None, True),  # nothing follows: the end of the call
])
def test_is_answer_audio(tags: list[str], index: int, doc: str, redirect: str | None, answer: bool) -> None:
    assert is_answer_audio(tags, index, doc, redirect) is answer


@pytest.fixture(scope="module")
def demo():
    return load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")


def clip(text: str, voice) -> str:
    key = content_key(canon(text), voice)
    return f"http://127.0.0.1:8000/cdn/{object_name(key, voice)}"


def turn(*answer: tuple[str, str]) -> TurnMetrics:
    return TurnMetrics(index=1, utterance="hi", start_s=0.0, end_s=3.0, time_to_first_audio_s=0.3,
                       time_to_answer_audio_s=1.0 if answer else None, longest_silence_s=0.5, fillers=(), hops=1,
                       failures=(), heard=tuple(label for _k, label in answer), answer_audio=tuple(answer))


def test_heard_rule_classifies_every_kind_of_answer(demo) -> None:
    rule = HeardRule.for_business(demo)
    apology = demo.prompt("apology")
    pieces = split_pieces(apology, demo.splice)
    assert len(pieces) == 2  # the call flow splits the apology into two sentence clips
    assert chain_for(demo) == ()  # demo speaks Piper, which has no fallback voice
    own = [("play", clip("We open at nine.", demo.voice)), ("play", clip("Anything else?", demo.voice))]
    cases = [
        ("clips", turn(*own)),
        ("clips", turn(("play", "http://elsewhere/media/answer.wav"))),  # not a clip URL: the business's own audio
        ("apology", turn(("play", clip(pieces[0], demo.voice)), ("play", clip(pieces[1], demo.voice)))),
        ("say", turn(own[0], ("say", "Anything else?"))),
        ("unanswered", turn()),
    ]
    assert [rule.classify(t) for _kind, t in cases] == [kind for kind, _t in cases]
    assert rule.classify(turn(("say", apology))) == "apology"  # the deadline's <Say> apology
    assert rule.classify(turn(("say", pieces[1]))) == "apology"  # its rest, after the first piece played
    assert rule.classify(turn(own[0], ("say", "i'm sorry,  I’m having trouble right now!!"))) == "apology"
    assert rule.count(t for _kind, t in cases) == {"clips": 2, "other_voice": 0, "say": 1, "apology": 1, "unanswered": 1}


def test_heard_rule_tells_a_fallback_voice_from_the_own_voice(tmp_path: Path) -> None:
    toml = tmp_path / "b.toml"
    toml.write_text('[dg]\nname = "Dg"\ngreeting = "Hello."\nfillers = ["One moment."]\n'
                    '[dg.voice]\nprovider = "deepgram"\nmodel = "aura-2-thalia-en"\n'
                    '[dg.say]\nvoice = "Polly.Joanna-Neural"\nlanguage = "en-US"\n', encoding="utf-8")
    business = load_businesses(toml).get("dg")
    (piper,) = chain_for(business)
    rule = HeardRule.for_business(business)
    assert rule.classify(turn(("play", clip("We open at nine.", business.voice)))) == "clips"
    assert rule.classify(turn(("play", clip("We open at nine.", piper)))) == "other_voice"
    # The apology spoken by the fallback voice is still an apology.
    assert rule.classify(turn(("play", clip(business.prompt("apology"), piper)))) == "apology"


def test_the_problem_line_names_every_problem_and_its_share() -> None:
    counts = {"clips": 6, "other_voice": 1, "say": 1, "apology": 2, "unanswered": 0}
    assert heard_problems_line(counts, responder_failures=2) == (
        "caller-heard problems: 4 (40.0% of 10 turns): 2 apologies, 1 <Say>, 1 fallback voice, 0 unanswered; "
        "own-voice clips 6; responder failures 2")
