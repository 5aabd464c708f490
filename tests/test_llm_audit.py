"""The LLM emulator's history audit: it flags exactly the conversations a corrupted turn engine sends."""

from __future__ import annotations

import httpx
import pytest

from simulator.llm_emulator import HistoryAudit, LLMEmulator

APOLOGY = "I'm sorry, I'm having trouble right now."


def ask(llm: LLMEmulator, *lines: tuple[str, str]) -> str:
    messages = [{"role": "system", "content": "You are the receptionist of X, answering a phone call."}]
    messages += [{"role": role, "content": text} for role, text in lines]
    response = httpx.post(f"{llm.base_url}/v1/chat/completions", json={"model": "m", "messages": messages},
                          headers={"Authorization": f"Bearer {llm.api_key}"}, timeout=10)
    assert response.status_code == 200
    return response.json()["choices"][0]["message"]["content"]


@pytest.fixture
def llm():
    replies = iter(f"Reply number {i}. [END]" if i == 3 else f"Reply number {i}." for i in range(100))
    with LLMEmulator(responses=lambda request: next(replies), audit=HistoryAudit([APOLOGY])) as emulator:
        yield emulator


def test_a_coherent_call_passes(llm):
    first = ask(llm, ("user", "hi"))
    second = ask(llm, ("user", "hi"), ("assistant", first), ("user", "and?"))
    ask(llm, ("user", "hi"), ("assistant", first), ("user", "and?"), ("assistant", second), ("user", "ok"))
    ask(llm, ("user", "hi"), ("assistant", first), ("user", "and?"), ("assistant", APOLOGY), ("user", "hello?"))
    assert llm.audit.summary() == {"requests": 4, "checked_agent_lines": 5, "incoherent": 0, "problems": []}


def test_the_markers_a_caller_never_hears_do_not_count(llm):
    for _ in range(3):
        ask(llm, ("user", "filler"))
    last = ask(llm, ("user", "bye"))
    assert last.endswith("[END]")
    ask(llm, ("user", "bye"), ("assistant", "Reply   number 3."), ("user", "again"))
    assert llm.audit.summary()["incoherent"] == 0


@pytest.mark.parametrize("lines, problem", [
    ([("user", "hi"), ("assistant", "Reply number 0."), ("assistant", "Reply number 0."), ("user", "x")],
     "roles must alternate"),
    ([("user", "hi"), ("user", "again")], "roles must alternate"),
    ([("user", "something else"), ("assistant", "Reply number 0."), ("user", "x")], "never produced"),
    ([("user", "hi"), ("assistant", "A reply nobody wrote."), ("user", "x")], "never produced"),
])
def test_duplicated_or_foreign_agent_lines_are_flagged(llm, lines, problem):
    ask(llm, ("user", "hi"))  # produces "Reply number 0." for the conversation [hi]
    ask(llm, *lines)
    summary = llm.audit.summary()
    assert summary["incoherent"] == 1 and problem in summary["problems"][0]
