"""A real ``redis-server`` on loopback for tests: started on a free port, stopped by PID.

``RedisServer`` runs ``redis-server --port P --bind 127.0.0.1 --save '' --appendonly no`` in
the foreground as a child process (no persistence, nothing left on disk) and waits until it
answers PING. ``stop()`` terminates it (kill after 5 s) and is idempotent. Not thread-safe; one
owner per server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from tests.support import free_port, stop_process


def redis_server_binary() -> str:
    """Path of ``redis-server``; raises RuntimeError (not a skip) when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
    return path


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One throwaway redis-server process. Use as a context manager or call start()/stop()."""

    def __init__(self, port: int | None = None, *, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
        ]
        self.proc = subprocess.Popen(
            args, cwd=str(self.workdir) if self.workdir else None,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}")
            if _ping(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server did not answer PING on port {self.port} within {timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_process(proc)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
