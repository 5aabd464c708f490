"""Loopback helpers for whatever starts real processes: the simulator, benchmarks and tests."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path


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
