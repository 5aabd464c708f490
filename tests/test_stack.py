"""``make stack`` for real: ``python -m stack`` started as an operator would, used, and stopped with Ctrl-C.

One test walks the deployment path end to end (it takes a minute or two: two gunicorn hosts, the
scheduler's first Piper run, a scripted call):

- the scheduler's first run holds the deployment-wide run lease; while it does (frozen with SIGSTOP
  so the check cannot race its end), a run from host A and a second scheduler from host B are refused;
- a call through the round-robin balancer has ``process`` answered by one host and the following
  ``tts-ready`` by the other, and completes; every clip it played is an object in the emulator's
  clip bucket; its turn events reach the private events bucket, shipped by both hosts (each turn
  once), and nothing of them is in the public clip bucket;
- SIGINT stops every process of the stack (no orphans) and the runner exits 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from app.speech.wav import validate_ulaw_wav
from simulator.demo import DEMO_SCRIPT
from simulator.load import process_tree
from simulator.twilio_client import CallConfig, run_call
from stack.services import CLIPS_BUCKET, EVENTS_BUCKET, ROOT
from tests.faults_support import wait_until
from tests.gcs_support import emulator_admin_client

pytestmark = pytest.mark.slow

RUN_LEASE = "warmline-ops:precompute:run"
SCHEDULER_LEASE = "warmline-ops:precompute:scheduler"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    return set(process_tree(pid)) - {pid}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def env_file(path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_") and k != "STORAGE_EMULATOR_HOST"}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    return env


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def stack(tmp_path):
    out = open(tmp_path / "stack.out", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "stack", "--dir", str(tmp_path / "stack"), "--base-port", "0"],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    try:
        yield proc, tmp_path / "stack", tmp_path / "stack.out"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            for pid in descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_make_stack_two_hosts_one_scheduler_one_call(stack):
    proc, directory, out = stack
    state_file = directory / "stack.json"
    state = wait_until(lambda: state_file.exists() and json.loads(state_file.read_text()), 60, "stack.json")
    r = redis.Redis.from_url(state["redis"], decode_responses=True, socket_timeout=2)

    def lease_holder():
        try:
            return r.get(RUN_LEASE)
        except redis.RedisError:
            return None

    # 1. The scheduler's first run (--now) holds the deployment-wide run lease: freeze it there.
    holder = wait_until(lease_holder, 120, "the scheduler's first run", poll_s=0.02)
    assert re.fullmatch(r"scheduler pid \d+", holder), holder
    scheduler_pid = int(holder.split()[-1])
    os.kill(scheduler_pid, signal.SIGSTOP)
    try:
        assert r.get(RUN_LEASE) == holder  # still its run: nothing below can race its end
        second_run = flask(env_file(directory / "host-a.env"), "precompute", "run", "--fixed-only")
        second_scheduler = flask(env_file(directory / "host-b.env"), "precompute", "schedule")
    finally:
        os.kill(scheduler_pid, signal.SIGCONT)
    assert second_run.returncode == 2, second_run.stderr
    assert second_run.stderr.strip().endswith(
        f"precompute: another precompute run is running ({holder}, deployment-wide lease {RUN_LEASE}); not starting")
    assert second_scheduler.returncode == 2, second_scheduler.stderr
    assert second_scheduler.stderr.strip().endswith(
        f"precompute: another precompute scheduler is running ({holder}, deployment-wide lease {SCHEDULER_LEASE}); "
        "not starting; exactly one scheduler per deployment")
    assert r.get(SCHEDULER_LEASE) == holder

    # 2. The stack comes up: hosts index what the scheduler published, then serve behind the balancer.
    state = wait_until(lambda: json.loads(state_file.read_text()).get("ready") and json.loads(state_file.read_text()),
                       300, "the stack", poll_s=0.2)
    assert proc.poll() is None, out.read_text()
    text = out.read_text()
    for url in (state["balancer"], *state["hosts"].values(), state["redis"], state["gcs"]):
        assert url in text  # the URLs are printed
    assert httpx.get(state["balancer"] + "/healthz", timeout=5).json() == {"status": "ok"}

    # 3. A call through the balancer: consecutive webhooks go to alternate hosts.
    result = run_call(CallConfig(base_url=state["balancer"], business_id="demo",
                                 auth_token=state["twilio_auth_token"], script=DEMO_SCRIPT, speed=4.0))
    assert not result.failures, result.failures
    assert result.ended_by == "hangup" and len(result.turns) == len(DEMO_SCRIPT)
    served = []
    for line in (directory / "logs" / "balancer.log").read_text().splitlines():
        method, path, _, host, status, _ = line.split()
        if result.call_sid in path:
            assert status == "200", line
            served.append((path.split("/")[2], host))
    handoffs = [(a, b) for a, b in zip(served, served[1:]) if a[0] == "process" and b[0] == "tts-ready"]
    assert handoffs, served  # some turn needed the redirect (the booking's live synthesis)
    assert all(a[1] != b[1] for a, b in handoffs), served
    assert {host for _, host in served} == {"host-a", "host-b"}

    # 4. Every clip the caller heard is an object in the clip bucket (the store), valid audio: played from
    # the bucket, or -- a fresh clip, edge-first -- from a host's /cdn through the balancer (whichever host
    # the balancer picked served it), its upload landing in the bucket behind it.
    plays = [e.detail["url"] for e in result.events if e.kind == "play"]
    bucket, edge = f"{state['gcs']}/{CLIPS_BUCKET}/", f"{state['balancer']}/cdn/"
    assert plays and all(url.startswith((bucket + "tts/v2/", edge + "tts/v2/")) for url in plays), plays
    assert any(url.startswith(bucket) for url in plays), plays  # the precomputed greeting and prompts
    admin = emulator_admin_client(state["gcs"])
    heard = {url.removeprefix(bucket).removeprefix(edge) for url in plays}
    wait_until(lambda: heard <= {blob.name for blob in admin.list_blobs(CLIPS_BUCKET)}, 30,
               "every clip heard in the bucket", poll_s=0.5)
    for name in heard:
        validate_ulaw_wav(admin.bucket(CLIPS_BUCKET).blob(name).download_as_bytes())
    # The call's turn events reach the private events bucket (raw/<host>/<day>/<start>-<end>.jsonl),
    # shipped by the hosts that served the turns (both: the turns alternate), each turn once.
    def shipped() -> dict[str, int] | None:
        counts: dict[str, int] = {}
        for blob in admin.list_blobs(EVENTS_BUCKET, prefix="raw/"):
            for line in blob.download_as_bytes().decode().splitlines():
                if json.loads(line).get("call") == result.call_sid:
                    host = blob.name.split("/")[1]
                    counts[host] = counts.get(host, 0) + 1
        return counts if sum(counts.values()) >= len(DEMO_SCRIPT) else None

    counts = wait_until(shipped, 60, "the call's turn events in the events bucket", poll_s=1.0)
    assert set(counts) == {"host-a", "host-b"} and sum(counts.values()) == len(DEMO_SCRIPT), counts
    names = {blob.name for blob in admin.list_blobs(CLIPS_BUCKET)}
    assert all(n.startswith("tts/") for n in names), names  # nothing private in the public bucket
    assert not [b.name for b in admin.list_blobs(EVENTS_BUCKET) if not b.name.startswith(("raw/", "rollup/"))]

    # 5. Ctrl-C: everything stops, nothing is left behind.
    tree = descendants(proc.pid)
    assert len(tree) >= 8, tree  # redis, emulator, scheduler, 2 masters + their workers
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=90) == 0, out.read_text()
    wait_until(lambda: not [pid for pid in tree if alive(pid)], 10, "every process of the stack to exit")
    assert out.read_text().rstrip().endswith("stack: stopped")
    with pytest.raises(httpx.TransportError):
        httpx.get(state["balancer"] + "/healthz", timeout=2)
