"""An OpenAI-compatible chat-completions responder, and ``safe_reply`` that every turn goes through.

``OpenAIResponder`` POSTs ``{base_url}/v1/chat/completions`` with a system prompt built from the
business (name, hours, FAQ, how to speak), the call's history and the utterance, and reads
``choices[0].message.content``. The model signals what happens next with a marker at the end
of its reply: ``[END]`` (hang up after speaking) or ``[TRANSFER]`` (put the caller through);
markers are stripped from the spoken text. Every failure — timeout, connection error, non-2xx,
malformed JSON, empty content — raises :class:`~app.errors.ResponderError`, translated here.

``OpenAIResponder.stream`` asks for ``"stream": true`` and reads server-sent events (``data: {json}``
lines whose ``choices[0].delta.content`` carry the next tokens, then ``data: [DONE]``), handing out
each sentence as soon as it is complete (:class:`~app.responders.stream.ReplyStream`); a server that
ignores ``stream`` and answers one JSON body is read as one piece. :func:`safe_stream` is the
streaming twin of :func:`safe_reply` and wraps responders that cannot stream as a one-shot stream.

Thread-safe: the responder holds only immutable configuration and a shared ``httpx.Client``
(itself thread-safe). The constructor does no I/O.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx

from app.business import Business
from app.errors import ResponderError
from app.responders.base import MAX_REPLY_CHARS, Reply, Responder, prior_history, trim_reply
from app.responders.stream import ReplyStream, SafeStream, one_shot
from app.speech.canon import is_speakable
from app.speech.segment import ends_with_terminal, split_sentences

log = logging.getLogger("warmline.responders")

END_MARKER = "[END]"
TRANSFER_MARKER = "[TRANSFER]"
MAX_RESPONSE_BYTES = 1 << 20
HISTORY_ITEMS = 20

_MARKER_RE = re.compile(r"\[\s*(END|TRANSFER)\s*\]", re.IGNORECASE)
_MARKDOWN_RE = re.compile(r"(\*\*|__|`+|^\s*#+\s*|^\s*[-*\u2022]\s+)", re.MULTILINE)


def system_prompt(business: Business) -> str:
    """The instructions for the model: who it is, what it knows, how to speak, the markers."""
    lines = [
        f"You are the receptionist of {business.name}, answering a phone call.",
        (
            "Your words are spoken aloud by a text-to-speech voice: answer in 1-3 short spoken sentences, "
            "plain text only, no markdown, no lists, no emojis, no URLs."
        ),
        (
            "Use only the facts below; never invent prices, times or other facts. If you do not know, say so "
            "and offer to take a message."
        ),
    ]
    if business.hours:
        lines.append(f"Opening hours: {business.hours}")
    if business.faq:
        lines.append("Facts (the caller may ask about these):")
        lines.extend(f"- {', '.join(f.keywords)}: {f.answer}" for f in business.faq)
    if business.booking:
        lines.append("You can book appointments: ask for the caller's name, then a day and time, then confirm "
                     "the booking in one sentence.")
    else:
        lines.append("You cannot book appointments over the phone.")
    if business.transfer_number:
        lines.append(f"If the caller asks for a person, say you will put them through and end your reply with "
                     f"{TRANSFER_MARKER}.")
    else:
        lines.append("If the caller asks for a person, offer to take a message; nobody can be put through.")
    lines.append(f"When the call is over (the caller says goodbye, or a booking is confirmed), say a short "
                 f"goodbye and end your reply with {END_MARKER}.")
    return "\n".join(lines)


def build_messages(business: Business, history: list[dict[str, Any]], utterance: str) -> list[dict[str, str]]:
    """System prompt, the last ``HISTORY_ITEMS`` turns of the call, then the caller's utterance."""
    roles = {"caller": "user", "agent": "assistant"}
    messages = [{"role": "system", "content": system_prompt(business)}]
    for item in prior_history(history, utterance)[-HISTORY_ITEMS:]:
        role = roles.get(str(item.get("role")))
        text = str(item.get("text") or "").strip()
        if role and text:
            messages.append({"role": role, "content": text})
    messages.append({"role": "user", "content": utterance.strip()})
    return messages


