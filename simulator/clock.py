"""Simulated call time: real, or accelerated for benchmarks.

A :class:`Clock` keeps the simulated time of ONE call, in seconds since the clock was made
(the moment the call is placed). Simulated time moves in exactly two ways:

* :meth:`Clock.sleep` -- a *simulated wait*: audio playing, the caller speaking, a pause, the
  network round trip we add to a webhook, the extra time of a media fetch. It advances the
  clock by exactly ``seconds`` and sleeps ``seconds / speed`` of real time. With
  ``Clock(speed=10.0)`` "playing" 5 s of audio takes 0.5 s of wall time and the clock moves
  by 5.0 s, exactly.
* :meth:`Clock.real` (or :meth:`Clock.advance`) -- *real work*: an HTTP request to the server
  under test. The server runs in real time whatever the speed, so the real duration, measured
  with :func:`time.perf_counter`, is added to the simulated clock 1:1. A webhook that takes
  300 ms of wall time costs 300 ms of simulated time at any speed.

Nothing else moves the clock: the simulator's own bookkeeping between those steps (parsing
TwiML, a few microseconds) is not counted, so a timeline with no HTTP in it is exact, and a
timeline with HTTP in it is exact up to the measured request times.

What acceleration distorts, on purpose: work the server does *in the background* while audio
plays (a filler playing while the answer is synthesized) gets ``speed`` times less wall time
than it would on a real call, so at speed 10 a 1 s filler covers only 0.1 s of real
synthesis. Benchmarks that measure how well fillers hide background work should run at
speed 1.0. ``speed=math.inf`` never sleeps at all (pure bookkeeping, for tests of metrics).

Not thread-safe: a clock belongs to one call, and one call runs on one thread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Stopwatch:
    """Real seconds measured by :meth:`Clock.real`; ``elapsed_s`` is set when the block exits."""

    elapsed_s: float = 0.0


class Clock:
    """The simulated time of one call (seconds since creation); see the module docstring.

    ``speed`` is how many simulated seconds pass per real second during simulated waits:
    1.0 is real time, 10.0 ten times faster, ``math.inf`` no sleeping at all.
    ``sleep`` and ``perf_counter`` are injectable for tests.
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        perf_counter: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not speed > 0:  # also rejects NaN
            raise ValueError(f"speed must be positive, got {speed!r}")
        self.speed = float(speed)
        self._sleep = sleep
        self._perf_counter = perf_counter
        self._now = 0.0
        self.real_seconds_slept = 0.0

    def now(self) -> float:
        """Simulated seconds since the clock was made."""
        return self._now

    def to_real(self, seconds: float) -> float:
        """Wall-clock seconds a simulated wait of ``seconds`` takes at this speed."""
        return 0.0 if math.isinf(self.speed) else seconds / self.speed

    def sleep(self, seconds: float) -> None:
        """A simulated wait: advance exactly ``seconds``, sleeping ``seconds / speed`` for real."""
        if seconds < 0:
            raise ValueError(f"cannot wait a negative time: {seconds!r}")
        real = self.to_real(seconds)
        if real > 0:
            self._sleep(real)
            self.real_seconds_slept += real
        self._now += seconds

    def advance(self, seconds: float) -> None:
        """Add ``seconds`` of real work that has already happened (no sleeping)."""
        if seconds < 0:
            raise ValueError(f"cannot advance by a negative time: {seconds!r}")
        self._now += seconds

    @contextmanager
    def real(self) -> Iterator[Stopwatch]:
        """Time the block in real seconds and add them to the simulated clock 1:1.

        The time is added even when the block raises (a timed-out request still took that long).
        """
        watch = Stopwatch()
        start = self._perf_counter()
        try:
            yield watch
        finally:
            watch.elapsed_s = max(0.0, self._perf_counter() - start)
            self._now += watch.elapsed_s

    def __repr__(self) -> str:
        return f"Clock(speed={self.speed:g}, now={self._now:.3f})"
