"""Shared call state: what every gunicorn worker (and every host) knows about a live call.

Two backends with one interface, :class:`CallState`:

- :class:`DiskCallState` — ``diskcache`` in a local directory (the embedded default). Safe
  across threads and across processes *of one host*: every read-modify-write runs inside one
  SQLite ``BEGIN IMMEDIATE`` transaction (``Cache.transact``).
- :class:`RedisCallState` — Redis via redis-py (at scale: any host serves any request of any
  call). Safe across threads, processes and hosts: read-modify-writes use ``WATCH``/``MULTI``
  with retry, leases and deletes are Lua scripts. Single Redis instance (not Cluster). Keys are
  prefixed ``warmline:``.

:func:`open_state` picks one from a string: ``redis://...`` (or ``rediss://``) → Redis, anything
else is a directory for diskcache. Objects are cheap to share between threads; each process
opens its own connections lazily (both libraries reconnect after ``fork``).

Data model (all values JSON: dicts, lists, strings, numbers, booleans, None):

- **call** (per CallSid): ``business``, ``arm``, ``created``, ``history`` (list of
  ``{"role": "caller" | "agent", "text": ...}``), ``last_filler``, ``turn``, ``extra`` (responder
  slots). The store does not enforce the fields; :func:`new_call` builds a complete one.
- **turn** (per CallSid and turn number): the record of :class:`app.voice.turn.Turn` (its one
  owner; :func:`new_turn` here builds a minimal one for tests of the store). Every write of a turn
  stamps ``updated`` (epoch s).
- **lease** (any name): who runs something, until when. A lease named ``turn:<call_sid>:...`` or
  ``call:<call_sid>:...`` belongs to that call and is removed with it (see :func:`app.ids.turn_lease_name`).

Every write takes a TTL in seconds (floats allowed) and (re)sets the entry's expiry, so an
abandoned call disappears by itself. Read-modify-write callbacks (``fn``) receive the current
record — or ``None`` when there is none — and return the record to store. ``fn`` must be a pure
function of its argument: the Redis backend calls it again when another writer got in first.
Exceptions raised by ``fn`` propagate unchanged and nothing is written.

**Fencing.** ``update_turn(..., fence={"gen": 3, "status": "running"})`` writes only while the stored
record still has those field values, checked atomically with the write (inside the diskcache
transaction; inside the Lua script on Redis); otherwise it raises :class:`~app.errors.FencedOut`
and writes nothing. A fenced write never creates a record (a missing one returns None).

**Waiting.** :meth:`wait_turn` is woken by writes, not by a fixed poll: every turn write notifies
this process's waiters at once; writes by other processes arrive over Redis pub/sub (one
subscriber connection per process), and for diskcache (no notification across processes) by a
bounded poll of ``poll_s`` (50 ms by default).

A value that is not
JSON raises ``TypeError`` (``ValueError`` for NaN). Every backend failure (Redis errors,
OSError, SQLite errors, lock timeouts, a corrupt entry) raises :class:`~app.errors.StateError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import sqlite3
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import diskcache
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.errors import FencedOut, StateError
from app.ids import lease_call, valid_state_call_id

log = logging.getLogger("warmline.state")
Record = dict[str, Any]
UpdateFn = Callable[[Record | None], Record]

REDIS_PREFIX = "warmline:"
_WATCH_RETRIES = 2000
REDIS_CHANGES_CHANNEL = REDIS_PREFIX + "turn-changes"


def new_call(business: str, arm: str, *, created: float | None = None) -> Record:
    """A complete, empty call record."""
    return {
        "business": business,
        "arm": arm,
        "created": time.time() if created is None else created,
        "history": [],
        "last_filler": -1,
        "turn": 0,
        "extra": {},
    }


def new_turn(*, started: float | None = None) -> Record:
    """A complete turn record in status ``pending``."""
    now = time.time() if started is None else started
    return {
        "status": "pending",
        "text": None,
        "action": None,
        "sentences": [],
        "error": None,
        "timings": {},
        "started": now,
        "updated": now,
    }


def _check_sid(call_sid: str) -> str:
    if not valid_state_call_id(call_sid):
        raise ValueError(f"not a valid call id for the state store: {call_sid!r}")
    return call_sid


def _check_turn(turn: int) -> int:
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 0:
        raise ValueError(f"turn must be a non-negative int, got {turn!r}")
    return turn


def _check_ttl(ttl_s: float) -> float:
    if not isinstance(ttl_s, (int, float)) or isinstance(ttl_s, bool) or not ttl_s > 0:
        raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
    return float(ttl_s)


def _check_lease(name: str, owner: str | None = None) -> None:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ValueError(f"lease name must be a non-empty string of at most 200 characters, got {name!r}")
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise ValueError(f"lease owner must be a non-empty string, got {owner!r}")


def _dumps(record: Any) -> str:
    if not isinstance(record, dict):
        raise TypeError(f"a state record must be a dict, got {type(record).__name__}")
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def _loads(raw: str | bytes | None, what: str) -> Record | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"corrupt {what} entry: {exc}") from exc
    if not isinstance(value, dict):
        raise StateError(f"corrupt {what} entry: not an object")
    return value


class _FnFailed(Exception):
    """Carries an exception raised by a caller's callback through the backend's error translation."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.exc = exc


