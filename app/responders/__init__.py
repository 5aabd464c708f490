"""Responders: the AI that writes the agent's lines.

- :class:`~app.responders.faq.FaqResponder` — the embedded default, driven by the business file.
- :class:`~app.responders.openai.OpenAIResponder` — any OpenAI-compatible chat-completions API.
- :class:`~app.responders.replay.ReplayResponder` — replays recorded dialogues (benchmarks, soak).

Callers use :func:`~app.responders.openai.safe_reply`, which turns a ResponderError into the
business's apology. Importing this package does no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.responders.base import ACTIONS, Reply, Responder
from app.responders.faq import FaqResponder

if TYPE_CHECKING:
    import httpx

    from app.config import Settings

__all__ = ["ACTIONS", "FaqResponder", "Reply", "Responder", "make_responder"]


def make_responder(settings: Settings, *, client: httpx.Client | None = None) -> Responder:
    """The responder the settings ask for: OpenAI-compatible when ``llm_url`` is set, else FAQ.

    ``client`` is the pooled httpx client for the LLM (one is made when omitted). No I/O.
    """
    if not settings.llm_url:
        return FaqResponder()
    from app.responders.openai import OpenAIResponder, make_llm_client

    return OpenAIResponder(
        # one connection per turn thread: the pool, not httpx, bounds how many requests wait
        client=client or make_llm_client(max_connections=max(1, settings.turn_workers)),
        base_url=settings.llm_url,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
    )
