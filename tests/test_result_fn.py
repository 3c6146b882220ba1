"""result_fn over HTTP, against a real PostgreSQL: the page, the API and the stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2 as httpx
import psycopg
import pytest
import redis
from starlette.testclient import TestClient

from common.event import VoteEvent
from local.servers import free_port
from result_fn.app import create_app
from result_fn.settings import ResultSettings
from support.functions import FunctionProcess, drain
from support.sse import events
from support.votes import make_votes, push
from support.waits import wait_for, wait_until


@pytest.fixture
def settings(environ: dict[str, str], db: psycopg.Connection[tuple[object, ...]]) -> ResultSettings:
    return ResultSettings.from_env({**environ, "STREAM_LIFETIME_SECONDS": "2.5",
                                    "STREAM_PING_SECONDS": "1"})


@pytest.fixture
def client(settings: ResultSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        wait_until(lambda: test_client.get("/healthz").status_code == 200, 10, "LISTEN ready")
        yield test_client


def test_no_votes_is_said_honestly(client: TestClient) -> None:
    """With no votes: zero counts, 0 %, and the page says so (no fake 50/50)."""
    body = client.get("/api/results").json()
    assert body["total"] == 0
    assert [(o["id"], o["label"], o["votes"], o["percent"]) for o in body["options"]] == [
        ("cats", "Cats", 0, 0.0), ("dogs", "Dogs", 0, 0.0)]
    assert "No votes yet" in client.get("/").text


def test_results_report_counts_and_percentages(
        client: TestClient, redis_client: redis.Redis, function_env: dict[str, str]) -> None:
    """After a drain the API shows each option's exact count and percentage, and the version."""
    push(redis_client, [VoteEvent(f"{n:032x}", f"voter-{n:012d}", option, 1_000 + n)
                        for n, option in enumerate(["cats", "cats", "dogs", "cats"])])
    drain(function_env)
    body = client.get("/api/results").json()
    assert [(o["id"], o["votes"], o["percent"]) for o in body["options"]] == [
        ("cats", 3, 75.0), ("dogs", 1, 25.0)]
    assert body["total"] == 4 and body["version"] == 1
    page = client.get("/").text
    assert "4 votes" in page and "75.0%" in page


def test_a_finite_stream_starts_with_a_snapshot_and_ends_itself(client: TestClient) -> None:
    """The first event is the full state with id and retry, keep-alive comments follow, and
    the stream ends after its lifetime."""
    response = client.get("/stream")  # STREAM_LIFETIME_SECONDS=2.5, so this returns
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    lines = response.text.splitlines()
    assert lines[0].startswith("id: ")
    data = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
    assert data["total"] == 0 and len(data["options"]) == 2
    assert any(line.startswith("retry: ") for line in lines)
    assert sum(line.startswith(": ping") for line in lines) == 2


def test_the_stream_carries_the_headers_the_middleware_would_add(client: TestClient) -> None:
    """Streams are served ahead of the middleware stack, with the same security headers and
    a request id (the caller's, when it sends a valid one)."""
    sent = "5d0f7c1e0a0b4d7e9a3c2b1f0e9d8c7b"
    response = client.get("/stream", headers={"X-Request-ID": sent})
    assert response.headers["x-request-id"] == sent
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers  # plain HTTP
    assert len(client.get("/stream", headers={"X-Request-ID": "<junk>"})
               .headers["x-request-id"]) == 32


def test_postgres_down_gives_a_fast_503(environ: dict[str, str]) -> None:
    """No PostgreSQL: /api/results answers 503 with Retry-After instead of hanging."""
    down = {**environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"}
    with TestClient(create_app(ResultSettings.from_env(down))) as client:
        response = client.get("/api/results")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert client.get("/healthz").status_code == 503


@pytest.mark.anyio
async def test_the_live_stream_delivers_a_change_to_every_subscriber(
        function_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path,
        db: psycopg.Connection[tuple[object, ...]]) -> None:
    """Over a real socket: three subscribers get the snapshot, then the new tally after a drain."""
    result = FunctionProcess("result", {**function_env, "STREAM_PING_SECONDS": "1"},
                             tmp_path).start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            async def subscriber(seen: list[dict[str, object]]) -> None:
                async with client.stream("GET", f"{result.url}/stream") as response:
                    async for event in events(response):
                        seen.append(json.loads(event.data))
                        if seen[-1]["total"] == 3:
                            return

            seen: list[list[dict[str, object]]] = [[], [], []]
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for log in seen:
                        group.start_soon(subscriber, log)
                    await wait_for(lambda: all(seen), 10, "every subscriber's snapshot")
                    push(redis_client, make_votes(voters=3, changes=0))
                    await anyio.to_thread.run_sync(drain, function_env)
        for log in seen:
            assert log[0]["total"] == 0 and log[-1]["total"] == 3
    finally:
        result.stop()


def test_a_receipt_goes_from_pending_to_counted_and_then_superseded(
        client: TestClient, redis_client: redis.Redis, function_env: dict[str, str]) -> None:
    """A vote's receipt says pending, then counted after the drain, then superseded once the
    same voter's later vote is counted; it never reveals the option."""
    first = VoteEvent("1" * 32, "voter-000000000123", "cats", 1_000)
    later = VoteEvent("2" * 32, "voter-000000000123", "dogs", 2_000)

    def status(vote: VoteEvent) -> dict[str, object]:
        response = client.get(f"/api/receipts/{vote.vote_id}",
                              params={"voter": vote.voter, "ts": vote.accepted_ms})
        assert response.headers["access-control-allow-origin"] == "*"
        return response.json()  # type: ignore[no-any-return]

    push(redis_client, [first])
    assert status(first) == {"vote_id": first.vote_id, "status": "pending"}
    drain(function_env)
    assert status(first)["status"] == "counted"
    push(redis_client, [later])
    assert status(later)["status"] == "pending"
    drain(function_env)
    assert status(later)["status"] == "counted"
    assert status(first)["status"] == "superseded"


@pytest.mark.parametrize("query", ["", "?voter=voter-000000000123", "?voter=x&ts=1",
                                   "?voter=voter-000000000123&ts=-5"])
def test_a_receipt_question_without_its_parts_is_a_400(client: TestClient, query: str) -> None:
    assert client.get(f"/api/receipts/{'1' * 32}{query}").status_code == 400
    assert client.get("/api/receipts/not-an-id?voter=voter-000000000123&ts=5").status_code == 400
