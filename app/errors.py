"""The one error hierarchy of Warmline.

Foreign exceptions (httpx, google.api_core, onnxruntime, redis, OSError) are translated into
these once, at the boundary that meets them (a provider, a store, a state backend), with
``raise X(...) from exc``. Views translate them into TwiML or HTTP statuses; nothing else
catches ``Exception``.

    WarmlineError
    ├── ConfigError                  settings or a business file is wrong (fail at start-up)
    │   └── BusinessConfigError      names the business and the field
    ├── SpeechError
    │   ├── InvalidText              empty, too long, or nothing speakable in it
    │   ├── InvalidAudio             bytes are not a valid 8 kHz mono mu-law WAV
    │   └── SynthesisFailed          the provider did not give us audio
    │       ├── SynthesisRetryable   429, 5xx, timeouts, connection errors: try again later
    │       └── SynthesisRejected    400/401/403/413/422: the same request will fail again
    ├── StoreError                   the audio store failed
    │   ├── InvalidObjectName        not a well-formed object name (traversal, bad chars)
    │   ├── ObjectNotFound
    │   └── StoreUnavailable         the store could not be reached or answered an error
    ├── StateError                   the shared call-state backend failed
    ├── FencedOut                    a write under a stale generation (or for a turn that ended) was refused
    ├── ResponderError               the AI responder failed (timeout, HTTP error, bad reply)
    ├── SpeculationDropped           a speculative turn's record moved on: its job stops writing
    └── PrecomputeError
        └── PrecomputeLocked         another precompute run holds the lock
"""

from __future__ import annotations


class WarmlineError(Exception):
    """Base of every error Warmline raises on purpose."""


class ConfigError(WarmlineError):
    """Settings are missing or malformed; raised at start-up, never mid-call."""


class BusinessConfigError(ConfigError):
    """A business file is malformed; the message names the business and the field."""

    def __init__(self, business: str, field: str, problem: str) -> None:
        self.business = business
        self.field = field
        self.problem = problem
        super().__init__(f"business {business!r}: field {field!r}: {problem}")


class SpeechError(WarmlineError):
    """Base of the speech layer's errors."""


class InvalidText(SpeechError):
    """Text that cannot be synthesized: empty, too long, or without a speakable character."""


class InvalidAudio(SpeechError):
    """Bytes that are not a valid WAV in the format we publish (8 kHz, mono, G.711 mu-law)."""


class SynthesisFailed(SpeechError):
    """A provider did not produce audio. ``retryable`` says whether trying again may help."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None) -> None:
        self.status = status
        self.request_id = request_id
        super().__init__(message)


class SynthesisRetryable(SynthesisFailed):
    """Rate limited (429), server error (5xx), timeout or connection failure."""

    retryable = True


class SynthesisRejected(SynthesisFailed):
    """The provider refused the request itself (400/401/403/413/422); retrying cannot help."""


class StoreError(WarmlineError):
    """Base of the audio store's errors."""


class InvalidObjectName(StoreError):
    """An object name that is not of the form we publish (rejects traversal and odd characters)."""


class ObjectNotFound(StoreError):
    """The object is not in the store."""


class StoreUnavailable(StoreError):
    """The store could not be reached, or answered with an error."""


class StateError(WarmlineError):
    """The shared call-state backend (diskcache or Redis) failed."""


class FencedOut(WarmlineError):
    """The state store refused a fenced write: the record's generation or status is no longer the writer's.

    Not a failure of the backend: the writer lost its turn (adopted elsewhere, or the turn ended)
    and must stop without writing anything else.
    """


class ResponderError(WarmlineError):
    """The AI responder failed: timeout, HTTP error or an unusable reply."""


class SpeculationDropped(WarmlineError):
    """A speculative turn was discarded (or a newer one started): its job must stop writing."""


class PrecomputeError(WarmlineError):
    """A precompute run failed as a whole."""


class PrecomputeLocked(PrecomputeError):
    """Another precompute run holds the lock."""
