"""A reply as it is being written: sentences handed out the moment each one is complete.

A turn job does not have to wait for the whole reply before the first sentence is synthesized:
:class:`ReplyStream` is an iterator of *sentences* (cleaned of markdown and action markers, cut by
:func:`app.speech.segment.split_sentences`), each yielded as soon as the text after it shows it has
ended, and :attr:`ReplyStream.reply` is the whole :class:`~app.responders.base.Reply` once the
iteration is over (its text is exactly the yielded sentences joined by single spaces).

Sources:

- :meth:`app.responders.openai.OpenAIResponder.stream` feeds the model's SSE deltas;
- :func:`one_shot` wraps a finished Reply (any other responder, or an endpoint that ignored
  ``stream``) as a stream whose sentences all come at once, marks kept;
- :func:`safe_stream` is the streaming twin of :func:`~app.responders.openai.safe_reply`: it never
  raises ResponderError (before the first sentence a failure becomes the apology; after it the reply
  is what was said so far) and it stops handing out sentences at ``MAX_REPLY_CHARS``.

When is a sentence complete? Only whole whitespace-separated tokens are cut (a token still being
written may be "Dr" of "Dr." or "9" of "9.30"), and a sentence is handed out only when a further
sentence has started after it: the boundary between two complete tokens is what
``split_sentences`` decides on, so a sentence once handed out never changes.

A long first sentence starts sooner (``early_clause``): once the first sentence has run
EARLY_CLAUSE_AFTER_CHARS characters without ending, its complete clauses so far (up to the last
``, ; :`` or spaced dash, at least EARLY_CLAUSE_MIN_CHARS and half of what was written) are handed
out as a piece of their own and the rest of the sentence follows when it ends. The caller hears
the answer's opening while the model is still writing the sentence and its clip is shorter to
make; the join falls where a speaker pauses anyway (a comma), never inside a phrase. Only the
first sentence is cut so: later ones play while earlier ones are heard.

Not thread-safe: one consumer iterates a stream (the turn job's thread); :meth:`ReplyStream.close`
may be called from that thread to abandon it (closes the HTTP response).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from app.errors import ResponderError
from app.responders.base import Reply, trim_reply
from app.speech.canon import is_speakable
from app.speech.pieces import ends_sentence
from app.speech.segment import ends_with_terminal, split_clauses, split_sentences

if TYPE_CHECKING:
    from app.business import Business

MARKER_RE = re.compile(r"\[\s*(END|TRANSFER)\s*\]", re.IGNORECASE)
MARKDOWN_RE = re.compile(r"(\*\*|__|`+|^\s*#+\s*|^\s*[-*\u2022]\s+)", re.MULTILINE)


def clean_text(raw: str) -> str:
    """Spoken text of (part of) a model reply: markers and markdown removed, whitespace collapsed."""
    return " ".join(MARKDOWN_RE.sub("", MARKER_RE.sub(" ", raw)).split())


EARLY_CLAUSE_AFTER_CHARS = 60
"""A first sentence this long (characters written so far) that has not ended plays from its clauses."""
EARLY_CLAUSE_MIN_CHARS = 24
"""The shortest opening handed out early: about 1.2 s of speech, time for the rest's clip to be made."""


def early_clause(sentence: str) -> str | None:
    """The opening of a first sentence still being written that may play on its own, or None.

    ``sentence`` holds whole tokens only. The opening is its clauses (``split_clauses``) but the
    last one, which is still growing: it ends at a natural pause, is at least EARLY_CLAUSE_MIN_CHARS
    long and at least half of ``sentence``, and ``sentence`` is at least EARLY_CLAUSE_AFTER_CHARS long.
    """
    if len(sentence) < EARLY_CLAUSE_AFTER_CHARS:
        return None
    clauses = split_clauses(sentence, min_chars=1)
    if len(clauses) < 2:
        return None
    lead = " ".join(clauses[:-1])
    return lead if len(lead) >= EARLY_CLAUSE_MIN_CHARS and 2 * len(lead) >= len(sentence) else None


