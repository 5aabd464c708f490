"""The per-process runtime: every long-lived object a request needs, built lazily once per process.

Nothing here does I/O at import or at construction; each resource is created on first use in the
process that uses it (gunicorn forks workers; onnxruntime sessions, httpx pools, SQLite handles and
thread pools must not cross a fork). Access is thread-safe.

Pools (per process, all :class:`~app.voice.pool.BoundedPool`: a full pool refuses, it never queues
without bound):

- ``pool`` -- turn jobs: ``WARMLINE_TURN_WORKERS`` threads (48) + ``WARMLINE_TURN_QUEUE`` waiting
  (48). A turn job waits on the network almost all its life (AI 0.5-1.5 s, TTS, store), so a
  thread costs a stack and a GIL hand-off, not a core: at 200 calls per host (2 gunicorn workers)
  and a turn every ~6 s of conversation taking ~1.5 s, about 25 turns are in flight per process,
  50 at peaks. A fully cached answer from the embedded responder never reaches the pool (the
  ``process`` request thread answers it inline). A refused turn is answered at once with the
  apology (the host is overloaded: say so rather than queue the caller into silence).
- ``control_pool`` -- the control arm's parallel synthesis (its own threads, so neither arm's
  latency includes the other's queue); abandoned futures are cancelled.
- ``background_pool`` -- best-effort synthesis of a fixed phrase that was not precomputed (2 threads;
  dropped when full: the next caller may ask again).
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from app.business import Businesses
from app.config import Settings
from app.events import EventLog


class Runtime:
    """Holds settings, businesses and lazily built services. One per app, shared by its threads."""

    def __init__(self, settings: Settings, businesses: Businesses, overrides: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.businesses = businesses
        self._overrides = dict(overrides or {})
        self._lock = threading.RLock()
        self._pools: dict[str, Any] = {}
        self._pool_pid = 0
        for name, value in self._overrides.items():
            self.__dict__[name] = value  # pre-seeds cached_property values (tests inject fakes here)

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    @cached_property
    def store(self):
        from cdn.local import LocalStore

        s = self.settings
        if s.store == "local":
            base = s.cdn_base_url or (s.public_url.rstrip("/") + "/cdn" if s.public_url else "/cdn")
            return LocalStore(self.data_dir / "cdn", base)
        from cdn.gcs import GCSStore, make_gcs_client

        bucket, _, prefix = s.store[len("gs://"):].partition("/")
        return GCSStore(bucket=bucket, prefix=prefix, client=make_gcs_client(), cdn_base_url=s.cdn_base_url)

    @cached_property
    def index(self):
        from cdn.index import KeyIndex

        return KeyIndex(self.data_dir / "index")

    @cached_property
    def providers(self) -> dict[str, Any]:
        from app.speech.providers.piper import PiperProvider

        providers: dict[str, Any] = {"piper": PiperProvider()}
        if self.settings.deepgram_api_key:
            from app.speech.providers.deepgram import DeepgramProvider, make_deepgram_client

            providers["deepgram"] = DeepgramProvider(
                client=make_deepgram_client(), api_key=self.settings.deepgram_api_key, base_url=self.settings.deepgram_url
            )
        return providers

    @cached_property
    def synthesizer(self):
        from app.speech.synthesizer import Synthesizer

        return Synthesizer(store=self.store, index=self.index, providers=self.providers, spool=self.spool,
                           edge_first=self.settings.edge_first)

    @property
    def edge_base_url(self) -> str:
        """The public base of this app's own ``/cdn`` edge (absolute when ``public_url`` is set)."""
        s = self.settings
        return s.public_url.rstrip("/") + "/cdn" if s.public_url else "/cdn"

    @cached_property
    def spool(self):
        """Where clips wait, served by this host's edge, while a remote store cannot take them (None for the local store)."""
        if self.settings.store == "local":
            return None
        from cdn.spool import Spool

        return Spool(self.data_dir / "spool", self.edge_base_url)

    @cached_property
    def state(self):
        from app.state import open_state

        return open_state(self.settings.state_location)

    @cached_property
    def host(self) -> str:
        """This host's id (``WARMLINE_HOST_ID`` or the host name, folded to [a-z0-9-])."""
        from app.events_ship import host_id

        return host_id(self.settings.host_id)

    @cached_property
    def events(self) -> EventLog:
        return EventLog(self.data_dir / "events", host=self.host)

    @cached_property
    def events_store(self):
        """The private events store every host ships to (None: events stay on this host)."""
        from app.events_store import open_events_store

        s = self.settings
        return open_events_store(s.events_store, s.store, self.data_dir)

    def start_shipping(self) -> None:
        """Ship this host's turn events every ``events_ship_interval_s`` (one shipper per host: a flock)."""
        from app.events_ship import ShippingThread, shipper_for

        with self._lock:
            if getattr(self, "_shipping", None) is not None:
                return
            shipper = shipper_for(self)
            if shipper is None:
                return
            self._shipping = ShippingThread(shipper, self.settings.events_ship_interval_s)
            self._shipping.start()

    def stop_shipping(self) -> None:
        """Stop the shipping thread, shipping what is left first (on shutdown)."""
        with self._lock:
            shipping, self._shipping = getattr(self, "_shipping", None), None
        if shipping is not None:
            shipping.stop()

    @cached_property
    def responder(self):
        from app.responders import make_responder

        return make_responder(self.settings)

    def _bounded_pool(self, name: str, workers: int, queue: int):
        """This process's pool ``name`` (made on first use; new ones in a forked child)."""
        from app.voice.pool import BoundedPool

        with self._lock:
            if self._pool_pid != os.getpid():
                self._pools = {}
                self._pool_pid = os.getpid()
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = BoundedPool(workers=max(1, workers), queue=max(0, queue), name=name)
            return pool

    @property
    def pool(self):
        """Turn jobs (see the module docstring)."""
        if "pool" in self._overrides:
            return self._overrides["pool"]
        s = self.settings
        return self._bounded_pool("turn", s.turn_workers, s.turn_queue)

    @property
    def control_pool(self):
        """The control arm's parallel synthesis (its own threads)."""
        s = self.settings
        return self._bounded_pool("control", s.turn_workers, s.turn_queue)

    @property
    def background_pool(self):
        """Best-effort synthesis of fixed phrases that were not precomputed."""
        return self._bounded_pool("background", 2, 64)

    def warm(self) -> None:
        """Load what the first call would otherwise wait for (the Piper voice, the index, the state)."""
        from app.speech.fallback import chain_for

        if any(v.provider == "piper" for b in self.businesses for v in (b.voice, *chain_for(b))):
            self.providers["piper"].synthesize_pcm("Hello.")
        self.index.get("0" * 64)
        self.state.ping()

    def shutdown(self, wait: bool = True) -> None:
        """Finish (``wait``) the jobs of this process's pools and stop them; stop the turn engine's heartbeat."""
        with self._lock:
            pools = list(self._pools.values()) if self._pool_pid == os.getpid() else []
            self._pools = {}
        for pool in pools:
            pool.shutdown(wait=wait)
        flow = self.__dict__.get("flow")
        if flow is not None:
            flow.engine.close()
