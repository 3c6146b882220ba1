"""A presenter runs a series of polls through vote_fn's admin API, with no restart: the page's
API follows the open poll, a vote goes to it, a vote for a poll that is not open gets 409
and queues nothing, the polls outlive a restart, and every action reaches the audit log."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
import redis
from redis.asyncio import Redis
from starlette.testclient import TestClient

from common import keys
from common.redis_client import open_redis
from support import REPO
from vote_fn import polls
from vote_fn.app import create_app
from vote_fn.queue import PollClosed, VoteQueue
from vote_fn.ratelimit import Limits, RateLimit
from vote_fn.settings import VoteSettings

TOKEN = "presenter-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUIZ = {"question": "Which is the largest?", "results": "after_close",
        "options": [{"id": "sun", "label": "Sun"}, {"id": "moon", "label": "Moon, full"}]}


@pytest.fixture
def presenter_env(environ: dict[str, str]) -> dict[str, str]:
    return {**environ, "ADMIN_TOKEN": TOKEN}


@pytest.fixture
def client(presenter_env: dict[str, str], redis_client: redis.Redis) -> Iterator[TestClient]:
    with TestClient(create_app(VoteSettings.from_env(presenter_env))) as test_client:
        yield test_client


def queued_votes(client: redis.Redis) -> list[bytes]:
    return [raw for raw in client.lrange(keys.QUEUE, 0, -1) if b'"type"' not in raw]


def test_admin_is_off_without_a_token_and_refuses_a_wrong_one(
        environ: dict[str, str], redis_client: redis.Redis, client: TestClient) -> None:
    with TestClient(create_app(VoteSettings.from_env(environ))) as off:
        response = off.post("/api/admin/polls", json=QUIZ)
        assert response.status_code == 404 and "ADMIN_TOKEN" in response.json()["error"]
    wrong = client.post("/api/admin/polls", json=QUIZ, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/admin/polls", json=QUIZ).status_code == 401
    assert redis_client.llen(keys.QUEUE) == 0


def test_a_bad_poll_is_a_422_naming_the_problem(client: TestClient) -> None:
    for body, problem in ((
            {**QUIZ, "options": [{"id": "sun", "label": "Sun"}]}, "2 to 10 options"),
            ({**QUIZ, "question": ""}, "question"), ({**QUIZ, "results": "never"}, "results")):
        response = client.post("/api/admin/polls", json=body, headers=AUTH)
        assert response.status_code == 422 and problem in response.json()["error"]


def test_a_series_of_polls_without_a_restart(client: TestClient, redis_client: redis.Redis,
                                             presenter_env: dict[str, str]) -> None:
    assert client.get("/api/poll").json()["poll"] == "first"  # opened on a new deployment
    created = client.post("/api/admin/polls", json=QUIZ, headers=AUTH)
    assert created.status_code == 201
    quiz = created.json()
    assert quiz["poll"].startswith("p-") and quiz["open"] is False
    assert quiz["options"][1]["label"] == "Moon, full"

    assert client.post(f"/api/admin/polls/{quiz['poll']}/open", headers=AUTH).json() == {
        "poll": quiz["poll"], "open": True}
    shown = client.get("/api/poll").json()
    assert (shown["poll"], shown["question"], shown["open"]) == (
        quiz["poll"], QUIZ["question"], True)

    assert client.post("/api/vote", json={"vote": "moon"}).status_code == 202
    stale = client.post("/api/vote", json={"vote": "cats", "poll": "first"})
    assert stale.status_code == 409 and "not open" in stale.json()["error"]
    assert client.post("/api/vote", json={"vote": "cats"}).status_code == 422  # not its option
    assert [b'"poll":"' + quiz["poll"].encode() + b'"' in raw
            for raw in queued_votes(redis_client)] == [True]

    assert client.post(f"/api/admin/polls/{quiz['poll']}/close", headers=AUTH).json() == {
        "poll": quiz["poll"], "open": False}
    assert client.get("/api/poll").json() == {"open": False}
    closed = client.post("/api/vote", json={"vote": "moon"})
    assert closed.status_code == 409 and "no poll is open" in closed.json()["error"]
    assert len(queued_votes(redis_client)) == 1
    assert client.post("/api/admin/polls/p-00000000/open", headers=AUTH).status_code == 404

    # A restart (another instance) serves the same polls.
    client.post(f"/api/admin/polls/{quiz['poll']}/open", headers=AUTH)
    with TestClient(create_app(VoteSettings.from_env(presenter_env))) as again:
        assert again.get("/api/poll").json()["poll"] == quiz["poll"]


def test_every_action_reaches_the_audit_log_and_the_results(
        client: TestClient, db: psycopg.Connection[tuple[object, ...]],
        function_env: dict[str, str]) -> None:
    quiz = client.post("/api/admin/polls", json=QUIZ, headers=AUTH).json()["poll"]
    client.post(f"/api/admin/polls/{quiz}/open", headers=AUTH)
    client.post("/api/vote", json={"vote": "sun"})
    client.post(f"/api/admin/polls/{quiz}/close", headers=AUTH)
    subprocess.run([sys.executable, "-m", "worker_fn", "--budget", "5"], cwd=REPO,
                   env=function_env, check=True, capture_output=True, timeout=60)
    actions = db.execute("SELECT action, detail->>'poll' FROM audit_log ORDER BY id").fetchall()
    assert actions == [("define poll", quiz), ("close poll", "first"), ("open poll", quiz),
                       ("close poll", quiz)]
    assert db.execute("SELECT votes FROM tallies WHERE poll = %s AND option = 'sun'",
                      (quiz,)).fetchone() == (1,)
    assert db.execute("SELECT current, last FROM poll_state").fetchone() == (None, quiz)


@pytest.mark.anyio
@pytest.mark.parametrize("limits", [None, Limits(RateLimit(10, 10, 60), RateLimit(10, 10, 60))])
async def test_the_push_itself_refuses_a_poll_that_is_not_open(
        redis_url: str, redis_client: redis.Redis, limits: Limits | None) -> None:
    """vote_fn's copy of the open poll may be half a second old; the push checks the poll in
    its own round trip (with or without limits), so a vote that arrives just after another
    instance closed its poll queues nothing."""
    client = Redis.from_url(redis_url)
    queue = VoteQueue(client, limits)
    try:
        redis_client.set(keys.OPEN_POLL, "first")
        await queue.push(b'{"n": 1}', "first", None, "192.0.2.1")
        redis_client.delete(keys.OPEN_POLL)
        with pytest.raises(PollClosed):
            await queue.push(b'{"n": 2}', "first", None, "192.0.2.1")
    finally:
        await client.aclose()
    assert redis_client.lrange(keys.QUEUE, 0, -1) == [b'{"n": 1}']


@pytest.mark.anyio
async def test_the_poll_refresher_stops_wherever_the_shutdown_finds_it(
        environ: dict[str, str], redis_client: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """vote_fn's lifespan ends by stopping the refresher of the open poll, which is then
    often in the middle of a Redis call. On Python 3.11 redis-py's call can drop that
    cancellation and the refresher goes on (common/tasks.py): the shutdown hung for good
    (a CI run's 120 s timeout). Here the refresher reads without a pause, and each
    shutdown, at a random moment, must be over within a second with the refresher ended."""
    monkeypatch.setattr(polls, "REFRESH_S", 0)
    settings = VoteSettings.from_env(environ)
    rng = random.Random(15)
    client = open_redis(settings.redis)
    try:
        for attempt in range(200):
            book = await polls.PollBook(client, settings.first_poll, presenter=False).__aenter__()
            await asyncio.sleep(rng.uniform(0, 0.002))
            # Its own task, so that a shutdown that swallows a cancellation cannot hide here.
            shutdown = asyncio.ensure_future(book.__aexit__(None, None, None))
            await asyncio.wait({shutdown}, timeout=1)
            refresher = book._refresher
            assert shutdown.done() and refresher is not None and refresher.done(), attempt
    finally:
        await client.aclose()
