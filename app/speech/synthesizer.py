"""The Synthesizer: text + voice -> a published, immutable clip URL, synthesizing at most once.

``clip()`` is the one way audio is made and published:

    canon(text) -> key -> index hit?  -> URL, with no network request at all
                       -> spooled here? -> local URL (the store was away when it was made)
                       -> (singleflight lock on the key, across threads and processes)
                          already in the store? -> index it -> URL
                          provider.synthesize (retried) -> validate -> level + fade -> store.put (create-only)
                                                           -> index -> URL
                                                              store away? -> spool -> local URL
                                        (edge_first: -> spool -> local URL at once; uploaded behind it)

Every clip is brought to one loudness with faded edges before it is published
(``app.speech.audio.finish_ulaw_wav``), whatever the provider. ``assemble()`` makes one clip of an
answer's piece clips with natural pauses at the joins (content-addressed by its pieces' keys and
the pauses, immutable, published like any clip), so the caller hears one clip, not a run of
``<Play>`` verbs with gaps Twilio decides.

A live turn passes a ``deadline`` (epoch seconds) and the business's ``fallbacks``: retryable
failures (429, 5xx, timeouts, cut-off or non-audio bodies) are retried with exponential backoff
and full jitter while time remains, every provider call and store call is bounded by the time
left (a call that does not return in time is abandoned on its daemon thread), and when the
voice cannot make it, the next fallback voice is tried, keeping ``fallback_reserve_s`` for it.
Every voice of the chain, the last one included, and every wait for a key lock or a flock ends
at the deadline: a turn's job never outlives its turn (the caller has heard ``<Say>`` by then).
Without a deadline (precompute, the CLI) a clip is one attempt, as a batch job retries later.

Safe across threads and processes: a per-process lock per key keeps threads of one worker from
spinning, and a ``flock`` beside the shared key index (released by the kernel if its process
dies) keeps workers of one host from synthesizing the same key twice (waited for only until the deadline: a duplicate synthesis is harmless). Across
hosts, the create-only store makes a duplicate synthesis harmless (same key, same bytes, first
writer wins). Nothing that failed validation is ever published, spooled or indexed.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from app.errors import (
    InvalidAudio,
    InvalidText,
    ObjectNotFound,
    SpeechError,
    StateError,
    StoreError,
    StoreUnavailable,
    SynthesisRejected,
    SynthesisRetryable,
)
from app.speech.canon import canon, is_speakable
from app.speech.audio import assemble_ulaw, finish_ulaw_wav
from app.speech.keys import assembled_key, content_key, object_name
from app.speech.pieces import join_pauses, plain
from app.speech.providers.base import TTSProvider
from app.speech.voices import Voice
from app.speech.wav import parse_ulaw_wav, ulaw_wav, validate_ulaw_wav
from cdn.index import IndexEntry, KeyIndex
from cdn.store import AudioStore

log = logging.getLogger("warmline.synth")

MAX_CLIP_CHARS = 2000
DEFAULT_STORE_TIMEOUT_S = 2.0
STORE_AWAY_S = 10.0
INDEX_LOG_EVERY_S = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class Clip:
    """A playable clip. ``source`` is where it came from this time: "index", "store", "spool" or "synth".

    ``voice`` is the slug of the voice that speaks it (a fallback voice when ``fallback``);
    ``spooled`` means the URL is this host's edge because the store could not take it yet.
    """

    key: str
    name: str
    url: str
    text: str
    duration_s: float
    source: str
    synth_ms: float = 0.0
    voice: str = ""
    fallback: bool = False
    spooled: bool = False
    attempts: int = 0
    own_error: str = ""  # with ``fallback``: the error class that stopped the own voice

    @property
    def hit(self) -> bool:
        """True when no synthesis was needed."""
        return self.source != "synth"

    @property
    def chars(self) -> int:
        return len(self.text)


@dataclass(frozen=True)
class RetryPolicy:
    """How a live turn retries one voice: ``attempts`` in all, sleeping a uniform random time in
    ``[0, min(cap_s, base_s * 2**(n-1))]`` after failure n (exponential backoff, full jitter).
    A retry is not started unless ``min_attempt_s`` remain before the voice's deadline."""

    attempts: int = 3
    base_s: float = 0.1
    cap_s: float = 1.0
    min_attempt_s: float = 0.3
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, failures: int) -> float:
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (failures - 1)))


