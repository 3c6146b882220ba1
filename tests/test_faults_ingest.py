"""Fault injection on the way in: votes stream through a real vote_fn process while Valkey
or vote_fn itself is killed; an acknowledged vote is always counted, exactly once."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2 as httpx
import psycopg
import pytest
import redis

from common import keys
from common.event import InvalidEvent, decode
from common.polls import FIRST
from common.redis_client import RedisSettings, open_redis
from support.checker import History, Outcome, assert_exact, check, final_read
from support.functions import FunctionProcess
from support.http import no_cookies
from support.load import OPTION_IDS, VoteLoad
from support.servers import ServerProcess, start_valkey
from support.waits import wait_for
from tests.conftest import POLLS
from vote_fn.queue import VoteQueue

Conn = psycopg.Connection[tuple[object, ...]]
ACKS_PER_PHASE = 1000  # acknowledged votes before the fault, and again after the heal
ERRORS_WHILE_DOWN = 20  # refused or failed votes seen while the fault lasts
Track = Callable[[ServerProcess | FunctionProcess], None]  # stops it at the end of the test


@pytest.fixture
def processes() -> Iterator[Track]:
    """Servers and functions this test started; each is stopped at the end."""
    started: list[ServerProcess | FunctionProcess] = []
    yield started.append
    for process in reversed(started):
        if process.process is not None and process.process.poll() is None:
            process.process.send_signal(signal.SIGCONT)  # in case a test left it frozen
        process.stop()


@dataclass
class Run:
    load: VoteLoad
    acked_before_fault: set[str]  # acknowledged when the fault was injected
    acked_before_heal: set[str]  # acknowledged when the heal began


async def stream_votes_through_a_fault(vote: FunctionProcess, fault: Callable[[], object],
                                       heal: Callable[[], object]) -> Run:
    """Votes stream in; after ACKS_PER_PHASE acks ``fault`` runs; once the clients have
    seen errors ``heal`` runs; the stream stops after ACKS_PER_PHASE more acks."""
    load = VoteLoad(vote.url)
    acked = load.history.acknowledged
    async with anyio.create_task_group() as group:
        group.start_soon(load.run)
        await wait_for(lambda: len(acked) >= ACKS_PER_PHASE, 60, "votes acknowledged")
        before_fault = set(acked)
        errors = load.errors
        await anyio.to_thread.run_sync(fault)
        await wait_for(lambda: load.errors >= errors + ERRORS_WHILE_DOWN, 60,
                       "clients seeing the fault")
        before_heal = set(acked)
        await anyio.to_thread.run_sync(heal)
        await wait_for(lambda: len(acked) >= len(before_heal) + ACKS_PER_PHASE, 60,
                       "votes acknowledged after the heal")
        load.stopping.set()
    return Run(load, before_fault, before_heal)


def start_vote(env: dict[str, str], tmp_path: Path,
               track: Track) -> FunctionProcess:
    vote = FunctionProcess("vote", env, tmp_path).start()
    track(vote)
    return vote


def private_valkey(tmp_path: Path, track: Track,
                   *args: str) -> ServerProcess:
    """A Valkey of this test's own, which it may kill (the session's is shared)."""
    server = start_valkey(tmp_path, *args)
    track(server)
    return server


def report(outcome: Outcome, scenario: str, load: VoteLoad) -> None:
    print(outcome.summary(scenario), f"client outcomes={dict(load.statuses)}")


@pytest.mark.anyio
@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
async def test_valkey_killed_mid_stream_and_restarted_from_its_aof_keeps_every_acked_vote(
        appendfsync: str, function_env: dict[str, str], db: Conn, tmp_path: Path,
        processes: Track) -> None:
    """Valkey SIGKILLed while votes stream in, restarted from its AOF: every acknowledged
    vote is counted exactly once."""
    valkey = private_valkey(tmp_path, processes, "--appendfsync", appendfsync)
    env = {**function_env, "REDIS_URL": valkey.url}
    vote = start_vote(env, tmp_path, processes)
    run = await stream_votes_through_a_fault(vote, valkey.kill, valkey.start)
    assert set(run.load.statuses) <= {"202", "503", "ReadError", "RemoteProtocolError"}, \
        run.load.statuses
    assert run.load.statuses["503"] >= ERRORS_WHILE_DOWN

    outcome = check(run.load.history, final_read(env))
    report(outcome, f"Valkey SIGKILL, AOF appendfsync {appendfsync}", run.load)
    assert_exact(outcome)


@pytest.mark.anyio
async def test_control_valkey_without_persistence_killed_mid_stream_loses_votes(
        function_env: dict[str, str], db: Conn, tmp_path: Path,
        processes: Track) -> None:
    """Control: the same run against a Valkey that keeps nothing on disk must make the
    checker report exactly the votes acknowledged before the kill as lost."""
    valkey = private_valkey(tmp_path, processes, "--no-persist")
    env = {**function_env, "REDIS_URL": valkey.url}
    vote = start_vote(env, tmp_path, processes)
    run = await stream_votes_through_a_fault(vote, valkey.kill, valkey.start)

    outcome = check(run.load.history, final_read(env))
    report(outcome, "CONTROL Valkey SIGKILL without persistence", run.load)
    assert not outcome.exact
    assert run.acked_before_fault <= outcome.lost <= run.acked_before_heal
    assert outcome.duplicated == outcome.unexpected == frozenset(), outcome.explain()


@pytest.mark.anyio
async def test_vote_fn_killed_mid_stream_loses_no_acknowledged_vote(
        function_env: dict[str, str], redis_client: redis.Redis, db: Conn, tmp_path: Path,
        processes: Track) -> None:
    """vote_fn SIGKILLed under load and restarted: each vote was either not acknowledged,
    or acknowledged and counted once; no vote refused at the door is counted."""
    vote = start_vote(function_env, tmp_path, processes)
    run = await stream_votes_through_a_fault(
        vote, lambda: vote.signal(signal.SIGKILL), vote.start)
    assert run.load.statuses["refused"] > 0

    outcome = check(run.load.history, final_read(function_env))
    report(outcome, "vote_fn SIGKILL", run.load)
    assert_exact(outcome)


@pytest.mark.anyio
async def test_sigterm_to_vote_fn_finishes_in_flight_votes_and_exits_cleanly(
        function_env: dict[str, str], redis_client: redis.Redis, db: Conn, tmp_path: Path,
        processes: Track) -> None:
    """SIGTERM under load: vote_fn stops cleanly, and every vote it acknowledged is counted."""
    vote = start_vote(function_env, tmp_path, processes)
    exits: list[int] = []
    run = await stream_votes_through_a_fault(
        vote, lambda: exits.append(vote.signal(signal.SIGTERM)), vote.start)
    assert exits == [-signal.SIGTERM]  # uvicorn re-raises the signal once shut down
    log = (tmp_path / f"vote-{vote.port}.log").read_text()
    assert log.count("Application shutdown complete") == 1, log[-3000:]
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]

    outcome = check(run.load.history, final_read(function_env))
    report(outcome, "vote_fn SIGTERM", run.load)
    assert_exact(outcome)


def vote_once(client: httpx.Client, vote_id: str, option: str,
              voter_cookie: str | None = None) -> httpx.Response:
    headers = {"cookie": f"voter_id={voter_cookie}"} if voter_cookie else {}
    response = client.post("/api/vote", json={"vote": option, "vote_id": vote_id},
                           headers=headers)
    assert response.status_code == 202 and response.json()["vote_id"] == vote_id, response.text
    return response


def test_a_client_retrying_with_its_cookie_and_vote_id_is_counted_once(
        function_env: dict[str, str], redis_client: redis.Redis, db: Conn, tmp_path: Path,
        processes: Track) -> None:
    """Each of 100 voters sends its vote three times (same vote id, its voter cookie)."""
    vote = start_vote(function_env, tmp_path, processes)
    history, rng = History(), random.Random(3)
    with httpx.Client(base_url=vote.url, timeout=10, cookies=no_cookies()) as client:
        for _ in range(100):
            vote_id, option = uuid.uuid4().hex, rng.choice(OPTION_IDS)
            first = vote_once(client, vote_id, option)
            for _ in range(2):
                vote_once(client, vote_id, option, first.cookies["voter_id"])
            history.acknowledged[vote_id] = option
    assert redis_client.llen(keys.QUEUE) == 300

    outcome = check(history, final_read(function_env))
    print(outcome.summary("client retries with cookie and vote id"))
    assert_exact(outcome)


def test_a_retry_after_a_lost_answer_is_counted_once(
        function_env: dict[str, str], redis_client: redis.Redis, db: Conn, tmp_path: Path,
        processes: Track) -> None:
    """A first-time voter whose answer (and so its voter cookie) was lost retries with the
    same vote id and no cookie: the vote still counts once."""
    vote = start_vote(function_env, tmp_path, processes)
    history, rng = History(), random.Random(4)
    with httpx.Client(base_url=vote.url, timeout=10, cookies=no_cookies()) as client:
        for _ in range(100):
            vote_id, option = uuid.uuid4().hex, rng.choice(OPTION_IDS)
            for _ in range(2):  # the first answer never reached the client
                vote_once(client, vote_id, option)
            history.acknowledged[vote_id] = option

    outcome = check(history, final_read(function_env))
    print(outcome.summary("client retries after a lost answer (no cookie)"))
    assert_exact(outcome)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_fast_503s(vote: FunctionProcess, vote_ids: list[str]) -> list[float]:
    """The API, the form and /healthz each answer 503 with Retry-After, each within 1 s;
    the API votes carry ``vote_ids``. Requests go out concurrently, as they would."""
    def api(vote_id: str) -> tuple[str, httpx.Response, float]:
        return "api", *timed(lambda: httpx.post(
            f"{vote.url}/api/vote", json={"vote": "cats", "vote_id": vote_id}, timeout=10))

    def form() -> tuple[str, httpx.Response, float]:
        return "form", *timed(lambda: httpx.post(f"{vote.url}/", data={"vote": "dogs"},
                                                 timeout=10))

    def health() -> tuple[str, httpx.Response, float]:
        return "healthz", *timed(lambda: httpx.get(f"{vote.url}/healthz", timeout=10))

    with ThreadPoolExecutor(max_workers=len(vote_ids) + 4) as pool:
        futures = [pool.submit(api, vote_id) for vote_id in vote_ids]
        futures += [pool.submit(call) for call in (form, form, health, health)]
        answers = [future.result() for future in futures]
    for kind, response, _ in answers:
        assert response.status_code == 503 and response.headers["retry-after"], (kind, response)
        if kind == "api":
            assert "error" in response.json()
        if kind == "form":
            assert "text/html" in response.headers["content-type"]
            assert "try again" in response.text
    seconds = sorted(elapsed for _, _, elapsed in answers)
    assert seconds[-1] < 1.0, f"answers took {[round(s, 3) for s in seconds]} s"
    return seconds


def test_redis_down_gives_fast_503s_and_queues_nothing(
        function_env: dict[str, str], tmp_path: Path,
        processes: Track) -> None:
    """Valkey killed: each vote (API and form) and /healthz answers 503 + Retry-After within
    1 s; restarted from its AOF, the queue holds only the vote acknowledged before."""
    valkey = private_valkey(tmp_path, processes, "--appendfsync", "always")
    vote = start_vote({**function_env, "REDIS_URL": valkey.url}, tmp_path, processes)
    kept = httpx.post(f"{vote.url}/api/vote", json={"vote": "cats"}, timeout=10)
    assert kept.status_code == 202
    valkey.kill()
    seconds = assert_fast_503s(vote, [uuid.uuid4().hex for _ in range(6)])
    print(f"Redis down: slowest 503 in {seconds[-1] * 1000:.0f} ms")

    valkey.start()
    client = redis.Redis.from_url(valkey.url)
    queued = [json.loads(raw)["id"] for raw in client.lrange(keys.QUEUE, 0, -1)]
    client.close()
    assert queued == [kept.json()["vote_id"]]


def test_redis_hung_gives_503s_within_a_second_and_nothing_half_written(
        function_env: dict[str, str], tmp_path: Path,
        processes: Track) -> None:
    """Valkey frozen (SIGSTOP: connections open, no answers): 503 + Retry-After within
    1 s; once it resumes, the queue holds only whole votes of the requests that got a 503."""
    valkey = private_valkey(tmp_path, processes, "--appendfsync", "always")
    vote = start_vote({**function_env, "REDIS_URL": valkey.url}, tmp_path, processes)
    assert httpx.post(f"{vote.url}/api/vote", json={"vote": "cats"}, timeout=10).status_code == 202
    client = redis.Redis.from_url(valkey.url)
    client.delete(keys.QUEUE)
    assert valkey.process is not None
    valkey.process.send_signal(signal.SIGSTOP)
    refused = [uuid.uuid4().hex for _ in range(6)]
    try:
        seconds = assert_fast_503s(vote, refused)
        print(f"Redis hung: slowest 503 in {seconds[-1] * 1000:.0f} ms")
    finally:
        valkey.process.send_signal(signal.SIGCONT)
    queued: list[bytes] = client.lrange(keys.QUEUE, 0, -1)  # type: ignore[assignment]
    client.close()
    try:
        events = [decode(raw, POLLS) for raw in queued]
    except InvalidEvent as error:
        raise AssertionError(f"a half-written entry in the queue: {queued}") from error
    assert {event.vote_id for event in events if event.option == "cats"} <= set(refused)
    assert len([event for event in events if event.option == "dogs"]) <= 2  # the form votes


def test_a_vote_queued_behind_a_hung_push_still_gets_its_answer_within_its_deadline(
        tmp_path: Path, processes: Track) -> None:
    """Valkey frozen: a vote that arrives while an earlier push hangs waits for that push
    to be given up, then for its own; each gets TimeoutError within its own deadline of
    its own push (one timer per round trip, set by the oldest vote it carries)."""
    valkey = private_valkey(tmp_path, processes)
    deadline_s = 0.5

    async def scenario() -> list[tuple[float, float]]:
        client = open_redis(RedisSettings(valkey.url, cluster=False, timeout_s=5))
        queue = VoteQueue(client, deadline_s=deadline_s)
        await client.set(keys.OPEN_POLL, FIRST)
        await queue.push(b'{"warm":"connection"}', FIRST)
        assert valkey.process is not None
        valkey.process.send_signal(signal.SIGSTOP)
        outcomes: list[tuple[float, float]] = []  # (started, answered), loop clock

        async def one(delay_s: float) -> None:
            await anyio.sleep(delay_s)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await queue.push(b"{}", FIRST)
            outcomes.append((started, time.monotonic()))

        try:
            async with anyio.create_task_group() as group:
                for delay_s in (0.0, 0.1, 0.3, 0.45, 0.7):
                    group.start_soon(one, delay_s)
        finally:
            valkey.process.send_signal(signal.SIGCONT)
            await client.aclose()
        return outcomes

    outcomes = anyio.run(scenario)
    waits = sorted(answered - started for started, answered in outcomes)
    assert len(waits) == 5
    # Each answer comes by its own deadline (a little scheduling slack), including the
    # votes that waited behind the first push: their round trip is given up at the
    # deadline of its oldest vote, not a whole deadline after it started.
    assert all(wait <= deadline_s + 0.1 for wait in waits), waits
    # ...and not before it: the first vote, and the oldest of those queued behind it,
    # waited their whole deadline (a hung Valkey, not an early give-up).
    assert sum(wait >= deadline_s - 0.05 for wait in waits) >= 2, waits
