"""Pushing votes onto the Redis queue, coalescing concurrent requests into one LPUSH.

While one LPUSH is in flight, votes of other requests wait in a list; the next LPUSH
carries all of them. At low load every vote gets its own push at once; under load
one round trip carries many votes. Each request is answered only after the LPUSH
that carried its vote succeeded, so an acknowledged vote is always in Redis.
"""

from __future__ import annotations

import asyncio

from common import keys
from common.redis_client import RedisClient


class VoteQueue:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self._pusher: asyncio.Task[None] | None = None

    async def push(self, payload: bytes) -> None:
        """Return once Redis holds the vote; raise the Redis error otherwise."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((payload, done))
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_waiting())
        await done

    async def _push_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._redis.lpush(keys.QUEUE, *(payload for payload, _ in batch))
            except BaseException as error:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                if not isinstance(error, Exception):
                    raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
