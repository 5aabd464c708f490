"""The start-up check (app/doctor.py): every problem at once, one line each naming it, no traceback.

In process through :func:`app.doctor.diagnose`, then for real: ``flask --app wsgi doctor`` and
gunicorn's master (one report, before any worker boots), and SIGHUP reloading the business file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from app.config import DEV_TWILIO_TOKEN
from app.doctor import EXIT_PROBLEMS, diagnose, probe_clip
from tests.conftest import ROOT, new_call_sid, sign, twilio_form
from tests.faults_support import wait_until
from tests.server_support import GunicornServer
from tests.support import free_port

SAMPLE = (ROOT / "businesses" / "businesses.toml").read_text()
CHECKS = ["settings", "businesses", "voices", "data dir", "store", "events", "state", "responder", "schedule"]
HEADER = "warmline: refusing to start: {} problem(s)"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A development environment on loopback with its own data directory (nothing from the caller's WARMLINE_*)."""
    return {"WARMLINE_ENV": "development", "WARMLINE_DATA_DIR": str(tmp_path / "var"), **extra}


def business_file(tmp_path: Path, text: str, name: str = "b.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


class RefusingLLM:
    """An HTTP server answering every request 401, like an OpenAI-compatible API given a wrong key."""

    def __enter__(self) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b'{"error": {"message": "Incorrect API key provided."}}'
                self.send_response(401)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_healthy_setup_passes_every_check(tmp_path):
    report = diagnose(env_for(tmp_path))
    assert [c.name for c in report.checks] == CHECKS
    assert report.ok and report.problems == []
    # the probe is a real clip, create-only and content-addressed: the same name and bytes every time
    name, data = probe_clip()
    assert (tmp_path / "var" / "cdn" / name).read_bytes() == data
    assert diagnose(env_for(tmp_path)).ok


def closed_port_url(scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("case", ["voice model", "deepgram key", "state", "responder", "schedule", "timezone"])
def test_each_live_misconfiguration_is_one_line_naming_it(tmp_path, case):
    env = env_for(tmp_path)
    expected: str
    if case == "voice model":
        env["WARMLINE_BUSINESSES"] = business_file(tmp_path, SAMPLE.replace('model = "en_US-joe-medium"',
                                                                            'model = "en_US-amy-medium"'))
        expected = ("business 'demo': field 'voice.model': piper voice 'en_US-amy-medium' is not installed "
                    "(installed: en_US-joe-medium)")
    elif case == "deepgram key":
        env["WARMLINE_BUSINESSES"] = business_file(tmp_path, SAMPLE.replace(
            'provider = "piper"\nmodel = "en_US-joe-medium"', 'provider = "deepgram"\nmodel = "aura-2-thalia-en"'))
        expected = ("business 'demo': field 'voice.provider': deepgram voice 'aura-2-thalia-en' needs "
                    "WARMLINE_DEEPGRAM_API_KEY, which is not set")
    elif case == "state":
        env["WARMLINE_STATE_URL"] = closed_port_url("redis") + "/0"
        expected = f"WARMLINE_STATE_URL={env['WARMLINE_STATE_URL']}: the call-state backend does not answer: "
    elif case == "responder":
        env["WARMLINE_LLM_URL"] = closed_port_url()
        expected = f"WARMLINE_LLM_URL={env['WARMLINE_LLM_URL']}: unreachable: "
    elif case == "schedule":
        env["WARMLINE_PRECOMPUTE_CRON"] = "61 3 * * *"
        expected = "WARMLINE_PRECOMPUTE_CRON='61 3 * * *' / WARMLINE_PRECOMPUTE_TIMEZONE='UTC': "
    else:
        env["WARMLINE_PRECOMPUTE_TIMEZONE"] = "Mars/Olympus_Mons"
        expected = "WARMLINE_PRECOMPUTE_CRON='0 3 * * *' / WARMLINE_PRECOMPUTE_TIMEZONE='Mars/Olympus_Mons': "
    report = diagnose(env, timeout_s=1.0)
    assert len(report.problems) == 1, report.format()
    assert report.problems[0].startswith(expected), report.problems[0]
    assert not report.ok


def test_the_voice_check_reads_fallback_voices_too(tmp_path):
    text = SAMPLE.replace('model = "en_US-joe-medium"',
                          'model = "aura-2-thalia-en"\nfallback = [{provider = "piper", model = "en_US-amy-medium"}]'
                          ).replace('provider = "piper"', 'provider = "deepgram"', 1)
    env = env_for(tmp_path, WARMLINE_BUSINESSES=business_file(tmp_path, text), WARMLINE_DEEPGRAM_API_KEY="dg-key")
    assert diagnose(env).problems == [
        "business 'demo': field 'voice.fallback[0].model': piper voice 'en_US-amy-medium' is not installed "
        "(installed: en_US-joe-medium)"]


def test_a_store_that_cannot_take_the_probe_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_port_url())
    report = diagnose(env_for(tmp_path, WARMLINE_STORE="gs://warmline-clips/audio"), timeout_s=1.0)
    name, _ = probe_clip()
    assert len(report.problems) == 1, report.format()
    assert report.problems[0].startswith(
        f"WARMLINE_STORE=gs://warmline-clips/audio: cannot write and read the probe object {name}: ")


def test_an_events_bucket_that_does_not_answer_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed_port_url())
    report = diagnose(env_for(tmp_path, WARMLINE_EVENTS_STORE="gs://warmline-events/prod"), timeout_s=1.0)
    assert len(report.problems) == 1, report.format()
    assert report.problems[0].startswith(
        "WARMLINE_EVENTS_STORE=gs://warmline-events/prod: the events bucket does not answer a listing: ")