def _apply(fn: UpdateFn, current: Record | None, *, stamp: bool = False) -> tuple[Record, str]:
    """Run the caller's callback and serialize its result; its errors travel wrapped in _FnFailed."""
    try:
        new = fn(current)
        if stamp and isinstance(new, dict):
            new = {**new, "updated": time.time()}
        return new, _dumps(new)
    except Exception as exc:  # re-raised unchanged by the backend, outside its translation
        raise _FnFailed(exc) from exc


def _check_fence(current: Record | None, fence: dict[str, Any] | None, key: str) -> None:
    if fence and current is not None:
        for name, value in fence.items():
            if current.get(name) != value:
                raise FencedOut(f"{key}: {name} is {current.get(name)!r}, the writer holds {value!r}")


class _Changes:
    """Wakes this process's waiters on a key when it changes. Thread-safe; one per store object.

    A waiter registers an Event *before* reading the record, so a write between its read and its
    wait is never missed; each write sets (and forgets) the events registered for its key only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[threading.Event]] = {}

    def watch(self, key: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(key, []).append(event)
        return event

    def unwatch(self, key: str, event: threading.Event) -> None:
        with self._lock:
            waiting = self._waiters.get(key)
            if waiting is not None and event in waiting:
                waiting.remove(event)
                if not waiting:
                    del self._waiters[key]

    def touched(self, key: str) -> None:
        with self._lock:
            events = self._waiters.pop(key, ())
        for event in events:
            event.set()


class CallState(Protocol):
    """The shared call-state store. Implementations are safe across threads and processes."""

    def get_call(self, call_sid: str) -> Record | None: ...

    def update_call(self, call_sid: str, fn: UpdateFn, ttl_s: float, *, create: bool = True) -> Record | None: ...

    def delete_call(self, call_sid: str) -> None: ...

    def put_turn(self, call_sid: str, turn: int, record: Record, ttl_s: float) -> None: ...

    def get_turn(self, call_sid: str, turn: int) -> Record | None: ...

    def update_turn(
        self, call_sid: str, turn: int, fn: UpdateFn, ttl_s: float, *, create: bool = True,
        fence: dict[str, Any] | None = None,
    ) -> Record | None: ...

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool: ...

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool: ...

    def release_lease(self, name: str, owner: str) -> bool: ...

    def lease_owner(self, name: str) -> str | None: ...

    def wait_turn(
        self, call_sid: str, turn: int, until: Callable[[Record | None], bool], timeout_s: float, poll_s: float = 0.05
    ) -> Record | None: ...

    def count_calls(self) -> int: ...

    def count_entries(self) -> int: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class _Base(ABC):
    """What both backends share: argument checks, the call and turn records over the backend's
    ``_get``/``_update`` primitives, and polling."""

    @staticmethod
    @abstractmethod
    def _call_key(call_sid: str) -> str: ...

    @staticmethod
    @abstractmethod
    def _turn_key(call_sid: str, turn: int) -> str: ...

    @abstractmethod
    def _group(self, call_sid: str, what: str) -> str | None:
        """How the backend ties a ``what`` ("call" | "turn") record to its call for ``delete_call``."""

    @abstractmethod
    def _get(self, key: str, what: str) -> Record | None: ...

    @abstractmethod
    def _update(
        self, key: str, group: str | None, fn: UpdateFn, ttl_s: float, create: bool, what: str, stamp: bool,
        fence: dict[str, Any] | None = None,
    ) -> Record | None: ...

    _changes: _Changes
    POLL_S = 0.05
    """How often :meth:`wait_turn` re-reads when no notification came (other processes' writes on diskcache)."""

    # calls
    def get_call(self, call_sid: str) -> Record | None:
        return self._get(self._call_key(_check_sid(call_sid)), "call")

    def update_call(self, call_sid: str, fn: UpdateFn, ttl_s: float, *, create: bool = True) -> Record | None:
        """Atomically replace the call with ``fn(call or None)`` and reset its TTL.

        With ``create=False`` a missing call stays missing (``fn`` is not called; returns None).
        """
        _check_sid(call_sid)
        return self._update(self._call_key(call_sid), self._group(call_sid, "call"), fn, ttl_s, create, "call", False)

    # turns
    def put_turn(self, call_sid: str, turn: int, record: Record, ttl_s: float) -> None:
        _check_sid(call_sid)
        _check_turn(turn)
        self._update(self._turn_key(call_sid, turn), self._group(call_sid, "turn"), lambda _cur: record, ttl_s, True,
                     "turn", True)

    def get_turn(self, call_sid: str, turn: int) -> Record | None:
        _check_sid(call_sid)
        _check_turn(turn)
        return self._get(self._turn_key(call_sid, turn), "turn")

    def update_turn(
        self, call_sid: str, turn: int, fn: UpdateFn, ttl_s: float, *, create: bool = True,
        fence: dict[str, Any] | None = None,
    ) -> Record | None:
        """Atomically replace the turn with ``fn(turn or None)`` (``updated`` stamped) and reset its TTL.

        ``fence``: field values the stored record must still have (see the module docstring);
        FencedOut otherwise. With a fence a missing record is never created (returns None).
        """
        _check_sid(call_sid)
        _check_turn(turn)
        return self._update(self._turn_key(call_sid, turn), self._group(call_sid, "turn"), fn, ttl_s,
                            create and not fence, "turn", True, fence or None)

    def wait_turn(
        self, call_sid: str, turn: int, until: Callable[[Record | None], bool], timeout_s: float,
        poll_s: float | None = None,
    ) -> Record | None:
        """Wait until ``until(record)`` holds for turn ``turn`` or ``timeout_s`` passed.

        Returns the last record read (``None`` if there is none): on a timeout that is a record
        for which ``until`` was false, so callers test the record, not the return being set.
        Always reads at least once. Re-reads when a write of the turn is notified (this process's
        writes at once; other processes' over Redis pub/sub), and at least every ``poll_s``
        (default :attr:`POLL_S`), never past the deadline.
        """
        key = self._turn_key(_check_sid(call_sid), _check_turn(turn))
        poll = self.POLL_S if poll_s is None else poll_s
        deadline = time.monotonic() + max(0.0, timeout_s)
        self._listen()
        while True:
            event = self._changes.watch(key)
            try:
                record = self.get_turn(call_sid, turn)
                if until(record):
                    return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return record
                event.wait(min(poll, remaining))
            finally:
                self._changes.unwatch(key, event)

    def _listen(self) -> None:
        """Make sure other processes' writes reach :attr:`_changes` (a no-op where the backend cannot)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# diskcache


class _HostNotifier:
    """Turn-change notices between the processes of one host, over UNIX datagram sockets.

    Each process binds ``<directory>/<pid>.sock`` when it first waits (``directory`` is short, under
    the system's temp dir and named by a hash of the store's path: socket paths are limited to 107 bytes) (a daemon thread hands what it
    receives to :class:`_Changes`); after each turn write a process sends the key to every other
    socket in the directory (the list is re-read at most every ``RESCAN_S``; a socket nobody reads any
    more is removed). Best effort: a notice lost (a full buffer, a process starting) is covered by
    the waiters' bounded poll. Thread-safe; per process (again after a fork).
    """

    RESCAN_S = 1.0

    def __init__(self, directory: Path, changes: _Changes) -> None:
        self.directory = directory
        self.changes = changes
        self._lock = threading.Lock()
        self._pid = 0
        self._sock: socket.socket | None = None
        self._peers: list[str] = []
        self._scanned = 0.0
        self._closed = threading.Event()
        self.active = False  # this process's socket is bound (else its waiters must poll often)
        self._out: tuple[int, socket.socket | None] = (0, None)

    def _mine(self) -> str:
        return str(self.directory / f"{os.getpid()}.sock")

    def listen(self) -> None:
        """Bind this process's socket and start its reader (once per process)."""
        if self._pid == os.getpid() or self._closed.is_set():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self._mine()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # a previous process with this pid
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(path)
            except OSError as exc:
                log.warning("turn-change notices between processes off (waits poll instead): %s", exc)
                self._pid, self.active = os.getpid(), False
                return
            self._sock, self._pid, self._scanned, self.active = sock, os.getpid(), 0.0, True
            threading.Thread(target=self._read, args=(sock,), name="state-changes", daemon=True).start()

    def _read(self, sock: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                data = sock.recv(512)
            except OSError:
                return
            self.changes.touched(data.decode("utf-8", "replace"))

    def notify(self, key: str) -> None:
        """Tell the host's other processes that ``key`` changed (never raises)."""
        if self._closed.is_set():
            return
        now = time.monotonic()
        if now - self._scanned > self.RESCAN_S:
            mine = self._mine()
            try:
                self._peers = [str(p) for p in self.directory.glob("*.sock") if str(p) != mine]
            except OSError:
                self._peers = []
            self._scanned = now
        if not self._peers:
            return
        data = key.encode("utf-8")
        out = self._sender()
        if out is None:
            return
        for peer in list(self._peers):
            try:
                out.sendto(data, peer)
            except BlockingIOError:
                pass  # its buffer is full: that process's waiters poll
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(ValueError):
                    self._peers.remove(peer)
                with contextlib.suppress(OSError, ValueError):
                    if not pid_alive(int(Path(peer).stem)):
                        os.unlink(peer)
            except OSError:
                pass

    def _sender(self) -> socket.socket | None:
        """This process's unbound, non-blocking socket for sending notices (made once per process)."""
        pid, out = self._out
        if pid != os.getpid() or out is None:
            try:
                out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                out.setblocking(False)
            except OSError:
                return None
            self._out = (os.getpid(), out)
        return out

    def close(self) -> None:
        self._closed.set()
        pid, out = self._out
        if out is not None and pid == os.getpid():
            out.close()
        self._out = (0, None)
        if self._sock is not None and self._pid == os.getpid():
            self._sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self._mine())
            with contextlib.suppress(OSError):
                self.directory.rmdir()  # only when no other process of the store is left
        self._sock = None


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` of this host is running (not gone, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc: the pid exists, take it as alive


class DiskCallState(_Base):
    """Call state in a local ``diskcache.Cache`` (one host; all its workers share the directory).

    Thread- and process-safe: diskcache keeps one SQLite connection per thread and per process
    (it reconnects after ``fork``); each read-modify-write is one ``BEGIN IMMEDIATE``
    transaction, so concurrent updates from any thread or process never lose a write. Eviction
    is off (``eviction_policy="none"``): entries leave only by TTL or delete. Every entry of a call
    is tagged with its CallSid, so :meth:`delete_call` removes them in one transaction.
    """

    def __init__(self, directory: str | Path, *, timeout_s: float = 10.0) -> None:
        self.directory = Path(directory)
        self._changes = _Changes()
        self._timeout_s = timeout_s
        self._writer: tuple[int, threading.Lock, int | None] = (os.getpid(), threading.Lock(), None)
        digest = hashlib.sha1(str(self.directory.resolve()).encode()).hexdigest()[:16]
        self._notices = _HostNotifier(Path(tempfile.gettempdir()) / f"warmline-notices-{digest}", self._changes)
        with self._guard():
            self._cache = diskcache.Cache(
                str(self.directory), eviction_policy="none", tag_index=True, timeout=timeout_s
            )

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except _FnFailed as wrapped:
            raise wrapped.exc from None
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"diskcache state at {self.directory}: {exc}") from exc
        except diskcache.Timeout as exc:
            raise StateError(f"diskcache state at {self.directory}: database locked (timeout)") from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, handed on from writer to writer at once, bounded by the store timeout.

        SQLite's busy handler makes a blocked writer sleep and retry (1, 2, 5, ... up to 100 ms a
        try): with dozens of threads in several processes the lock sits idle while writers sleep, and
        some starve past the timeout. Writers therefore queue first on a lock of their process, then on
        an ``flock`` of ``writer.lock`` in the directory shared by the host's processes (polled every
        0.05-1 ms while another process writes, a fraction of one transaction), so SQLite's own lock is
        free whenever a writer gets there. Raises :class:`StateError` past ``timeout_s``.
        """
        pid, lock, fd = self._writer
        if pid != os.getpid():  # forked: a copied lock may look held, an inherited fd shares the parent's flock
            self._writer = (os.getpid(), threading.Lock(), None)
            pid, lock, fd = self._writer
        deadline = time.monotonic() + self._timeout_s
        if not lock.acquire(timeout=self._timeout_s):
            raise StateError(f"diskcache state at {self.directory}: database locked (timeout, in this process)")
        try:
            if fd is None:
                with self._guard():
                    fd = os.open(self.directory / "writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._writer = (pid, lock, fd)
            pause = 0.00005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateError(f"diskcache state at {self.directory}: database locked (timeout)") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.001)
            try:
                with self._guard(), self._cache.transact():
                    yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            lock.release()

    @staticmethod
    def _call_key(call_sid: str) -> str:
        return f"call:{call_sid}"

    @staticmethod
    def _turn_key(call_sid: str, turn: int) -> str:
        return f"turn:{call_sid}:{turn}"

    @staticmethod
    def _lease_key(name: str) -> str:
        return f"lease:{name}"

    def _get(self, key: str, what: str) -> Record | None:
        with self._guard():
            return _loads(self._cache.get(key), what)

    def _update(
        self, key: str, tag: str, fn: UpdateFn, ttl_s: float, create: bool, what: str, stamp: bool,
        fence: dict[str, Any] | None = None,
    ) -> Record | None:
        ttl = _check_ttl(ttl_s)
        with self._writing():
            current = _loads(self._cache.get(key), what)
            if current is None and not create:
                return None
            _check_fence(current, fence, key)
            new, raw = _apply(fn, current, stamp=stamp)
            self._cache.set(key, raw, expire=ttl, tag=tag)
        if what == "turn":
            self._changes.touched(key)
            self._notices.notify(key)
        return new

    def delete_call(self, call_sid: str) -> None:
        """Remove the call, all its turns and its leases, atomically."""
        _check_sid(call_sid)
        with self._writing():
            self._cache.evict(call_sid)

    def _group(self, call_sid: str, what: str) -> str:
        return call_sid  # the diskcache tag every record of the call carries (delete_call evicts it)

    # leases
    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the lease if it is free (absent or expired) or already ours; True if we hold it now."""
        _check_lease(name, owner)
        ttl = _check_ttl(ttl_s)
        key = self._lease_key(name)
        with self._writing():
            current = self._cache.get(key)
            if current is not None and current != owner:
                return False
            self._cache.set(key, owner, expire=ttl, tag=lease_call(name))
            return True

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend the lease to ``ttl_s`` from now, only if ``owner`` still holds it."""
        _check_lease(name, owner)
        ttl = _check_ttl(ttl_s)
        key = self._lease_key(name)
        with self._writing():
            if self._cache.get(key) != owner:
                return False
            self._cache.set(key, owner, expire=ttl, tag=lease_call(name))
            return True

    def release_lease(self, name: str, owner: str) -> bool:
        """Drop the lease if ``owner`` holds it; True if it was released."""
        _check_lease(name, owner)
        key = self._lease_key(name)
        with self._writing():
            if self._cache.get(key) != owner:
                return False
            return bool(self._cache.delete(key))

    def lease_owner(self, name: str) -> str | None:
        _check_lease(name)
        with self._guard():
            owner = self._cache.get(self._lease_key(name))
        return owner if isinstance(owner, str) else None

    # ops
    def count_calls(self) -> int:
        """Live (unexpired) call records. Scans the keys: for soak checks and ops, not hot paths."""
        with self._guard():
            self._cache.expire()
            return sum(1 for key in self._cache.iterkeys() if isinstance(key, str) and key.startswith("call:"))

    def count_entries(self) -> int:
        """Live entries of any kind (calls, turns, leases)."""
        with self._guard():
            self._cache.expire()
            return len(self._cache)

    def ping(self) -> None:
        """Raise StateError unless the database answers a read and the directory is writable.

        A read, not a write transaction: health checks must not queue behind busy writers.
        """
        with self._guard():
            self._cache.get("ping")
        if not os.access(self.directory, os.W_OK):
            raise StateError(f"diskcache state at {self.directory}: directory is not writable")

    POLL_S = 0.25  # other processes' writes arrive as notices; the poll only covers a lost one

    def _listen(self) -> None:
        self._notices.listen()
        if not self._notices.active:
            self.POLL_S = _Base.POLL_S  # no notices: poll as often as before them

    def close(self) -> None:
        self._notices.close()
        pid, _lock, fd = self._writer
        if fd is not None and pid == os.getpid():
            os.close(fd)
            self._writer = (pid, _lock, None)
        with self._guard():
            self._cache.close()


# --------------------------------------------------------------------------------------------
# Redis

# KEYS[1] lease, KEYS[2] call index set or '' ; ARGV owner, ttl_ms
_LUA_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], KEYS[1])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
end
return 1
"""

_LUA_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if KEYS[2] ~= '' then
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
end
return 1
"""

_LUA_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# Compare-and-set of one JSON record, with an optional fence (field values the stored record must have).
# KEYS[1] record, KEYS[2] the call's index set or ''
# ARGV[1] '1' if the record was absent when read, else '0'; ARGV[2] the raw value read;
# ARGV[3] the new raw value; ARGV[4] ttl ms; ARGV[5] fence (a JSON object) or ''; ARGV[6] channel or ''
# Returns 1 written, 0 changed since read (retry), -1 fenced out, -2 gone (fenced write of a missing record)
_LUA_CAS = """
local cur = redis.call('GET', KEYS[1])
if ARGV[5] ~= '' then
  if not cur then return -2 end
  local rec = cjson.decode(cur)
  for name, value in pairs(cjson.decode(ARGV[5])) do
    if rec[name] ~= value then return -1 end
  end
end
if ARGV[1] == '1' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], KEYS[1])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], KEYS[1]) end
return 1
"""

# KEYS[1] call record, KEYS[2] index set of the call's other keys
_LUA_DELETE = """
local members = redis.call('SMEMBERS', KEYS[2])
for _, key in ipairs(members) do redis.call('DEL', key) end
return redis.call('DEL', KEYS[1], KEYS[2]) + #members
"""


class RedisCallState(_Base):
    """Call state in Redis (``redis://host:port/db``); shared by every process on every host.

    Thread- and process-safe: redis-py's connection pool is thread-safe and resets itself in a
    forked child. Updates are optimistic: ``GET``, ``fn``, then one Lua compare-and-set that
    also checks the fence and publishes turn changes (retry on conflict), so ``fn`` may run more
    than once. A per-process daemon thread subscribes to the change channel (lazily, on the first
    :meth:`wait_turn`) and wakes local waiters. TTLs are set in milliseconds (``PX`` /
    ``PEXPIRE``). Each call has an index set of its turn and lease keys (TTL never shorter than
    any member's), so :meth:`delete_call` removes everything in one Lua script without ``SCAN``.
    Socket timeouts are ``socket_timeout_s`` (1 s) with one retry, so a dead Redis costs an
    operation at most ~2 s before StateError.
    """

    POLL_S = 0.25  # notifications carry the news; the poll only covers a lost subscriber connection

    def __init__(self, url: str, *, socket_timeout_s: float = 1.0) -> None:
        self.url = url
        self._changes = _Changes()
        self._listener_pid = 0
        self._listener_lock = threading.Lock()
        self._subscribed = threading.Event()  # the subscriber's SUBSCRIBE was confirmed by the server
        self._closed = threading.Event()
        with self._guard():
            # Bounded: one quick retry (a pooled connection may be stale after a Redis restart), then
            # StateError. A webhook makes several state calls and must answer Twilio within 15 s.
            self._r = redis.Redis.from_url(
                url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s, decode_responses=True,
                retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
            )
            self._acquire = self._r.register_script(_LUA_ACQUIRE)
            self._renew = self._r.register_script(_LUA_RENEW)
            self._release = self._r.register_script(_LUA_RELEASE)
            self._delete = self._r.register_script(_LUA_DELETE)
            self._cas = self._r.register_script(_LUA_CAS)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except _FnFailed as wrapped:
            raise wrapped.exc from None
        except (redis.exceptions.RedisError, OSError) as exc:
            raise StateError(f"redis state: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _call_key(call_sid: str) -> str:
        return f"{REDIS_PREFIX}call:{call_sid}"

    @staticmethod
    def _turn_key(call_sid: str, turn: int) -> str:
        return f"{REDIS_PREFIX}turn:{call_sid}:{turn}"

    @staticmethod
    def _index_key(call_sid: str) -> str:
        return f"{REDIS_PREFIX}keys:{call_sid}"

    @staticmethod
    def _lease_key(name: str) -> str:
        return f"{REDIS_PREFIX}lease:{name}"

    @staticmethod
    def _ms(ttl_s: float) -> int:
        return max(1, round(_check_ttl(ttl_s) * 1000))

    def _get(self, key: str, what: str) -> Record | None:
        with self._guard():
            raw = self._r.get(key)
        return _loads(raw, what)

    def _update(
        self, key: str, index: str | None, fn: UpdateFn, ttl_s: float, create: bool, what: str, stamp: bool,
        fence: dict[str, Any] | None = None,
    ) -> Record | None:
        ttl_ms = self._ms(ttl_s)
        fence_raw = json.dumps(fence, separators=(",", ":")) if fence else ""
        channel = REDIS_CHANGES_CHANNEL if what == "turn" else ""
        with self._guard():
            for _ in range(_WATCH_RETRIES):
                raw_read = self._r.get(key)
                current = _loads(raw_read, what)
                if current is None and not create:
                    return None
                _check_fence(current, fence, key)
                new, raw = _apply(fn, current, stamp=stamp)
                done = self._cas(keys=[key, index or ""],
                                 args=["1" if raw_read is None else "0", raw_read or "", raw, ttl_ms, fence_raw, channel])
                if done == 1:
                    if channel:
                        self._changes.touched(key)
                    return new
                if done == -1:
                    raise FencedOut(f"{key}: fenced out (the record's generation or status moved on)")
                if done == -2:
                    return None
            raise StateError(f"redis state: {key} changed under us {_WATCH_RETRIES} times in a row")

    SUBSCRIBE_WAIT_S = 1.0
    """How long the first wait of a process waits for its subscriber to be confirmed (then it polls)."""

    def _listen(self) -> None:
        """Start this process's subscriber to the turn-change channel (once per process) and wait, at most
        SUBSCRIBE_WAIT_S, until Redis confirmed it: a change published before that would reach nobody,
        and the first waiter would sleep out a whole poll."""
        if self._listener_pid == os.getpid() or self._closed.is_set():
            return
        with self._listener_lock:
            if self._listener_pid == os.getpid():
                return
            self._subscribed = threading.Event()  # a forked child's copy may be set: its subscriber is not
            self._listener_pid = os.getpid()
            threading.Thread(target=self._subscribe, name="state-changes", daemon=True).start()
            self._subscribed.wait(self.SUBSCRIBE_WAIT_S)

    def _subscribe(self) -> None:
        """Forward change notifications to local waiters until closed; reconnect after a failure."""
        pid = os.getpid()
        while not self._closed.is_set() and self._listener_pid == pid:
            pubsub = None
            try:
                pubsub = self._r.pubsub()
                pubsub.subscribe(REDIS_CHANGES_CHANNEL)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") == "subscribe":
                        self._subscribed.set()
                    elif message and message.get("type") == "message":
                        self._changes.touched(message["data"])
            except (redis.exceptions.RedisError, OSError, ValueError) as exc:
                log.debug("turn-change subscriber: %s; resubscribing", exc)
                self._closed.wait(0.5)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(redis.exceptions.RedisError, OSError):
                        pubsub.close()

    def delete_call(self, call_sid: str) -> None:
        """Remove the call, all its turns and its leases, atomically."""
        _check_sid(call_sid)
        with self._guard():
            self._delete(keys=[self._call_key(call_sid), self._index_key(call_sid)])

    def _group(self, call_sid: str, what: str) -> str | None:
        # turns are listed in the call's index set (delete_call removes them); the call key itself is not
        return self._index_key(call_sid) if what == "turn" else None

    # leases
    def _lease_index(self, name: str) -> str:
        call_sid = lease_call(name)
        return self._index_key(call_sid) if call_sid else ""

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the lease if it is free (absent or expired) or already ours; True if we hold it now."""
        _check_lease(name, owner)
        ttl_ms = self._ms(ttl_s)
        with self._guard():
            return bool(self._acquire(keys=[self._lease_key(name), self._lease_index(name)], args=[owner, ttl_ms]))

    def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend the lease to ``ttl_s`` from now, only if ``owner`` still holds it."""
        _check_lease(name, owner)
        ttl_ms = self._ms(ttl_s)
        with self._guard():
            return bool(self._renew(keys=[self._lease_key(name), self._lease_index(name)], args=[owner, ttl_ms]))

    def release_lease(self, name: str, owner: str) -> bool:
        """Drop the lease if ``owner`` holds it; True if it was released."""
        _check_lease(name, owner)
        with self._guard():
            return bool(self._release(keys=[self._lease_key(name)], args=[owner]))

    def lease_owner(self, name: str) -> str | None:
        _check_lease(name)
        with self._guard():
            return self._r.get(self._lease_key(name))

    # ops
    def _count(self, pattern: str) -> int:
        with self._guard():
            return sum(1 for _ in self._r.scan_iter(match=pattern, count=1000))

    def count_calls(self) -> int:
        """Live call records (``SCAN``): for soak checks and ops, not hot paths."""
        return self._count(f"{REDIS_PREFIX}call:*")

    def count_entries(self) -> int:
        """Live ``warmline:`` keys of any kind (calls, turns, leases, index sets)."""
        return self._count(f"{REDIS_PREFIX}*")

    def ping(self) -> None:
        """Raise StateError unless Redis answers PING."""
        with self._guard():
            self._r.ping()

    def close(self) -> None:
        self._closed.set()
        with self._guard():
            self._r.close()


def open_state(url_or_dir: str | Path) -> CallState:
    """``redis://...`` / ``rediss://...`` → :class:`RedisCallState`; anything else is a diskcache directory.

    Does no network I/O (Redis connects on first use); creates the directory for diskcache.
    """
    location = str(url_or_dir)
    if location.startswith(("redis://", "rediss://")):
        return RedisCallState(location)
    if not location:
        raise StateError("no call-state location given")
    return DiskCallState(location)
