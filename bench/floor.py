"""Floors: the baseline app (bench/baseline.py) plus only the part of a function's work
that no implementation of it can skip. A figure's gap to its ceiling then splits into
the floor's share and the function's own; a target beyond the floor cannot be met.

- ``imports_app`` (cold start): first imports the third-party modules a function loads
  before its first 200 (``FLOOR_MODULES``, comma-separated, in the order the function
  loaded them; bench/coldstart.py takes the list from the function's own start under
  ``python -X importtime``).
- ``queue_app`` (ingest): also pushes each body onto the Redis queue (``REDIS_URL``)
  with vote_fn's own coalescing ``VoteQueue`` before its 202: the least a vote must do
  to be acknowledged.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.baseline import ACCEPTED, healthz
from bench.baseline import create_app as baseline_app
from common.redis_client import RedisSettings, open_redis
from vote_fn.queue import VoteQueue


def imports_app() -> Starlette:
    for name in filter(None, os.environ.get("FLOOR_MODULES", "").split(",")):
        with contextlib.suppress(ImportError):  # an optional module the library tried too
            importlib.import_module(name)
    return baseline_app()


def queue_app() -> Starlette:
    settings = RedisSettings(os.environ["REDIS_URL"], cluster=False, timeout_s=0.5)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, VoteQueue]]:
        redis = open_redis(settings)
        try:
            yield {"queue": VoteQueue(redis)}
        finally:
            await redis.aclose()

    async def vote(request: Request) -> Response:
        await request.state.queue.push(await request.body())
        return Response(ACCEPTED, 202, media_type="application/json")

    return Starlette(routes=[Route("/api/vote", vote, methods=["POST"]),
                             Route("/healthz", healthz)], lifespan=lifespan)
