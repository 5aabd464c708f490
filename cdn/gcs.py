"""An audio store in a Google Cloud Storage bucket, public behind Cloud CDN.

Objects are ``<prefix>/<name>`` in ``bucket``, uploaded create-only with
``if_generation_match=0`` and ``Cache-Control: public, max-age=31536000, immutable``; a 412
(PreconditionFailed) means the object is already there, which is success for content-addressed
data. Retries are the client library's own: uploads use
``DEFAULT_RETRY_IF_GENERATION_SPECIFIED`` (active because every upload carries the
generation precondition, so a retried upload can never overwrite), reads use ``DEFAULT_RETRY``
(408/429/5xx and connection errors, exponential backoff). ``retry_deadline_s`` bounds the
total time a call may spend retrying.

SDK, auth and transport errors become :class:`~app.errors.StoreUnavailable`. A
``google.cloud.storage.Client`` is thread-safe for these calls (each request builds its own
objects; the underlying ``requests`` session pools connections) — build one per process after
fork, not before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exceptions
from google.cloud.storage.retry import (
    DEFAULT_RETRY,
    DEFAULT_RETRY_IF_GENERATION_SPECIFIED,
    ConditionalRetryPolicy,
    is_generation_specified,
)

from app.errors import ConfigError, ObjectNotFound, StoreUnavailable
from cdn.store import IMMUTABLE_CACHE_CONTROL, check_name, check_object, is_valid_name

PUBLIC_GCS_BASE_URL = "https://storage.googleapis.com"
EMULATOR_PROJECT = "warmline-emulator"
DEFAULT_TIMEOUT_S = 60.0

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_PREFIX_COMPONENT_RE = re.compile(r"[A-Za-z0-9._-]+")

# What a failed call can raise once the library's retries are exhausted: api_core errors
# (HTTP statuses, RetryError), auth errors, the media layer's InvalidResponse/DataCorruption,
# and requests/urllib3/socket errors (all OSError subclasses).
_FOREIGN_ERRORS = (
    api_exceptions.GoogleAPIError,
    auth_exceptions.GoogleAuthError,
    storage_exceptions.InvalidResponse,
    storage_exceptions.DataCorruption,
    OSError,
)


def normalize_prefix(prefix: str) -> str:
    """``prefix`` without leading/trailing slashes; raises ConfigError for empty or odd components."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    parts = stripped.split("/")
    if any(part in (".", "..") or not _PREFIX_COMPONENT_RE.fullmatch(part) for part in parts):
        raise ConfigError(f"GCS prefix {prefix!r}: components must be [A-Za-z0-9._-], no '.', '..' or '//'")
    return stripped