def test_an_unwritable_events_directory_is_named(tmp_path):
    (tmp_path / "events-file").write_text("not a directory\n")
    report = diagnose(env_for(tmp_path, WARMLINE_EVENTS_STORE=str(tmp_path / "events-file")))
    assert report.problems == [f"WARMLINE_EVENTS_STORE={tmp_path / 'events-file'}: not writable: File exists"]


def test_an_llm_refusing_the_key_is_named(tmp_path):
    with RefusingLLM() as url:
        report = diagnose(env_for(tmp_path, WARMLINE_LLM_URL=url, WARMLINE_LLM_API_KEY="wrong"))
    assert report.problems == [f"WARMLINE_LLM_API_KEY: {url} answered 401 (the key is refused)"]


def test_an_unwritable_data_dir_is_named_with_what_lives_there(tmp_path):
    (tmp_path / "var").write_text("a file, not a directory\n")
    problems = diagnose(env_for(tmp_path)).problems
    assert [p.split(":")[0].split("=")[0] for p in problems] == [
        "WARMLINE_DATA_DIR", "WARMLINE_STORE", "WARMLINE_DATA_DIR (state)"], problems
    assert problems[0] == f"WARMLINE_DATA_DIR={tmp_path / 'var'}: not writable: File exists"


def test_every_broken_business_is_named_at_once(tmp_path):
    second = SAMPLE.replace("[demo", "[second").replace('numbers = ["+15005550006"]', 'numbers = ["+15005550007"]')
    text = SAMPLE.replace("rollout_percent = 100", "rollout_percent = 150") + "\n" + second.replace(
        'splice = "sentence"', 'splice = "word"')
    report = diagnose(env_for(tmp_path, WARMLINE_BUSINESSES=business_file(tmp_path, text)))
    assert report.problems == [
        "business 'demo': field 'rollout.rollout_percent': must be an integer from 0 to 100",
        "business 'second': field 'splice': must be one of sentence, clause, slot, phrase, whole",
    ]
    assert [c.name for c in report.checks] == ["settings", "businesses", "live"]  # live checks wait for a valid file


def test_settings_and_business_problems_are_listed_together(tmp_path):
    env = env_for(tmp_path, WARMLINE_HOP_S="nan", WARMLINE_BIND="0.0.0.0:8000",
                  WARMLINE_BUSINESSES=str(tmp_path / "missing.toml"))
    assert diagnose(env).format_problems().splitlines() == [
        HEADER.format(4),
        "WARMLINE_HOP_S='nan' is not a valid finite number",
        "WARMLINE_TWILIO_AUTH_TOKEN is the published development token, which only works on loopback; "
        "WARMLINE_BIND=0.0.0.0:8000 is not loopback: set a real secret",
        "WARMLINE_ADMIN_TOKEN is the published development token, which only works on loopback; "
        "WARMLINE_BIND=0.0.0.0:8000 is not loopback: set a real secret",
        f"WARMLINE_BUSINESSES: no such file {tmp_path / 'missing.toml'}",
        "(the live checks of voices, store, state, responder and schedule run once these are fixed)",
    ]


