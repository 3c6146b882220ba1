"""Child processes of the tests and the benchmarks: started from the repository root in a
session of their own, with their output in a log file, and stopped by PID.

A session of its own makes the child the leader of a new process group, so the SIGKILL
that follows a graceful stop which did not end it reaches whatever it started (a uvicorn
supervisor's workers, PostgreSQL's backends) and nothing else of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from support import REPO
from support.waits import GiveUp, wait_until

# What a child needs of our environment to run; everything else it is given explicitly.
KEPT_ENV = ("PATH", "HOME", "LANG", "TMPDIR")


def child_env(**settings: str) -> dict[str, str]:
    """Our PATH, HOME, LANG and TMPDIR, unbuffered output, and ``settings``."""
    kept = {name: value for name, value in os.environ.items() if name in KEPT_ENV}
    return {**kept, "PYTHONUNBUFFERED": "1", **settings}


def spawn(argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, *,
          pipes: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` with ``env`` (None: ours). Its output is appended to ``log_path``;
    with ``pipes`` only its stderr is, and stdin and stdout are pipes to talk over."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv), cwd=REPO, env=None if env is None else dict(env),
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else log,
            stderr=log if pipes else subprocess.STDOUT, start_new_session=True)


def wait_ready(process: subprocess.Popen[bytes], check: Callable[[], object], what: str,
               log_path: Path, timeout_s: float = 60, interval_s: float = 0.05) -> None:
    """Wait until ``check`` holds. If the process exits first, or the time runs out, stop
    it (one that never became ready must not outlive its caller) and fail with the end
    of its log."""
    def ready() -> object:
        if process.poll() is not None:
            raise GiveUp(f"{what}: the process exited with {process.returncode}")
        return check()

    try:
        wait_until(ready, timeout_s, what, interval_s)
    except (GiveUp, TimeoutError) as error:
        stop(process)
        raise RuntimeError(f"{error}\n{log_path}:\n{log_tail(log_path)}") from None
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen[bytes], grace_s: float = 20,
         sig: signal.Signals = signal.SIGTERM) -> None:
    """``sig`` (a graceful stop); if the process has not ended within ``grace_s``,
    SIGKILL to its process group."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process alone, as a crash: what it started is left to notice."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def log_tail(log_path: Path, lines: int = 20) -> str:
    if not log_path.exists():
        return ""
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