class SentenceCutter:
    """Cuts raw model text, fed in pieces, into sentences as each one completes.

    ``feed(delta)`` returns the sentences completed by that delta (possibly none);
    ``finish()`` returns what is left (the last sentence, ``[]`` when nothing speakable is left).
    ``truncated`` at finish drops an unfinished last sentence when earlier ones exist (the model
    hit its token limit mid-sentence), like :func:`~app.responders.openai.parse_content`.
    With ``early_clause`` a long first sentence comes out as its opening (:func:`early_clause`)
    and, once it ends, the rest of it. Joined by single spaces, what comes out is always the text.
    """

    def __init__(self, *, early_clause: bool = False) -> None:
        self.raw = ""
        self._emitted = 0
        self._early = early_clause
        self._lead: str | None = None  # the first sentence's opening, handed out before the sentence ended

    def feed(self, delta: str) -> list[str]:
        self.raw += delta
        cut = max(self.raw.rfind(" "), self.raw.rfind("\n"), self.raw.rfind("\t"))
        if cut <= 0:
            return []
        pieces = [p for p in split_sentences(clean_text(self.raw[:cut])) if is_speakable(p)]
        # The last piece may still grow (its end is not known yet): hand out only the ones before it.
        done = pieces[self._emitted : max(self._emitted, len(pieces) - 1)]
        self._emitted += len(done)
        out = self._after_lead(done)
        if self._early and self._lead is None and self._emitted == 0 and pieces:
            lead = early_clause(pieces[0])
            if lead is not None:
                self._lead = lead
                out.append(lead)
        return out

    def finish(self, *, truncated: bool = False) -> list[str]:
        pieces = [p for p in split_sentences(clean_text(self.raw)) if is_speakable(p)]
        rest = pieces[self._emitted :]
        if truncated and rest and len(pieces) > 1 and not ends_with_terminal(rest[-1]):
            rest = rest[:-1]
        self._emitted += len(rest)
        return self._after_lead(rest)

    def _after_lead(self, sentences: list[str]) -> list[str]:
        """``sentences`` with the opening already handed out taken off the first sentence (once: a
        sentence handed out makes ``_emitted`` positive, so no opening is handed out again)."""
        if self._lead is None or not sentences:
            return list(sentences)
        first, lead = sentences[0], self._lead
        self._lead = None
        if first.startswith(lead):
            rest = first[len(lead):].strip()
        else:  # cleaning changed the opening's text (markdown closed later): drop as many words
            rest = " ".join(first.split()[len(lead.split()):])
        return ([rest] if is_speakable(rest) else []) + list(sentences[1:])


def action_of(raw: str, business: Business) -> str:
    """``end`` / ``transfer`` / ``continue`` from the markers in the raw reply (as parse_content decides)."""
    found = {m.upper() for m in MARKER_RE.findall(raw)}
    if "TRANSFER" in found and business.transfer_number:
        return "transfer"
    if "END" in found:
        return "end"
    return "continue"


EARLY_CLAUSE_SPLICES = ("sentence", "clause")
"""Levels whose pieces may be a first sentence's opening (``phrase`` assembles whole sentences)."""


class ReplyStream:
    """An iterator of a reply's sentences; :attr:`reply` once it is exhausted (see the module docstring).

    ``deltas`` yields raw text pieces and may raise ResponderError; ``truncated`` is asked at the
    end (the model's ``finish_reason`` was ``length``); ``close`` abandons the source.
    ``first_sentence_s`` / ``done_s`` are left to the consumer to measure.
    """

    def __init__(self, deltas: Iterable[str], business: Business, *, truncated: Callable[[], bool] = lambda: False,
                 close: Callable[[], None] | None = None) -> None:
        self._deltas = iter(deltas)
        self._business = business
        self._truncated = truncated
        self._close = close
        self._cutter = SentenceCutter(early_clause=business is not None and business.early_clause
                                      and business.splice in EARLY_CLAUSE_SPLICES)
        self._pending: list[str] = []
        self.sentences: list[str] = []
        self.reply: Reply | None = None
        self.streamed = True

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self._pending:
            if self.reply is not None:
                raise StopIteration
            try:
                delta = next(self._deltas)
            except StopIteration:
                self._pending.extend(self._cutter.finish(truncated=self._truncated()))
                self._finish()
                continue
            self._pending.extend(self._cutter.feed(delta))
        sentence = self._pending.pop(0)
        self.sentences.append(sentence)
        return sentence

    def _finish(self) -> None:
        raw = self._cutter.raw
        action = action_of(raw, self._business)
        if not self._pending and not self.sentences:
            if action in ("end", "transfer"):
                prompt = self._business.prompt("goodbye" if action == "end" else "transfer")
                self._pending.append(prompt)
                self.reply = Reply(prompt, action)
                return
            raise ResponderError(f"the model's reply has nothing to say: {raw[:80]!r}")
        self.reply = Reply(" ".join(self.sentences + self._pending), action)

    def close(self) -> None:
        """Abandon the stream (the turn ended): the source is closed, nothing more is read."""
        if self._close is not None:
            self._close()