# --- for real: the flask command and gunicorn's master ---------------------------------------


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
    env.update(PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run(args: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=clean_env(env), capture_output=True, text=True, timeout=timeout)


def flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


def gunicorn(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", *args, "wsgi:app"]


def test_flask_doctor_on_a_healthy_setup_prints_each_check_and_exits_0(tmp_path):
    done = run(flask("doctor"), env_for(tmp_path))
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split()[0] for line in lines[:-1]] == ["ok"] * len(lines[:-1])
    assert sorted({line[6:17].strip() for line in lines[:-1]}) == sorted(CHECKS)
    assert lines[-1] == "all checks passed"


def test_flask_doctor_lists_live_problems_and_exits_3(tmp_path):
    env = env_for(tmp_path, WARMLINE_STATE_URL=closed_port_url("redis") + "/0", WARMLINE_PRECOMPUTE_CRON="* *")
    done = run(flask("doctor", "--timeout", "1"), env)
    assert done.returncode == EXIT_PROBLEMS
    fails = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split()[1] for line in fails] == ["state", "schedule"], done.stdout
    assert done.stdout.splitlines()[-1] == "2 problem(s): not ready to serve"
    assert "Traceback" not in done.stdout + done.stderr


def test_a_flask_command_with_bad_settings_reports_them_without_a_traceback(tmp_path):
    done = run(flask("precompute", "run", "--dry-run"), env_for(tmp_path, WARMLINE_ENV="production"))
    assert done.returncode == EXIT_PROBLEMS
    assert done.stderr.splitlines() == [
        HEADER.format(3),
        "WARMLINE_TWILIO_AUTH_TOKEN is required in production (the development token is published)",
        "WARMLINE_ADMIN_TOKEN is required in production (the development token is published)",
        "WARMLINE_PUBLIC_URL is required in production (signatures are checked against it)",
        "(the live checks of voices, store, state, responder and schedule run once these are fixed)",
    ]


def refused_through_gunicorn(done: subprocess.CompletedProcess[str], problems: list[str]) -> None:
    """gunicorn stopped in its master: one report, every problem once, no traceback, no worker started."""
    out = done.stdout + done.stderr
    assert done.returncode == EXIT_PROBLEMS, out
    assert out.count("refusing to start") == 1, out
    assert "Traceback" not in out and "Booting worker" not in out and "Listening at" not in out, out
    lines = [line for line in done.stderr.splitlines() if not line.startswith("[")]  # gunicorn's own log lines
    assert lines[0] == HEADER.format(len(problems))
    for problem, line in zip(problems, lines[1:], strict=False):
        assert line.startswith(problem), (problem, line)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["WARMLINE_BIND", "-b", "unix socket"])
def test_gunicorn_refuses_a_non_loopback_bind_with_published_tokens(tmp_path, how):
    port = free_port()
    # Refused in the master's on_starting, before gunicorn creates any socket: nothing is ever exposed.
    if how == "WARMLINE_BIND":
        args, env, where = gunicorn(), env_for(tmp_path, WARMLINE_BIND=f"0.0.0.0:{port}"), f"0.0.0.0:{port}"
    elif how == "-b":
        args, env, where = gunicorn("-b", f"0.0.0.0:{port}"), env_for(tmp_path), f"0.0.0.0:{port}"
    else:
        sock = f"unix:{tmp_path / 'w.sock'}"
        args, env, where = gunicorn("-b", sock), env_for(tmp_path), sock
    done = run(args, env)
    refused_through_gunicorn(done, [
        f"WARMLINE_TWILIO_AUTH_TOKEN is the published development token, which only works on loopback; "
        f"WARMLINE_BIND={where} is not loopback: set a real secret",
        f"WARMLINE_ADMIN_TOKEN is the published development token, which only works on loopback; "
        f"WARMLINE_BIND={where} is not loopback: set a real secret",
    ])
    assert not (tmp_path / "w.sock").exists()


@pytest.mark.slow
def test_gunicorn_reports_several_settings_problems_once_not_per_worker(tmp_path):
    env = env_for(tmp_path, WARMLINE_ENV="production", WARMLINE_TWILIO_AUTH_TOKEN="x" * 32, WARMLINE_HOP_S="0",
                  WARMLINE_TURN_DEADLINE_S="nan", WARMLINE_WORKERS="4", WARMLINE_ADMIN_TOKEN="short")
    done = run(gunicorn(), env)
    refused_through_gunicorn(done, [
        "WARMLINE_TURN_DEADLINE_S='nan' is not a valid finite number",
        "WARMLINE_HOP_S=0.0 must be a finite number of seconds greater than 0",
        "WARMLINE_ADMIN_TOKEN is 5 characters; a secret needs at least 16",
        "WARMLINE_PUBLIC_URL is required in production",
    ])


