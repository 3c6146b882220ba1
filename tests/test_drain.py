"""The drain moves every vote from Redis into PostgreSQL exactly once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import psycopg
import pytest
import redis

from common import keys
from common.database import open_pool
from common.event import VoteEvent, decode
from common.redis_client import open_redis
from support.stores import ballots_by_voter, leftover_claims, tally, version
from support.votes import expected_tally, make_votes, push
from worker_fn.apply import apply_batch, copy_rows
from worker_fn.claims import Claims
from worker_fn.drain import DependencyDown, Drain, DrainLimits, DrainReport
from worker_fn.settings import WorkerSettings

from .conftest import POLLS

pytestmark = pytest.mark.anyio

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
async def drainer(environ: dict[str, str], redis_client: redis.Redis,
                  db: Conn) -> AsyncIterator[DrainFactory]:
    settings = WorkerSettings.from_env(environ)
    client = open_redis(settings.redis)
    async with open_pool(settings.database_url, max_size=4, name="test") as pool:
        yield DrainFactory(client, pool, settings)
    await client.aclose()


class DrainFactory:
    def __init__(self, client, pool, settings: WorkerSettings) -> None:  # type: ignore[no-untyped-def]
        self.redis, self.pool, self.settings = client, pool, settings

    def drain(self, *, batch_max: int = 1000, budget_s: float = 30.0, lease_s: float = 30.0,
              wait_for_votes: bool = False) -> Drain:
        limits = DrainLimits(budget_s=budget_s, batch_max=batch_max, lease_s=lease_s,
                             wait_for_votes=wait_for_votes)
        return Drain(self.redis, self.pool, self.settings.first_poll, limits)

    async def run(self, **limits: object) -> DrainReport:
        return await self.drain(**limits).run()  # type: ignore[arg-type]


async def test_drain_applies_the_latest_vote_of_each_voter(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """1,000 votes by 500 voters (a fifth changing their vote) give exact tallies."""
    votes = make_votes(voters=500, changes=500)
    push(redis_client, votes)
    report = await drainer.run(batch_max=128)
    assert tally(db) == expected_tally(votes)
    assert len(ballots_by_voter(db)) == 500
    assert report.claimed == 1000 and report.dead_lettered == 0
    assert redis_client.llen(keys.QUEUE) == 0
    assert leftover_claims(redis_client) == []
    assert redis_client.scard(keys.CLAIMS) == 0


async def test_a_backlog_is_applied_in_fewer_transactions_than_batches(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """Batches claimed while PostgreSQL works go in together (group commit), and a voter
    who votes again in a later batch of the same group still counts once, latest wins."""
    votes = make_votes(voters=1000, changes=4000)
    push(redis_client, votes)
    report = await drainer.run(batch_max=100)
    assert report.batches == 50 and report.claimed == len(votes)
    assert report.transactions < report.batches
    assert tally(db) == expected_tally(votes)
    assert leftover_claims(redis_client) == [] and redis_client.scard(keys.CLAIMS) == 0


async def test_a_batch_with_one_voter_many_times_counts_once(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """Grouping by voter: ten votes of one voter in one batch leave one ballot, the latest."""
    votes = [VoteEvent(f"{n:032x}", "voter-000000000001", "cats" if n % 2 else "dogs", 5_000 + n)
             for n in range(10)]
    push(redis_client, votes)
    await drainer.run()
    assert tally(db) == {"cats": 1}


async def test_replaying_a_batch_changes_nothing(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """The same votes pushed again (same vote ids) leave tallies and version unchanged."""
    votes = make_votes(voters=300, changes=100)
    push(redis_client, votes)
    await drainer.run()
    before, before_version = tally(db), version(db)
    push(redis_client, votes)
    report = await drainer.run(batch_max=77)
    assert report.claimed == len(votes) and report.applied == 0
    assert tally(db) == before == expected_tally(votes)
    assert version(db) == before_version


async def test_an_older_vote_arriving_late_does_not_win(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """Latest wins by accepted time, not by queue order."""
    voter = "voter-000000000042"
    push(redis_client, [VoteEvent("b" * 32, voter, "dogs", 2_000)])
    await drainer.run()
    push(redis_client, [VoteEvent("a" * 32, voter, "cats", 1_000)])
    await drainer.run()
    assert tally(db) == {"dogs": 1}
    assert ballots_by_voter(db) == {voter: "dogs"}


async def test_poison_entries_go_to_the_dead_letter_list(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """Bad JSON, unknown options and missing fields are set aside with a reason; the rest counts."""
    good = make_votes(voters=20, changes=0)
    poison = [b"{not json", b"\xff\xfe", b"[]", b'{"id":"' + b"c" * 32 + b'","voter":"voter-'
              b'000000000001","vote":"hamsters","ts":5}', b'{"voter":"voter-000000000001"}']
    push(redis_client, [*good[:10], *poison, *good[10:]])
    report = await drainer.run(batch_max=4)
    assert tally(db) == expected_tally(good)
    assert report.dead_lettered == len(poison)
    reasons = sorted(__import__("json").loads(e)["reason"]
                     for e in redis_client.lrange(keys.DEAD_LETTERS, 0, -1))
    assert reasons == sorted(["not JSON", "not JSON", "not a JSON object", "unknown option",
                              "missing or malformed id"])
    assert redis_client.llen(keys.QUEUE) == 0


async def test_a_crashed_drains_claim_is_recovered_after_its_lease(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """Votes claimed by a drain that died before committing are counted by the next drain."""
    votes = make_votes(voters=50, changes=10)
    push(redis_client, votes)
    crashed = Claims(drainer.redis, "crashed-owner", lease_s=0.2)
    assert len((await crashed.claim(25)).items) == 25
    await anyio.sleep(0.3)
    report = await drainer.run()
    assert report.recovered == 25
    assert tally(db) == expected_tally(votes)
    assert leftover_claims(redis_client) == []


async def test_a_live_claim_is_left_alone(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """A claim whose lease is current belongs to a running drain and is not taken."""
    push(redis_client, make_votes(voters=10, changes=0))
    running = Claims(drainer.redis, "running-owner", lease_s=30)
    batch = await running.claim(4)
    report = await drainer.run()
    assert report.recovered == 0 and report.claimed == 6
    assert redis_client.llen(keys.processing(batch.id)) == 4


async def test_a_commit_whose_claim_was_not_released_is_not_counted_twice(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """Crash after commit, before release: the batch is replayed and changes nothing."""
    votes = make_votes(voters=40, changes=20)
    push(redis_client, votes)
    await drainer.run(batch_max=1)  # creates the schema with the first vote
    push(redis_client, votes)
    crashed = Claims(drainer.redis, "committed-owner", lease_s=0.2)
    claimed = await crashed.claim(1000)
    async with drainer.pool.connection() as conn:
        decoded = [decode(raw, POLLS) for raw in claimed.items]
        await apply_batch(conn, [copy_rows(decoded)], votes=len(decoded))
    await anyio.sleep(0.3)
    report = await drainer.run()
    assert report.recovered == len(votes) and report.applied == 0
    assert tally(db) == expected_tally(votes)


async def test_overlapping_drains_count_every_vote_once(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """Two drains at once (overlapping schedule ticks) over votes with many changes."""
    votes = make_votes(voters=2000, changes=3000)
    push(redis_client, votes)
    reports: list[DrainReport] = []

    async def one() -> None:
        reports.append(await drainer.run(batch_max=50))

    async with anyio.create_task_group() as group:
        group.start_soon(one)
        group.start_soon(one)
    assert sum(r.claimed for r in reports) == len(votes)
    assert all(r.batches > 0 for r in reports)
    assert tally(db) == expected_tally(votes)


async def test_a_waiting_drain_applies_a_vote_within_a_second(
        drainer: DrainFactory, redis_client: redis.Redis, db: Conn) -> None:
    """A scheduled drain blocks on the empty queue and applies a new vote at once."""
    push(redis_client, make_votes(voters=1, changes=0))
    await drainer.run()  # schema exists; the queue is empty

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: drainer.run(budget_s=2.5, wait_for_votes=True))
        await anyio.sleep(0.5)
        pushed = time.monotonic()
        push(redis_client, [VoteEvent("d" * 32, "voter-000000000777", "dogs", 9_999)])
        while ballots_by_voter(db).get("voter-000000000777") != "dogs":
            assert time.monotonic() - pushed < 1.0, "vote not applied within 1 s"
            await anyio.sleep(0.01)
    assert leftover_claims(redis_client) == []


async def test_postgres_down_keeps_the_votes_queued(
        environ: dict[str, str], redis_client: redis.Redis) -> None:
    """With PostgreSQL unreachable the drain gives up with DependencyDown; nothing is lost."""
    from local.servers import free_port

    down = {**environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"}
    settings = WorkerSettings.from_env(down)
    votes = make_votes(voters=30, changes=0)
    push(redis_client, votes)
    client = open_redis(settings.redis)
    async with open_pool(settings.database_url, max_size=1, name="test") as pool:
        limits = DrainLimits(budget_s=1.0, batch_max=10, lease_s=30, wait_for_votes=False)
        with pytest.raises(DependencyDown, match="PostgreSQL"):
            await Drain(client, pool, settings.first_poll, limits).run()
    await client.aclose()
    assert redis_client.llen(keys.QUEUE) == 30
    assert leftover_claims(redis_client) == []
