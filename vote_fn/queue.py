"""Pushing votes onto the Redis queue, coalescing concurrent requests into one LPUSH.

While one LPUSH is in flight, votes of other requests wait in a list; the next LPUSH
carries all of them. At low load every vote gets its own push at once; under load
one round trip carries many votes. Each request is answered only after the LPUSH
that carried its vote succeeded, so an acknowledged vote is always in Redis.

With limits the same round trip is one script that checks each vote against the limit
it is charged to and pushes the votes that pass (vote_fn/ratelimit.py); without them,
it is a plain LPUSH. A round trip carries at most as many votes as fit in one command
under ElastiCache's argument limit (common/commands.py); the rest wait for the next.

Each vote must be held by Redis within ``deadline_s`` of its push, or its request gets
a TimeoutError (a 503). One timer per round trip enforces it: a round trip is given up
at the deadline of the oldest vote it carries. Votes are sent in arrival order, so a
round trip never runs past the deadline of a vote still waiting for the next one, and
no vote waits longer than its own deadline. (A timer per vote cost ~13 % of vote_fn's
throughput under load.)
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from common import keys
from common.commands import MAX_ARGUMENTS, script_room
from common.redis_client import RedisClient
from vote_fn.ratelimit import CHECK_AND_PUSH, CHECK_AND_PUSH_ARGS, Charge, Limits, RateLimited

DEADLINE_S = 0.5  # a vote not held by Redis by then is answered 503 (the promise: < 1 s)
# Votes per round trip: LPUSH sends the key and one argument per vote; the script sends
# the queue's key and its limits, then per vote two arguments and at worst a key of its own.
LPUSH_MAX_VOTES = MAX_ARGUMENTS - 2
SCRIPT_MAX_VOTES = script_room(1, CHECK_AND_PUSH_ARGS) // 3


class Waiting(NamedTuple):
    payload: bytes
    charge: Charge | None  # what the limits charge the vote to; None: nothing
    deadline: float  # the event loop's clock
    done: asyncio.Future[None]


class VoteQueue:
    def __init__(self, redis: RedisClient, limits: Limits | None = None,
                 deadline_s: float = DEADLINE_S) -> None:
        self._redis = redis
        self._limits = limits
        self._deadline_s = deadline_s
        self._check_and_push = redis.register_script(CHECK_AND_PUSH) if limits else None
        self._limit_args = limits.script_args() if limits else ()
        self._max_votes = SCRIPT_MAX_VOTES if limits else LPUSH_MAX_VOTES  # per round trip
        self._waiting: list[Waiting] = []
        self._pusher: asyncio.Task[None] | None = None

    async def push(self, payload: bytes, voter: str | None = None, address: str = "") -> None:
        """Return once Redis holds the vote; raise RateLimited if the limit it is charged
        to (``voter``, the one a genuine cookie proves, else the new voters of the client
        ``address``) refuses it, TimeoutError if Redis has not answered within the
        deadline, or the Redis error."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        charge = self._limits.charge(voter, address) if self._limits else None
        self._waiting.append(Waiting(payload, charge, loop.time() + self._deadline_s, done))
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_waiting())
        await done

    async def _push_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:self._max_votes]
            del self._waiting[:self._max_votes]
            try:
                async with asyncio.timeout_at(batch[0].deadline):  # the oldest vote's
                    waits = await self._send(batch)
            except BaseException as error:
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(error)
                if not isinstance(error, Exception):
                    raise
            else:
                for waiting, wait_us in zip(batch, waits, strict=True):
                    if waiting.done.done():
                        continue
                    if wait_us:
                        new_voter = waiting.charge is not None and waiting.charge.sign < 0
                        waiting.done.set_exception(RateLimited(wait_us, new_voter))
                    else:
                        waiting.done.set_result(None)

    async def _send(self, batch: list[Waiting]) -> list[int]:
        """Push the batch; for each vote 0 if pushed, else the µs it must wait."""
        if self._check_and_push is None or self._limits is None:
            await self._redis.lpush(keys.QUEUE, *(waiting.payload for waiting in batch))
            return [0] * len(batch)
        limit_keys: dict[str, int] = {}
        args: list[bytes | str | int] = [*self._limit_args]
        for waiting in batch:
            index = 0
            if (charge := waiting.charge) is not None:
                index = limit_keys.setdefault(charge.key, len(limit_keys) + 2) * charge.sign
            args += [index, waiting.payload]
        waits = await self._check_and_push(keys=[keys.QUEUE, *limit_keys], args=args)
        return [int(wait) for wait in waits]
