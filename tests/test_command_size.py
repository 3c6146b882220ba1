"""No command that grows with its input passes ElastiCache's limit of 3,999 arguments: a
round trip of concurrent votes (the push script, with or without limits) and the release of a
group's dead letters are cut below it. Valkey has no such limit, so each test records the
arguments of every command the client sends to a real Valkey, and fails if one is too long.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from common import keys
from common.commands import MAX_ARGUMENTS
from common.polls import FIRST
from vote_fn.queue import VoteQueue
from vote_fn.ratelimit import Limits, RateLimit
from worker_fn.claims import Claims

VOTES = 4_500  # more than one command may carry, with room to spare
DEAD_LETTERS = 4_500


class Recording(Redis):
    """A client that notes the number of arguments of every command Valkey carried out (a
    script's first call, refused until the script is loaded, is sent again whole)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, int]] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        result = await super().execute_command(*args, **options)
        self.sent.append((str(args[0]).upper(), len(args)))
        return result

    def sizes(self, command: str) -> list[int]:
        return [size for name, size in self.sent if name == command]


@pytest.fixture
async def recording(redis_url: str, redis_client: redis.Redis) -> AsyncIterator[Recording]:
    redis_client.set(keys.OPEN_POLL, FIRST)
    client = Recording.from_url(redis_url)
    yield client
    await client.aclose()


def payload(n: int) -> bytes:
    return b'{"vote":"cats","n":%d}' % n


@pytest.mark.anyio
async def test_a_round_of_concurrent_votes_is_cut_below_the_argument_limit(
        recording: Recording, redis_client: redis.Redis) -> None:
    """4,500 votes pushed at once (no limits: one argument a vote) all land, in script
    calls of at most 3,999 arguments."""
    queue = VoteQueue(recording)
    await asyncio.gather(*(queue.push(payload(n), FIRST) for n in range(VOTES)))
    assert redis_client.llen(keys.QUEUE) == VOTES
    sizes = recording.sizes("EVALSHA")
    assert max(sizes) <= MAX_ARGUMENTS and len(sizes) == 2, sizes
    # EVALSHA, the hash, the number of keys, the two keys and the poll come first.
    assert sum(sizes) - 6 * len(sizes) == VOTES


@pytest.mark.anyio
async def test_a_round_through_the_limits_script_is_cut_below_the_argument_limit(
        recording: Recording, redis_client: redis.Redis) -> None:
    """4,500 votes of 4,500 voters at once through the limits' script (one key and two
    arguments per vote at worst) all land, in script calls of at most 3,999 arguments."""
    limits = Limits(RateLimit(10, 10, 60), RateLimit(1_000, 2_000, 60))
    queue = VoteQueue(recording, limits)
    await asyncio.gather(*(queue.push(payload(n), FIRST, f"voter-{n:014d}", "192.0.2.1")
                           for n in range(VOTES)))
    assert redis_client.llen(keys.QUEUE) == VOTES
    sizes = recording.sizes("EVALSHA")
    assert max(sizes) <= MAX_ARGUMENTS and len(sizes) == 4, sizes


@pytest.mark.anyio
async def test_a_groups_dead_letters_are_released_below_the_argument_limit(
        recording: Recording, redis_client: redis.Redis) -> None:
    """Ten committed batches carrying 4,500 dead letters between them are released: every
    dead letter set aside, every list and claim gone, in script calls of at most 3,999
    arguments."""
    redis_client.lpush(keys.QUEUE, *(b"junk %d" % n for n in range(DEAD_LETTERS)))
    claims = Claims(recording, "drain-test", lease_s=30)
    batches = [await claims.claim(DEAD_LETTERS // 10) for _ in range(10)]
    recording.sent.clear()
    await claims.release([(batch.id, [(item, "not JSON") for item in batch.items])
                          for batch in batches])
    assert redis_client.llen(keys.DEAD_LETTERS) == DEAD_LETTERS
    assert redis_client.exists(keys.CLAIMS, *(keys.processing(b.id) for b in batches)) == 0
    sizes = recording.sizes("EVALSHA")
    assert max(sizes) <= MAX_ARGUMENTS and len(sizes) == 2, sizes
    assert claims.outstanding == set()