class _Abandoned(Exception):
    """A bounded call did not return in time (translated by the caller)."""


class Synthesizer:
    """Publishes clips through ``store``, remembering them in ``index``. Thread- and process-safe.

    ``spool``: where clips wait when the store fails or is slower than ``store_timeout_s``
    (seconds; defaults to DEFAULT_STORE_TIMEOUT_S when there is a spool, unbounded without).
    After a store failure the live path leaves the store alone for ``store_away_s`` seconds
    (clips go straight to the spool; the drainer keeps trying), so an outage costs one timeout,
    not one per clip.
    ``retry``: the live-turn retry policy. ``fallback_reserve_s``: time kept for the next
    fallback voice when a voice's retries run long. ``max_detached``: how many abandoned calls
    (a hung provider or store) may still be running on daemon threads before new bounded
    calls fail at once instead of piling up.
    ``edge_first`` (with a spool): a new clip of a live turn (one with a deadline) is written to the spool and its local URL returned at
    once, while ``upload_workers`` background threads of this process publish it to the store and
    index it (a failed upload leaves it to the drainer). The caller then hears a fresh clip without
    waiting for the store's upload (~100-200 ms to a bucket); Twilio fetches it from this host's
    edge, which serves another host's fresh clip from the store (see ``cdn.edge``). ``uploads``
    replaces those threads (tests: an executor that runs uploads when told).
    """

    def __init__(
        self,
        *,
        store: AudioStore,
        index: KeyIndex | None,
        providers: Mapping[str, TTSProvider],
        spool: Any | None = None,
        store_timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        fallback_reserve_s: float = 1.5,
        max_detached: int = 32,
        store_away_s: float = STORE_AWAY_S,
        edge_first: bool = False,
        upload_workers: int = 8,
        uploads: Executor | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.providers = dict(providers)
        self.spool = spool
        self.store_timeout_s = store_timeout_s if store_timeout_s is not None else (
            DEFAULT_STORE_TIMEOUT_S if spool is not None else None)
        self.retry = retry or RetryPolicy()
        self.fallback_reserve_s = fallback_reserve_s
        self.store_away_s = store_away_s
        self._store_away_until = 0.0
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._slots = threading.BoundedSemaphore(max_detached)
        self._index_logged = 0.0
        self.drainer = None
        self.edge_first = edge_first and spool is not None
        self.upload_workers = upload_workers
        self._uploads = uploads
        self._uploads_pid = os.getpid() if uploads is not None else 0
        if spool is not None:
            from cdn.spool import SpoolDrainer

            self.drainer = SpoolDrainer(spool, store, index)

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
        """The indexed (or spooled) clip for ``text`` in ``voice``, or None. Never touches the network."""
        spoken = self.prepare(text)
        return self._known(content_key(spoken, voice), spoken, voice)

    def clip(self, text: str, voice: Voice, *, deadline: float | None = None,
             fallbacks: Sequence[Voice] = ()) -> Clip:
        """Return the published clip of ``text`` in ``voice`` (or in a fallback voice), synthesizing if needed.

        ``deadline`` (epoch seconds) bounds the whole call, retries included; None means one
        attempt per voice with no time bound. ``fallbacks`` are tried in order when ``voice``
        fails. Raises InvalidText at once; otherwise, when every voice failed, the error of
        ``voice`` itself (SynthesisFailed, InvalidAudio or StoreError). On any error nothing
        is published, spooled or indexed.
        """
        spoken = self.prepare(text)
        if self.drainer is not None:
            self.drainer.poke()
        chain = [voice, *(v for v in fallbacks if v != voice)]
        first_error: Exception | None = None
        for i, current in enumerate(chain):
            until = deadline
            if deadline is not None and i < len(chain) - 1:
                until = deadline - self.fallback_reserve_s
            try:
                clip = self._clip_one(spoken, current, until, bounded=until is not None)
            except InvalidText:
                raise
            except (SpeechError, StoreError) as exc:
                first_error = first_error or exc
                if i < len(chain) - 1:
                    log.warning("voice %s failed (%s: %s); trying fallback voice %s",
                                current.slug, type(exc).__name__, exc, chain[i + 1].slug)
                continue
            if i:
                log.warning("spoke key=%s in fallback voice %s", clip.key[:12], current.slug)
                return replace(clip, fallback=True, own_error=type(first_error).__name__ if first_error else "")
            return clip
        assert first_error is not None
        raise first_error

    def assemble(self, clips: Sequence[Clip], voice: Voice, pauses_ms: Sequence[int] | None = None, *,
                 deadline: float | None = None) -> Clip:
        """One published clip that plays ``clips`` in order, with natural pauses at the joins.

        ``clips`` are this synthesizer's clips of the pieces of one answer, all in ``voice`` (no
        fallback voice: ValueError). ``pauses_ms[i]`` is the silence after clip i; by default
        :func:`app.speech.pieces.join_pauses` of their texts (0 = a join inside running speech,
        crossfaded). The result's key is :func:`app.speech.keys.assembled_key` of the clips' keys
        and the pauses; its ``source`` is "index" when it was assembled before, else "assembled"
        (no synthesis either way: ``hit`` is True). A single clip is returned as it is.
        Fetches each piece's bytes from the spool or the store (each bounded by the time left
        before ``deadline``, epoch seconds; None = unbounded), which for cached pieces takes
        milliseconds. Raises StoreError / InvalidAudio when a piece cannot be read; nothing is
        published then. Thread- and process-safe like :meth:`clip` (a duplicate assembly writes
        the same bytes under the same name).
        """
        if not clips:
            raise ValueError("nothing to assemble")
        if any(c.fallback or (c.voice and c.voice != voice.slug) for c in clips):
            raise ValueError("clips spoken in another voice cannot be assembled into one clip")
        if len(clips) == 1:
            return clips[0]
        pauses = list(pauses_ms) if pauses_ms is not None else join_pauses([c.text for c in clips])
        key = assembled_key([c.key for c in clips], pauses, voice)
        text = " ".join(plain(c.text) for c in clips)
        entry = self._index_get(key)
        if entry is not None:
            return Clip(key, entry.name, entry.url, text, entry.duration_s, "index", voice=voice.slug)
        name = object_name(key, voice)
        spooled = self._spooled(key, text, voice)
        if spooled is not None:
            return spooled
        started = time.perf_counter()
        parts = [parse_ulaw_wav(self._clip_bytes(c, deadline)).ulaw for c in clips]
        data = ulaw_wav(assemble_ulaw(parts, pauses, voice.sample_rate), voice.sample_rate)
        duration = validate_ulaw_wav(data, voice.sample_rate, max_duration_s=600.0)
        url, spooled_now = self._publish(name, data, deadline, "assembled")
        if not spooled_now:
            self._index_put(key, IndexEntry(url, name, len(data), duration, "assembled", time.time()))
        ms = (time.perf_counter() - started) * 1000
        log.info("assembled key=%s from %d clips in %.0f ms%s", key[:12], len(clips), ms, " spooled" if spooled_now else "")
        return Clip(key, name, url, text, duration, "assembled", ms, voice=voice.slug, spooled=spooled_now)

    def assemble_texts(self, texts: Sequence[str], voice: Voice, *, deadline: float | None = None) -> Clip | None:
        """The one clip of the pieces ``texts`` (as ``split_pieces`` gave them) when every piece is
        already published in ``voice`` (index or spool: local lookups only); None when one is not.

        The live path's entry point: ``lookup`` each piece, then :meth:`assemble` (the pieces' bytes
        are read from the store, bounded by ``deadline``; the assembled clip is indexed, so the
        same answer next time is one index hit). Raises InvalidText, StoreError or InvalidAudio.
        """
        clips = [self.lookup(text, voice) for text in texts]
        if not clips or any(c is None for c in clips):
            return None
        return self.assemble([c for c in clips if c is not None], voice, deadline=deadline)

    def _clip_bytes(self, clip: Clip, deadline: float | None) -> bytes:
        """The published bytes of ``clip``: from the spool when it is spooled, else from the store."""
        if clip.spooled and self.spool is not None:
            return self.spool.get(clip.name)
        try:
            return self._bounded(lambda: self.store.get(clip.name), self._store_timeout(deadline), "store.get")
        except _Abandoned as exc:
            raise StoreUnavailable(str(exc)) from exc

    # --- one voice -----------------------------------------------------------------------------
    def _clip_one(self, spoken: str, voice: Voice, until: float | None, *, bounded: bool) -> Clip:
        """The clip in one voice. ``until`` decides whether a failed attempt is retried; with
        ``bounded`` (every voice of a live turn) each attempt, the key lock and the flock waits are
        also cut off at ``until``."""
        key = content_key(spoken, voice)
        known = self._known(key, spoken, voice)
        if known is not None:
            return known
        provider = self.providers.get(voice.provider)
        if provider is None:
            raise SynthesisRejected(f"no provider {voice.provider!r} is configured")
        if bounded and until is not None and until - time.time() < self.retry.min_attempt_s:
            raise SynthesisRetryable(f"no time left for voice {voice.slug}")
        key_lock = self._key_lock(key)
        wait_s = max(0.0, until - self.retry.min_attempt_s - time.time()) if bounded and until is not None else -1
        if not key_lock.acquire(timeout=wait_s):
            raise SynthesisRetryable(f"another thread is still synthesizing {key[:12]} in voice {voice.slug}")
        try:
            release = self._shared_lock(key, until if bounded else None)
            try:
                return self._fill(key, spoken, voice, provider, until, bounded)
            finally:
                release()
        finally:
            key_lock.release()

    def _known(self, key: str, spoken: str, voice: Voice) -> Clip | None:
        """The clip if it is indexed or spooled here (local lookups only), else None."""
        entry = self._index_get(key)
        if entry is not None:
            return Clip(key, entry.name, entry.url, spoken, entry.duration_s, "index", voice=voice.slug)
        return self._spooled(key, spoken, voice)

    def _fill(self, key: str, spoken: str, voice: Voice, provider: TTSProvider, until: float | None,
              bounded: bool) -> Clip:
        known = self._known(key, spoken, voice)  # again, under the locks: another worker may have made it
        if known is not None:
            return known
        name = object_name(key, voice)
        published = self._from_store(key, name, spoken, voice, until)
        if published is not None:
            return published
        started = time.perf_counter()
        data, attempts = self._synthesize(provider, spoken, voice, until, bounded)
        synth_ms = (time.perf_counter() - started) * 1000
        duration = validate_ulaw_wav(data, voice.sample_rate)
        url, spooled_now = self._publish(name, data, until, provider.name)
        if not spooled_now:
            self._index_put(key, IndexEntry(url, name, len(data), duration, provider.name, time.time()))
        log.info("synthesized key=%s chars=%d ms=%.0f provider=%s attempts=%d%s", key[:12], len(spoken), synth_ms,
                 provider.name, attempts, " spooled" if spooled_now else "")
        return Clip(key, name, url, spoken, duration, "synth", synth_ms, voice=voice.slug, spooled=spooled_now,
                    attempts=attempts)

    def _from_store(self, key: str, name: str, spoken: str, voice: Voice, until: float | None) -> Clip | None:
        """The clip if the store already holds it (then indexed); None if absent or the store is away."""
        if self._store_away():
            return None
        try:
            if not self._bounded(lambda: self.store.exists(name), self._store_timeout(until), "store.exists"):
                return None
            data = self._bounded(lambda: self.store.get(name), self._store_timeout(until), "store.get")
        except ObjectNotFound:
            return None
        except (StoreUnavailable, _Abandoned) as exc:
            if self.spool is None:
                raise _as_store_error(exc) from exc
            self._mark_store_away(exc)
            log.warning("store unavailable while looking up %s (%s); synthesizing", name, exc)
            return None
        duration = validate_ulaw_wav(data, voice.sample_rate)
        url = self.store.url(name)
        self._index_put(key, IndexEntry(url, name, len(data), duration, "store", time.time()))
        return Clip(key, name, url, spoken, duration, "store", voice=voice.slug)

    def _synthesize(self, provider: TTSProvider, spoken: str, voice: Voice, until: float | None,
                    bounded: bool) -> tuple[bytes, int]:
        """The provider's audio, validated; retried (live turns only) while the deadline allows."""
        attempts = 0
        while True:
            attempts += 1
            try:
                timeout = until - time.time() if bounded and until is not None else None
                data = self._bounded(lambda: provider.synthesize(spoken, voice), timeout,
                                     f"{provider.name}.synthesize")
                validate_ulaw_wav(data, voice.sample_rate)
                return finish_ulaw_wav(data), attempts
            except _Abandoned as exc:
                error: SpeechError = SynthesisRetryable(f"{provider.name} gave no audio in time: {exc}")
            except (SynthesisRetryable, InvalidAudio) as exc:
                error = exc
            if until is None or attempts >= self.retry.attempts:
                raise error
            delay = self.retry.delay(attempts)
            if time.time() + delay + self.retry.min_attempt_s > until:
                raise error
            log.warning("%s attempt %d for %s failed (%s: %s); retrying in %.2f s", provider.name, attempts,
                        voice.slug, type(error).__name__, error, delay)
            time.sleep(delay)

    def _publish(self, name: str, data: bytes, until: float | None, source: str) -> tuple[str, bool]:
        """(url, spooled): the store's URL, or the spool's when the store fails, is too slow, or failed
        lately -- or, with ``edge_first``, at once (then uploaded and indexed as ``source`` behind it)."""
        if self.edge_first and until is not None and not self._store_away():
            try:
                url = self.spool.put(name, data)
            except StoreError as exc:
                log.warning("spool unavailable (%s): publishing %s to the store first", exc, name)
            else:
                self._upload_later(name, source)
                return url, True
        if self._store_away():
            return self._spool_put(name, data, StoreUnavailable(f"the store failed less than {self.store_away_s:g} s ago"))
        try:
            return self._bounded(lambda: self.store.put(name, data), self._store_timeout(until), "store.put"), False
        except (StoreUnavailable, _Abandoned) as exc:
            if self.spool is None:
                raise _as_store_error(exc) from exc
            self._mark_store_away(exc)
            return self._spool_put(name, data, exc)

    def _upload_later(self, name: str, source: str) -> None:
        """Publish the spooled ``name`` to the store on an upload thread (the drainer's job if that fails)."""
        with self._guard:
            if self._uploads is None or self._uploads_pid != os.getpid():  # a forked child gets its own threads
                self._uploads = ThreadPoolExecutor(max_workers=self.upload_workers, thread_name_prefix="edge-upload")
                self._uploads_pid = os.getpid()
            uploads = self._uploads
        try:
            uploads.submit(self._upload, name, source)
        except RuntimeError:  # the interpreter is shutting down: the file stays, the next process drains it
            log.warning("upload of %s left to the drainer (shutting down)", name)

    def _upload(self, name: str, source: str) -> None:
        try:
            self.spool.publish(name, self.store, self.index, source=source)
            return
        except StoreError as exc:
            self._mark_store_away(exc)
        except Exception:  # noqa: BLE001 - an upload thread must not die silently; the drainer retries
            log.exception("upload of %s failed; left to the drainer", name)
        if self.drainer is not None:
            self.drainer.poke(force=True)

    def _spool_put(self, name: str, data: bytes, cause: BaseException) -> tuple[str, bool]:
        try:
            url = self.spool.put(name, data)
        except StoreError as spool_exc:
            log.error("store and spool both failed for %s: %s / %s", name, cause, spool_exc)
            raise _as_store_error(cause) from spool_exc
        log.warning("store unavailable (%s): %s spooled, served from this host until published", cause, name)
        if self.drainer is not None:
            self.drainer.poke(force=True)
        return url, True

    def _spooled(self, key: str, spoken: str, voice: Voice) -> Clip | None:
        if self.spool is None:
            return None
        name = object_name(key, voice)
        try:
            if not self.spool.exists(name) or self.spool.is_sent(name):
                return None
        except StoreError as exc:
            log.warning("spool unavailable: %s", exc)
            return None
        try:
            duration = validate_ulaw_wav(self.spool.get(name), voice.sample_rate)
        except (StoreError, InvalidAudio) as exc:
            log.error("spooled clip %s unusable: %s", name, exc)
            return None
        return Clip(key, name, self.spool.url(name), spoken, duration, "spool", voice=voice.slug, spooled=True)

    def _store_away(self) -> bool:
        return self.spool is not None and time.monotonic() < self._store_away_until

    def _mark_store_away(self, exc: BaseException) -> None:
        with self._guard:
            fresh = time.monotonic() >= self._store_away_until
            self._store_away_until = max(self._store_away_until, time.monotonic() + self.store_away_s)
        if fresh:
            log.error("audio store unavailable (%s): spooling new clips for %g s at least", exc, self.store_away_s)

    # --- bounded calls -------------------------------------------------------------------------
    def _store_timeout(self, until: float | None) -> float | None:
        if self.store_timeout_s is None:
            return None
        if until is None:
            return self.store_timeout_s
        return max(0.05, min(self.store_timeout_s, until - time.time()))

    def _bounded(self, fn: Callable[[], T], timeout_s: float | None, what: str) -> T:
        """``fn()``, or _Abandoned when it has not returned after ``timeout_s`` (None: wait forever).

        The call runs on a daemon thread so a hung socket cannot hold the turn (nor keep the
        process from exiting); at most ``max_detached`` such calls run at once.
        """
        if timeout_s is None:
            return fn()
        if timeout_s <= 0:
            raise _Abandoned(f"{what}: no time left")
        if not self._slots.acquire(timeout=min(timeout_s, 0.05)):
            raise _Abandoned(f"{what}: too many calls already hung")
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, re-raised there
                box["error"] = exc
            finally:
                self._slots.release()
                done.set()

        threading.Thread(target=run, name=f"bounded-{what}", daemon=True).start()
        if not done.wait(timeout_s):
            raise _Abandoned(f"{what} did not return within {timeout_s:.2f} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    # --- locks and the index -------------------------------------------------------------------
    def _key_lock(self, key: str) -> threading.Lock:
        with self._guard:
            lock = self._key_locks.get(key)
            if lock is None:
                if len(self._key_locks) > 4096:
                    self._key_locks = {k: v for k, v in self._key_locks.items() if v.locked()}
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _shared_lock(self, key: str, until: float | None) -> Callable[[], None]:
        """Take the cross-process lock on ``key`` (waiting at most until ``until``); returns its release."""
        if self.index is None:
            return _noop
        try:
            lock = self.index.key_lock(key)
            timeout = None if until is None else max(0.0, until - self.retry.min_attempt_s - time.time())
            if not lock.acquire(timeout):
                log.warning("singleflight lock on %s still held; synthesizing anyway", key[:12])
                return _noop
            return lock.release
        except StateError as exc:  # the index is optional here
            self._index_trouble("singleflight is per process only", exc)
            return _noop

    def _index_get(self, key: str) -> IndexEntry | None:
        if self.index is None:
            return None
        try:
            return self.index.get(key)
        except StateError as exc:
            self._index_trouble("treating every lookup as a miss", exc)
            return None

    def _index_put(self, key: str, entry: IndexEntry) -> None:
        if self.index is None:
            return
        try:
            self.index.put(key, entry)
        except StateError as exc:
            self._index_trouble("clips are published but not indexed", exc)

    def _index_trouble(self, consequence: str, exc: BaseException) -> None:
        """One clear ERROR line when the index fails, repeated at most every INDEX_LOG_EVERY_S."""
        now = time.monotonic()
        with self._guard:
            loud = now - self._index_logged >= INDEX_LOG_EVERY_S or not self._index_logged
            if loud:
                self._index_logged = now
        if loud:
            log.error("key index unavailable, serving without it (%s): %s", consequence, exc)
        else:
            log.debug("key index unavailable: %s", exc)


def _noop() -> None:
    return None


def _as_store_error(exc: BaseException) -> StoreError:
    return exc if isinstance(exc, StoreError) else StoreUnavailable(str(exc))


__all__ = ["MAX_CLIP_CHARS", "Clip", "RetryPolicy", "Synthesizer"]
