"""The stack's processes: start them in order, describe them, stop them all (no orphans).

Every child runs in its own session (so a terminal's Ctrl-C reaches only the stack runner, which
then stops the children in order) and with ``PR_SET_PDEATHSIG`` = SIGTERM (so even a runner killed
with SIGKILL takes its children with it). ``Stack.stop()`` sends SIGTERM to each child's process
group (gunicorn's master and its workers, the scheduler), waits, and SIGKILLs what is left.
Not thread-safe: one owner.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stack.balancer import Balancer

ROOT = Path(__file__).resolve().parent.parent
CLIPS_BUCKET = "warmline-clips"
EVENTS_BUCKET = "warmline-events"
HOSTS = ("host-a", "host-b")
STOP_TIMEOUT_S = 25.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _bin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (make system-deps / make venv)")
    return found


@dataclass
class Service:
    """One child process of the stack, logging to ``log``."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        try:  # anything left in the group (a worker that outlived its master) goes too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(predicate, timeout_s: float, what: str, service: Service | None = None) -> None:
    """Poll ``predicate`` every 0.1 s up to ``timeout_s`` (readiness of a process we cannot be told about)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service is not None and not service.running():
            raise RuntimeError(f"{service.name} exited with {service.proc.returncode}:\n{service.log_tail()}")
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready within {timeout_s:g} s" + (f":\n{service.log_tail()}" if service else ""))


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Ports:
    """Loopback ports; 0 = pick a free one at start."""

    balancer: int = 0
    hosts: tuple[int, ...] = (0, 0)
    redis: int = 0
    gcs: int = 0

    @classmethod
    def from_base(cls, base: int, redis: int, gcs: int) -> Ports:
        return cls(balancer=base, hosts=(base + 1, base + 2), redis=redis, gcs=gcs)

    def resolved(self) -> Ports:
        pick = lambda p: p or free_port()  # noqa: E731
        return Ports(pick(self.balancer), tuple(pick(p) for p in self.hosts), pick(self.redis), pick(self.gcs))


@dataclass
class Stack:
    """The whole deployment under ``directory`` (wiped at start: every start is a fresh deployment)."""

    directory: Path
    ports: Ports = field(default_factory=Ports)
    workers: int = 2
    threads: int = 16
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    balancer: Balancer | None = None
    twilio_auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    # --- what it is --------------------------------------------------------------------------

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    def host_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports.hosts[HOSTS.index(name)]}"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.balancer}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def gcs_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gcs}"

    def env_for(self, host: str) -> dict[str, str]:
        """The environment of one Warmline process of the stack (a host or the scheduler)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("WARMLINE_") and k not in ("PROMETHEUS_MULTIPROC_DIR", "STORAGE_EMULATOR_HOST")}
        env.update({
            "WARMLINE_ENV": "production",
            "WARMLINE_TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "WARMLINE_ADMIN_TOKEN": self.admin_token,
            "WARMLINE_PUBLIC_URL": self.public_url,
            "WARMLINE_HOST_ID": host,
            "WARMLINE_DATA_DIR": str(self.directory / host),
            "WARMLINE_STORE": f"gs://{CLIPS_BUCKET}",
            "WARMLINE_CDN_BASE_URL": f"{self.gcs_url}/{CLIPS_BUCKET}",
            "WARMLINE_EVENTS_STORE": f"gs://{EVENTS_BUCKET}",
            "WARMLINE_EVENTS_SHIP_INTERVAL_S": "5",  # ship often: the stack is for watching it work
            "WARMLINE_STATE_URL": self.redis_url,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        if host in HOSTS:
            env.update({"WARMLINE_BIND": f"127.0.0.1:{self.ports.hosts[HOSTS.index(host)]}",
                        "WARMLINE_WORKERS": str(self.workers), "WARMLINE_THREADS": str(self.threads)})
        env.update(self.extra_env)
        return env

    # --- start and stop ----------------------------------------------------------------------

    def start(self, out=None) -> Stack:
        """Start everything in dependency order; on any failure stop what started and raise.

        Order, as a new deployment goes: redis and the bucket; the scheduler, whose first run
        (``--now``) publishes every business's fixed phrases; when that run has ended, each host
        indexes those clips (``precompute run --fixed-only``: with a shared store it finds them
        published and synthesizes nothing) and starts gunicorn; then the balancer.
        """
        out = out or sys.stdout
        self.ports = self.ports.resolved()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self._write_state()
        try:
            self._start_redis()
            self._start_gcs()
            self._start_scheduler()
            print(f"stack: scheduler's first run publishing the fixed phrases (log {self.logs / 'scheduler.log'}) ...",
                  file=out, flush=True)
            self._wait_first_run()
            for host in HOSTS:
                self._warm_index(host)
                self._start_host(host)
            for host in HOSTS:
                _wait(lambda h=host: _healthy(self.host_url(h)), 90.0, host, self.services[host])
            self.balancer = Balancer({h: self.host_url(h) for h in HOSTS}, port=self.ports.balancer,
                                     log_path=self.logs / "balancer.log").start()
            self._write_state()
        except BaseException:
            self.stop()
            raise
        print(self.describe(), file=out, flush=True)
        return self

    def _wait_first_run(self) -> None:
        service = self.services["scheduler"]
        ended = ("precompute: planned", "scheduled precompute skipped", "scheduled precompute failed")
        _wait(lambda: any(mark in service.log_tail(200_000) for mark in ended), 300.0,
              "the scheduler's first run", service)

    def _warm_index(self, host: str) -> None:
        """Index the published fixed phrases on ``host`` before it serves (else each is a <Say> once)."""
        (self.directory / host).mkdir(exist_ok=True)
        args = [sys.executable, "-m", "flask", "--app", "wsgi", "precompute", "run", "--fixed-only"]
        for _ in range(30):  # exit 2: another run holds the deployment-wide lease; try again shortly
            with open(self.logs / f"{host}-warm.log", "ab") as log:
                done = subprocess.run(args, cwd=ROOT, env=self.env_for(host), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, timeout=300)
            if done.returncode != 2:
                break
            time.sleep(1.0)
        if done.returncode != 0:
            raise RuntimeError(f"{host}: precompute run --fixed-only exited {done.returncode}; see {log.name}")

    def _start_redis(self) -> None:
        workdir = self.directory / "redis"
        workdir.mkdir()
        service = Service("redis", [_bin("redis-server"), "--port", str(self.ports.redis), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                          dict(os.environ), self.logs / "redis.log").start()
        self.services["redis"] = service
        _wait(lambda: _redis_answers(self.ports.redis), 15.0, "redis-server", service)

    def _start_gcs(self) -> None:
        service = Service("gcs", [_bin("gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port",
                                  str(self.ports.gcs), "--in-memory", "--default-bucket", CLIPS_BUCKET],
                          dict(os.environ), self.logs / "gcs.log").start()
        self.services["gcs"] = service
        _wait(lambda: _port_open(self.ports.gcs), 20.0, "gcp-storage-emulator", service)
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="warmline-stack", credentials=AnonymousCredentials(),
                                client_options={"api_endpoint": self.gcs_url})
        client.create_bucket(EVENTS_BUCKET)  # the private events store: a bucket of its own

    def _start_host(self, host: str) -> None:
        (self.directory / host).mkdir(exist_ok=True)
        self.services[host] = Service(host, [_bin("gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                                      self.env_for(host), self.logs / f"{host}.log").start()

    def _start_scheduler(self) -> None:
        (self.directory / "scheduler").mkdir()
        service = Service("scheduler", [sys.executable, "-m", "flask", "--app", "wsgi", "precompute", "schedule",
                                        "--now"], self.env_for("scheduler"), self.logs / "scheduler.log").start()
        self.services["scheduler"] = service
        _wait(lambda: "precompute scheduled" in service.log_tail(100_000), 60.0, "the scheduler", service)

    def _write_state(self) -> None:
        for name in (*HOSTS, "scheduler"):
            env = self.env_for(name)
            lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())
                     if k.startswith("WARMLINE_") or k == "STORAGE_EMULATOR_HOST"]
            (self.directory / f"{name}.env").write_text("\n".join(lines) + "\n")
        state = {
            "balancer": self.public_url, "hosts": {h: self.host_url(h) for h in HOSTS}, "redis": self.redis_url,
            "gcs": self.gcs_url, "clips_bucket": CLIPS_BUCKET, "events_bucket": EVENTS_BUCKET,
            "twilio_auth_token": self.twilio_auth_token, "admin_token": self.admin_token,
            "pids": {name: s.pid for name, s in self.services.items()}, "runner_pid": os.getpid(),
            "ready": self.balancer is not None,
        }
        (self.directory / "stack.json").write_text(json.dumps(state, indent=2) + "\n")

    def describe(self) -> str:
        rel = lambda p: os.path.relpath(p, ROOT) if str(p).startswith(str(ROOT)) else str(p)  # noqa: E731
        lines = ["Warmline stack on loopback (Ctrl-C stops everything)",
                 f"  balancer   {self.public_url}   round robin over {', '.join(HOSTS)}; WARMLINE_PUBLIC_URL"]
        for host in HOSTS:
            lines.append(f"  {host:<10} {self.host_url(host)}   data {rel(self.directory / host)}, "
                         f"log {rel(self.logs / (host + '.log'))}")
        lines += [
            f"  redis      {self.redis_url}   call state + leases",
            f"  gcs        {self.gcs_url}   gs://{CLIPS_BUCKET} (public clips), gs://{EVENTS_BUCKET} (private events)",
            f"  scheduler  pid {self.services['scheduler'].pid}: flask precompute schedule --now, "
            f"log {rel(self.logs / 'scheduler.log')}",
            f"  tokens     twilio {self.twilio_auth_token}  admin {self.admin_token}",
            "",
            f"  call it:   .venv/bin/python -m simulator demo --url {self.public_url} --token {self.twilio_auth_token}",
            f"  admin:     {self.public_url}/admin/login (admin token above)",
            f"  operate:   . {rel(self.directory / 'host-a.env')} && .venv/bin/flask --app wsgi doctor",
        ]
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop everything, newest first: scheduler, balancer, hosts, then the emulator and redis."""
        order = ["scheduler", *reversed(HOSTS), "gcs", "redis"]
        if self.services.get("scheduler") is not None:
            self.services["scheduler"].stop()
        if self.balancer is not None:
            self.balancer.stop()
            self.balancer = None
        for name in order[1:]:
            if name in self.services:
                self.services[name].stop()
