"""worker_fn over HTTP and from the shell: /events, /readyz, /metrics, logs and status."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
import redis
from starlette.testclient import TestClient

from common import keys
from local.servers import free_port
from support import REPO
from support.metrics import metric as metric_value
from support.stores import tally
from support.votes import expected_tally, make_votes, push
from worker_fn.app import create_app
from worker_fn.settings import WorkerSettings

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def client(environ: dict[str, str], redis_client: redis.Redis, db: Conn) -> Iterator[TestClient]:
    with TestClient(create_app(WorkerSettings.from_env(environ))) as test_client:
        yield test_client


def metric(client: TestClient, name: str) -> float:
    return metric_value(client.get("/metrics").text, name)


def test_events_runs_a_drain_and_metrics_move(client: TestClient, redis_client: redis.Redis,
                                              db: Conn) -> None:
    """POST /events applies the queued votes; the drain counters rise by what it did."""
    before = metric(client, "worker_votes_claimed_total")
    votes = make_votes(voters=30, changes=10)
    push(redis_client, [*votes, b"junk"])
    report = client.post("/events", json={"source": "aws.scheduler"}).json()
    assert report["claimed"] == 41 and report["dead_lettered"] == 1
    assert tally(db) == expected_tally(votes)
    assert metric(client, "worker_votes_claimed_total") - before == 41
    assert metric(client, "worker_dead_letters_total") >= 1
    assert metric(client, "worker_queue_depth") == 0


def test_each_batch_records_the_pipeline_status(client: TestClient, redis_client: redis.Redis,
                                                db: Conn) -> None:
    """The worker writes when it last committed and how much was still queued."""
    push(redis_client, make_votes(voters=5, changes=0))
    client.post("/events")
    row = db.execute("SELECT last_batch_at IS NOT NULL, last_batch_votes, worker_seen_at "
                     "IS NOT NULL FROM pipeline_status").fetchone()
    assert row == (True, 5, True)


def test_readyz_and_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_readyz_names_the_dependency_that_is_down(environ: dict[str, str]) -> None:
    down = {**environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"}
    with TestClient(create_app(WorkerSettings.from_env(down))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and "postgres" in response.json()
    assert client.get("/healthz").status_code == 200


def test_the_response_carries_a_request_id(client: TestClient) -> None:
    """Each response names its request id; one sent by the caller is kept."""
    sent = "5d0f7c1e0a0b4d7e9a3c2b1f0e9d8c7b"
    assert client.get("/healthz", headers={"X-Request-ID": sent}).headers["x-request-id"] == sent
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_a_log_line_is_json_with_the_request_id(function_env: dict[str, str],
                                                redis_client: redis.Redis) -> None:
    """In the default (cloud) format a drain's log line parses as JSON and names the request."""
    script = ("from starlette.testclient import TestClient\n"
              "from worker_fn.app import create_app\n"
              "with TestClient(create_app()) as c:\n"
              "    c.post('/events', headers={'X-Request-ID': 'ab' * 16})\n")
    push(redis_client, make_votes(voters=3, changes=0))
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, env={**function_env, "WORKER_BUDGET_SECONDS": "0"},
                         timeout=60, check=True)
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    drain_lines = [line for line in lines if line["message"].startswith("drain ")]
    assert drain_lines and drain_lines[0]["request_id"] == "ab" * 16
    assert drain_lines[0]["function"] == "worker" and drain_lines[0]["level"] == "INFO"


def test_status_command_shows_queue_claims_dead_letters_and_last_batch(
        function_env: dict[str, str], redis_client: redis.Redis, db: Conn) -> None:
    """``python -m worker_fn status`` reports what an operator needs, as JSON."""
    def run(*args: str) -> dict[str, object]:
        out = subprocess.run([sys.executable, "-m", "worker_fn", *args], cwd=REPO,
                             env=function_env, capture_output=True, text=True, timeout=60,
                             check=True).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    push(redis_client, [*make_votes(voters=7, changes=0), b"junk"])
    assert run("drain")["claimed"] == 8
    push(redis_client, make_votes(voters=4, changes=0, seed=3))
    redis_client.sadd(keys.CLAIMS, "crashed:0")
    redis_client.rpush(keys.processing("crashed:0"), b"x")
    status = run("status")
    assert status["queued"] == 4 and status["dead_letters"] == 1
    assert status["claims"] == [{"batch": "crashed:0", "votes": 1, "lease_ms_left": 0}]
    assert status["counted"] == 7 and status["last_batch_votes"] == 7


ADMIN = "admin-token-0123456789abcdef"


def test_reset_needs_the_admin_token_and_is_audited(environ: dict[str, str],
                                                    redis_client: redis.Redis, db: Conn) -> None:
    """POST /admin/reset without the token is refused; with it the poll empties, the reset is
    in audit_log, and votes accepted before the reset that were still queued never count."""
    settings = WorkerSettings.from_env({**environ, "WORKER_ADMIN_TOKEN": ADMIN})
    with TestClient(create_app(settings)) as client:
        push(redis_client, make_votes(voters=10, changes=0))
        client.post("/events")
        late = make_votes(voters=3, changes=0, seed=5)  # accepted long ago, still queued
        push(redis_client, late)
        body = {"actor": "alice", "reason": "new question"}
        assert client.post("/admin/reset", json=body).status_code == 401
        assert client.post("/admin/reset", json=body,
                           headers={"Authorization": "Bearer wrong"}).status_code == 401
        outcome = client.post("/admin/reset", json=body,
                              headers={"Authorization": f"Bearer {ADMIN}"}).json()
        assert outcome["ballots_removed"] == 10
        assert client.post("/events").json()["claimed"] == 3
    assert tally(db) == {}
    assert db.execute("SELECT action, actor, detail->>'reason' FROM audit_log").fetchall() == [
        ("reset", "http:alice", "new question")]


def test_reset_is_off_without_a_token(client: TestClient) -> None:
    assert client.post("/admin/reset", json={"actor": "x"}).status_code == 404


def test_reset_from_the_shell_is_audited(function_env: dict[str, str], redis_client: redis.Redis,
                                         db: Conn) -> None:
    push(redis_client, make_votes(voters=4, changes=0))
    subprocess.run([sys.executable, "-m", "worker_fn"], cwd=REPO, env=function_env, check=True,
                   capture_output=True, timeout=60)
    run = subprocess.run([sys.executable, "-m", "worker_fn", "reset", "--actor", "bob", "--yes"],
                         cwd=REPO, env=function_env, capture_output=True, text=True, timeout=60,
                         check=True)
    assert json.loads(run.stdout)["ballots_removed"] == 4
    assert tally(db) == {}
    assert db.execute("SELECT actor FROM audit_log").fetchall() == [("cli:bob",)]
