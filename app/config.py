"""Typed settings, parsed once from ``WARMLINE_*`` environment variables.

Flow: embedded defaults -> environment -> test overrides. Every problem is collected before
anything is raised: :class:`~app.errors.ConfigError` carries one line per problem (its message is
those lines joined by newlines), each naming the variable, so an operator fixes them all in one go.

Fail closed: the published development tokens (:data:`DEV_TWILIO_TOKEN`, :data:`DEV_ADMIN_TOKEN`)
only ever serve loopback. A non-loopback bind (``WARMLINE_BIND`` or gunicorn's own ``bind``) or a
``WARMLINE_PUBLIC_URL`` on a non-loopback host needs real secrets in every environment; production
needs them (and ``WARMLINE_PUBLIC_URL``) always. ``make run`` (development, 127.0.0.1) needs nothing.

Pure and thread-safe.
"""

from __future__ import annotations

import dataclasses
import os
import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "production", "testing")
DEV_TWILIO_TOKEN = "dev-twilio-auth-token"
DEV_ADMIN_TOKEN = "dev-admin-token"
DEEPGRAM_URL = "https://api.deepgram.com"
DEFAULT_BIND = "127.0.0.1:8000"
TWILIO_TIMEOUT_S = 15.0  # Twilio waits this long for a webhook's TwiML, then tries the Fallback URL
MIN_SECRET_CHARS = 16


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
    silence_budget_s: float = 0.4  # a tts-ready hop waits this long in silence, then bridges (+ network: ~0.6 s heard)
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
    llm_stream: bool = True  # ask the LLM for a streamed reply (the first sentence is synthesized while it writes)
    # Answering sooner (issue 11).
    synth_workers: int = 16  # clip syntheses in flight per host, split over its workers (about the TTS provider's concurrency)
    clips_per_turn: int = 3  # clips of one answer made at once
    edge_first: bool = True  # with a remote store: a live turn's new clip plays from this host's /cdn while it uploads
    speculate_quiet_s: float = 0.35  # a complete-looking transcript unchanged this long starts a speculation
    host_id: str = ""  # names this host's turn-event files in a shared store; '' = the host name
    # Turn events and reports (issue 12): a private store, never the public clip store.
    events_store: str = ""  # a directory or gs://bucket/prefix; '' = events stay on this host
    events_ship_interval_s: float = 60.0  # how often a host ships its new events
    min_distinct_calls: int = 3  # a sentence is listed (report, plan) only once heard in this many calls
    # Serving (gunicorn reads these; the bind also decides whether dev tokens may be used).
    bind: tuple[str, ...] = (DEFAULT_BIND,)
    workers: int = field(default_factory=lambda: len(os.sched_getaffinity(0)) + 1)  # as gunicorn.conf.py
    threads: int = 64  # gunicorn threads per worker (see gunicorn.conf.py)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def synth_per_process(self) -> int:
        """Clip syntheses in flight in one worker: the host's ``synth_workers`` over its ``workers``, at least 1."""
        return max(1, -(-self.synth_workers // self.workers))

    @property
    def state_location(self) -> str:
        return self.state_url or str(self.data_dir / "state")


# variable name -> (field, parser)
def _path(v: str) -> Path:
    return Path(v).expanduser()


def _bool(v: str) -> bool:
    lowered = v.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(v)


_bool.__name__ = "boolean (true/false)"


def _number(v: str) -> float:
    value = float(v)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


_number.__name__ = "finite number"


def _binds(v: str) -> tuple[str, ...]:
    parts = tuple(p for p in v.replace(",", " ").split() if p)
    if not parts:
        raise ValueError("empty")
    return parts


_binds.__name__ = "bind address list"


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
    "WARMLINE_HOP_S": ("hop_s", _number),
    "WARMLINE_SILENCE_BUDGET_S": ("silence_budget_s", _number),
    "WARMLINE_TURN_DEADLINE_S": ("turn_deadline_s", _number),
    "WARMLINE_CONTROL_TTS_TIMEOUT_S": ("control_tts_timeout_s", _number),
    "WARMLINE_TURN_WORKERS": ("turn_workers", int),
    "WARMLINE_TURN_QUEUE": ("turn_queue", int),
    "WARMLINE_CALL_TTL_S": ("call_ttl_s", int),
    "WARMLINE_LEASE_S": ("lease_s", _number),
    "WARMLINE_PRECOMPUTE_CRON": ("precompute_cron", str),
    "WARMLINE_PRECOMPUTE_TIMEZONE": ("precompute_timezone", str),
    "WARMLINE_PRECOMPUTE_DAYS": ("precompute_days", int),
    "WARMLINE_PRECOMPUTE_MIN_COUNT": ("precompute_min_count", int),
    "WARMLINE_PRECOMPUTE_BUDGET_CHARS": ("precompute_budget_chars", int),
    "WARMLINE_PRICE_PER_1K_CHARS": ("price_per_1k_chars", _number),
    "WARMLINE_LLM_TIMEOUT_S": ("llm_timeout_s", _number),
    "WARMLINE_LLM_STREAM": ("llm_stream", _bool),
    "WARMLINE_SYNTH_WORKERS": ("synth_workers", int),
    "WARMLINE_EDGE_FIRST": ("edge_first", _bool),
    "WARMLINE_CLIPS_PER_TURN": ("clips_per_turn", int),
    "WARMLINE_SPECULATE_QUIET_S": ("speculate_quiet_s", _number),
    "WARMLINE_HOST_ID": ("host_id", str),
    "WARMLINE_EVENTS_STORE": ("events_store", str),
    "WARMLINE_EVENTS_SHIP_INTERVAL_S": ("events_ship_interval_s", _number),
    "WARMLINE_MIN_DISTINCT_CALLS": ("min_distinct_calls", int),
    "WARMLINE_BIND": ("bind", _binds),
    "WARMLINE_WORKERS": ("workers", int),
    "WARMLINE_THREADS": ("threads", int),
}
VAR_OF = {name: var for var, (name, _) in _ENV.items()}
ENV_VARS = tuple(_ENV)


def load_settings(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Parse settings from ``environ`` (default ``os.environ``) then apply ``overrides``.

    Raises one ConfigError listing every problem, one line each naming the variable: malformed
    or out-of-range values, an unknown WARMLINE_ENV, development tokens on a non-loopback bind or
    public URL, a production start without ``WARMLINE_TWILIO_AUTH_TOKEN`` /
    ``WARMLINE_ADMIN_TOKEN`` / ``WARMLINE_PUBLIC_URL``.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for var, (name, parse) in _ENV.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse(raw.strip())
        except ValueError:
            problems.append(f"{var}={raw!r} is not a valid {parse.__name__.lstrip('_')}")
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name, value in (overrides or {}).items():
        if name not in fields:
            problems.append(f"unknown setting {name!r}")
            continue
        values[name] = tuple(value) if name == "bind" and not isinstance(value, str) else value
    if isinstance(values.get("bind"), str):
        values["bind"] = _binds(values["bind"])
    settings = Settings(**values)  # a malformed variable keeps its default here; it is already reported
    problems += check_settings(settings)
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1); False for anything else."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_bind(address: str) -> bool:
    """True when a gunicorn bind address listens on loopback only (``127.0.0.1:8000``, ``[::1]:80``).

    Unix sockets and inherited file descriptors count as exposed: a proxy may publish them.
    """
    if address.startswith(("unix:", "fd://")):
        return False
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    if address.startswith("[") and "]" in address:
        host = address[1:address.index("]")]
    return is_loopback_host(host)


def exposure(settings: Settings) -> list[str]:
    """What makes this process reachable from beyond loopback (bind addresses, the public URL host)."""
    reasons = [f"WARMLINE_BIND={address} is not loopback" for address in settings.bind if not is_loopback_bind(address)]
    if settings.public_url and not is_loopback_host(urlsplit(settings.public_url).hostname):
        reasons.append(f"WARMLINE_PUBLIC_URL={settings.public_url} is not on loopback")
    return reasons


def _url_problem(var: str, url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{var}={url!r} must be an http(s):// URL with a host"
    return None


def _range(settings: Settings) -> Iterable[str]:
    s = settings

    def bad(name: str, rule: str) -> str:
        return f"{VAR_OF.get(name, name)}={getattr(s, name)!r} {rule}"

    positive = ("hop_s", "silence_budget_s", "turn_deadline_s", "control_tts_timeout_s", "lease_s", "llm_timeout_s",
                "speculate_quiet_s")
    for name in positive:
        value = getattr(s, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            yield bad(name, "must be a finite number of seconds greater than 0")
    for name, low in (("turn_workers", 1), ("turn_queue", 0), ("call_ttl_s", 1), ("workers", 1), ("threads", 1),
                      ("precompute_days", 1), ("synth_workers", 1), ("clips_per_turn", 1),
                      ("precompute_min_count", 1), ("precompute_budget_chars", 0), ("instant_budget_ms", 0),
                      ("max_speech_chars", 1), ("max_request_bytes", 1024)):
        if getattr(s, name) < low:
            yield bad(name, f"must be at least {low}")
    if not math.isfinite(s.price_per_1k_chars) or s.price_per_1k_chars < 0:
        yield bad("price_per_1k_chars", "must be a finite number, not negative")
    if any(not (isinstance(getattr(s, n), (int, float)) and math.isfinite(getattr(s, n)) and getattr(s, n) > 0)
           for n in positive):
        return  # the budget rules below would only repeat the problems above
    if s.instant_budget_ms > 10_000:
        yield bad("instant_budget_ms", "must be at most 10000 (the webhook answers within Twilio's 15 s)")
    if s.hop_s * 2 + 1 > TWILIO_TIMEOUT_S or s.turn_deadline_s > TWILIO_TIMEOUT_S - 3:
        yield ("WARMLINE_HOP_S / WARMLINE_TURN_DEADLINE_S leave no room inside Twilio's 15 s limit "
               f"(hop {s.hop_s:g} s must be under 7 s, deadline {s.turn_deadline_s:g} s at most 12 s)")
    if s.silence_budget_s >= s.turn_deadline_s:
        yield bad("silence_budget_s", f"must be shorter than WARMLINE_TURN_DEADLINE_S={s.turn_deadline_s:g}")
    if s.llm_timeout_s + s.control_tts_timeout_s >= TWILIO_TIMEOUT_S:
        yield (f"WARMLINE_LLM_TIMEOUT_S + WARMLINE_CONTROL_TTS_TIMEOUT_S = {s.llm_timeout_s + s.control_tts_timeout_s:g} s: "
               "the control arm waits for both inside one webhook; keep the sum under Twilio's 15 s")


def check_settings(settings: Settings) -> list[str]:
    """Every problem with ``settings`` as one line naming the variable; [] when it may serve."""
    s = settings
    problems: list[str] = []
    if s.env not in ENVIRONMENTS:
        problems.append(f"WARMLINE_ENV={s.env!r} must be one of {', '.join(ENVIRONMENTS)}")
    problems += _range(s)
    store = s.store
    if store != "local" and not (store.startswith("gs://") and len(store) > 5):
        problems.append(f"WARMLINE_STORE={store!r} must be 'local' or 'gs://bucket[/prefix]'")
    for var, url in (("WARMLINE_PUBLIC_URL", s.public_url), ("WARMLINE_CDN_BASE_URL", s.cdn_base_url),
                     ("WARMLINE_LLM_URL", s.llm_url), ("WARMLINE_DEEPGRAM_URL", s.deepgram_url)):
        if url and (problem := _url_problem(var, url)):
            problems.append(problem)
    if s.state_url and "://" in s.state_url and not s.state_url.startswith(("redis://", "rediss://")):
        problems.append(f"WARMLINE_STATE_URL={s.state_url!r} must be redis://host:port/db, rediss://... or a directory")
    exposed = exposure(s)
    secrets = (("WARMLINE_TWILIO_AUTH_TOKEN", s.twilio_auth_token, DEV_TWILIO_TOKEN),
               ("WARMLINE_ADMIN_TOKEN", s.admin_token, DEV_ADMIN_TOKEN))
    if s.env == "production":
        for var, value, dev in secrets:
            if not value or value == dev:
                problems.append(f"{var} is required in production (the development token is published)")
            elif len(value) < MIN_SECRET_CHARS:
                problems.append(f"{var} is {len(value)} characters; a secret needs at least {MIN_SECRET_CHARS}")
        if not s.public_url:
            problems.append("WARMLINE_PUBLIC_URL is required in production (signatures are checked against it)")
    elif exposed:
        for var, value, dev in secrets:
            if not value or value == dev:
                problems.append(f"{var} is the published development token, which only works on loopback; "
                                f"{exposed[0]}: set a real secret")
    problems += _events_problems(s)
    return problems


def _events_problems(s: Settings) -> list[str]:
    """The events store must be private (never in the public clip store); the report/plan knobs in range."""
    from app.events_store import check_private

    problems = []
    try:
        check_private(s.events_store, s.store, Path(s.data_dir))
    except ConfigError as exc:
        problems.append(str(exc))
    if not 1 <= s.min_distinct_calls <= 16:
        problems.append(f"WARMLINE_MIN_DISTINCT_CALLS={s.min_distinct_calls!r} must be between 1 and 16")
    if not (math.isfinite(s.events_ship_interval_s) and s.events_ship_interval_s > 0):
        problems.append(f"WARMLINE_EVENTS_SHIP_INTERVAL_S={s.events_ship_interval_s!r} must be a number of seconds > 0")
    return problems


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with ``changes`` applied (for tests and the CLI)."""
    return dataclasses.replace(settings, **changes)


