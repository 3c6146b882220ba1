"""Session-wide real servers, per-test clean state, and the browser tests' Chromium and
local stack (one per module)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import psycopg
import pytest
import redis

from common.polls import DEFAULT_QUESTION, FIRST, Poll, parse_options
from support.processes import child_env
from support.servers import env_url, start_postgres, start_valkey
from worker_fn.migrations import prepare

if TYPE_CHECKING:  # imported by the fixtures that need them: only the browser tests do
    from playwright.sync_api import Browser

    from support.local_stack import LocalStack

OPTIONS = parse_options("cats:Cats,dogs:Dogs")
FIRST_POLL = Poll(FIRST, DEFAULT_QUESTION, OPTIONS)
POLLS = {FIRST: FIRST_POLL}  # the polls known to a drain that has seen only the first
SECRET = "test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, for one module's browser tests."""
    from support.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack with a presenter's admin token, for one module's browser tests."""
    from support.presenter import presenter_stack

    with presenter_stack(tmp_path_factory.mktemp(request.module.__name__)) as started:
        yield started


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="voting-tests-") as path:
        yield Path(path)


@pytest.fixture(scope="session")
def redis_url(server_dir: Path) -> Iterator[str]:
    if url := env_url("REDIS_URL"):
        yield url
        return
    if os.environ.get("TEST_SERVERS") == "containers":
        from testcontainers.redis import RedisContainer

        with RedisContainer("valkey/valkey:8") as container:
            yield (f"redis://{container.get_container_host_ip()}:"
                   f"{container.get_exposed_port(6379)}/0")
        return
    server = start_valkey(server_dir)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(server_dir: Path) -> Iterator[str]:
    if url := env_url("DATABASE_URL"):
        yield url
        return
    if os.environ.get("TEST_SERVERS") == "containers":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield container.get_connection_url()
        return
    server = start_postgres(server_dir)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


VOTING_TABLES = ("ballots, tallies, results_meta, pipeline_status, audit_log, polls, poll_state, "
                 "schema_version")


@pytest.fixture
def bare_db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to a database with no voting tables: before the worker's
    first drain."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {VOTING_TABLES}")
        yield conn


def prepare_schema(database_url: str) -> None:
    """What the worker does before its first drain: the schema and the first poll."""
    async def prepare_now() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await prepare(conn, FIRST_POLL)

    anyio.run(prepare_now)


@pytest.fixture
def db(bare_db: psycopg.Connection[tuple[object, ...]],
       database_url: str) -> psycopg.Connection[tuple[object, ...]]:
    """The same with the worker's schema and no votes (a fresh start)."""
    prepare_schema(database_url)
    return bare_db


@pytest.fixture
def environ(redis_url: str, database_url: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "DATABASE_URL": database_url,
            "VOTE_OPTIONS": "cats:Cats,dogs:Dogs", "VOTE_SECRET": SECRET,
            "WORKER_BUDGET_SECONDS": "0",
            # Every test votes from one address; tests/test_security.py turns the limit on.
            "VOTE_RATE_LIMIT": "0"}


__all__ = ["FIRST_POLL", "OPTIONS", "POLLS", "SECRET"]


@pytest.fixture
def function_env(environ: dict[str, str]) -> dict[str, str]:
    """The environment for a function process: the test servers and the PATH/HOME of ours."""
    return {**child_env(**environ), "WORKER_BUDGET_SECONDS": "2"}
