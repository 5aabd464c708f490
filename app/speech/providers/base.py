"""What every text-to-speech provider offers, and the text check they all share.

Pure and thread-safe.
"""

from __future__ import annotations

from typing import Protocol

from app.errors import InvalidText
from app.speech.canon import is_speakable
from app.speech.segment import split_clauses, split_sentences
from app.speech.voices import Voice

MAX_CHARS = 2000


class TTSProvider(Protocol):
    """A text-to-speech backend (one module per provider under ``app.speech.providers``).

    ``name`` matches ``Voice.provider``; ``max_concurrency`` is how many ``synthesize`` calls the
    provider usefully runs at once in one process (callers size their pools with it).
    ``synthesize`` returns a complete, validated 8 kHz mono G.711 mu-law WAV file and raises
    InvalidText, SynthesisRetryable, SynthesisRejected or InvalidAudio (all from ``app.errors``).
    Implementations say in their docstring whether they are safe across threads and processes.
    """

    name: str
    max_concurrency: int

    def synthesize(self, text: str, voice: Voice) -> bytes:
        """Speak ``text`` in ``voice``; return the WAV file's bytes."""
        ...


def check_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """Return ``text`` stripped, or raise InvalidText when it cannot be synthesized as one request.

    Rejects empty or whitespace-only text, text without any letter or digit (only punctuation or
    emoji), and text longer than ``max_chars`` characters after stripping (callers split long
    texts into sentences first).
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidText("text is empty")
    if not is_speakable(stripped):
        raise InvalidText(f"nothing speakable in {stripped[:40]!r}: no letter or digit")
    if len(stripped) > max_chars:
        raise InvalidText(f"text is {len(stripped)} characters, the limit is {max_chars}; split it first")
    return stripped


def request_pieces(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, at sentence boundaries.

    Sentences (``split_sentences``) are packed greedily, joined by one space. A sentence longer
    than ``limit`` is split at clauses, then at spaces, and only as a last resort mid-word.
    Pure and thread-safe.
    """
    if len(text) <= limit:
        return [text]
    units: list[str] = []
    for sentence in split_sentences(text):
        units.extend(_fit(sentence, limit))
    return _pack(units, limit)


def _fit(sentence: str, limit: int) -> list[str]:
    """``sentence`` as parts of at most ``limit`` characters (usually just ``[sentence]``)."""
    if len(sentence) <= limit:
        return [sentence]
    parts: list[str] = []
    for clause in split_clauses(sentence):
        if len(clause) <= limit:
            parts.append(clause)
            continue
        # words packed back together; a "word" longer than a request is cut into request-sized chunks
        chunks = [word[i:i + limit] for word in clause.split() for i in range(0, len(word), limit)]
        parts.extend(_pack(chunks, limit))
    return [part for part in parts if part]


def _pack(units: list[str], limit: int) -> list[str]:
    """``units`` joined greedily by single spaces into pieces of at most ``limit`` characters, in order."""
    pieces: list[str] = []
    current = ""
    for unit in units:
        if not current:
            current = unit
        elif len(current) + 1 + len(unit) <= limit:
            current = f"{current} {unit}"
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces
