"""``simulator load``'s check that every LLM request carries a coherent history."""

from __future__ import annotations

from simulator.history import RecordingResponses, history_problems

SYSTEM = {"role": "system", "content": "You are the receptionist."}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def agent(text: str) -> dict:
    return {"role": "assistant", "content": text}


def scripted(request: dict) -> str:
    last = request["messages"][-1]["content"]
    return {"Hi": "Hello! How can I help?", "Hours?": "We open at nine.", "Bye": "Goodbye! [END]"}[last]


def record(*conversations: list[dict]) -> RecordingResponses:
    responses = RecordingResponses(scripted)
    for messages in conversations:
        responses({"messages": [SYSTEM, *messages]})
    return responses


def test_a_coherent_call_has_no_problem_and_markers_do_not_matter() -> None:
    responses = record([user("Hi")], [user("Hi"), agent("Hello! How can I help?"), user("Bye")])
    requests = [{"messages": [SYSTEM, user("Hi")]},
                {"messages": [SYSTEM, user("Hi"), agent("Hello!  How can I help?"), user("Bye")]}]
    assert history_problems(requests, responses.produced, allowed=set()) == []
    assert responses.produced[(("user", "hi"), ("assistant", "Hello! How can I help?"), ("user", "bye"))] == {"Goodbye!"}


def test_an_adopted_speculation_asked_with_the_running_transcript_is_coherent() -> None:
    """The speculative request had "hours" without its question mark; the final words say the same."""
    responses = RecordingResponses(lambda request: "We open at nine.")
    responses({"messages": [SYSTEM, user("Hours")]})
    request = {"messages": [SYSTEM, user("Hours?"), agent("We open at nine."), user("Bye")]}
    assert history_problems([request], responses.produced, allowed=set()) == []


def test_a_turn_run_twice_shows_as_two_agent_lines_in_a_row() -> None:
    responses = record([user("Hi")])
    doubled = {"messages": [SYSTEM, user("Hi"), agent("Hello! How can I help?"), agent("Hello! How can I help?"),
                            user("Hours?")]}
    assert history_problems([doubled], responses.produced, allowed=set()) == ["roles uaau"]


def test_a_late_or_foreign_reply_is_an_agent_line_not_produced_for_its_conversation() -> None:
    responses = record([user("Hi")], [user("Hours?")])
    late = {"messages": [SYSTEM, user("Hi"), agent("We open at nine."), user("Bye")]}
    assert history_problems([late], responses.produced, allowed=set()) == [
        "agent line 1 was not produced for what preceded it: 'We open at nine.'"]


def test_the_business_prompts_are_allowed_agent_lines() -> None:
    """A failed LLM request became the apology: the caller heard it, so it belongs in the history."""
    apology = "I'm sorry, I'm having trouble right now."
    request = {"messages": [SYSTEM, user("Hi"), agent(apology), user("Hours?")]}
    assert history_problems([request], {}, allowed={apology}) == []
    assert history_problems([request], {}, allowed=set()) != []


def test_a_request_must_end_with_the_caller() -> None:
    request = {"messages": [SYSTEM, user("Hi"), agent("Hello! How can I help?")]}
    assert history_problems([request], record([user("Hi")]).produced, allowed=set()) == ["roles ua"]
