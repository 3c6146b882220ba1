"""Fault injection after the queue: real worker processes killed, overlapped, out of time,
fed poison; PostgreSQL killed under the worker and under result_fn. Every queued vote is
still counted exactly once, and the live results recover."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
import psycopg
import pytest
import redis

from common import keys
from common.event import VoteEvent
from support.checker import History, assert_exact, check, final_read, read_counted
from support.functions import FunctionProcess, tick, tick_until_drained
from support.metrics import metric
from support.servers import ServerProcess, start_postgres
from support.sse import events
from support.stores import ballot_count, drained, held_by_claims
from support.votes import make_votes, push
from support.waits import wait_for, wait_until
from worker_fn.settings import FAILPOINTS

Conn = psycopg.Connection[tuple[object, ...]]
LEASE_S = "0.3"


@pytest.fixture
def worker_env(function_env: dict[str, str]) -> dict[str, str]:
    return {**function_env, "WORKER_LEASE_SECONDS": LEASE_S, "WORKER_BUDGET_SECONDS": "0.5",
            "WORKER_BATCH_MAX": "500", "LOG_FORMAT": "text"}


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[ServerProcess]:
    """A PostgreSQL of this test's own, which it may kill (the session's is shared)."""
    server = start_postgres(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def workers() -> Iterator[list[FunctionProcess]]:
    """Worker processes started by the test; any still running are stopped at the end."""
    started: list[FunctionProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(workers: list[FunctionProcess], env: dict[str, str],
                 log_dir: Path) -> FunctionProcess:
    worker = FunctionProcess("worker", env, log_dir).start()
    workers.append(worker)
    return worker


def postgres_failures(worker: FunctionProcess) -> float:
    """Batches the worker gave back after a PostgreSQL error (its own metric)."""
    return metric(httpx.get(f"{worker.url}/metrics", timeout=5).text,
                  "worker_postgres_failures_total")


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_a_worker_killed_at_any_point_of_a_drain_loses_and_doubles_nothing(
        failpoint: str, worker_env: dict[str, str], redis_client: redis.Redis, db: Conn,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """SIGKILL at each failpoint: a fresh worker recovers the claim after its lease; exact."""
    votes = make_votes(voters=3000, changes=0)
    push(redis_client, votes)
    dying = start_worker(workers, {**worker_env, "WORKER_FAILPOINT": failpoint}, tmp_path)
    with pytest.raises(httpx.TransportError):
        tick(dying)
    assert dying.process is not None and dying.process.wait(10) == -signal.SIGKILL

    held = held_by_claims(redis_client)
    committed = ballot_count(worker_env["DATABASE_URL"])
    if failpoint == "before_claim":
        assert (redis_client.llen(keys.QUEUE), held, committed) == (len(votes), 0, 0)
    else:  # the dead worker holds a claim, and has committed only after the transaction
        assert held > 0
        assert (committed > 0) == (failpoint == "after_commit"), committed

    fresh = start_worker(workers, worker_env, tmp_path)
    replies = tick_until_drained(fresh, redis_client)
    assert all(status == 200 for status, _ in replies), replies
    assert sum(report["recovered"] for _, report in replies) == held

    outcome = check(History.of(votes), read_counted(db))
    print(outcome.summary(f"worker SIGKILL at {failpoint}"))
    assert_exact(outcome)


def test_two_worker_processes_draining_at_once_count_every_vote_once(
        worker_env: dict[str, str], redis_client: redis.Redis, db: Conn,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """Overlapping schedule ticks: two worker processes drain one backlog together; exact."""
    votes = make_votes(voters=40_000, changes=0)
    push(redis_client, votes)
    env = {**worker_env, "WORKER_BATCH_MAX": "200", "WORKER_BUDGET_SECONDS": "1.5"}
    pair = [start_worker(workers, env, tmp_path) for _ in range(2)]
    replies: list[tuple[int, dict[str, Any]]] = []
    threads = [threading.Thread(target=lambda w=worker: replies.append(tick(w)))
               for worker in pair]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in replies] == [200, 200], replies
    assert all(report["claimed"] > 0 for _, report in replies), "the drains did not overlap"
    assert sum(report["claimed"] for _, report in replies) == len(votes)
    assert drained(redis_client)

    outcome = check(History.of(votes), read_counted(db))
    print(outcome.summary("two drains at once"))
    assert_exact(outcome)


def test_a_drain_out_of_time_mid_backlog_leaves_the_rest_to_the_next(
        worker_env: dict[str, str], redis_client: redis.Redis, db: Conn,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """A 0.2 s budget over 60,000 votes: each drain stops in time, holds nothing; exact."""
    votes = make_votes(voters=60_000, changes=0)
    push(redis_client, votes)
    worker = start_worker(workers, {**worker_env, "WORKER_BATCH_MAX": "200",
                                    "WORKER_BUDGET_SECONDS": "0.2"}, tmp_path)
    status, first = tick(worker)
    assert status == 200 and 0 < first["claimed"] < len(votes), first
    assert first["seconds"] < 0.2 + 1.0, "the drain overran its budget"
    assert redis_client.llen(keys.QUEUE) == len(votes) - first["claimed"]
    assert redis_client.scard(keys.CLAIMS) == 0, "a drain out of time kept a claim"

    replies = [(status, first), *tick_until_drained(worker, redis_client)]
    assert all(status == 200 for status, _ in replies), replies
    assert sum(report["claimed"] for _, report in replies) == len(votes)
    outcome = check(History.of(votes), read_counted(db))
    print(outcome.summary(f"drain out of budget ({len(replies)} drains)"))
    assert_exact(outcome)


class Ticker(threading.Thread):
    """The scheduler: invokes the worker again as soon as a drain returns, until stopped."""

    def __init__(self, worker: FunctionProcess, limit_s: float) -> None:
        super().__init__(daemon=True)
        self.worker, self.limit_s = worker, limit_s
        self.replies: list[tuple[int, dict[str, Any]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                self.replies.append(tick(self.worker))
            except httpx.TransportError as error:  # recorded: the test then fails on it
                self.replies.append((0, {"error": repr(error)}))


@pytest.mark.timeout(180)
def test_postgres_killed_mid_batch_and_restarted_the_worker_resumes_by_itself(
        worker_env: dict[str, str], redis_client: redis.Redis, private_postgres: ServerProcess,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """PostgreSQL SIGKILLed under a steady stream of drains; restarted, the same worker
    backs off, resumes on its own and counts every vote exactly once."""
    env = {**worker_env, "DATABASE_URL": private_postgres.url, "WORKER_BUDGET_SECONDS": "3"}
    votes = make_votes(voters=80_000, changes=0)
    push(redis_client, votes)
    worker = start_worker(workers, env, tmp_path)
    ticker = Ticker(worker, limit_s=120)
    ticker.start()
    try:
        wait_until(lambda: ballot_count(private_postgres.url) >= 5000, 60, "5,000 votes counted")
        private_postgres.kill()
        assert redis_client.llen(keys.QUEUE) > 0, "the backlog was gone before the kill"
        # Stay down until the worker has seen a batch fail (at once if the kill hit a
        # transaction, else once the pool gives up waiting for a connection).
        wait_until(lambda: postgres_failures(worker) > 0, 30, "the worker saw PostgreSQL fail")
        private_postgres.start()
        wait_until(lambda: drained(redis_client), 90, "the worker resumed and drained the queue",
                   interval_s=0.1)
    finally:
        ticker.halt.set()
        ticker.join(60)
    failed = [(s, r) for s, r in ticker.replies if s != 200 or r["failures"]]
    assert failed, ticker.replies
    assert {s for s, _ in ticker.replies} <= {200, 503}, ticker.replies
    assert all("PostgreSQL" in r["error"] for s, r in failed if s == 503), failed

    with psycopg.connect(private_postgres.url, autocommit=True) as conn:
        outcome = check(History.of(votes), read_counted(conn))
    print(outcome.summary(f"PostgreSQL SIGKILL mid-batch ({len(failed)} drains saw it)"))
    assert_exact(outcome)


def test_postgres_down_keeps_the_votes_queued_and_the_worker_resumes_when_it_is_back(
        worker_env: dict[str, str], redis_client: redis.Redis, private_postgres: ServerProcess,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """With PostgreSQL down a drain answers 503 + Retry-After, holds no claim, keeps every vote."""
    env = {**worker_env, "DATABASE_URL": private_postgres.url}
    worker = start_worker(workers, env, tmp_path)
    private_postgres.kill()
    votes = make_votes(voters=2000, changes=0)
    push(redis_client, votes)
    response = httpx.post(f"{worker.url}/events", timeout=60)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "PostgreSQL" in response.json()["error"]
    assert redis_client.llen(keys.QUEUE) == len(votes)
    assert redis_client.scard(keys.CLAIMS) == 0

    private_postgres.start()
    replies = tick_until_drained(worker, redis_client)
    assert replies[-1][0] == 200
    with psycopg.connect(private_postgres.url, autocommit=True) as conn:
        outcome = check(History.of(votes), read_counted(conn))
    print(outcome.summary("PostgreSQL down, then up"))
    assert_exact(outcome)


POISON = [
    b"{not json",
    b"\xff\xfe\x00",
    b"[1, 2]",
    b"null",
    b'{"id": "' + b"c" * 32 + b'", "voter": "voter-poison-0001", "vote": "hamsters", "ts": 5}',
    b'{"id": "' + b"C" * 32 + b'", "voter": "voter-poison-0002", "vote": "cats", "ts": 5}',
    b'{"id": "' + b"d" * 32 + b'", "voter": "x", "vote": "cats", "ts": 5}',
    b'{"id": "' + b"e" * 32 + b'", "voter": "voter-poison-0003", "vote": "cats", "ts": -1}',
    b'{"id": "' + b"f" * 32 + b'", "voter": "voter-poison-0004", "vote": "cats", "ts": 1.5}',
    b'{"voter": "voter-poison-0005", "vote": "dogs"}',
    b'{"id": "' + b"a" * 32 + b'", "voter": "voter-poison-0006", "vote": "cats", "ts": '
    b"9007199254740993}",
    b"x" * 100_000,
]


def test_poison_entries_are_dead_lettered_and_the_worker_goes_on(
        worker_env: dict[str, str], redis_client: redis.Redis, db: Conn,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """Malformed entries among good votes go to the dead-letter list with a reason, once;
    the same worker process keeps draining the votes that follow."""
    worker = start_worker(workers, {**worker_env, "WORKER_BATCH_MAX": "7"}, tmp_path)
    good = make_votes(voters=200, changes=0)
    mixed: list[VoteEvent | bytes] = []
    for n, vote in enumerate(good):
        mixed.append(vote)
        if n % 17 == 0 and n // 17 < len(POISON):
            mixed.append(POISON[n // 17])
    push(redis_client, mixed)
    replies = tick_until_drained(worker, redis_client)
    assert all(status == 200 for status, _ in replies), replies
    assert sum(report["dead_lettered"] for _, report in replies) == len(POISON)
    dead = [json.loads(raw) for raw in redis_client.lrange(keys.DEAD_LETTERS, 0, -1)]
    assert sorted(entry["entry"] for entry in dead) == sorted(
        raw.decode("utf-8", "backslashreplace") for raw in POISON)
    assert all(entry["reason"] for entry in dead)

    later = make_votes(voters=50, changes=0, seed=8)
    later = [vote._replace(voter=f"later-{vote.voter}") for vote in later]
    push(redis_client, [b"{still not json", *later])
    replies = tick_until_drained(worker, redis_client)
    assert replies[-1][0] == 200 and redis_client.llen(keys.DEAD_LETTERS) == len(POISON) + 1
    metrics = httpx.get(f"{worker.url}/metrics", timeout=10).text
    assert f"worker_dead_letters_total {len(POISON) + 1}.0" in metrics

    outcome = check(History.of([*good, *later]), read_counted(db))
    print(outcome.summary(f"poison entries ({len(POISON) + 1} dead-lettered)"))
    assert_exact(outcome)


GRACE_S = 3  # uvicorn --timeout-graceful-shutdown in local/profile.py


def sigterm_mid_drain(votes: list[VoteEvent], worker_env: dict[str, str],
                      workers: list[FunctionProcess], tmp_path: Path) -> None:
    """Start a long drain over ``votes`` (already queued) and SIGTERM its worker mid-way.
    One vote a claim keeps each transaction small (a few votes), so the drain is still
    running when the shutdown's grace ends."""
    env = {**worker_env, "WORKER_BATCH_MAX": "1", "WORKER_BUDGET_SECONDS": "60"}
    worker = start_worker(workers, env, tmp_path)
    def invoke() -> None:
        with contextlib.suppress(httpx.TransportError):  # answered 500, or cut: both fine
            tick(worker)

    invocation = threading.Thread(target=invoke)
    invocation.start()
    wait_until(lambda: ballot_count(env["DATABASE_URL"]) >= 500, 30, "the drain under way")
    # uvicorn gives the drain 3 s, cancels it, and re-raises SIGTERM once shut down
    assert worker.signal(signal.SIGTERM) == -signal.SIGTERM
    invocation.join(30)
    log = (tmp_path / f"worker-{worker.port}.log").read_text()
    assert "Application shutdown complete" in log, log[-3000:]
    committed = ballot_count(env["DATABASE_URL"])
    print(f"SIGTERM mid-drain: {committed} of {len(votes)} votes committed at exit")
    assert committed < len(votes), "the drain finished before SIGTERM"


