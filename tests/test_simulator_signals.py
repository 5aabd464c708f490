"""``python -m simulator``: a SIGTERM stops a command the way Ctrl-C does, so what it started is stopped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_sigterm_runs_the_commands_finally_blocks() -> None:
    # The child installs the handler the command line installs, then waits in a command's try/finally
    # (as capacity and load wait with servers up); SIGTERM must reach its finally, not kill it outright.
    child = textwrap.dedent("""
        import os, signal, sys, threading
        from simulator.__main__ import stop_on_sigterm
        stop_on_sigterm()
        waiting = threading.Event()
        try:
            print("started", flush=True)
            waiting.wait(30)
            print("not interrupted", flush=True)
        finally:
            print("stopped what it started", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    proc.terminate()
    out, err = proc.communicate(timeout=20)
    assert out == "stopped what it started\n"
    assert "KeyboardInterrupt" in err and proc.returncode != 0
