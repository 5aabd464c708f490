"""Typed settings, parsed once from ``WARMLINE_*`` environment variables.

Flow: embedded defaults -> environment -> test overrides. Anything malformed raises
:class:`~app.errors.ConfigError` naming the variable, at start-up. Production refuses to start
without its secrets; development and testing get working defaults so ``make run`` needs nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "production", "testing")
DEV_TWILIO_TOKEN = "dev-twilio-auth-token"
DEV_ADMIN_TOKEN = "dev-admin-token"
DEEPGRAM_URL = "https://api.deepgram.com"


@dataclass(frozen=True)
class Settings:
    """Every knob of a Warmline process. Immutable; safe to share across threads."""

    env: str = "development"
    twilio_auth_token: str = DEV_TWILIO_TOKEN
    admin_token: str = DEV_ADMIN_TOKEN
    public_url: str = ""  # e.g. https://warmline.example.com; '' = trust the request (ProxyFix)
    businesses: Path = ROOT / "businesses" / "businesses.toml"
    data_dir: Path = ROOT / "var"
    store: str = "local"  # 'local' or 'gs://bucket/prefix'
    cdn_base_url: str = ""  # public base of the store; '' = this app's /cdn/ (local) or storage.googleapis.com
    state_url: str = ""  # a directory for diskcache, or redis://...; '' = <data_dir>/state
    deepgram_api_key: str = ""
    deepgram_url: str = DEEPGRAM_URL
    llm_url: str = ""
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    # Call flow (seconds unless named _ms).
    instant_budget_ms: int = 300
    hop_s: float = 2.5
    silence_budget_s: float = 0.5  # after a filler, how long tts-ready waits in silence before a second filler
    turn_deadline_s: float = 8.0
    control_tts_timeout_s: float = 4.0
    turn_workers: int = 48  # turn-job threads per process (I/O-bound: they wait on the AI and TTS; see app/runtime.py)
    turn_queue: int = 48  # turn jobs that may wait for a thread; beyond that a turn is refused (admission control)
    call_ttl_s: int = 3600
    lease_s: float = 6.0
    max_speech_chars: int = 2000
    max_request_bytes: int = 64 * 1024
    # Precompute.
    precompute_cron: str = "0 3 * * *"
    precompute_timezone: str = "UTC"
    precompute_days: int = 14
    precompute_min_count: int = 3
    precompute_budget_chars: int = 200_000
    price_per_1k_chars: float = 0.030
    llm_timeout_s: float = 6.0
    host_id: str = ""  # names this host's turn-event files in a shared store; '' = the host name

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def state_location(self) -> str:
        return self.state_url or str(self.data_dir / "state")


# variable name -> (field, parser)
def _path(v: str) -> Path:
    return Path(v).expanduser()


_ENV: dict[str, tuple[str, Any]] = {
    "WARMLINE_ENV": ("env", str),
    "WARMLINE_TWILIO_AUTH_TOKEN": ("twilio_auth_token", str),
    "WARMLINE_ADMIN_TOKEN": ("admin_token", str),
    "WARMLINE_PUBLIC_URL": ("public_url", str),
    "WARMLINE_BUSINESSES": ("businesses", _path),
    "WARMLINE_DATA_DIR": ("data_dir", _path),
    "WARMLINE_STORE": ("store", str),
    "WARMLINE_CDN_BASE_URL": ("cdn_base_url", str),
    "WARMLINE_STATE_URL": ("state_url", str),
    "WARMLINE_DEEPGRAM_API_KEY": ("deepgram_api_key", str),
    "WARMLINE_DEEPGRAM_URL": ("deepgram_url", str),
    "WARMLINE_LLM_URL": ("llm_url", str),
    "WARMLINE_LLM_API_KEY": ("llm_api_key", str),
    "WARMLINE_LLM_MODEL": ("llm_model", str),
    "WARMLINE_INSTANT_BUDGET_MS": ("instant_budget_ms", int),
    "WARMLINE_HOP_S": ("hop_s", float),
    "WARMLINE_SILENCE_BUDGET_S": ("silence_budget_s", float),
    "WARMLINE_TURN_DEADLINE_S": ("turn_deadline_s", float),
    "WARMLINE_CONTROL_TTS_TIMEOUT_S": ("control_tts_timeout_s", float),
    "WARMLINE_TURN_WORKERS": ("turn_workers", int),
    "WARMLINE_TURN_QUEUE": ("turn_queue", int),
    "WARMLINE_CALL_TTL_S": ("call_ttl_s", int),
    "WARMLINE_LEASE_S": ("lease_s", float),
    "WARMLINE_PRECOMPUTE_CRON": ("precompute_cron", str),
    "WARMLINE_PRECOMPUTE_TIMEZONE": ("precompute_timezone", str),
    "WARMLINE_PRECOMPUTE_DAYS": ("precompute_days", int),
    "WARMLINE_PRECOMPUTE_MIN_COUNT": ("precompute_min_count", int),
    "WARMLINE_PRECOMPUTE_BUDGET_CHARS": ("precompute_budget_chars", int),
    "WARMLINE_PRICE_PER_1K_CHARS": ("price_per_1k_chars", float),
    "WARMLINE_LLM_TIMEOUT_S": ("llm_timeout_s", float),
    "WARMLINE_HOST_ID": ("host_id", str),
}
ENV_VARS = tuple(_ENV)


def load_settings(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Parse settings from ``environ`` (default ``os.environ``) then apply ``overrides``.

    Raises ConfigError naming the variable for a malformed value, an unknown WARMLINE_ENV, or a
    production start without ``WARMLINE_TWILIO_AUTH_TOKEN`` / ``WARMLINE_ADMIN_TOKEN`` /
    ``WARMLINE_PUBLIC_URL``.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var, (name, parse) in _ENV.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(f"{var}={raw!r} is not a valid {parse.__name__.lstrip('_')}") from exc
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name, value in (overrides or {}).items():
        if name not in fields:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = value
    env = values.get("env", "development")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"WARMLINE_ENV={env!r} must be one of {', '.join(ENVIRONMENTS)}")
    if env == "production":
        for var, name, dev in (
            ("WARMLINE_TWILIO_AUTH_TOKEN", "twilio_auth_token", DEV_TWILIO_TOKEN),
            ("WARMLINE_ADMIN_TOKEN", "admin_token", DEV_ADMIN_TOKEN),
        ):
            if values.get(name, dev) == dev:
                raise ConfigError(f"{var} is required in production")
        if not values.get("public_url"):
            raise ConfigError("WARMLINE_PUBLIC_URL is required in production (signatures are checked against it)")
    store = values.get("store", "local")
    if store != "local" and not (store.startswith("gs://") and len(store) > 5):
        raise ConfigError(f"WARMLINE_STORE={store!r} must be 'local' or 'gs://bucket[/prefix]'")
    for name in ("instant_budget_ms", "turn_workers", "turn_queue", "call_ttl_s"):
        if name in values and values[name] < 0:
            raise ConfigError(f"WARMLINE_{name.upper()} must not be negative")
    settings = Settings(**values)
    if settings.hop_s * 2 + 1 > 15 or settings.turn_deadline_s > 12:
        raise ConfigError("WARMLINE_HOP_S / WARMLINE_TURN_DEADLINE_S leave no room inside Twilio's 15 s limit")
    return settings


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with ``changes`` applied (for tests and the CLI)."""
    return dataclasses.replace(settings, **changes)


