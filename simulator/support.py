"""Loopback helpers for whatever starts real processes: the simulator, benchmarks and tests."""

from __future__ import annotations

import functools
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on ``host:port``; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


def work_dir(path: str | Path | None, prefix: str) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """``path`` (created if missing) or a new temporary directory; returns (dir, the temp dir to clean up or None)."""
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        return Path(tmp.name), tmp
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory, None


def stop_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """Terminate ``proc`` and wait for it; kill it if it has not exited within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def host_cpu_ticks(stat: str | None = None) -> dict[str, int]:
    """The host's aggregate CPU time from ``/proc/stat`` (clock ticks since boot, all cores), by kind:
    ``user nice system idle iowait irq softirq steal`` (guest time is already inside user/nice).

    ``stat``: the file's text (tests pass their own); {} where there is no ``/proc/stat``.
    """
    if stat is None:
        try:
            stat = Path("/proc/stat").read_text()
        except OSError:
            return {}
    for line in stat.splitlines():
        if line.startswith("cpu "):
            names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
            return dict(zip(names, (int(v) for v in line.split()[1:9])))
    return {}


def host_cpu_shares(before: dict[str, int], after: dict[str, int]) -> dict[str, float] | None:
    """What the host's CPUs did between two :func:`host_cpu_ticks` readings, as shares of all their time:
    ``busy`` (user, nice, system, irq, softirq), ``idle`` (idle, iowait) and ``steal`` (time the
    hypervisor gave another guest while this one wanted to run). None without two readings.

    On a shared VM a high ``steal`` means the run had fewer cores than ``nproc`` says: a slow run
    with steal is the machine, not the code.
    """
    if not before or not after:
        return None
    delta = {k: after[k] - before.get(k, 0) for k in after}
    total = sum(delta.values())
    if total <= 0:
        return None
    busy = sum(delta[k] for k in ("user", "nice", "system", "irq", "softirq"))
    idle = delta["idle"] + delta["iowait"]
    return {"busy": round(busy / total, 3), "idle": round(idle / total, 3), "steal": round(delta["steal"] / total, 3)}


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every simulated client (the one httpx would build for each)."""
    return httpx.create_ssl_context(trust_env=False)


def http_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` (``trust_env=False``) sharing one TLS context with all the others.

    httpx builds a context per client, loading the CA bundle: ~35 ms of CPU each. A load run that
    gives each of 200 callers its own client would spend 7 s of CPU in its ramp -- on the machine
    the server is measured on. Thread-safe (an ``SSLContext`` is shared read-only).
    """
    return httpx.Client(verify=_tls(), trust_env=False, **kwargs)
