"""A function (vote, worker or result, or another app such as the benchmarks' baseline)
as a real uvicorn process started with the local profile's command, for what needs real
sockets, signals or crashes; and the worker invoked as the scheduler and a shell do."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2 as httpx
import redis

from local import profile
from local.servers import free_port
from support import REPO
from support.http import http_get
from support.processes import spawn, stop, wait_ready
from support.stores import drained
from support.waits import wait_until

HOST = "127.0.0.1"


@dataclass
class FunctionProcess:
    """``with FunctionProcess("worker", env, log_dir) as worker:`` starts it and waits until
    its health path answers 200; the log is ``<log_dir>/<name>-<port>.log``."""

    function: str | profile.FunctionSpec  # a function of the profile by name, or any spec
    env: dict[str, str]
    log_dir: Path
    workers: int = 1  # above 1, uvicorn is a supervisor whose workers share the port
    python_options: tuple[str, ...] = ()  # before ``-m uvicorn``, e.g. ("-X", "importtime")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def spec(self) -> profile.FunctionSpec:
        if isinstance(self.function, str):
            return profile.by_name(self.function)
        return self.function

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}-{self.port}.log"

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start it without waiting for anything (for a caller that times the start)."""
        argv = [sys.executable, *self.python_options,
                *profile.uvicorn_argv(self.spec, HOST, self.port)[1:]]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        self.process = spawn(argv, self.log_path, self.env)
        return self.process

    def start(self) -> FunctionProcess:
        wait_ready(self.spawn(), self.healthy, f"{self.name} healthy on port {self.port}",
                   self.log_path)
        return self

    def healthy(self) -> bool:
        return http_get(self.url + self.spec.health_path, timeout_s=1)[0] == 200

    def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the process to end; its exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def __enter__(self) -> FunctionProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def drain(env: Mapping[str, str], budget_s: float = 10, timeout_s: float = 60) -> dict[str, Any]:
    """One drain by the worker's own command (``python -m worker_fn drain``), until the
    queue is empty or ``budget_s`` runs out; its report."""
    run = subprocess.run([sys.executable, "-m", "worker_fn", "drain", "--budget", str(budget_s)],
                         cwd=REPO, env=dict(env), capture_output=True, text=True,
                         timeout=timeout_s, check=False)
    if run.returncode:
        raise RuntimeError(f"python -m worker_fn drain exited with {run.returncode}:\n"
                           f"{run.stderr[-3000:]}")
    return json.loads(run.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def tick(worker: FunctionProcess) -> tuple[int, dict[str, Any]]:
    """One scheduled invocation: POST /events, as the scheduler and the adapter do; the
    status and the report (or the text of an answer that is not JSON)."""
    response = httpx.post(f"{worker.url}{profile.WORKER_EVENTS_PATH}",
                          json={"source": "aws.scheduler"}, timeout=60)
    if response.headers.get("content-type") != "application/json":
        return response.status_code, {"text": response.text}
    return response.status_code, response.json()


def tick_until_drained(worker: FunctionProcess, client: redis.Redis,
                       timeout_s: float = 60) -> list[tuple[int, dict[str, Any]]]:
    """Invoke the worker until the queue is empty and no claim is left; the replies."""
    replies: list[tuple[int, dict[str, Any]]] = []

    def once() -> bool:
        replies.append(tick(worker))
        return drained(client)

    wait_until(once, timeout_s, "the queue drained by the worker", interval_s=0)
    return replies
