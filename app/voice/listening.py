"""How a speech <Gather> listens for a business: partial results, the pinned model, barge-in.

Pure: builds the keyword arguments of :class:`app.voice.twiml.Listen` from the business config
(``[<id>.listen]``) and the call's URLs. Thread-safe.
"""

from __future__ import annotations

import logging
from typing import Any

from app.business import Business
from app.errors import StateError

log = logging.getLogger("warmline.listen")


def listen_options(business: Business, urls: Any, state: Any = None, *, next_turn: int | None = None) -> dict[str, Any]:
    """``partial`` (the partialResultCallback URL, when partial results are on), ``speech_model``,
    ``speech_timeout`` and ``barge_in`` for ``twiml.Listen``.

    The partial URL names the turn the partial results will belong to (``?turn=N``, the call's turn
    count + 1, read from ``state``), so a partial that arrives after its turn began is recognised as
    late; without state (or when it is unavailable) the URL carries no turn. ``next_turn``: that
    number when the caller knows it already (no state read).
    """
    partial = None
    if business.partial_results:
        partial = urls.partial()
        if next_turn is not None:
            partial += f"?turn={next_turn}"
        elif state is not None:
            try:
                call = state.get_call(urls.call_sid)
            except StateError as exc:
                log.warning("call state unavailable for the partial URL: %s", exc)
                call = None
            if call is not None:
                partial += f"?turn={int(call.get('turn') or 0) + 1}"
    return {
        "partial": partial,
        "speech_model": business.speech_model,
        "speech_timeout": business.speech_timeout,
        "barge_in": business.barge_in,
    }
