"""PostgreSQL connections grow with result processes, never with viewers: one process holds
the same connections for 1 and for 2,000 open streams; a process allowed one connection
(a Lambda invocation per viewer, RESULTS_MAX_CONNECTIONS=1) holds exactly one while it
streams and answers."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest

from result_fn.app import NAME
from support import REPO
from support.functions import FunctionProcess
from support.waits import wait_until

Conn = psycopg.Connection[tuple[object, ...]]
VIEWERS = 2_000


def result_connections(db: Conn) -> int:
    row = db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                     (NAME,)).fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


class Viewers:
    """Streams held open by the benchmarks' raw-socket SSE client, in a process of its own."""

    def __init__(self, port: int, count: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.sse_clients", "--port", str(port), "--subscribers",
             str(count), "--timeout", "60"], cwd=REPO, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def ready(self) -> int:
        assert self.process.stdout is not None
        return int(json.loads(self.process.stdout.readline())["ready"])

    def close(self) -> None:
        """End them (the client's summary, asked for with no commits, is not needed)."""
        self.process.communicate(json.dumps({"commits": {}}) + "\n", timeout=30)


@pytest.fixture
def open_files() -> Iterator[None]:
    """Room for thousands of sockets in the result process (it inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def viewers_env(function_env: dict[str, str]) -> dict[str, str]:
    """Every viewer here comes from one address: no per-address cap."""
    return {**function_env, "STREAM_MAX_PER_CLIENT": "0"}


def test_one_process_holds_the_same_connections_for_1_and_for_2000_viewers(
        db: Conn, viewers_env: dict[str, str], tmp_path: Path, open_files: None) -> None:
    with FunctionProcess("result", viewers_env, tmp_path) as result:
        one = Viewers(result.port, 1)
        assert one.ready() == 1
        wait_until(lambda: httpx.get(f"{result.url}/api/results").status_code == 200, 10,
                   "a read through the pool")
        with_one = result_connections(db)
        many = Viewers(result.port, VIEWERS)
        try:
            assert many.ready() == VIEWERS
            assert httpx.get(f"{result.url}/healthz").json()["subscribers"] == VIEWERS + 1
            for _ in range(20):  # reads while the viewers are there
                assert httpx.get(f"{result.url}/api/results").status_code == 200
            with_many = result_connections(db)
        finally:
            many.close()
            one.close()
    assert 2 <= with_one == with_many <= 5, (with_one, with_many)


def test_a_process_allowed_one_connection_holds_one_while_it_streams_and_answers(
        db: Conn, viewers_env: dict[str, str], tmp_path: Path) -> None:
    env = {**viewers_env, "RESULTS_MAX_CONNECTIONS": "1", "RESULTS_POLL_SECONDS": "0.2"}
    with FunctionProcess("result", env, tmp_path) as result:
        viewers = Viewers(result.port, 50)
        try:
            assert viewers.ready() == 50
            for _ in range(20):
                assert httpx.get(f"{result.url}/api/results").status_code == 200
            assert result_connections(db) == 1
        finally:
            viewers.close()
