"""A real gunicorn serving Warmline on loopback, for the simulator, benchmarks and end-to-end tests.

``GunicornServer(data_dir, env={...}).start()`` runs ``gunicorn -c gunicorn.conf.py wsgi:app`` (or ``app=``) from
the project root on a free port with ``WARMLINE_*`` settings, waits for /healthz, and can list,
kill and reload its workers. ``stop()`` terminates the whole process group. One owner per server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from simulator.support import free_port

ROOT = Path(__file__).resolve().parent.parent


def gunicorn_defaults(env: dict[str, str] | None = None) -> tuple[int, int]:
    """(workers, threads) gunicorn.conf.py gives with ``env``'s ``WARMLINE_*`` settings (none: its defaults).

    Read by running the config file in a child process (it is Python; it touches the environment),
    so this process is left as it was.
    """
    child = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
    child.update({k: v for k, v in (env or {}).items() if k in ("WARMLINE_WORKERS", "WARMLINE_THREADS")})
    child["WARMLINE_DATA_DIR"] = tempfile.gettempdir()
    code = "import runpy; c = runpy.run_path('gunicorn.conf.py'); print(c['workers'], c['threads'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child, capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    return int(out[0]), int(out[1])


class GunicornServer:
    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, workers: int | None = 2,
                 threads: int | None = 8, port: int | None = None, log_path: Path | None = None,
                 app: str = "wsgi:app") -> None:
        """``workers`` / ``threads`` None: gunicorn.conf.py's defaults (or ``env``'s WARMLINE_WORKERS / _THREADS).

        ``app``: the WSGI app gunicorn serves with the project's gunicorn.conf.py (another one for a baseline).
        """
        self.app = app
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        if workers is None or threads is None:
            default_workers, default_threads = gunicorn_defaults(self.extra_env)
            workers = default_workers if workers is None else workers
            threads = default_threads if threads is None else threads
        self.workers, self.threads = workers, threads
        self.log_path = log_path or self.data_dir / f"gunicorn-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARMLINE_")}
        env.update({
            "WARMLINE_ENV": "testing", "WARMLINE_DATA_DIR": str(self.data_dir), "WARMLINE_BIND": f"127.0.0.1:{self.port}",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        env["WARMLINE_WORKERS"], env["WARMLINE_THREADS"] = str(self.workers), str(self.threads)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> GunicornServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", self.app],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0, workers: int | None = None) -> None:
        deadline = time.monotonic() + timeout
        want = self.workers if workers is None else workers
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1.0).status_code == 200 and len(self.worker_pids()) >= want:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gunicorn not ready on {self.base_url}: {self.log_tail()}")

    def worker_pids(self) -> list[int]:
        """PIDs of the master's live worker processes."""
        if self.proc is None:
            return []
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def kill_worker(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def reload(self) -> None:
        """A graceful restart: new workers start, old ones finish their requests (SIGHUP)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