def parse_content(content: str, business: Business, *, truncated: bool = False) -> Reply:
    """The spoken reply from a model's message: markers -> action, markdown and extra spaces removed.

    A ``[TRANSFER]`` for a business without a transfer number is ignored (action ``continue``).
    ``truncated`` (finish_reason "length") drops an unfinished last sentence. Empty text ->
    the business's goodbye/transfer prompt when the action needs no words, else ResponderError.
    """
    found = {m.upper() for m in _MARKER_RE.findall(content)}
    text = _MARKER_RE.sub(" ", content)
    text = " ".join(_MARKDOWN_RE.sub("", text).split())
    if "TRANSFER" in found and business.transfer_number:
        action = "transfer"
    elif "END" in found:
        action = "end"
    else:
        action = "continue"
    if truncated and not ends_with_terminal(text):
        sentences = split_sentences(text)
        if len(sentences) > 1:
            text = " ".join(sentences[:-1])
    if not is_speakable(text):
        if action == "end":
            return Reply(business.prompt("goodbye"), action)
        if action == "transfer":
            return Reply(business.prompt("transfer"), action)
        raise ResponderError(f"the model's reply has nothing to say: {content[:80]!r}")
    return Reply(text, action)


def make_llm_client(*, max_connections: int = 20) -> httpx.Client:
    """A pooled client for the LLM endpoint (keep-alive, bounded). No I/O until first use."""
    return httpx.Client(
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        timeout=httpx.Timeout(10.0),
        headers={"User-Agent": "warmline/0.1"},
    )


