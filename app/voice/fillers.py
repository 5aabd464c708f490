"""Choosing a filler from the predicted wait: a filler is a delay too.

Once a ``<Play>`` starts, Twilio fetches the next document only when it ends, so a 1.4 s filler is a
1.4 s floor on the answer when the answer is ready after 0.6 s. :class:`WaitPredictor` keeps, per
business, how long recent answers took to become playable (first piece ready, seconds from the start
of the turn's job); :func:`choose` picks, among the phrases a business may bridge with, the longest
one that still ends before the answer is expected -- a very short acknowledgement ("Sure.") when the
answer is close, the longer filler only when a long wait is expected -- and the shortest one when none
fits (the silence budget still has to be kept). Once enough turns were seen, :func:`choose_by_start`
does better: it plays each phrase against every recent wait and picks the one after which the answer
is expected to *start* soonest. An answer that becomes ready while a phrase plays waits for the phrase
to end (Twilio asks for the next document only then), so the shortest phrase is not always the
quickest: "Sure." ending just before a typical answer is ready costs a whole bridge more. :func:`worth_bridging` says whether a bridge should
start at all: not when the answer is expected within the shortest phrase's length.

Durations come from the clips' own headers (the key index), so they are what the caller hears.
Thread-safe: the predictor locks its samples; the rest is pure.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

DEFAULT_WAIT_S = 1.2
"""What the first turns of a process expect before anything was observed (an LLM reply plus a clip)."""
MIN_SAMPLES = 4
OVERHEAD_S = 0.15
"""What follows a filler before the answer can play: the redirect's round trip and the clip's first fetch."""
SORRY_AFTER_S = 3.0
"""A caller who has waited this long hears an honest "sorry for the wait" (once) rather than another filler."""
GRACE_S = 0.05
"""How much longer than the silence budget a hop may wait when the answer is expected within it (no bridge)."""


class WaitPredictor:
    """Rolling per-business seconds from a turn job's start to its first playable piece. Thread-safe.

    ``quantile``: which of the recent times counts as "expected". A low one (the first quartile by
    default) keeps a filler short enough not to delay the quicker answers: a filler that outlasts the
    wait is a delay, a bridge after it only a short phrase.
    """

    def __init__(self, window: int = 64, quantile: float = 0.25) -> None:
        if not 0 < quantile < 1:
            raise ValueError("quantile must be between 0 and 1")
        self.window = window
        self.quantile = quantile
        self._samples: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def observe(self, business_id: str, first_piece_s: float | None) -> None:
        if first_piece_s is None or first_piece_s < 0:
            return
        with self._lock:
            self._samples.setdefault(business_id, deque(maxlen=self.window)).append(float(first_piece_s))

    def expected_s(self, business_id: str) -> float:
        """The ``quantile`` of recent first-piece times (DEFAULT_WAIT_S before MIN_SAMPLES were seen)."""
        with self._lock:
            samples = sorted(self._samples.get(business_id, ()))
        if len(samples) < MIN_SAMPLES:
            return DEFAULT_WAIT_S
        return samples[min(len(samples) - 1, int(self.quantile * len(samples)))]

    def recent(self, business_id: str) -> list[float]:
        """The recent first-piece times of ``business_id`` (seconds from the job's start), oldest first."""
        with self._lock:
            return list(self._samples.get(business_id, ()))

    def remaining_s(self, business_id: str, elapsed_s: float) -> float:
        """How much longer the answer is expected to take, ``elapsed_s`` after its job started (>= 0)."""
        return max(0.0, self.expected_s(business_id) - max(0.0, elapsed_s))


def choose(phrases: Sequence[tuple[str, float]], remaining_s: float, *, avoid: str | None = None) -> str:
    """The longest phrase that ends before the answer is expected (``remaining_s`` minus OVERHEAD_S),
    else the shortest; never ``avoid`` (the phrase just played) when another one exists.

    ``phrases``: (text, duration in seconds); must not be empty.
    """
    if not phrases:
        raise ValueError("no phrases to choose from")
    pool = [p for p in phrases if p[0] != avoid] or list(phrases)
    room = remaining_s - OVERHEAD_S
    fitting = [p for p in pool if p[1] <= room]
    if fitting:
        return max(fitting, key=lambda p: (p[1], p[0]))[0]
    return min(pool, key=lambda p: (p[1], p[0]))[0]


def answer_start_s(ready_s: float, elapsed_s: float, first_s: float, bridge_s: float, window_s: float,
                   overhead_s: float = OVERHEAD_S) -> float:
    """When an answer ready ``ready_s`` into its job starts playing (job time, fetch not counted), if a
    phrase of ``first_s`` seconds starts ``elapsed_s`` into the job and bridges of ``bridge_s`` follow.

    After a phrase, Twilio's next request arrives ``overhead_s`` later and waits at most ``window_s``
    for the answer (the silence budget) before the next bridge starts; an answer ready while a phrase
    plays starts when that request arrives.
    """
    start, length = elapsed_s, first_s
    while True:
        hop = start + length + overhead_s
        if ready_s <= hop:
            return hop
        if ready_s <= hop + window_s:
            return ready_s
        start, length = hop + window_s, bridge_s


def choose_by_start(phrases: Sequence[tuple[str, float]], samples: Sequence[float], elapsed_s: float, *,
                    window_s: float, overhead_s: float = OVERHEAD_S, avoid: str | None = None) -> str | None:
    """The phrase after which the answer is expected to start soonest, or None without enough evidence.

    ``samples``: recent first-piece times of the business (seconds from the job's start); only those
    later than ``elapsed_s`` (the job time now) count -- the answer is not ready yet. Each phrase is
    scored by the mean start (:func:`answer_start_s`, bridges after it the shortest phrase) over them;
    ties go to the shorter phrase. None when fewer than MIN_SAMPLES samples are left (the caller falls
    back to :func:`choose`). Never ``avoid`` when another phrase exists.
    """
    pending = [r for r in samples if r > elapsed_s]
    pool = [p for p in phrases if p[0] != avoid] or list(phrases)
    if len(pending) < MIN_SAMPLES or not pool:
        return None
    bridge_s = min(d for _, d in phrases)

    def score(phrase: tuple[str, float]) -> tuple[float, float, str]:
        starts = [answer_start_s(r, elapsed_s, phrase[1], bridge_s, window_s, overhead_s) for r in pending]
        return round(sum(starts) / len(starts), 6), phrase[1], phrase[0]

    return min(pool, key=score)[0]


def worth_bridging(phrases: Sequence[tuple[str, float]], remaining_s: float) -> bool:
    """False when the answer is expected within the shortest phrase's length: a bridge would only delay it."""
    if not phrases:
        return False
    return remaining_s > min(d for _, d in phrases)


PREDICTOR = WaitPredictor()
"""This process's predictor: turn jobs teach it (first piece ready), webhooks ask it."""

__all__ = ["GRACE_S", "PREDICTOR", "SORRY_AFTER_S", "DEFAULT_WAIT_S", "OVERHEAD_S", "WaitPredictor", "answer_start_s",
           "choose", "choose_by_start", "worth_bridging"]