class GCSStore:
    """A create-only object store in a GCS bucket. Keyword-only constructor; no I/O.

    ``prefix`` (e.g. ``"warmline/prod"``) is joined with exactly one slash; ``cdn_base_url``
    (e.g. ``"https://audio.example.com"``) replaces ``https://storage.googleapis.com/<bucket>``
    in public URLs, and the prefix is part of the URL path in both cases.
    ``retry_deadline_s`` caps the library's retrying per call (``None``: the library default,
    120 s); ``timeout_s`` is the per-request HTTP timeout in seconds. Thread-safe.
    """

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        client: storage.Client,
        cdn_base_url: str = "",
        retry_deadline_s: float | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise ConfigError(f"GCS bucket name {bucket!r} is not valid")
        self.bucket_name = bucket
        self.prefix = normalize_prefix(prefix)
        self.cdn_base_url = cdn_base_url.rstrip("/")
        self._client = client
        self._bucket = client.bucket(bucket)
        self._timeout = timeout_s
        if retry_deadline_s is None:
            self._retry: Retry = DEFAULT_RETRY
            self._upload_retry: ConditionalRetryPolicy = DEFAULT_RETRY_IF_GENERATION_SPECIFIED
        else:
            self._retry = DEFAULT_RETRY.with_timeout(retry_deadline_s)
            self._upload_retry = ConditionalRetryPolicy(self._retry, is_generation_specified, ["query_params"])

    def __repr__(self) -> str:
        return f"GCSStore(bucket={self.bucket_name!r}, prefix={self.prefix!r}, cdn_base_url={self.cdn_base_url!r})"

    def blob_name(self, name: str) -> str:
        """The bucket object name of ``name`` (validated): ``<prefix>/<name>``."""
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def url(self, name: str) -> str:
        """The public URL: ``<cdn_base_url or https://storage.googleapis.com/<bucket>>/<prefix>/<name>``."""
        base = self.cdn_base_url or f"{PUBLIC_GCS_BASE_URL}/{self.bucket_name}"
        return f"{base}/{self.blob_name(name)}"

    def put(self, name: str, data: bytes) -> str:
        """Upload ``data`` as ``name`` unless it exists (412 = already there = success); return the URL.

        Raises InvalidObjectName, InvalidAudio (nothing is uploaded) or StoreUnavailable.
        """
        ctype = check_object(name, data)
        blob = self._bucket.blob(self.blob_name(name))
        blob.cache_control = IMMUTABLE_CACHE_CONTROL
        try:
            blob.upload_from_string(
                bytes(data),
                content_type=ctype,
                if_generation_match=0,
                retry=self._upload_retry,
                timeout=self._timeout,
            )
        except api_exceptions.PreconditionFailed:
            pass  # create-only: the object was published before; its bytes stay
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"GCS upload of {name} failed: {exc}") from exc
        return self.url(name)

    def exists(self, name: str) -> bool:
        """True when ``name`` is in the bucket (one small metadata GET)."""
        blob = self._bucket.blob(self.blob_name(name))
        try:
            return bool(blob.exists(retry=self._retry, timeout=self._timeout))
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"GCS exists({name}) failed: {exc}") from exc

    def get(self, name: str) -> bytes:
        """The bytes of ``name``; raises ObjectNotFound or StoreUnavailable."""
        blob = self._bucket.blob(self.blob_name(name))
        try:
            return blob.download_as_bytes(retry=self._retry, timeout=self._timeout)
        except api_exceptions.NotFound as exc:
            raise ObjectNotFound(name) from exc
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"GCS download of {name} failed: {exc}") from exc

    def list(self, prefix: str) -> Iterator[str]:
        """Names (without our prefix) of the well-formed objects whose name starts with ``prefix``.

        Pages lazily through ``list_blobs``, in the bucket's lexicographic order.
        """
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            blobs = self._client.list_blobs(self._bucket, prefix=full_prefix, retry=self._retry, timeout=self._timeout)
            for blob in blobs:
                name = blob.name[strip:]
                if is_valid_name(name):
                    yield name
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"GCS list({prefix!r}) failed: {exc}") from exc

    def delete(self, name: str) -> None:
        """Remove ``name`` (tests and ops only); raises ObjectNotFound when absent."""
        blob = self._bucket.blob(self.blob_name(name))
        try:
            blob.delete(retry=self._retry, timeout=self._timeout)
        except api_exceptions.NotFound as exc:
            raise ObjectNotFound(name) from exc
        except _FOREIGN_ERRORS as exc:
            raise StoreUnavailable(f"GCS delete of {name} failed: {exc}") from exc


def make_gcs_client(project: str | None = None) -> storage.Client:
    """A storage client: the emulator's (anonymous, fake project) when STORAGE_EMULATOR_HOST is set.

    Otherwise application-default credentials; missing credentials raise ConfigError.
    """
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project=project or EMULATOR_PROJECT, credentials=AnonymousCredentials())
    try:
        return storage.Client(project=project)
    except auth_exceptions.DefaultCredentialsError as exc:
        raise ConfigError(f"Google Cloud credentials not found: {exc}") from exc
