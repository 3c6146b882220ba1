"""The local profile (``python -m local``, what ``make up`` runs) as one process of ours:
``with LocalStack.create(data_dir) as stack:`` starts it on free ports and waits until it
says it is ready."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

from local.servers import free_port
from support.http import http_get
from support.processes import spawn, wait_ready


@dataclass
class LocalStack:
    data_dir: Path
    vote_url: str
    result_url: str
    log_path: Path
    extra_env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @classmethod
    def create(cls, data_dir: Path, **extra_env: str) -> LocalStack:
        vote_port, result_port = free_port(), free_port()
        return cls(data_dir, f"http://127.0.0.1:{vote_port}", f"http://127.0.0.1:{result_port}",
                   data_dir.parent / f"local-{vote_port}.log",
                   {"VOTE_PORT": str(vote_port), "RESULT_PORT": str(result_port),
                    "LOCAL_DATA_DIR": str(data_dir),
                    "VOTE_RATE_LIMIT": "0",  # the tests vote many times from one address
                    **extra_env})

    def start(self) -> None:
        # The profile starts its own servers: none of the caller's, and its own secret.
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DATABASE_URL", "VOTE_SECRET")}
        env.update(self.extra_env)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = spawn([sys.executable, "-m", "local"], self.log_path, env)
        ready_line = b"Results: " + self.result_url.encode()
        wait_ready(self.process, lambda: ready_line in self.log_path.read_bytes()[offset:],
                   "the local profile ready", self.log_path, timeout_s=90, interval_s=0.2)

    def descendants(self) -> list[psutil.Process]:
        assert self.process is not None
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, sig: signal.Signals = signal.SIGINT) -> list[psutil.Process]:
        """Stop like Ctrl-C; return any process of ours still alive afterwards."""
        assert self.process is not None
        children = self.descendants()
        self.process.send_signal(sig)
        self.process.wait(30)
        _, alive = psutil.wait_procs(children, timeout=10)
        return alive

    def results(self) -> dict[str, object]:
        status, body = http_get(f"{self.result_url}/api/results", timeout_s=5)
        if status != 200:
            raise RuntimeError(f"/api/results answered {status}: {body[:200]!r}")
        return json.loads(body)  # type: ignore[no-any-return]

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()


def counts(results: dict[str, object]) -> dict[str, int]:
    """Each option's votes in a results document."""
    return {o["id"]: o["votes"] for o in results["options"]}  # type: ignore[attr-defined]
