"""The private events store: where every host ships its turn events and daily rollups.

It is **not** the clip store. Clips are public (Twilio and the CDN fetch them); turn events hold
what callers said and heard (names, bookings), so they go to a separate location named by
``WARMLINE_EVENTS_STORE``: a local directory (one machine, or a shared mount) or
``gs://bucket[/prefix]`` (a private bucket). :func:`check_private` refuses a location equal to
or inside the public clip store (the same bucket counts: bucket-level IAM makes it all public).

Object names (relative to the location), all create-only (an existing name is never replaced):

    raw/<host>/<YYYY-MM-DD>/<start>-<end>.jsonl   bytes [start, end) of that host's day file
    rollup/<host>/<YYYY-MM-DD>.json               that host's day, aggregated (app.report.rollup)

Byte offsets are 12-digit zero-padded decimals, so chunks list in order and the shipped
offset of a day is the largest ``end``: the store itself is the shipping cursor.

Both implementations are thread- and process-safe (create-only writes; a local put is a
write to a temporary file then ``os.link``, which fails if the name exists).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from app.errors import ConfigError, InvalidObjectName, ObjectNotFound, StoreUnavailable

RAW_RE = re.compile(r"raw/([a-z0-9-]{1,64})/(\d{4}-\d{2}-\d{2})/(\d{12})-(\d{12})\.jsonl")
_HOST_RE = re.compile(r"[a-z0-9-]{1,64}")
ROLLUP_RE = re.compile(r"rollup/([a-z0-9-]{1,64})/(\d{4}-\d{2}-\d{2})\.json")


def raw_name(host: str, day: dt.date, start: int, end: int) -> str:
    return check_name(f"raw/{host}/{day.isoformat()}/{start:012d}-{end:012d}.jsonl")


def rollup_name(host: str, day: dt.date) -> str:
    return check_name(f"rollup/{host}/{day.isoformat()}.json")


def check_name(name: str) -> str:
    """``name`` if it is a raw chunk or rollup name (fixed patterns: no traversal), else InvalidObjectName."""
    if isinstance(name, str) and (RAW_RE.fullmatch(name) or ROLLUP_RE.fullmatch(name)):
        return name
    raise InvalidObjectName(f"not an events-store name ({len(str(name))} chars, starts {str(name)[:24]!r})")


class EventsStore(Protocol):
    """A private, create-only object store for turn events. Implementations are thread-safe.

    Errors: InvalidObjectName, ObjectNotFound, StoreUnavailable.
    """

    location: str

    def put_new(self, name: str, data: bytes) -> bool:
        """Create ``name`` with ``data``; False (nothing written) when it already exists."""
        ...

    def get(self, name: str) -> bytes: ...

    def list(self, prefix: str) -> list[str]:
        """Well-formed names starting with ``prefix``, sorted."""
        ...

    def hosts(self) -> list[str]:
        """Host ids that have shipped anything (raw chunks or rollups), sorted."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""
        ...


