"""Call ids and lease names: one definition, used by the webhooks, the state store and the turn engine."""

from __future__ import annotations

import pytest

from app.ids import lease_call, new_call_sid, turn_lease_name, valid_call_sid, valid_state_call_id


@pytest.mark.parametrize(("value", "ok"), [
    ("CA" + "0123456789abcdef" * 2, True),
    ("CA" + "0" * 31, False),            # too short
    ("CA" + "0" * 33, False),            # too long
    ("ca" + "0" * 32, False),            # Twilio's prefix is upper case
    ("CA" + "A" * 32, False),            # hex digits are lower case
    ("CA" + "0" * 32 + "\n", False),     # no trailing newline sneaks past the anchor
    ("", False),
])
def test_valid_call_sid(value: str, ok: bool) -> None:
    assert valid_call_sid(value) is ok


def test_new_call_sid_is_valid_and_fresh() -> None:
    sids = {new_call_sid() for _ in range(50)}
    assert len(sids) == 50 and all(valid_call_sid(s) for s in sids)


@pytest.mark.parametrize(("value", "ok"), [
    ("CA" + "0" * 32, True), ("load-test_1", True), ("x" * 64, True),
    ("x" * 65, False), ("", False), ("a:b", False), ("../x", False),
])
def test_valid_state_call_id(value: str, ok: bool) -> None:
    assert valid_state_call_id(value) is ok


def test_turn_lease_name_round_trips_to_its_call() -> None:
    sid = "CA" + "ab" * 16
    assert turn_lease_name(sid, 3) == f"turn:{sid}:3"
    assert lease_call(turn_lease_name(sid, 3)) == sid
    assert lease_call(f"call:{sid}:precompute") == sid


@pytest.mark.parametrize("name", ["precompute:run", "turn", "other:CA00:1", "turn:bad id:1", "turn::1"])
def test_lease_call_of_names_that_belong_to_no_call(name: str) -> None:
    assert lease_call(name) is None
