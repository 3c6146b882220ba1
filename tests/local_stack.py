"""The local profile (``python -m local``, what ``make up`` runs) as a test fixture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import psutil

from local.servers import free_port
from tests.servers import REPO, wait_until


@dataclass
class LocalStack:
    data_dir: Path
    vote_url: str
    result_url: str
    log_path: Path
    extra_env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

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
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DATABASE_URL", "VOTE_SECRET")}
        env.update(self.extra_env)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "local"], cwd=REPO, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        ready_line = b"Results: " + self.result_url.encode()
        try:
            wait_until(lambda: ready_line in self.log_path.read_bytes()[offset:],
                       90, f"the local profile ready (log: {self.log_path})", interval_s=0.2)
        except BaseException:
            self.stop()  # a stack that never became ready must not outlive the test
            raise

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
        response = httpx.get(f"{self.result_url}/api/results", timeout=5)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


def counts(results: dict[str, object]) -> dict[str, int]:
    return {o["id"]: o["votes"] for o in results["options"]}  # type: ignore[attr-defined, index]


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