class LocalEventsStore:
    """A directory (``0700``), one file per object. Thread- and process-safe (link-based create-only)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def put_new(self, name: str, data: bytes) -> bool:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
                return True
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise StoreUnavailable(f"events store {self.location}: cannot write {name}: {exc}") from exc

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(name) from exc
        except OSError as exc:
            raise StoreUnavailable(f"events store {self.location}: cannot read {name}: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        out = []
        try:
            for dirpath, _dirs, files in os.walk(base):
                rel = os.path.relpath(dirpath, self.root)
                for f in files:
                    name = f if rel == "." else f"{rel}/{f}"
                    if name.startswith(prefix) and (RAW_RE.fullmatch(name) or ROLLUP_RE.fullmatch(name)):
                        out.append(name)
        except OSError as exc:
            raise StoreUnavailable(f"events store {self.location}: cannot list {prefix!r}: {exc}") from exc
        return sorted(out)

    def hosts(self) -> list[str]:
        found: set[str] = set()
        for family in ("raw", "rollup"):
            try:
                found.update(p.name for p in (self.root / family).iterdir() if _HOST_RE.fullmatch(p.name))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreUnavailable(f"events store {self.location}: {exc}") from exc
        return sorted(found)

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not os.access(self.root, os.W_OK):
                raise StoreUnavailable(f"events store {self.location} is not writable")
        except OSError as exc:
            raise StoreUnavailable(f"events store {self.location}: {exc}") from exc


class GCSEventsStore:
    """Objects in a private GCS bucket under ``prefix``. Keyword-only constructor, no I/O; thread-safe."""

    def __init__(self, *, bucket: str, prefix: str = "", client, timeout_s: float = 30.0) -> None:
        from cdn.gcs import normalize_prefix

        self.bucket_name = bucket
        self.prefix = normalize_prefix(prefix)
        self.location = f"gs://{bucket}/{self.prefix}".rstrip("/")
        self._client = client
        self._bucket = client.bucket(bucket)
        self._timeout = timeout_s

    def _blob(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put_new(self, name: str, data: bytes) -> bool:
        from google.api_core import exceptions as api_exceptions

        from cdn.gcs import _FOREIGN_ERRORS

        blob = self._bucket.blob(self._blob(name))
        blob.cache_control = "private, no-store"
        try:
            blob.upload_from_string(bytes(data), content_type="application/x-ndjson" if name.endswith(".jsonl")
                                    else "application/json", if_generation_match=0, timeout=self._timeout)
        except api_exceptions.PreconditionFailed:
            return False
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"events store {self.location}: upload of {name} failed: {exc}") from exc
        return True

    def get(self, name: str) -> bytes:
        from google.api_core import exceptions as api_exceptions

        from cdn.gcs import _FOREIGN_ERRORS

        try:
            return self._bucket.blob(self._blob(name)).download_as_bytes(timeout=self._timeout)
        except api_exceptions.NotFound as exc:
            raise ObjectNotFound(name) from exc
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"events store {self.location}: download of {name} failed: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        from cdn.gcs import _FOREIGN_ERRORS

        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            names = [b.name[strip:] for b in self._client.list_blobs(self._bucket, prefix=full, timeout=self._timeout)]
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"events store {self.location}: list {prefix!r} failed: {exc}") from exc
        return sorted(n for n in names if RAW_RE.fullmatch(n) or ROLLUP_RE.fullmatch(n))

    def hosts(self) -> list[str]:
        from cdn.gcs import _FOREIGN_ERRORS

        found: set[str] = set()
        for family in ("raw/", "rollup/"):
            full = f"{self.prefix}/{family}" if self.prefix else family
            try:
                pages = self._client.list_blobs(self._bucket, prefix=full, delimiter="/", timeout=self._timeout)
                for _page in pages.pages:
                    pass
                found.update(p[len(full):].strip("/") for p in pages.prefixes)
            except _FOREIGN_ERRORS as exc:
                raise StoreUnavailable(f"events store {self.location}: list hosts failed: {exc}") from exc
        return sorted(h for h in found if _HOST_RE.fullmatch(h))

    def ping(self) -> None:
        from cdn.gcs import _FOREIGN_ERRORS

        try:
            list(self._client.list_blobs(self._bucket, prefix=self.prefix, max_results=1, timeout=self._timeout))
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"events store {self.location} unreachable: {exc}") from exc


def _split_gs(location: str) -> tuple[str, str]:
    bucket, _, prefix = location[len("gs://"):].partition("/")
    return bucket, prefix.strip("/")


def check_private(events_store: str, clip_store: str, data_dir: Path) -> None:
    """Raise ConfigError (one line) when ``events_store`` is, or lies inside, the public clip store.

    ``gs://`` in the clip store's bucket is refused whatever the prefix (bucket-level IAM makes
    the whole bucket public); a local directory at or under ``<data_dir>/cdn`` (served at
    ``/cdn``) is refused too.
    """
    if not events_store:
        return
    var = f"WARMLINE_EVENTS_STORE={events_store}"
    if events_store.startswith("gs://"):
        bucket, _ = _split_gs(events_store)
        if not bucket:
            raise ConfigError(f"{var} must be a directory or gs://bucket[/prefix]")
        if clip_store.startswith("gs://") and _split_gs(clip_store)[0] == bucket:
            raise ConfigError(
                f"{var} is inside the public clip store WARMLINE_STORE={clip_store} (bucket {bucket} serves audio "
                "to anyone); turn events hold callers' names and bookings: use a separate private bucket"
            )
        return
    if events_store.startswith(("http:", "https:", "gs:")) or "://" in events_store:
        raise ConfigError(f"{var} must be a directory or gs://bucket[/prefix]")
    public = (Path(data_dir) / "cdn").resolve() if clip_store == "local" else None
    path = Path(events_store).expanduser().resolve()
    if public is not None and (path == public or public in path.parents):
        raise ConfigError(
            f"{var} is inside the public clip store {public} (served at /cdn); turn events hold callers' names and "
            "bookings: use a private directory"
        )


def open_events_store(location: str, clip_store: str, data_dir: Path) -> EventsStore | None:
    """The events store at ``location`` ('' = none: this host keeps its events locally only)."""
    if not location:
        return None
    check_private(location, clip_store, data_dir)
    if location.startswith("gs://"):
        from cdn.gcs import make_gcs_client

        bucket, prefix = _split_gs(location)
        return GCSEventsStore(bucket=bucket, prefix=prefix, client=make_gcs_client())
    return LocalEventsStore(Path(location).expanduser())
