"""Call identifiers and the names derived from them, in one place.

* A Twilio **CallSid** is ``CA`` followed by 32 lowercase hex digits: :func:`valid_call_sid` is the
  check every webhook makes on it, :func:`new_call_sid` makes one (simulator, tests).
* The **state store** accepts a wider set of call ids as keys (:data:`STATE_CALL_ID_RE`: letters,
  digits, ``_`` and ``-``, 1-64 characters), so ids from tools and tests need not look like Twilio's.
* **Lease names** that belong to a call: ``turn:<call id>:<turn>`` (running a turn) and
  ``call:<call id>:...``; :func:`lease_call` reads the call id back, so a call's leases are removed
  with it.

Pure functions of their arguments; safe from any thread.
"""

from __future__ import annotations

import re
import secrets

CALL_SID_RE = re.compile(r"^CA[0-9a-f]{32}$")
STATE_CALL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LEASE_KINDS = ("turn", "call")


def valid_call_sid(value: str) -> bool:
    """True when ``value`` is shaped like a Twilio CallSid (``CA`` + 32 lowercase hex digits)."""
    return isinstance(value, str) and CALL_SID_RE.fullmatch(value) is not None


def new_call_sid() -> str:
    """A random Twilio-shaped CallSid."""
    return "CA" + secrets.token_hex(16)


def valid_state_call_id(value: str) -> bool:
    """True when ``value`` may key a call in the state store (see :data:`STATE_CALL_ID_RE`)."""
    return isinstance(value, str) and STATE_CALL_ID_RE.fullmatch(value) is not None


def turn_lease_name(call_sid: str, turn: int) -> str:
    """The lease name for running turn ``turn`` of a call (deleted with the call)."""
    return f"turn:{call_sid}:{int(turn)}"


def lease_call(name: str) -> str | None:
    """The call id a lease belongs to (``turn:<id>:...`` / ``call:<id>:...``), else None."""
    parts = name.split(":")
    if len(parts) >= 2 and parts[0] in LEASE_KINDS and valid_state_call_id(parts[1]):
        return parts[1]
    return None