def test_sigterm_mid_drain_loses_nothing(
        worker_env: dict[str, str], redis_client: redis.Redis, db: Conn,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """SIGTERM while a drain works through a backlog: the worker shuts down, what it held
    is recovered by the next worker, and every vote is counted once."""
    votes = make_votes(voters=50_000, changes=0)
    push(redis_client, votes)
    sigterm_mid_drain(votes, worker_env, workers, tmp_path)
    fresh = start_worker(workers, worker_env, tmp_path)
    tick_until_drained(fresh, redis_client)
    outcome = check(History.of(votes), read_counted(db))
    print(outcome.summary("worker SIGTERM mid-drain"))
    assert_exact(outcome)


def test_sigterm_mid_drain_hands_the_claim_back_at_once(
        worker_env: dict[str, str], redis_client: redis.Redis, db: Conn,
        workers: list[FunctionProcess], tmp_path: Path) -> None:
    """The cancelled drain returns its claim to the queue before the process exits, as
    local/profile.py promises, instead of leaving it for the lease to expire."""
    votes = make_votes(voters=50_000, changes=0)
    push(redis_client, votes)
    sigterm_mid_drain(votes, worker_env, workers, tmp_path)
    assert redis_client.scard(keys.CLAIMS) == 0, "the claim was left for its lease to expire"
    assert redis_client.llen(keys.QUEUE) + ballot_count(worker_env["DATABASE_URL"]) >= len(votes)


async def read_totals(url: str, totals: list[int], opened: list[float]) -> None:
    """Follow the live stream like a browser: record each event's total; when the stream
    ends or breaks, open it again (a browser's EventSource reconnects by itself)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as client:
        for _ in range(20):
            try:
                async with client.stream("GET", f"{url}/stream") as response:
                    opened.append(time.monotonic())
                    async for event in events(response):
                        totals.append(json.loads(event.data)["total"])
            except httpx.TransportError:
                pass
            await anyio.sleep(0.2)  # the retry: hint of the stream


@pytest.mark.anyio
async def test_result_fn_survives_a_postgres_restart_and_streams_the_next_change(
        function_env: dict[str, str], redis_client: redis.Redis,
        private_postgres: ServerProcess, tmp_path: Path) -> None:
    """PostgreSQL SIGKILLed and restarted under result_fn: an open SSE stream stays open or
    reopens, and the next change arrives over the re-established LISTEN."""
    env = {**function_env, "DATABASE_URL": private_postgres.url, "STREAM_PING_SECONDS": "1",
           "RESULTS_POLL_SECONDS": "600"}  # so the change can only come from a NOTIFY
    votes = make_votes(voters=30, changes=0)
    push(redis_client, votes[:10])
    await anyio.to_thread.run_sync(final_read, env)
    result = FunctionProcess("result", env, tmp_path).start()
    totals: list[int] = []
    opened: list[float] = []
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read_totals, result.url, totals, opened)
            await wait_for(lambda: 10 in totals, 30, "the stream's snapshot")
            await anyio.to_thread.run_sync(private_postgres.kill)
            await anyio.to_thread.run_sync(private_postgres.start)
            await anyio.to_thread.run_sync(
                wait_until, result.healthy, 30, "result_fn listening again")
            push(redis_client, votes[10:])
            counted = await anyio.to_thread.run_sync(final_read, env)
            await wait_for(lambda: 30 in totals, 30, "the change after the restart")
            group.cancel_scope.cancel()
    finally:
        result.stop()
    print(f"result_fn across a PostgreSQL restart: stream opened {len(opened)} time(s), "
          f"totals seen {sorted(set(totals))}")
    outcome = check(History.of(votes), counted)
    print(outcome.summary("result_fn across a PostgreSQL SIGKILL"))
    assert_exact(outcome)


@pytest.mark.anyio
async def test_sigterm_to_result_fn_ends_open_streams_and_exits_cleanly(
        function_env: dict[str, str], db: Conn, tmp_path: Path) -> None:
    """SIGTERM with live SSE subscribers: the streams end at once, the process exits
    cleanly."""
    result = FunctionProcess("result", {**function_env, "STREAM_PING_SECONDS": "1"},
                             tmp_path).start()
    seen: list[int] = []
    ended: list[str] = []

    async def subscriber() -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as client, \
                client.stream("GET", f"{result.url}/stream") as response:
            try:
                async for event in events(response):
                    seen.append(json.loads(event.data)["total"])
            except httpx.RemoteProtocolError:  # cut mid-stream: EventSource reconnects
                ended.append("cut")
            else:
                ended.append("ended")

    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(subscriber)
                await wait_for(lambda: len(seen) >= 3, 10, "three streams open")
                started = time.monotonic()
                exit_code = await anyio.to_thread.run_sync(result.signal, signal.SIGTERM)
                stopped_in = time.monotonic() - started
    finally:
        result.stop()
    assert exit_code == -signal.SIGTERM  # uvicorn re-raises the signal once shut down
    # Every stream ended cleanly, at once, before uvicorn's grace period had to cancel it.
    assert ended == ["ended"] * 3 and stopped_in < GRACE_S
    log = (tmp_path / f"result-{result.port}.log").read_text()
    assert "Application shutdown complete" in log, log[-3000:]
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    print(f"result_fn SIGTERM with 3 open streams: exited in {stopped_in:.1f}s, "
          f"streams {sorted(ended)}")
