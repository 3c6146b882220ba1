"""One function (vote, worker or result) as a real uvicorn process, for tests that need
real sockets, signals or crashes. It runs the same command as the local profile."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

from local import profile
from local.servers import free_port
from tests.servers import REPO, wait_until


@dataclass
class FunctionProcess:
    name: str  # vote, worker or result
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_healthy: bool = True) -> FunctionProcess:
        argv = profile.uvicorn_argv(profile.by_name(self.name), "127.0.0.1", self.port)
        with open(self.log_dir / f"{self.name}-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen([sys.executable, *argv[1:]], cwd=REPO,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if wait_healthy:
                wait_until(self.healthy, 30, f"{self.name} healthy on port {self.port}")
            else:
                wait_until(self.listening, 30, f"{self.name} listening on port {self.port}")
        except BaseException:
            self.kill()  # a function that never became ready must not outlive the test
            raise
        return self

    def listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}")
        httpx.get(f"{self.url}/healthz", timeout=1)
        return True

    def healthy(self) -> bool:
        return self.listening() and httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

    def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the process to end; return its exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()
