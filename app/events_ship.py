"""Shipping this host's turn log to the private events store, continuously and idempotently.

Every ``events_ship_interval_s`` (and once more on shutdown) the host uploads the new complete
lines of each day file as one create-only chunk ``raw/<host>/<day>/<start>-<end>.jsonl`` (byte
range of the local file). The store is the cursor: the shipped offset of a day is the largest
``end`` listed there, so a crash between upload and bookkeeping re-derives it, and no byte is
shipped twice. When a day is closed (``grace`` after UTC midnight) and fully shipped, its
rollup (``app.report.rollup``) is written beside it; the raw chunks stay for drill-down.

One shipper per host: a shipper ships only while it holds an exclusive ``flock`` on
``<events dir>/.ship.lock`` (released by the kernel when its process dies), so N gunicorn
workers ship once, not N times; whoever holds the lock ships every worker's lines (they share
the day files).

Thread-safe: :meth:`Shipper.ship_once` serializes itself with a lock; process-safe via the flock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import StoreError
from app.events_store import RAW_RE, EventsStore, raw_name, rollup_name

log = logging.getLogger("warmline.events")

_DAY_FILE_RE = re.compile(r"^turns-(\d{4}-\d{2}-\d{2})\.jsonl$")
LOCK_NAME = ".ship.lock"
DEFAULT_GRACE = dt.timedelta(minutes=10)


def host_id(raw: str | None = None) -> str:
    """This host's id for object names: ``raw`` (the host_id setting) or the host name, folded to [a-z0-9-]."""
    raw = raw or socket.gethostname()
    folded = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:64].strip("-")
    return folded or "host"


def day_of_file(name: str) -> dt.date | None:
    m = _DAY_FILE_RE.match(name)
    if m is None:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


@dataclass(frozen=True)
class ShipResult:
    """What one :meth:`Shipper.ship_once` did: chunk names uploaded, bytes, rollup names written."""

    chunks: tuple[str, ...] = ()
    bytes: int = 0
    rollups: tuple[str, ...] = ()
    locked_out: bool = False  # another process holds the host's ship lock


class ShipLock:
    """The host's exclusive, non-blocking ship lock (a ``flock``). Not shared between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def shipped_offsets(store: EventsStore, host: str, day: dt.date) -> int:
    """The shipped offset of ``host``'s ``day`` file: the largest chunk end in the store (0 if none)."""
    end = 0
    for name in store.list(f"raw/{host}/{day.isoformat()}/"):
        m = RAW_RE.fullmatch(name)
        if m:
            end = max(end, int(m.group(4)))
    return end


class Shipper:
    """Ships ``directory``'s day files for ``host`` into ``store``. Thread-safe; one per process.

    ``clock`` returns the current UTC datetime (a parameter so tests close days without waiting).
    ``rollup`` builds a day's rollup bytes from the day file's lines (default: app.report.rollup).
    """

    def __init__(self, directory: Path | str, store: EventsStore, host: str, *,
                 clock: Callable[[], dt.datetime] | None = None, grace: dt.timedelta = DEFAULT_GRACE,
                 rollup: Callable[[bytes, str, dt.date], bytes] | None = None) -> None:
        self.directory = Path(directory)
        self.store = store
        self.host = host
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.grace = grace
        self._rollup = rollup
        self.lock = ShipLock(self.directory / LOCK_NAME)
        self._mutex = threading.Lock()
        self._offsets: dict[dt.date, int] = {}
        self._done: set[dt.date] = set()

    def _build_rollup(self, data: bytes, day: dt.date) -> bytes:
        if self._rollup is not None:
            return self._rollup(data, self.host, day)
        from app.report.rollup import rollup_bytes

        return rollup_bytes(data, self.host, day)

    def ship_once(self) -> ShipResult:
        """Upload every complete unshipped line and write rollups of closed days. Raises StoreError."""
        with self._mutex:
            if not self.lock.try_acquire():
                return ShipResult(locked_out=True)
            now = self.clock()
            chunks, rollups, total = [], [], 0
            rolled = {n.rsplit("/", 1)[1][:10] for n in self.store.list(f"rollup/{self.host}/")}
            for path in sorted(self.directory.glob("turns-*.jsonl")):
                day = day_of_file(path.name)
                if day is None or day in self._done:
                    continue
                if day.isoformat() in rolled:
                    self._done.add(day)
                    continue
                offset = self._offsets.get(day)
                if offset is None:
                    offset = shipped_offsets(self.store, self.host, day)
                with path.open("rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
                cut = data.rfind(b"\n") + 1  # complete lines only
                if cut:
                    name = raw_name(self.host, day, offset, offset + cut)
                    self.store.put_new(name, data[:cut])
                    chunks.append(name)
                    total += cut
                    offset += cut
                self._offsets[day] = offset
                closed = now >= dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC) + self.grace
                if closed and cut == len(data):
                    whole = path.read_bytes()[:offset]
                    name = rollup_name(self.host, day)
                    self.store.put_new(name, self._build_rollup(whole, day))
                    rollups.append(name)
                    self._done.add(day)
            if chunks or rollups:
                log.info("shipped %d chunks (%d bytes), %d rollups to %s", len(chunks), total, len(rollups),
                         self.store.location)
            return ShipResult(tuple(chunks), total, tuple(rollups))

    def close(self) -> None:
        with self._mutex:
            self.lock.release()


class ShippingThread:
    """Calls ``shipper.ship_once`` every ``interval_s`` seconds on a daemon thread, and once on :meth:`stop`.

    ``wait`` is the stop event's wait (a parameter for tests). Store errors are logged and retried next time.
    """

    def __init__(self, shipper: Shipper, interval_s: float) -> None:
        self.shipper = shipper
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events-ship", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        try:
            self.shipper.ship_once()
        except (StoreError, OSError) as exc:
            log.warning("shipping turn events failed (will retry): %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._tick()

    def stop(self) -> None:
        """Stop the thread, then ship what is left (on shutdown) and let go of the host's lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._tick()
        self.shipper.close()


def shipper_for(runtime: Any) -> Shipper | None:
    """The runtime's shipper (None without an events store)."""
    store = runtime.events_store
    if store is None:
        return None
    return Shipper(Path(runtime.settings.data_dir) / "events", store, runtime.host)
