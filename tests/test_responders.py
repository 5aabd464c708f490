"""Responders: the FAQ/booking responder, Reply, the corpus loader and the replay responder."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from app.business import Business, load_businesses
from app.config import Settings
from app.responders import FaqResponder, Reply, make_responder
from app.responders.faq import extract_name, extract_time
from app.responders.openai import OpenAIResponder
from app.responders.replay import LatencyModel, ReplayResponder
from precompute.corpus import Dialogue, Turn, load_dialogues

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "sgd-dev.jsonl"

ANYTHING_ELSE = "Is there anything else I can help you with?"
FALLBACK = ("Sorry, I can't help with that. I can tell you our opening hours, answer common questions, "
            "book an appointment or take a message. What would you like to do?")


@pytest.fixture(scope="module")
def demo() -> Business:
    return load_businesses(ROOT / "businesses" / "businesses.toml").get("demo")


def converse(business: Business, utterances: list[str], responder=None) -> list[Reply]:
    """Run a call the way the turn engine does: history grows by caller and agent items."""
    responder = responder or FaqResponder()
    history: list[dict] = []
    replies = []
    for utterance in utterances:
        reply = responder.reply(business, list(history), utterance)
        replies.append(reply)
        history += [{"role": "caller", "text": utterance}, {"role": "agent", "text": reply.text}]
    return replies


def spans(reply: Reply) -> list[tuple[str, str]]:
    return [(name, reply.text[start:end]) for name, start, end in reply.marks]


# --- Reply -------------------------------------------------------------------------------------


def test_reply_defaults_and_validation() -> None:
    reply = Reply("Hello Sam.")
    assert (reply.action, reply.marks) == ("continue", ())
    assert Reply("Hello Sam.", marks=(("name", 6, 9),)).marked() == {"name": "Sam"}
    with pytest.raises(ValueError):
        Reply("x", action="hangup")
    with pytest.raises(ValueError):
        Reply("Hello Sam.", marks=(("name", 6, 11),))
    with pytest.raises(ValueError):
        Reply("Hello Sam.", marks=(("name", 6, 6),))


# --- booking --------------------------------------------------------------------------------------


def test_booking_dialogue_end_to_end(demo: Business) -> None:
    replies = converse(demo, [
        "Hi, I'd like to book a check-up please.",
        "Um, my name is sam o'brien.",
        "Next Tuesday at 3:30 PM would be great.",
    ])
    assert [(r.text, r.action) for r in replies] == [
        ("Sure, I can book that for you. May I have your name, please?", "continue"),
        ("Thanks, Sam O'Brien. What day and time would suit you?", "continue"),
        ("Great, Sam O'Brien, you're booked for next Tuesday at 3:30 p.m. We'll send a reminder. Goodbye!", "end"),
    ]
    assert replies[0].marks == ()
    assert replies[1].marks == (("name", 8, 19),)
    assert replies[2].marks == (("name", 7, 18), ("time", 38, 63))
    assert spans(replies[2]) == [("name", "Sam O'Brien"), ("time", "next Tuesday at 3:30 p.m.")]


def test_booking_re_asks_until_it_has_a_name_and_a_time(demo: Business) -> None:
    replies = converse(demo, ["Can I make an appointment?", "I don't know", "Priya", "whenever", "friday morning"])
    assert [r.text for r in replies] == [
        "Sure, I can book that for you. May I have your name, please?",
        "Sorry, I didn't catch your name. May I have your name, please?",
        "Thanks, Priya. What day and time would suit you?",
        "Sorry, Priya, I didn't catch a day or time. What day and time would suit you?",
        "Great, Priya, you're booked for Friday in the morning. We'll send a reminder. Goodbye!",
    ]
    assert spans(replies[3]) == [("name", "Priya")]
    assert spans(replies[4]) == [("name", "Priya"), ("time", "Friday in the morning")]
    assert [r.action for r in replies] == ["continue"] * 4 + ["end"]


def test_booking_can_be_cancelled_or_ended(demo: Business) -> None:
    cancelled = converse(demo, ["book me in", "never mind"])
    assert cancelled[1] == Reply(f"No problem, I won't book anything. {ANYTHING_ELSE}")
    ended = converse(demo, ["book me in", "Jo", "actually bye"])
    assert ended[2] == Reply("Thanks for calling Harbourside Dental. Goodbye!", "end")


def test_an_offer_to_book_accepted_starts_the_booking(demo: Business) -> None:
    replies = converse(demo, ["I have a terrible toothache", "yes please", "Lee"])
    assert replies[0].text == ("I'm sorry you're in pain. We keep emergency slots every morning. "
                               "Would you like me to book one for you?")
    assert replies[1].text == "Sure, I can book that for you. May I have your name, please?"
    assert replies[2].text == "Thanks, Lee. What day and time would suit you?"


def test_no_booking_when_the_business_does_not_take_them(demo: Business) -> None:
    biz = dataclasses.replace(demo, booking=False)
    assert FaqResponder().reply(biz, [], "I want an appointment") == Reply(
        f"I'm sorry, I can't make bookings over the phone. {ANYTHING_ELSE}")
    assert FaqResponder().reply(biz, [], "what?").text == (
        "Sorry, I can't help with that. I can tell you our opening hours, answer common questions "
        "or take a message. What would you like to do?")


@pytest.mark.parametrize(("said", "name"), [
    ("Sarah", "Sarah"),
    ("sarah jones", "Sarah Jones"),
    ("My name is John and I need a filling", "John"),
    ("yeah it's bob", "Bob"),
    ("I'm mary-jane McDonald", "Mary-Jane McDonald"),
    ("this is d'arcy", "D'Arcy"),
    ("I don't know", None),
    ("I would like to come in on Tuesday", None),
    ("", None),
])
def test_extract_name(said: str, name: str | None) -> None:
    assert extract_name(said) == name


@pytest.mark.parametrize(("said", "when"), [
    ("3 pm", "3 p.m."),
    ("at 10:30 a.m. on monday", "Monday at 10:30 a.m."),
    ("9.30am tomorrow", "tomorrow at 9:30 a.m."),
    ("Friday", "Friday"),
    ("this friday at 4", "this Friday at 4 o'clock"),
    ("March 3rd at 10 AM", "March 3rd at 10 a.m."),
    ("the 22nd of june at noon", "June 22nd at noon"),
    ("14:45", "14:45"),
    ("sometime soon", None),
])
def test_extract_time(said: str, when: str | None) -> None:
    assert extract_time(said) == when


# --- FAQ, hours, small talk ---------------------------------------------------------------------


@pytest.mark.parametrize(("said", "text"), [
    ("Where are you located?", ("We're at 12 Harbour Street, next to the ferry terminal. "
                                f"There's free parking behind the building. {ANYTHING_ELSE}")),
    ("Is there PARKING nearby", ("We're at 12 Harbour Street, next to the ferry terminal. "
                                 f"There's free parking behind the building. {ANYTHING_ELSE}")),
    ("How much is a checkup?", ("A check-up and clean is $120. If you have insurance, we can claim it for you "
                                f"on the spot. {ANYTHING_ELSE}")),
    ("Do you take my health fund", (f"We accept all major insurers. Bring your card and we'll take care of the "
                                    f"claim. {ANYTHING_ELSE}")),
    ("When are you open on Saturday?", ("We're open Monday to Friday from 8 a.m. to 6 p.m., and Saturday from "
                                        f"9 a.m. to 1 p.m. {ANYTHING_ELSE}")),
    ("what are your hours", ("We're open Monday to Friday from 8 a.m. to 6 p.m., and Saturday from "
                             f"9 a.m. to 1 p.m. {ANYTHING_ELSE}")),
    ("Hello there!", "Hello, you've reached Harbourside Dental. How can I help you today?"),
    ("Thank you so much", f"You're welcome. {ANYTHING_ELSE}"),
    ("Do you sell bicycles", FALLBACK),
    ("somewhere", FALLBACK),  # "where" inside a word is not the keyword
    ("   ", "Sorry, I didn't catch that. Could you say it again?"),
])
def test_faq_hours_and_small_talk(demo: Business, said: str, text: str) -> None:
    assert FaqResponder().reply(demo, [], said) == Reply(text, "continue")


def test_the_faq_with_most_keyword_hits_wins(demo: Business) -> None:
    # "cover" -> insurance FAQ (1 hit); "price" + "cleaning" -> price FAQ (2 hits)
    assert FaqResponder().reply(demo, [], "does insurance cover the price of a cleaning").text.startswith(
        "A check-up and clean is $120.")


@pytest.mark.parametrize("said", ["bye", "No thanks, that's all.", "OK goodbye", "that is it"])
def test_goodbyes_end_the_call(demo: Business, said: str) -> None:
    assert FaqResponder().reply(demo, [], said) == Reply("Thanks for calling Harbourside Dental. Goodbye!", "end")


def test_no_after_anything_else_is_a_goodbye(demo: Business) -> None:
    replies = converse(demo, ["where are you", "no", "no"])
    assert replies[1] == Reply("Thanks for calling Harbourside Dental. Goodbye!", "end")
    assert FaqResponder().reply(demo, [], "no").text == FALLBACK  # a bare "no" out of context is not


def test_asking_for_a_person(demo: Business) -> None:
    replies = converse(demo, ["Can I talk to a real person", "Please ask Dr Lee to call me back"])
    assert replies[0] == Reply("I can't put you through right now, but I can take a message. "
                               "What would you like me to pass on?")
    assert replies[1] == Reply(f"Thanks, I've passed that on and someone will call you back soon. {ANYTHING_ELSE}")
    with_transfer = dataclasses.replace(demo, transfer_number="+15005550001")
    assert FaqResponder().reply(with_transfer, [], "reception please") == Reply(
        "Let me put you through to someone who can help.", "transfer")


def test_history_may_already_hold_the_current_utterance(demo: Business) -> None:
    history = [{"role": "caller", "text": "book please"},
               {"role": "agent", "text": "Sure, I can book that for you. May I have your name, please?"},
               {"role": "caller", "text": "Ana"}]
    assert FaqResponder().reply(demo, history, "Ana") == FaqResponder().reply(demo, history[:-1], "Ana")


def test_replies_are_deterministic(demo: Business) -> None:
    script = ["hi", "where are you", "book", "Kim Lee", "monday 9am"]
    assert converse(demo, script) == converse(demo, script)


def test_make_responder_follows_the_settings() -> None:
    assert isinstance(make_responder(Settings()), FaqResponder)
    llm = make_responder(Settings(llm_url="http://127.0.0.1:9/v1", llm_api_key="k", llm_model="m", llm_timeout_s=2.5))
    assert isinstance(llm, OpenAIResponder)
    assert (llm.url, llm.api_key, llm.model, llm.timeout_s) == ("http://127.0.0.1:9/v1/chat/completions", "k", "m", 2.5)
    llm.client.close()


# --- corpus ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus():
    return load_dialogues(CORPUS)


def test_the_shared_corpus_loads_cleanly(corpus) -> None:
    assert len(corpus) == 6584 and corpus.bad_lines == 0
    first = corpus[0]
    assert first.id == "sgd:dev:11_00055#Services_4" and first.domain == "Services_4"
    assert first.turns[0] == Turn("user", "find me find me a therapist", ())
    speaker, text, slots = first.turns[3]
    assert speaker == "system"
    assert slots == (("city", 30, 40), ("therapist_name", 53, 72))  # sorted by offset
    assert [text[s:e] for _, s, e in slots] == ["st. helena", "ellsworth elizabeth"]


def test_load_dialogues_counts_bad_lines(tmp_path: Path) -> None:
    good = {"id": "d1", "turns": [{"speaker": "user", "text": "hi"},
                                  {"speaker": "system", "text": "Hello Ann", "slots": [["name", 6, 9]]}]}
    lines = [
        json.dumps(good),
        "",  # blank: ignored, not bad
        "{not json",
        json.dumps({"id": "d2", "turns": []}),
        json.dumps({"id": "d3", "turns": [{"speaker": "bot", "text": "x"}]}),
        json.dumps({"id": "d4", "turns": [{"speaker": "system", "text": "Hi", "slots": [["n", 1, 9]]}]}),
        json.dumps(["not", "an", "object"]),
        json.dumps({**good, "id": "d5"}),
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_dialogues(path)
    assert [d.id for d in loaded] == ["d1", "d5"]
    assert loaded.bad_lines == 5
    assert loaded[0].turns[1] == Turn("system", "Hello Ann", (("name", 6, 9),))
    assert loaded[0].utterances() == ["hi"]


# --- replay ---------------------------------------------------------------------------------------


def test_replay_yields_the_corpus_turns_in_order_with_marks(corpus, demo: Business) -> None:
    dialogue = next(d for d in corpus if sum(1 for t in d.turns if t.slots) >= 3)
    responder = ReplayResponder(corpus, latency=LatencyModel.none())
    replies = converse(demo, dialogue.utterances(), responder)
    system = dialogue.system_turns()
    assert [r.text for r in replies] == [t.text for t in system]
    assert [r.marks for r in replies] == [t.slots for t in system]
    assert [r.action for r in replies] == ["continue"] * (len(system) - 1) + ["end"]
    for reply, turn in zip(replies, system, strict=True):
        assert spans(reply) == [(n, turn.text[s:e]) for n, s, e in turn.slots]


def test_replay_past_the_end_says_goodbye_and_picks_stably(demo: Business) -> None:
    a = Dialogue("a", (Turn("user", "Hello, is that the clinic?"), Turn("system", "Yes it is.")))
    b = Dialogue("b", (Turn("user", "Hi"), Turn("system", "Hello!"), Turn("user", "Bye"), Turn("system", "Bye now.")))
    responder = ReplayResponder([a, b], latency=LatencyModel(0, 0))
    # the first utterance picks the dialogue, ignoring case and punctuation
    assert converse(demo, ["hello is that the clinic", "and then?"], responder) == [
        Reply("Yes it is.", "end"), Reply("Thanks for calling Harbourside Dental. Goodbye!", "end")]
    assert converse(demo, ["HI!", "bye"], responder) == [Reply("Hello!"), Reply("Bye now.", "end")]
    unknown = [responder.reply(demo, [], "something never recorded").text for _ in range(3)]
    assert len(set(unknown)) == 1 and unknown[0] in {"Yes it is.", "Hello!"}


def test_replay_joins_consecutive_system_turns_and_shifts_marks(demo: Business) -> None:
    d = Dialogue("x", (
        Turn("system", "Welcome."),  # before the first user turn: not a reply
        Turn("user", "Book Dr Lee"),
        Turn("system", "Dr Lee is free.", (("doctor", 0, 6),)),
        Turn("system", "At 3 pm on Monday.", (("time", 3, 7), ("day", 11, 17))),
        Turn("user", "Great"),
    ))
    responder = ReplayResponder(d, latency=LatencyModel.none())
    first = responder.reply(demo, [], "Book Dr Lee")
    assert first.text == "Dr Lee is free. At 3 pm on Monday."
    assert spans(first) == [("doctor", "Dr Lee"), ("time", "3 pm"), ("day", "Monday")]
    assert first.action == "continue"
    history = [{"role": "caller", "text": "Book Dr Lee"}, {"role": "agent", "text": first.text}]
    assert responder.reply(demo, history, "Great") == Reply("Thanks for calling Harbourside Dental. Goodbye!", "end")


def test_latency_model_is_seeded_bounded_and_sleeps() -> None:
    draws = [LatencyModel(500, 1500, seed=7).sample_s() for _ in range(2)]
    assert draws[0] == draws[1]
    model = LatencyModel(500, 1500, seed=7)
    samples = [model.sample_s() for _ in range(200)]
    assert all(0.5 <= s <= 1.5 for s in samples) and len(set(samples)) > 150
    assert LatencyModel(0, 0).sample_s() == 0.0
    with pytest.raises(ValueError):
        LatencyModel(10, 5)
    slow = LatencyModel(40, 60, seed=1)
    started = time.monotonic()
    slept = slow.sleep()
    assert 0.04 <= slept <= 0.06 and time.monotonic() - started >= slept


def test_replay_waits_its_latency(demo: Business) -> None:
    d = Dialogue("x", (Turn("user", "hi"), Turn("system", "Hello.")))
    responder = ReplayResponder(d, latency=LatencyModel(80, 100, seed=3))
    started = time.monotonic()
    responder.reply(demo, [], "hi")
    assert 0.08 <= time.monotonic() - started < 0.5
