"""Ingest's queue floor: the baseline app (bench/baseline.py) that also pushes each body
onto the Redis queue (``REDIS_URL``) with vote_fn's own coalescing ``VoteQueue`` before
its 202, into the first poll, which it opens as vote_fn does on a new store: the least a
vote must do to be acknowledged. Between this floor and vote_fn is
the vote's own work; a target beyond the floor cannot be met.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.baseline import ACCEPTED, healthz
from common import keys
from common.polls import FIRST
from common.redis_client import RedisSettings, open_redis
from vote_fn.queue import VoteQueue


def create_app() -> Starlette:
    settings = RedisSettings(os.environ["REDIS_URL"], cluster=False, timeout_s=0.5)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, VoteQueue]]:
        redis = open_redis(settings)
        await redis.set(keys.OPEN_POLL, FIRST)
        try:
            yield {"queue": VoteQueue(redis)}
        finally:
            await redis.aclose()

    async def vote(request: Request) -> Response:
        await request.state.queue.push(await request.body(), FIRST)
        return Response(ACCEPTED, 202, media_type="application/json")

    return Starlette(routes=[Route("/api/vote", vote, methods=["POST"]),
                             Route("/healthz", healthz)], lifespan=lifespan)