def one_shot(reply: Reply) -> ReplyStream:
    """A finished reply as a stream: all its sentences at once; :attr:`ReplyStream.reply` is ``reply`` itself."""
    stream = ReplyStream((), None)  # type: ignore[arg-type]
    stream.streamed = False
    stream._pending = [s for s in split_sentences(reply.text) if is_speakable(s)] or [reply.text]
    stream.reply = reply
    return stream


MIN_TRIM_CHARS = 20
"""The least of an over-long first sentence kept after its opening was said (it ends with a full stop)."""


class SafeStream:
    """The streaming twin of ``safe_reply``: never raises ResponderError; bounded to ``max_chars``.

    A failure before the first sentence ended (nothing said, or only a long first sentence's opening)
    continues with the apology; after a whole sentence the reply is what was said.

    Iterate for sentences; :attr:`reply` afterwards (a finished Reply whose text is exactly the
    sentences yielded). ``failed`` holds the error text when the responder failed.
    """

    def __init__(self, open_stream: Callable[[], ReplyStream], business: Business, max_chars: int,
                 on_error: Callable[[ResponderError], None] | None = None) -> None:
        self._open = open_stream
        self._business = business
        self._max_chars = max_chars
        self._on_error = on_error
        self._inner: ReplyStream | None = None
        self._out: list[str] = []
        self._chars = -1
        self._done = False
        self.reply: Reply | None = None
        self.failed: str | None = None
        self.streamed = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._done:
            raise StopIteration
        try:
            if self._inner is None:
                self._inner = self._open()
                self.streamed = self._inner.streamed
            sentence = next(self._inner)
        except StopIteration:
            return self._end(self._inner.reply if self._inner is not None else None)
        except ResponderError as exc:
            self.failed = str(exc)
            if self._on_error is not None:
                self._on_error(exc)
            if self._said_a_sentence():
                return self._end(Reply(" ".join(self._out), "continue"))
            # Nothing said yet, or only a long first sentence's opening (it stops at a comma): the apology
            # follows, so the caller is not left with half a sentence.
            apology = self._business.prompt("apology")
            # the rest of this stream is the apology; it says why (reports count a responder failure)
            self._inner = one_shot(Reply(apology, "continue", failure=f"{type(exc).__name__}: {exc}"))
            return next(self)
        if self._chars + 1 + len(sentence) > self._max_chars and self._said_a_sentence():
            self.close()  # past the limit: what was said is the reply
            return self._end(Reply(" ".join(self._out), self._inner.reply.action if self._inner.reply else "continue"))
        if self._chars + 1 + len(sentence) > self._max_chars:  # the first sentence (or the rest of it) is too long
            sentence = trim_reply(Reply(sentence), max(MIN_TRIM_CHARS, self._max_chars - self._chars - 1)).text
        self._chars += 1 + len(sentence)
        self._out.append(sentence)
        return sentence

    def _said_a_sentence(self) -> bool:
        """What was yielded so far ends a sentence (not nothing, not only a long first sentence's opening)."""
        return bool(self._out) and ends_sentence(self._out[-1])

    def _end(self, reply: Reply | None) -> str:
        if reply is None or not self._out:
            reply = reply or Reply(self._business.prompt("apology"))
        if self._out and " ".join(reply.text.split()) != " ".join(self._out):
            reply = Reply(" ".join(self._out), reply.action, failure=reply.failure)
        self._finish(reply)
        raise StopIteration

    def _finish(self, reply: Reply) -> None:
        self.reply = reply
        self._done = True

    def close(self) -> None:
        """Abandon the stream; nothing more is read from the responder."""
        self._done = True
        if self._inner is not None:
            self._inner.close()


__all__ = ["EARLY_CLAUSE_AFTER_CHARS", "EARLY_CLAUSE_MIN_CHARS", "ReplyStream", "SafeStream", "SentenceCutter",
           "action_of", "clean_text", "early_clause", "one_shot"]