class OpenAIResponder:
    """Replies from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``base_url`` is the server root (``https://api.openai.com``; a trailing ``/v1`` is accepted).
    ``timeout_s`` bounds the whole request, including a server that trickles its body.
    Thread-safe; no I/O in the constructor.
    """

    remote = True
    """Every reply is a network round trip to a model: never within an instant budget until seen to be."""

    def __init__(
        self,
        *,
        client: httpx.Client,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float = 6.0,
        max_tokens: int = 160,
        temperature: float = 0.3,
    ) -> None:
        root = base_url.rstrip("/").removesuffix("/v1")
        self.client = client
        self.url = f"{root}/v1/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature

    def reply(self, business: Business, history: list[dict[str, Any]], utterance: str) -> Reply:
        body = {
            "model": self.model,
            "messages": build_messages(business, history, utterance),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        data = self._post(body)
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ResponderError(f"LLM reply has no choices[0].message.content: {exc!r}") from exc
        if not isinstance(content, str):
            raise ResponderError(f"LLM reply content is {type(content).__name__}, not text")
        return parse_content(content, business, truncated=choice.get("finish_reason") == "length")

    def stream(self, business: Business, history: list[dict[str, Any]], utterance: str) -> ReplyStream:
        """The reply as a stream of sentences (``"stream": true``); see the module docstring.

        No I/O until the first ``next()``. Iterating raises ResponderError for every failure
        (before or during the stream); ``timeout_s`` bounds the whole exchange, first byte to last.
        """
        body = {
            "model": self.model,
            "messages": build_messages(business, history, utterance),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        state = {"finish": None}
        events = self._events(body, state)
        return ReplyStream(events, business, truncated=lambda: state["finish"] == "length", close=events.close)

    def _events(self, body: dict[str, Any], state: dict[str, Any]) -> Iterator[str]:
        """Raw content deltas of a streamed completion (or the whole content of a JSON answer)."""
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        deadline = time.monotonic() + self.timeout_s
        try:
            with self.client.stream(
                "POST", self.url, json=body, headers=headers, timeout=httpx.Timeout(self.timeout_s)
            ) as resp:
                if not 200 <= resp.status_code < 300:
                    raw = resp.read()[:200]
                    raise ResponderError(f"LLM answered HTTP {resp.status_code}: {raw.decode('utf-8', 'replace')}")
                kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "text/event-stream":
                    # The server ignored "stream": one JSON body, read like the non-streaming path.
                    data = _json(_read_bounded(resp, deadline, self.timeout_s))
                    content, finish = _message_content(data)
                    state["finish"] = finish
                    yield content
                    return
                size = 0
                for line in resp.iter_lines():
                    size += len(line) + 1
                    if size > MAX_RESPONSE_BYTES:
                        raise ResponderError(f"LLM reply larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise ResponderError(f"LLM reply took longer than {self.timeout_s} s")
                    if not line.startswith("data:"):
                        continue  # blank separators, comments (": keep-alive"), event:/id: fields
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    chunk = _json(payload.encode())
                    try:
                        choice = chunk["choices"][0]
                    except (KeyError, IndexError, TypeError) as exc:
                        if isinstance(chunk, dict) and "error" in chunk:
                            raise ResponderError(f"LLM stream error: {str(chunk['error'])[:200]}") from exc
                        continue  # e.g. a usage-only chunk
                    if not isinstance(choice, dict):
                        continue
                    if choice.get("finish_reason"):
                        state["finish"] = choice["finish_reason"]
                    delta = choice.get("delta") or {}
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(content, str) and content:
                        yield content
        except httpx.TimeoutException as exc:
            raise ResponderError(f"LLM timed out after {self.timeout_s} s: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise ResponderError(f"LLM request failed: {type(exc).__name__}: {exc}") from exc

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        deadline = time.monotonic() + self.timeout_s
        try:
            with self.client.stream(
                "POST", self.url, json=body, headers=headers, timeout=httpx.Timeout(self.timeout_s)
            ) as resp:
                raw = _read_bounded(resp, deadline, self.timeout_s)
                status = resp.status_code
        except httpx.TimeoutException as exc:
            raise ResponderError(f"LLM timed out after {self.timeout_s} s: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise ResponderError(f"LLM request failed: {type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise ResponderError(f"LLM answered HTTP {status}: {raw[:200].decode('utf-8', 'replace')}")
        return _json(raw)


def _read_bounded(resp: httpx.Response, deadline: float, timeout_s: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ResponderError(f"LLM reply larger than {MAX_RESPONSE_BYTES} bytes")
        if time.monotonic() > deadline:
            raise ResponderError(f"LLM reply took longer than {timeout_s} s")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResponderError(f"LLM reply is not JSON: {exc}") from exc


def _message_content(data: Any) -> tuple[str, str | None]:
    """(content, finish_reason) of a non-streamed completion; ResponderError when malformed."""
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ResponderError(f"LLM reply has no choices[0].message.content: {exc!r}") from exc
    if not isinstance(content, str):
        raise ResponderError(f"LLM reply content is {type(content).__name__}, not text")
    return content, choice.get("finish_reason")


def safe_reply(responder: Responder, business: Business, history: list[dict[str, Any]], utterance: str) -> Reply:
    """The responder's reply, never an exception of its own: ResponderError -> the business's apology.

    Also: an unspeakable reply becomes the apology (or the goodbye/transfer prompt for those
    actions), and a reply over ``MAX_REPLY_CHARS`` is trimmed at a sentence boundary.
    Thread-safe when the responder is.
    """
    try:
        reply = responder.reply(business, history, utterance)
    except ResponderError as exc:
        log.warning("responder %s failed for business %s: %s", type(responder).__name__, business.id, exc)
        return Reply(business.prompt("apology"), "continue", failure=f"{type(exc).__name__}: {exc}")
    if not is_speakable(reply.text):
        fallback = {"end": "goodbye", "transfer": "transfer"}.get(reply.action, "apology")
        failure = "ResponderError: the reply has nothing to say" if fallback == "apology" else None
        return Reply(business.prompt(fallback), reply.action, failure=failure)
    return trim_reply(reply)


def safe_stream(responder: Responder, business: Business, history: list[dict[str, Any]],
                utterance: str) -> ReplyStream | SafeStream:
    """The responder's reply as a stream of sentences, never an exception of its own (see ``safe_reply``).

    A responder with a ``stream`` method (the OpenAI-compatible one) streams: sentences come as
    the model writes them; a failure before the first sentence becomes the apology, one after it
    ends the reply with what was said. Any other responder (FAQ, replay) is called at once and its
    reply handed out as a one-shot stream with its marks. Thread-safe when the responder is; the
    stream itself belongs to one consumer.
    """
    stream = getattr(responder, "stream", None)
    if stream is None:
        return one_shot(safe_reply(responder, business, history, utterance))

    def failed(exc: ResponderError) -> None:
        log.warning("responder %s failed for business %s: %s", type(responder).__name__, business.id, exc)

    return SafeStream(lambda: stream(business, history, utterance), business, MAX_REPLY_CHARS, on_error=failed)
