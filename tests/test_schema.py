"""The schema has one owner (the worker's migrations): a start never takes a DDL lock, a
migration waits for a busy table only briefly, result_fn before the first drain says the
results are not ready (and makes PostgreSQL log no error), and a server too old to ever
work stops the worker at start-up with one line."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2 as httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from common.schema import SCHEMA_VERSION
from local import profile
from local.servers import database_url as postgres_url
from local.servers import free_port
from result_fn.app import create_app
from result_fn.settings import ResultSettings
from support import REPO
from support.functions import FunctionProcess
from support.servers import ServerProcess
from support.waits import wait_until
from tests.conftest import prepare_schema
from worker_fn.migrations import migrate

Conn = psycopg.Connection[tuple[object, ...]]
DEBIAN_POSTGRES = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))


def run_migrate(url: str) -> int:
    async def run() -> int:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await migrate(conn)
    return anyio.run(run)


def version(conn: Conn) -> int:
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def test_a_migrated_database_gets_no_ddl_however_busy_its_tables(
        bare_db: Conn, database_url: str) -> None:
    """Once current, a migration is a read: it returns at once even while a drain-like
    transaction holds the tables (an ALTER would wait behind it, and queue readers)."""
    assert run_migrate(database_url) == SCHEMA_VERSION
    assert version(bare_db) == SCHEMA_VERSION
    with psycopg.connect(database_url) as drain:
        drain.execute("UPDATE results_meta SET version = version + 1")  # open, uncommitted
        started = time.monotonic()
        assert run_migrate(database_url) == 0
        assert time.monotonic() - started < 1
        drain.rollback()


def test_a_database_from_before_schema_versions_is_brought_to_the_current_one(
        bare_db: Conn, database_url: str) -> None:
    """Tables made by the unversioned code are kept, with their votes, and versioned."""
    bare_db.execute("CREATE TABLE ballots (voter text PRIMARY KEY, option text NOT NULL, "
                    "vote_id text NOT NULL, accepted_ms bigint NOT NULL)")
    bare_db.execute("INSERT INTO ballots VALUES ('voter-000000000001', 'cats', 'x', 1)")
    bare_db.execute("CREATE TABLE results_meta (singleton boolean PRIMARY KEY DEFAULT true, "
                    "version bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL "
                    "DEFAULT now())")
    assert run_migrate(database_url) == SCHEMA_VERSION
    assert bare_db.execute("SELECT count(*), min(option) FROM ballots").fetchone() == (1, "cats")
    assert bare_db.execute("SELECT reset_at_ms FROM results_meta").fetchone() == (0,)


def test_a_migration_behind_a_busy_table_gives_up_in_seconds(bare_db: Conn,
                                                              database_url: str) -> None:
    """A migration that needs a lock a long transaction holds fails fast (the next drain
    retries it) instead of queueing every reader of that table behind itself."""
    bare_db.execute("CREATE TABLE results_meta (singleton boolean PRIMARY KEY DEFAULT true, "
                    "version bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL "
                    "DEFAULT now())")
    with psycopg.connect(database_url) as reader:
        reader.execute("SELECT * FROM results_meta")  # a transaction left open
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            run_migrate(database_url)
        assert time.monotonic() - started < 5
        reader.rollback()
    assert run_migrate(database_url) == SCHEMA_VERSION


def postgres_log(server_dir: Path) -> str:
    return "\n".join(path.read_text(errors="replace")
                     for path in server_dir.glob("postgres-*.log"))


def test_result_fn_before_the_first_drain_says_not_ready_and_postgres_logs_no_error(
        bare_db: Conn, environ: dict[str, str], database_url: str, server_dir: Path) -> None:
    """On a database the worker has not prepared, the API answers 503 "not ready" and the
    page says so; once the worker has migrated, the figures come. PostgreSQL's own log
    gets no error from result_fn asking."""
    log_before = postgres_log(server_dir)
    with TestClient(create_app(ResultSettings.from_env(environ))) as client:
        response = client.get("/api/results")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "not ready" in response.json()["error"]
        assert "not ready" in client.get("/").text
        prepare_schema(database_url)
        wait_until(lambda: client.get("/api/results").status_code == 200, 5, "results")
    new_lines = postgres_log(server_dir)[len(log_before):]
    assert "ERROR" not in new_lines, new_lines


def test_a_result_process_starting_behind_an_open_drain_answers_within_a_second(
        db: Conn, function_env: dict[str, str], database_url: str, tmp_path: Path) -> None:
    """A transaction holding the tallies and the results version, as a long drain does,
    does not hold up a result_fn process that starts meanwhile."""
    with psycopg.connect(database_url) as drain:
        drain.execute("UPDATE tallies SET votes = votes + 0")
        drain.execute("UPDATE results_meta SET version = version + 1")
        result = FunctionProcess("result", function_env, tmp_path).start()
        try:
            started = time.monotonic()
            response = httpx.get(f"{result.url}/api/results", timeout=1)
            assert response.status_code == 200 and time.monotonic() - started < 1
        finally:
            result.stop()
            drain.rollback()


@pytest.fixture
def old_postgres(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL 15 from Debian's packages: a real server too old for the schema."""
    if not DEBIAN_POSTGRES or DEBIAN_POSTGRES[0].parent.parent.name >= "18":
        pytest.skip("needs an older PostgreSQL from Debian's packages: apt-get install "
                    "postgresql (.ci/run does so)")
    port = free_port()
    server = ServerProcess("postgres", postgres_url(port), tmp_path / "pg-old", port,
                           ["--bin-dir", str(DEBIAN_POSTGRES[0].parent)])
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_an_older_postgresql_stops_the_worker_at_start_with_one_line(
        old_postgres: str, function_env: dict[str, str]) -> None:
    """Like a bad setting: exit status 2 and one line naming DATABASE_URL, no traceback."""
    argv = profile.uvicorn_argv(profile.by_name("worker"), "127.0.0.1", free_port())
    run = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, capture_output=True,
                         text=True, timeout=60,
                         env={**function_env, "DATABASE_URL": old_postgres})
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        "configuration error: DATABASE_URL names PostgreSQL 15: 18 or newer is needed")
    assert "Traceback" not in run.stderr