@pytest.mark.slow
def test_gunicorn_reports_several_live_problems_once(tmp_path):
    businesses = business_file(tmp_path, SAMPLE.replace('model = "en_US-joe-medium"', 'model = "en_US-amy-medium"'))
    state = closed_port_url("redis") + "/0"
    llm = closed_port_url()
    env = env_for(tmp_path, WARMLINE_BUSINESSES=businesses, WARMLINE_STATE_URL=state, WARMLINE_LLM_URL=llm,
                  WARMLINE_PRECOMPUTE_CRON="0 25 * * *", WARMLINE_BIND=f"127.0.0.1:{free_port()}")
    done = run(gunicorn(), env)
    refused_through_gunicorn(done, [
        "business 'demo': field 'voice.model': piper voice 'en_US-amy-medium' is not installed",
        f"WARMLINE_STATE_URL={state}: the call-state backend does not answer",
        f"WARMLINE_LLM_URL={llm}: unreachable",
        "WARMLINE_PRECOMPUTE_CRON='0 25 * * *'",
    ])


@pytest.mark.slow
def test_under_testing_live_problems_are_logged_and_serving_goes_on(tmp_path):
    # Fault tests start servers with a voice missing on purpose; settings problems still refuse.
    businesses = business_file(tmp_path, SAMPLE.replace('model = "en_US-joe-medium"', 'model = "en_US-amy-medium"'))
    with GunicornServer(tmp_path / "var", env={"WARMLINE_BUSINESSES": businesses}, workers=1, threads=2) as server:
        log = server.log_tail(20_000)
    assert log.count("start-up check (not enforced under WARMLINE_ENV=testing): business 'demo': field "
                     "'voice.model'") == 1, log


# --- SIGHUP: the business file reloads through gunicorn's graceful reload ----------------------


def incoming(server: GunicornServer, business: str) -> httpx.Response:
    path = f"/voice/incoming/{business}"
    form = twilio_form(new_call_sid(), To="+15550001111")  # no number routing: the id decides
    signature = sign(server.base_url + path, form, DEV_TWILIO_TOKEN)
    return httpx.post(server.base_url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def gathers_for(answer: httpx.Response) -> str | None:
    """The business id a webhook answer gathers the caller's speech for (None for an apology without one)."""
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/xml"), answer.text
    gather = ET.fromstring(answer.text).find("Gather")
    return None if gather is None else gather.get("action", "").split("/voice/process/")[1].split("/")[0]


def replaced_workers(server: GunicornServer, old: list[int]) -> list[int]:
    def fresh() -> list[int] | None:
        pids = server.worker_pids()
        return pids if len(pids) == server.workers and not set(pids) & set(old) else None

    return wait_until(fresh, 60.0, "the reload's new workers")


@pytest.mark.slow
def test_sighup_reloads_the_business_file_and_refuses_a_broken_one(tmp_path):
    second = SAMPLE.replace("[demo", "[second").replace('numbers = ["+15005550006"]', 'numbers = ["+15005550007"]') \
        .replace("Thanks", "Welcome to the second line. Thanks", 1)
    path = tmp_path / "businesses.toml"
    path.write_text(SAMPLE)
    env = {"WARMLINE_ENV": "development", "WARMLINE_BUSINESSES": str(path)}
    with GunicornServer(tmp_path / "var", env=env, workers=2, threads=4) as server:
        assert gathers_for(incoming(server, "second")) is None  # unknown: an apology, no <Gather>
        assert gathers_for(incoming(server, "demo")) == "demo"
        old = server.worker_pids()
        path.write_text(SAMPLE + "\n" + second)
        server.reload()
        old = replaced_workers(server, old)
        assert gathers_for(incoming(server, "second")) == "second"  # a business that did not exist before

        path.write_text(SAMPLE + "\n" + second.replace('splice = "sentence"', 'splice = "word"'))
        server.reload()
        replaced_workers(server, old)
        assert gathers_for(incoming(server, "second")) == "second"  # still the last good file
        assert gathers_for(incoming(server, "demo")) == "demo"
        log = server.log_tail(200_000)
    assert log.count("reload refused, still serving the previous business file: business 'second': field "
                     "'splice': must be one of sentence, clause, slot, phrase, whole") == 1, log
    assert "Traceback" not in log
    assert not list((tmp_path / "var" / "run").iterdir())  # the pinned copy goes with the master
