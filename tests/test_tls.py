"""Verified TLS, with certificates the test makes: the functions talk rediss:// to a Redis
that speaks only TLS (Debian's redis-server: the wheel's Valkey has no TLS), standalone
and in cluster mode as ElastiCache Serverless is, and PostgreSQL with sslmode=verify-full
(Debian's, whose build has TLS). A certificate from another CA is refused at once, with
an answer or a log line that says so, never a hang.

Debian's PostgreSQL is older than the schema needs (worker_fn/migrations.py refuses it),
so the PostgreSQL side proves the functions' own connections: result_fn's pool and LISTEN
connection, and the worker's start-up check, which reads the server's version over
verify-full before it refuses the old server. The drain itself runs on the wheel's
PostgreSQL, which has no TLS."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest

from common.settings import SettingsError
from local import profile
from local.servers import free_port
from support import REPO
from support.cluster import Cluster
from support.functions import FunctionProcess, tick
from support.http import http_get
from support.processes import wait_ready
from support.servers import ServerProcess, start_tls_postgres, start_tls_redis
from support.tls import Certificates, make_certificates
from vote_fn.settings import VoteSettings

Conn = psycopg.Connection[tuple[object, ...]]
REDIS_SERVER, REDIS_CLI = shutil.which("redis-server"), shutil.which("redis-cli")
DEBIAN_POSTGRES = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
REFUSED = "certificate verify failed"  # what OpenSSL says of a server it cannot verify

needs_tls_redis = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="needs Debian's redis-server and redis-cli, built with TLS (the wheel's Valkey has "
           "none): apt-get install redis-server (.ci/run does so)")
needs_tls_postgres = pytest.mark.skipif(
    not DEBIAN_POSTGRES,
    reason="needs Debian's PostgreSQL, built with TLS (the wheel's has none): apt-get install "
           "postgresql (.ci/run does so)")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module", params=["standalone", "cluster"])
def tls_redis(request: pytest.FixtureRequest, certificates: Certificates,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Redis that speaks only TLS, as a function's settings name it."""
    assert REDIS_SERVER is not None and REDIS_CLI is not None
    base = tmp_path_factory.mktemp("redis")
    if request.param == "cluster":
        with Cluster.start(base, replicas=0, tls=certificates.server, server_bin=REDIS_SERVER,
                           cli=REDIS_CLI) as cluster:
            yield {"REDIS_URL": cluster.nodes[0].url, "REDIS_CLUSTER": "true"}
        return
    server = start_tls_redis(base, certificates.server, REDIS_SERVER)
    try:
        yield {"REDIS_URL": server.url, "REDIS_CLUSTER": "false"}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_postgres(certificates: Certificates,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_tls_postgres(tmp_path_factory.mktemp("postgres"), certificates.server,
                                DEBIAN_POSTGRES[-1].parent)
    try:
        yield server
    finally:
        server.stop()


def verify_full(url: str, ca: Path) -> str:
    return f"{url}?sslmode=verify-full&sslrootcert={ca}"


def started(function: FunctionProcess, path: str) -> FunctionProcess:
    """Started and answering ``path`` with anything: a function whose store refuses it is
    rightly never healthy."""
    wait_ready(function.spawn(), lambda: http_get(function.url + path)[0] > 0,
               f"{function.name} answering {path}", function.log_path)
    return function


@needs_tls_redis
def test_a_vote_is_queued_drained_and_shown_over_verified_tls(
        tls_redis: dict[str, str], certificates: Certificates, function_env: dict[str, str],
        db: Conn, tmp_path: Path) -> None:
    """vote_fn queues a vote and worker_fn drains it over rediss:// verified against
    REDIS_CA_FILE; result_fn shows it."""
    env = {**function_env, **tls_redis, "REDIS_CA_FILE": str(certificates.server.ca)}
    with FunctionProcess("vote", env, tmp_path) as vote, \
            FunctionProcess("worker", env, tmp_path) as worker, \
            FunctionProcess("result", env, tmp_path) as result:
        voted = httpx.post(f"{vote.url}/api/vote", json={"vote": "dogs"}, timeout=10)
        assert voted.status_code == 202, voted.text
        status, report = tick(worker)
        assert (status, report["applied"]) == (200, 1), report
        shown = httpx.get(f"{result.url}/api/results", timeout=10).json()
    assert shown["total"] == 1
    assert {option["id"]: option["votes"] for option in shown["options"]} == {"cats": 0,
                                                                              "dogs": 1}


@needs_tls_redis
@pytest.mark.parametrize("trusted", ["another CA", "the system's CAs"])
def test_a_redis_certificate_the_functions_cannot_verify_is_refused_at_once(
        trusted: str, tls_redis: dict[str, str], certificates: Certificates,
        function_env: dict[str, str], tmp_path: Path) -> None:
    """REDIS_CA_FILE naming a CA that did not sign the server's certificate, or none (the
    system's CAs do not know the test's): a vote gets 503 within a second, /healthz says
    why, vote_fn's log says so from the start, and a drain answers 503 saying so."""
    env = {**function_env, **tls_redis}
    if trusted == "another CA":
        env["REDIS_CA_FILE"] = str(certificates.other_ca)
    vote = started(FunctionProcess("vote", env, tmp_path), "/healthz")
    worker = FunctionProcess("worker", env, tmp_path)
    try:
        worker.start()
        began = time.monotonic()
        voted = httpx.post(f"{vote.url}/api/vote", json={"vote": "dogs"}, timeout=10)
        seconds = time.monotonic() - began
        health = httpx.get(f"{vote.url}/healthz", timeout=10)
        status, report = tick(worker)
    finally:
        vote.stop()
        worker.stop()
    assert voted.status_code == 503 and voted.headers["retry-after"] and seconds < 1.0
    assert health.status_code == 503 and REFUSED in health.json()["redis"]
    assert REFUSED in vote.log_path.read_text()
    assert status == 503 and REFUSED in report["error"], report


@needs_tls_redis
def test_a_redis_certificate_for_another_name_is_refused(
        certificates: Certificates, function_env: dict[str, str], tmp_path: Path) -> None:
    """A certificate signed by the trusted CA, but for another name than the server's
    address: refused too (rediss:// checks the name, not only the signature)."""
    assert REDIS_SERVER is not None
    server = start_tls_redis(tmp_path, certificates.other_name, REDIS_SERVER)
    env = {**function_env, "REDIS_URL": server.url, "REDIS_CA_FILE": str(certificates.server.ca)}
    try:
        vote = started(FunctionProcess("vote", env, tmp_path), "/healthz")
        try:
            health = httpx.get(f"{vote.url}/healthz", timeout=10)
        finally:
            vote.stop()
    finally:
        server.stop()
    assert health.status_code == 503 and "mismatch" in health.json()["redis"], health.text


@pytest.mark.parametrize(("environ", "expected"), [
    ({"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_CA_FILE": "/nonexistent/ca.pem"},
     "REDIS_CA_FILE='/nonexistent/ca.pem' cannot be used"),
    ({"REDIS_URL": "rediss://127.0.0.1:1/0", "REDIS_CA_FILE": str(REPO / "README.md")},
     "REDIS_CA_FILE="),
    ({"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_CA_FILE": str(REPO / "README.md")},
     "REDIS_CA_FILE is set but REDIS_URL does not use TLS"),
])
def test_a_ca_file_that_cannot_verify_anything_stops_the_start(environ: dict[str, str],
                                                               expected: str) -> None:
    """A missing file, one without certificates, or a CA file for a plain redis:// URL is
    a configuration error naming REDIS_CA_FILE."""
    with pytest.raises(SettingsError, match="REDIS_CA_FILE") as raised:
        VoteSettings.from_env({"VOTE_SECRET": "x" * 32, **environ})
    assert str(raised.value).startswith(expected)


@needs_tls_postgres
def test_the_functions_connect_to_postgresql_with_verify_full(
        tls_postgres: ServerProcess, certificates: Certificates, function_env: dict[str, str],
        tmp_path: Path) -> None:
    """result_fn's connections (its pool and its LISTEN) are TLS, verified against the
    sslrootcert of DATABASE_URL; the worker's start-up check reads the server's version
    over the same, then stops at the old server with its one line."""
    url = verify_full(tls_postgres.url, certificates.server.ca)
    env = {**function_env, "DATABASE_URL": url}
    with FunctionProcess("result", env, tmp_path) as result:
        ready = httpx.get(f"{result.url}/readyz", timeout=10)
        with psycopg.connect(tls_postgres.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity "
                "USING (pid) WHERE backend_type = 'client backend' AND pid <> "
                "pg_backend_pid()").fetchone()
    assert ready.status_code == 200, ready.text
    assert row is not None and row[0] >= 2 and row[1] is True, row

    argv = profile.uvicorn_argv(profile.by_name("worker"), "127.0.0.1", free_port())
    run = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env=env)
    assert run.stderr.strip().splitlines()[-1] == (
        "configuration error: DATABASE_URL names PostgreSQL "
        f"{DEBIAN_POSTGRES[-1].parent.parent.name}: 18 or newer is needed")


@needs_tls_postgres
def test_a_postgresql_certificate_from_another_ca_is_refused_at_once(
        tls_postgres: ServerProcess, certificates: Certificates, function_env: dict[str, str],
        tmp_path: Path) -> None:
    """sslrootcert naming a CA that did not sign the server's certificate: result_fn's
    /readyz answers 503 and a drain answers 503 (once its pool gives up), and the logs of
    both say why."""
    env = {**function_env, "DATABASE_URL": verify_full(tls_postgres.url, certificates.other_ca)}
    result = started(FunctionProcess("result", env, tmp_path), "/readyz")
    worker = FunctionProcess("worker", env, tmp_path)
    try:
        worker.start()
        began = time.monotonic()
        ready = httpx.get(f"{result.url}/readyz", timeout=10)
        seconds = time.monotonic() - began
        status, report = tick(worker)
    finally:
        result.stop()
        worker.stop()
    assert ready.status_code == 503 and seconds < 2.0, (ready.text, seconds)
    assert status == 503, report
    assert REFUSED in result.log_path.read_text()
    assert REFUSED in worker.log_path.read_text()
