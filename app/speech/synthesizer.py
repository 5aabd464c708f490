"""The Synthesizer: text + voice -> a published, immutable clip URL, synthesizing at most once.

``clip()`` is the one way audio is made and published:

    canon(text) -> key -> index hit?  -> URL, with no network request at all
                       -> (singleflight lock on the key, across threads and processes)
                          already in the store? -> index it -> URL
                          provider.synthesize -> validate -> store.put (create-only) -> index -> URL

Safe across threads and processes: a per-process lock per key keeps threads of one worker from
spinning, and a diskcache lock in the shared key index keeps workers of one host from
synthesizing the same key twice. Across hosts, the create-only store makes a duplicate
synthesis harmless (same key, same bytes, first writer wins).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from app.errors import InvalidText, ObjectNotFound, StateError, SynthesisRejected
from app.speech.canon import canon, is_speakable
from app.speech.keys import content_key, object_name
from app.speech.providers.base import TTSProvider
from app.speech.voices import Voice
from app.speech.wav import validate_ulaw_wav
from cdn.index import IndexEntry, KeyIndex
from cdn.store import AudioStore

log = logging.getLogger("warmline.synth")

MAX_CLIP_CHARS = 2000


@dataclass(frozen=True)
class Clip:
    """A published clip. ``source`` is where it came from this time: "index", "store" or "synth"."""

    key: str
    name: str
    url: str
    text: str
    duration_s: float
    source: str
    synth_ms: float = 0.0

    @property
    def hit(self) -> bool:
        """True when no synthesis was needed."""
        return self.source != "synth"

    @property
    def chars(self) -> int:
        return len(self.text)


class Synthesizer:
    """Publishes clips through ``store``, remembering them in ``index``. Thread- and process-safe."""

    def __init__(
        self,
        *,
        store: AudioStore,
        index: KeyIndex | None,
        providers: Mapping[str, TTSProvider],
        lock_expire_s: float = 60.0,
    ) -> None:
        self.store = store
        self.index = index
        self.providers = dict(providers)
        self.lock_expire_s = lock_expire_s
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    @staticmethod
    def prepare(text: str) -> str:
        """canon(text), or InvalidText when there is nothing to say or too much for one clip."""
        spoken = canon(text)
        if not spoken or not is_speakable(spoken):
            raise InvalidText(f"nothing speakable in {text[:40]!r}")
        if len(spoken) > MAX_CLIP_CHARS:
            raise InvalidText(f"{len(spoken)} characters is too long for one clip (max {MAX_CLIP_CHARS}); split it first")
        return spoken

    def lookup(self, text: str, voice: Voice) -> Clip | None:
        """The indexed clip for ``text`` in ``voice``, or None. Never touches the network."""
        spoken = self.prepare(text)
        key = content_key(spoken, voice)
        entry = self._index_get(key)
        if entry is None:
            return None
        return Clip(key, entry.name, entry.url, spoken, entry.duration_s, "index")

    def clip(self, text: str, voice: Voice) -> Clip:
        """Return the published clip of ``text`` in ``voice``, synthesizing and publishing it if needed.

        Raises InvalidText, SynthesisFailed (retryable or not), InvalidAudio or StoreError; on any
        error nothing is published or indexed.
        """
        hit = self.lookup(text, voice)
        if hit is not None:
            return hit
        spoken = self.prepare(text)
        key = content_key(spoken, voice)
        with self._key_lock(key):
            lock = self._shared_lock(key)
            if lock is not None:
                lock.acquire()
            try:
                return self._fill(key, spoken, voice)
            finally:
                if lock is not None:
                    lock.release()

    def _fill(self, key: str, spoken: str, voice: Voice) -> Clip:
        entry = self._index_get(key)
        if entry is not None:
            return Clip(key, entry.name, entry.url, spoken, entry.duration_s, "index")
        name = object_name(key, voice)
        if self.store.exists(name):
            try:
                data = self.store.get(name)
            except ObjectNotFound:
                data = None
            if data is not None:
                duration = validate_ulaw_wav(data, voice.sample_rate)
                url = self.store.url(name)
                self._index_put(key, IndexEntry(url, name, len(data), duration, "store", time.time()))
                return Clip(key, name, url, spoken, duration, "store")
        provider = self.providers.get(voice.provider)
        if provider is None:
            raise SynthesisRejected(f"no provider {voice.provider!r} is configured")
        started = time.perf_counter()
        data = provider.synthesize(spoken, voice)
        synth_ms = (time.perf_counter() - started) * 1000
        duration = validate_ulaw_wav(data, voice.sample_rate)
        url = self.store.put(name, data)
        self._index_put(key, IndexEntry(url, name, len(data), duration, provider.name, time.time()))
        log.info("synthesized key=%s chars=%d ms=%.0f provider=%s", key[:12], len(spoken), synth_ms, provider.name)
        return Clip(key, name, url, spoken, duration, "synth", synth_ms)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._guard:
            lock = self._key_locks.get(key)
            if lock is None:
                if len(self._key_locks) > 4096:
                    self._key_locks = {k: v for k, v in self._key_locks.items() if v.locked()}
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _shared_lock(self, key: str):
        if self.index is None:
            return None
        try:
            return self.index.lock(f"synth:{key}", expire_s=self.lock_expire_s)
        except StateError as exc:
            log.warning("key index unavailable, singleflight is per process only: %s", exc)
            return None

    def _index_get(self, key: str) -> IndexEntry | None:
        if self.index is None:
            return None
        try:
            return self.index.get(key)
        except StateError as exc:
            log.warning("key index unavailable, treating as a miss: %s", exc)
            return None

    def _index_put(self, key: str, entry: IndexEntry) -> None:
        if self.index is None:
            return
        try:
            self.index.put(key, entry)
        except StateError as exc:
            log.warning("key index unavailable, clip published but not indexed: %s", exc)
