"""The publish spool: clips the audio store could not take yet, kept on local disk until it can.

When the bucket is down or too slow at the moment a live turn publishes a clip, the synthesizer
writes the clip here instead and the caller hears it from this host's edge (``/cdn/<name>``, the
same object name as in the bucket). A background :class:`SpoolDrainer` publishes spooled clips
to the store when it answers again and indexes them under their bucket URL::

    <root>/objects/tts/v1/<slug>/<kk>/<key>.wav    spooled clips (a create-only LocalStore)
    <root>/sent/<key>                              marker: published; the file stays for ``retain_s``

A published clip stays in the spool for ``retain_s`` (an hour) because a TwiML document that
already names its local URL may still be fetched (Twilio's media proxies fetch when they play);
after that both files are removed. Nothing is ever indexed under a spool URL: the index only
points at the store (the truth), so a lost spool cannot leave dangling index entries.

Safe across threads and processes sharing ``root`` (every gunicorn worker of a host): writes
are atomic (temp file + link), publishing is create-only and idempotent, and two drainers
racing on one clip both succeed. A spooled clip lives on one host's disk: behind a load balancer
the edge request must reach that host (sticky routing), see the README/RELIABILITY notes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.errors import InvalidAudio, ObjectNotFound, StateError, StoreError, StoreUnavailable
from cdn.index import IndexEntry, KeyIndex
from cdn.local import LocalStore
from cdn.names import OBJECT_ROOT
from cdn.store import AudioStore, check_name
from cdn.wav import validate_ulaw_wav

log = logging.getLogger("warmline.spool")

DEFAULT_RETAIN_S = 3600.0


@dataclass(frozen=True)
class DrainReport:
    """What one drain pass did: clips ``published``, ``failed`` to publish, spool files ``removed``, ``pending`` left."""

    published: int
    failed: int
    removed: int
    pending: int


def _key_of(name: str) -> str:
    return name.rsplit("/", 1)[1].removesuffix(".wav")


class Spool:
    """Clips waiting to be published, under ``root``; their URLs are ``<base_url>/<name>`` (the local edge).

    The constructor does no I/O. OSErrors become :class:`~app.errors.StoreUnavailable`.
    Thread- and process-safe (see the module docstring).
    """

    def __init__(self, root: Path | str, base_url: str, *, retain_s: float = DEFAULT_RETAIN_S) -> None:
        self.root = Path(root)
        self.objects = LocalStore(self.root / "objects", base_url)
        self.sent_dir = self.root / "sent"
        self.retain_s = retain_s

    def __repr__(self) -> str:
        return f"Spool(root={str(self.root)!r}, base_url={self.objects.base_url!r})"

    # --- what the synthesizer and the edge use ----------------------------------------------
    def put(self, name: str, data: bytes) -> str:
        """Keep ``data`` as ``name`` (create-only, atomic, validated like any store); return its local URL."""
        return self.objects.put(name, data)

    def url(self, name: str) -> str:
        return self.objects.url(name)

    def exists(self, name: str) -> bool:
        return self.objects.exists(name)

    def get(self, name: str) -> bytes:
        return self.objects.get(name)

    def path(self, name: str) -> Path:
        """The file of ``name`` (it may not exist); raises InvalidObjectName."""
        return self.objects.path(name)

    # --- catch-up ------------------------------------------------------------------------------
    def _marker(self, name: str) -> Path:
        check_name(name)
        return self.sent_dir / _key_of(name)

    def is_sent(self, name: str) -> bool:
        return self._marker(name).is_file()

    def names(self) -> Iterator[str]:
        """Every clip in the spool, published or not."""
        return self.objects.list(OBJECT_ROOT)

    def pending(self) -> list[str]:
        """Clips not yet published, sorted."""
        try:
            return [name for name in self.names() if not self.is_sent(name)]
        except OSError as exc:
            raise StoreUnavailable(f"spool: cannot list {self.root}: {exc}") from exc

    def expired(self, now: float | None = None) -> list[str]:
        """Published clips kept longer than ``retain_s`` (the next drain pass removes them)."""
        now = time.time() if now is None else now
        try:
            markers = list(self.sent_dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(f"spool: cannot list {self.sent_dir}: {exc}") from exc
        old = []
        for marker in markers:
            try:
                if now - marker.stat().st_mtime >= self.retain_s:
                    old.append(marker.name)
            except FileNotFoundError:
                continue
        return sorted(old)

    def mark_sent(self, name: str) -> None:
        marker = self._marker(name)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError as exc:
            raise StoreUnavailable(f"spool: cannot mark {name} as sent: {exc}") from exc

    def drain(self, store: AudioStore, index: KeyIndex | None, *, now: float | None = None) -> DrainReport:
        """Publish every pending clip to ``store`` and index it; drop sent clips older than ``retain_s``.

        Invalid spool files (which ``put`` never writes; a disk may corrupt them) are removed and
        never published. Stops at the first StoreError (the store is still away) and reports
        what is left. Index failures are logged: the clip is published, the index rebuildable.
        """
        now = time.time() if now is None else now
        published = failed = removed = 0
        names = list(self.names())
        for position, name in enumerate(names):
            if self.is_sent(name):
                removed += self._expire(name, now)
                continue
            try:
                outcome = self.publish(name, store, index)
            except StoreError as exc:
                failed += 1
                pending = sum(1 for n in names[position:] if not self.is_sent(n))
                log.warning("spool: store still unavailable (%s); %d clip(s) wait", exc, pending)
                return DrainReport(published, failed, removed, pending)
            published += outcome == "published"
            removed += outcome == "dropped"
        return DrainReport(published, failed, removed, 0)

    def publish(self, name: str, store: AudioStore, index: KeyIndex | None, *, source: str = "spool") -> str:
        """Publish one spooled clip to ``store``, index it (``source`` names where it came from) and mark it sent.

        Returns "published", "dropped" (not valid audio: removed, never published) or "gone" (not in
        the spool: another drainer or uploader finished it). Raises StoreError when the store fails
        (the clip stays pending). Index failures are logged: the clip is published, the index
        rebuildable. Idempotent and safe to race (the store is create-only).
        """
        try:
            data = self.objects.get(name)
            duration = validate_ulaw_wav(data)
        except ObjectNotFound:
            return "gone"
        except InvalidAudio as exc:
            log.error("spool: %s is not valid audio, dropped without publishing: %s", name, exc)
            self._remove(name)
            return "dropped"
        url = store.put(name, data)
        if index is not None:
            try:
                index.put(_key_of(name), IndexEntry(url, name, len(data), duration, source, time.time()))
            except StateError as exc:
                log.warning("spool: %s published but not indexed: %s", name, exc)
        self.mark_sent(name)
        log.info("spool: published %s", name)
        return "published"

    def _expire(self, name: str, now: float) -> int:
        try:
            sent_at = self._marker(name).stat().st_mtime
        except FileNotFoundError:
            return 0
        if now - sent_at < self.retain_s:
            return 0
        self._remove(name)
        return 1

    def _remove(self, name: str) -> None:
        for path in (self.objects.path(name), self._marker(name)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("spool: cannot remove %s: %s", path, exc)


class SpoolDrainer:
    """Runs :meth:`Spool.drain` on a background thread of this process while clips are pending.

    ``poke()`` is cheap and may be called on every request: it starts the thread (at most one
    per process, restarted in a forked child) when the spool holds pending clips, looking at the
    disk at most every ``check_s`` seconds. The thread retries every ``interval_s`` (doubling up
    to ``max_interval_s`` while the store stays away) and exits when nothing is pending (after a
    pass that no ``poke(force=True)`` overlapped: a clip spooled mid-pass is drained too). It is a
    daemon thread: a process may exit mid-drain; the files stay and the next process drains them.
    Thread-safe.
    """

    def __init__(self, spool: Spool, store: AudioStore, index: KeyIndex | None, *, interval_s: float = 1.0,
                 max_interval_s: float = 30.0, check_s: float = 10.0) -> None:
        self.spool = spool
        self.store = store
        self.index = index
        self.interval_s = interval_s
        self.max_interval_s = max_interval_s
        self.check_s = check_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._checked = 0.0
        self._wake = threading.Event()

    def poke(self, *, force: bool = False) -> bool:
        """Make sure pending clips are being drained; True if a drain thread is running now."""
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                if force:
                    self._wake.set()
                return True
            now = time.monotonic()
            if not force and now - self._checked < self.check_s:
                return False
            self._checked = now
            try:
                if not self.spool.pending() and not self.spool.expired():
                    return False
            except StoreError as exc:
                log.warning("spool: cannot look for pending clips: %s", exc)
                return False
            self._pid = os.getpid()
            self._wake.clear()
            self._thread = threading.Thread(target=self._run, name="spool-drain", daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        delay = self.interval_s
        while True:
            try:
                report = self.spool.drain(self.store, self.index)
            except (StoreError, OSError) as exc:
                log.warning("spool: drain failed: %s", exc)
                report = DrainReport(0, 1, 0, 1)
            if report.pending == 0:
                with self._lock:
                    # A clip spooled during this pass is not in its listing: its forced poke found
                    # this thread alive and only set _wake, so look again rather than exit.
                    if not self._wake.is_set():
                        self._thread = None
                        return
                    self._wake.clear()
                continue
            delay = self.interval_s if report.published else min(self.max_interval_s, delay * 2)
            self._wake.wait(delay)
            self._wake.clear()
