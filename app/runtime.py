"""The per-process runtime: every long-lived object a request needs, built lazily once per process.

Nothing here does I/O at import or at construction; each resource is created on first use in the
process that uses it (gunicorn forks workers; onnxruntime sessions, httpx pools, SQLite handles and
thread pools must not cross a fork). Access is thread-safe.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
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
        self._pool: ThreadPoolExecutor | None = None
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

        return Synthesizer(store=self.store, index=self.index, providers=self.providers, spool=self.spool)

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

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The bounded per-process pool that runs turn jobs (recreated in a forked child)."""
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(max_workers=max(1, self.settings.turn_workers), thread_name_prefix="turn")
                self._pool_pid = os.getpid()
            return self._pool

    def warm(self) -> None:
        """Load what the first call would otherwise wait for (the Piper voice, the index, the state)."""
        from app.speech.fallback import chain_for

        if any(v.provider == "piper" for b in self.businesses for v in (b.voice, *chain_for(b))):
            self.providers["piper"].synthesize_pcm("Hello.")
        self.index.get("0" * 64)
        self.state.ping()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.shutdown(wait=wait)
                self._pool = None
