"""What operators see of vote_fn and result_fn: /metrics that move, /readyz, request ids,
JSON log lines that carry the request id and never a voter or a choice.
(worker_fn's are in test_worker_fn.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2 as httpx
import psycopg
import pytest
import redis
from starlette.testclient import TestClient

from common import keys
from local.servers import free_port
from result_fn.app import create_app as create_result_app
from result_fn.settings import ResultSettings
from support import REPO
from support.functions import FunctionProcess, drain
from support.metrics import metric
from support.sse import events
from support.votes import make_votes, push
from support.waits import wait_until
from vote_fn.app import create_app as create_vote_app
from vote_fn.queue import VoteQueue
from vote_fn.settings import VoteSettings


@pytest.fixture
def vote(environ: dict[str, str], redis_client: redis.Redis) -> Iterator[TestClient]:
    with TestClient(create_vote_app(VoteSettings.from_env(environ))) as client:
        yield client


def test_vote_metrics_count_accepted_and_rejected_votes_by_reason(vote: TestClient) -> None:
    before = vote.get("/metrics").text
    vote.post("/api/vote", json={"vote": "cats"})
    vote.post("/api/vote", json={"vote": "dogs"})
    vote.post("/api/vote", json={"vote": "hamsters"})
    vote.post("/api/vote", content=b"{", headers={"Content-Type": "application/json"})
    after = vote.get("/metrics").text
    assert metric(after, "vote_votes_accepted_total") - \
        metric(before, "vote_votes_accepted_total") == 2
    for reason in ("unknown_option", "malformed"):
        assert metric(after, "vote_votes_rejected_total", reason=reason) - \
            metric(before, "vote_votes_rejected_total", reason=reason) == 1
    assert metric(after, "http_requests_total", method="POST", path="/api/vote",
                  status_code="202") >= 2


def test_http_metrics_label_the_route_template_never_the_raw_url(vote: TestClient) -> None:
    """Paths are grouped by route (a URL per label would grow without bound)."""
    vote.get("/static/vote.css")
    vote.get("/no/such/page/12345")
    page = vote.get("/metrics").text
    assert metric(page, "http_requests_total", path="/static", status_code="200") >= 1
    assert metric(page, "http_requests_total", path="__unmatched__", status_code="404") >= 1
    assert "/no/such/page/12345" not in page and "/static/vote.css" not in page
    assert metric(page, "http_request_duration_seconds_count", path="/static") >= 1


def test_vote_readyz_and_request_id(vote: TestClient, environ: dict[str, str]) -> None:
    assert vote.get("/readyz").json() == {"status": "ok"}
    sent = "0123456789abcdef0123456789abcdef"
    assert vote.get("/", headers={"X-Request-ID": sent}).headers["x-request-id"] == sent
    down = {**environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with TestClient(create_vote_app(VoteSettings.from_env(down))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and "redis" in response.json()


def test_vote_logs_are_json_with_request_id_and_no_voter_or_choice(
        function_env: dict[str, str], redis_client: redis.Redis) -> None:
    """A vote, and a vote refused because Redis is down: every line is JSON; the warning
    carries the request id; no line holds the voter id or the choice."""
    script = ("import json, sys\n"
              "from starlette.testclient import TestClient\n"
              "from vote_fn.app import create_app\n"
              "with TestClient(create_app()) as c:\n"
              "    print(json.dumps(c.post('/api/vote', json={'vote': 'dogs'}).json()))\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, env=function_env, timeout=60, check=True)
    receipt = json.loads(run.stdout)
    down = {**function_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    refused = subprocess.run(
        [sys.executable, "-c", script.replace("json={'vote': 'dogs'}",
                                              "json={'vote': 'dogs'}, "
                                              "headers={'X-Request-ID': 'cd' * 16}")],
        cwd=REPO, capture_output=True, text=True, env=down, timeout=60, check=True)
    assert json.loads(refused.stdout)["error"]
    lines = [*run.stderr.splitlines(), *refused.stderr.splitlines()]
    parsed = [json.loads(line) for line in lines if line.strip()]
    warnings = [line for line in parsed if line["level"] == "WARNING"
                and line["message"].startswith("vote not accepted")]
    assert warnings and warnings[0]["request_id"] == "cd" * 16
    assert warnings[0]["function"] == "vote"
    text = "\n".join(lines)
    assert receipt["voter"] not in text and "dogs" not in text


@pytest.fixture
def result(function_env: dict[str, str], db: psycopg.Connection[tuple[object, ...]],
           tmp_path: Path) -> Iterator[FunctionProcess]:
    with FunctionProcess("result", function_env, tmp_path) as process:
        yield process


@pytest.mark.anyio
async def test_result_metrics_count_subscribers_and_events(
        result: FunctionProcess, function_env: dict[str, str],
        redis_client: redis.Redis) -> None:
    async with httpx.AsyncClient(base_url=result.url, timeout=10) as client:
        assert (await client.get("/readyz")).json() == {"status": "ok"}
        async with client.stream("GET", "/stream") as response:
            stream = events(response)
            await anext(stream)  # the snapshot
            page = (await client.get("/metrics")).text
            assert metric(page, "result_sse_subscribers") == 1
            sent = metric(page, "result_sse_events_sent_total")
            assert sent >= 1
            push(redis_client, make_votes(voters=3, changes=0))
            await anyio.to_thread.run_sync(drain, function_env, 5)
            await anext(stream)  # the change
            page = (await client.get("/metrics")).text
            assert metric(page, "result_sse_events_sent_total") >= sent + 1

        async def closed() -> bool:
            return metric((await client.get("/metrics")).text, "result_sse_subscribers") == 0
        for _ in range(100):
            if await closed():
                break
            await anyio.sleep(0.05)
        assert await closed()


def test_result_readyz_names_postgres_when_down(environ: dict[str, str]) -> None:
    down = {**environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"}
    with TestClient(create_result_app(ResultSettings.from_env(down))) as client:
        wait_until(lambda: client.get("/readyz").status_code == 503, 5, "readyz 503")
        assert "postgres" in client.get("/readyz").json()


def test_under_a_root_path_a_vote_is_answered_and_counted_once(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """Mounted under a prefix (``uvicorn --root-path``), POST /api/vote still takes the
    fast path: one request id, one set of security headers, one request counted."""
    app = create_vote_app(VoteSettings.from_env(environ))
    with TestClient(app, root_path="/poll") as client:
        labels = {"method": "POST", "path": "/api/vote", "status_code": "202"}
        before = metric(client.get("/poll/metrics").text, "http_requests_total", **labels)
        response = client.post("/poll/api/vote", json={"vote": "cats"})
        after = metric(client.get("/poll/metrics").text, "http_requests_total", **labels)
    assert response.status_code == 202
    for name in ("x-request-id", "x-content-type-options", "content-security-policy"):
        assert len(response.headers.get_list(name)) == 1, name
    assert after - before == 1
    assert redis_client.llen(keys.QUEUE) == 1


def test_an_unexpected_error_on_the_vote_path_is_a_json_500_with_the_request_id(
        vote: TestClient, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A bug behind POST /api/vote answers what the API promises (JSON with an error, the
    request id, the security headers), is counted as a 500 and logged with its traceback."""
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("an injected bug")

    monkeypatch.setattr(VoteQueue, "push", broken)
    labels = {"method": "POST", "path": "/api/vote", "status_code": "500"}
    before = metric(vote.get("/metrics").text, "http_requests_total", **labels)
    sent = "0123456789abcdef0123456789abcdef"
    response = vote.post("/api/vote", json={"vote": "cats"}, headers={"X-Request-ID": sent})
    assert response.status_code == 500 and response.json()["error"]
    assert response.headers["x-request-id"] == sent
    assert response.headers["x-content-type-options"] == "nosniff"
    assert metric(vote.get("/metrics").text, "http_requests_total", **labels) - before == 1
    [record] = [r for r in caplog.records if r.exc_info]
    assert "an injected bug" in str(record.exc_info[1])
    assert redis_client.llen(keys.QUEUE) == 0


@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/vote", "application/json"),  # served by the edge ahead of the stack
    ("/", "application/x-www-form-urlencoded"),  # the form, through the stack
])
def test_a_voter_who_hangs_up_mid_body_is_not_counted_as_a_server_error(
        vote: TestClient, caplog: pytest.LogCaptureFixture, path: str, content_type: str) -> None:
    """A client gone before its body arrived is counted as 499, not as a 500 an operator
    would be paged for, and logs no traceback."""
    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80), "headers": [(b"content-type", content_type.encode())],
             "state": dict(vote.app_state)}
    before = vote.get("/metrics").text
    anyio.run(vote.app, scope, receive, send)
    after = vote.get("/metrics").text
    assert not [r for r in caplog.records if r.exc_info]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    for status, counted in (("499", 1), ("500", 0)):
        labels = {"method": "POST", "path": path, "status_code": status}
        assert metric(after, "http_requests_total", **labels) - \
            metric(before, "http_requests_total", **labels) == counted
