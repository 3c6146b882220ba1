"""Pushing votes onto the Redis queue, coalescing concurrent requests into one LPUSH.

While one LPUSH is in flight, votes of other requests wait in a list; the next LPUSH
carries all of them. At low load every vote gets its own push at once; under load
one round trip carries many votes. Each request is answered only after the LPUSH
that carried its vote succeeded, so an acknowledged vote is always in Redis.

With a rate limit the same round trip is one script that checks each vote's client
against the limit and pushes the votes that pass (vote_fn/ratelimit.py); without one,
it is a plain LPUSH.
"""

from __future__ import annotations

import asyncio

from common import keys
from common.redis_client import RedisClient
from vote_fn.ratelimit import CHECK_AND_PUSH, RateLimit, RateLimited, rate_key

Waiting = tuple[bytes, str, "asyncio.Future[None]"]


class VoteQueue:
    def __init__(self, redis: RedisClient, rate_limit: RateLimit | None = None) -> None:
        self._redis = redis
        self._rate_limit = rate_limit
        self._check_and_push = redis.register_script(CHECK_AND_PUSH) if rate_limit else None
        self._waiting: list[Waiting] = []
        self._pusher: asyncio.Task[None] | None = None

    async def push(self, payload: bytes, client: str = "") -> None:
        """Return once Redis holds the vote; raise RateLimited if the client (its address)
        is over the limit, or the Redis error."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((payload, client, done))
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_waiting())
        await done

    async def _push_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                waits = await self._send(batch)
            except BaseException as error:
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                if not isinstance(error, Exception):
                    raise
            else:
                for (_, _, done), wait_us in zip(batch, waits, strict=True):
                    if done.done():
                        continue
                    if wait_us:
                        done.set_exception(RateLimited(wait_us))
                    else:
                        done.set_result(None)

    async def _send(self, batch: list[Waiting]) -> list[int]:
        """Push the batch; for each vote 0 if pushed, else the µs its client must wait."""
        if self._check_and_push is None or self._rate_limit is None:
            await self._redis.lpush(keys.QUEUE, *(payload for payload, _, _ in batch))
            return [0] * len(batch)
        rate_keys: dict[str, int] = {}
        args: list[bytes | str | int] = [self._rate_limit.interval_us, self._rate_limit.burst_us]
        for payload, client, _ in batch:
            index = rate_keys.setdefault(rate_key(client), len(rate_keys) + 2)
            args += [index, payload]
        waits = await self._check_and_push(keys=[keys.QUEUE, *rate_keys], args=args)
        return [int(wait) for wait in waits]
