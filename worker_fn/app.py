"""worker_fn as an ASGI app: the scheduler (or the Lambda Web Adapter) POSTs /events.

At start-up it refuses, like a bad setting, a PostgreSQL that will never do (too old); one
that does not answer yet is only a dependency down, and the drain waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import TypedDict

import psycopg
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from common import http_metrics, keys
from common.database import CONNECT_TIMEOUT_S, open_pool
from common.edge import FunctionApp
from common.logs import configure_logging
from common.proxies import TrustedProxies
from common.redis_client import RedisClient, open_redis
from common.runtime import DRAINING_THRESHOLD, tune_gc
from common.settings import exit_on_error
from worker_fn.admin import reset_poll
from worker_fn.claims import Claims
from worker_fn.drain import DependencyDown, Drain, DrainLimits, DrainReport
from worker_fn.migrations import UnsupportedServer, check_server
from worker_fn.settings import APPLICATION_NAME, WorkerSettings

READY_WITHIN_S = 1.0  # /readyz: each data store answers within this, or 503
log = logging.getLogger("worker_fn")


SHUTDOWN_GRACE_S = 3.0  # how long shutdown waits for cancelled drains to give back claims
GIVE_BACK_S = 2.0  # then how long it gives itself to hand back what they still hold


class InFlight:
    """The drains running now, so that shutdown can cancel them and wait for them to hand
    their claims back. A drain that does not stop in time has its claims handed back by the
    shutdown itself: a transaction stuck in psycopg's wait would otherwise leave them to
    their lease (about one SIGTERM in five mid-drain under uvloop, none in 25 under
    asyncio's own loop: RELIABILITY.md). Handing back a group being committed is safe:
    replaying it changes nothing."""

    def __init__(self) -> None:
        self._running: dict[asyncio.Task[DrainReport], Claims] = {}

    async def run(self, drain: Drain) -> DrainReport:
        claims = drain.claims()
        task = asyncio.create_task(drain.run(claims))
        self._running[task] = claims
        task.add_done_callback(self._running.pop)
        return await asyncio.shield(task)

    async def cancel_all(self) -> None:
        if not self._running:
            return
        log.warning("shutting down: cancelling %d drain(s); their claims go back to the "
                    "queue", len(self._running))
        for task, claims in self._running.items():
            claims.closed = True
            task.cancel()
        await asyncio.wait(self._running, timeout=SHUTDOWN_GRACE_S)
        for claims in list(self._running.values()):
            log.warning("drain %s did not stop in %.0f s: handing its claims back",
                        claims.owner, SHUTDOWN_GRACE_S)
            try:
                async with asyncio.timeout(GIVE_BACK_S):
                    await claims.give_back_all()
            except (RedisError, TimeoutError) as error:
                log.warning("could not hand back the claims of %s; they are recovered when "
                            "its lease expires: %s", claims.owner, error or "no answer in time")


class State(TypedDict):
    settings: WorkerSettings
    drain: Drain
    in_flight: InFlight
    pool: AsyncConnectionPool
    redis: RedisClient


async def run_drain(request: Request) -> JSONResponse:
    """One drain; the body (a scheduler event) is not needed and is ignored."""
    drain: Drain = request.state.drain
    in_flight: InFlight = request.state.in_flight
    try:
        report = await in_flight.run(drain)
    except UnsupportedServer as error:  # swapped for an older server since the start
        log.error("drain refused: %s", error)
        return JSONResponse({"error": str(error)}, status_code=500)
    except DependencyDown as error:
        log.warning("drain failed: %s", error)
        return JSONResponse({"error": str(error), "hint": "votes stay queued; the next "
                             "scheduled drain retries"}, status_code=503,
                            headers={"Retry-After": "5"})
    if report.claimed or report.recovered:
        log.info("drain %s", report.as_dict())
    return JSONResponse(report.as_dict())


async def healthz(request: Request) -> JSONResponse:
    """Alive: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready: the queue's Redis node and PostgreSQL both answer. (A cluster client sends a
    PING to some default node, which answers while the queue's primary hangs: the length of
    the queue is read on the node that holds it, within a second: the drain's own socket
    timeout is longer, and a node that hangs answers nothing.)"""
    problems = {}
    try:
        async with asyncio.timeout(READY_WITHIN_S):
            await request.state.redis.llen(keys.QUEUE)
    except (RedisError, TimeoutError) as error:
        problems["redis"] = str(error) or f"no answer within {READY_WITHIN_S:g} s"
    try:
        pool: AsyncConnectionPool = request.state.pool
        async with pool.connection(timeout=READY_WITHIN_S) as conn:
            await conn.execute("SELECT 1")
    except psycopg.Error as error:
        problems["postgres"] = str(error)
    if problems:
        return JSONResponse({"status": "unavailable", **problems}, 503,
                            headers={"Retry-After": "5"})
    return JSONResponse({"status": "ok"})


async def admin_reset(request: Request) -> Response:
    """Reset the poll; needs ``Authorization: Bearer <WORKER_ADMIN_TOKEN>``."""
    settings: WorkerSettings = request.state.settings
    if settings.admin_token is None:
        return JSONResponse({"error": "admin actions are off: set WORKER_ADMIN_TOKEN"}, 404)
    sent = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(sent, settings.admin_token.encode()):
        return JSONResponse({"error": "wrong or missing admin token"}, 401,
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        body = await request.json()
        actor, reason = str(body["actor"])[:100], str(body.get("reason", ""))[:500]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'send {"actor": "<who>", "reason": "<why>"}'}, 400)
    pool: AsyncConnectionPool = request.state.pool
    try:
        async with pool.connection(timeout=5.0) as conn:
            outcome = await reset_poll(conn, f"http:{actor}", reason)
    except psycopg.OperationalError as error:
        return JSONResponse({"error": f"PostgreSQL is unreachable: {error}"}, 503)
    log.warning("poll reset by %s: %s", actor, outcome)
    return JSONResponse(outcome)


def refuse_unsupported_server(database_url: str) -> None:
    """Raise UnsupportedServer if DATABASE_URL answers and will never do; a server that
    does not answer yet is left for the drain to wait for."""
    try:
        with psycopg.connect(database_url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            server_version = conn.info.server_version
    except psycopg.OperationalError:
        return
    check_server(server_version)


def create_app(settings: WorkerSettings | None = None) -> Starlette:
    settings = settings or exit_on_error(WorkerSettings.from_env)
    exit_on_error(lambda: refuse_unsupported_server(settings.database_url))
    configure_logging(settings.log_format, "worker")
    limits = DrainLimits(budget_s=settings.budget_s, batch_max=settings.batch_max,
                         lease_s=settings.lease_s, wait_for_votes=True,
                         failpoint=settings.failpoint)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        redis = open_redis(settings.redis)
        in_flight = InFlight()
        async with open_pool(settings.database_url, max_size=3, name=APPLICATION_NAME) as pool:
            tune_gc(DRAINING_THRESHOLD)
            try:
                yield {"settings": settings, "pool": pool, "redis": redis,
                       "drain": Drain(redis, pool, settings.first_poll, limits),
                       "in_flight": in_flight}
            finally:
                await in_flight.cancel_all()
                await redis.aclose()

    return FunctionApp(
        "worker",
        routes=[Route("/events", run_drain, methods=["POST"]),
                Route("/healthz", healthz),
                Route("/readyz", readyz),
                Route("/admin/reset", admin_reset, methods=["POST"]),
                http_metrics.metrics_route],
        lifespan=lifespan,
        # Only the scheduler and operators call it, never through a proxy of ours.
        proxies=TrustedProxies(()),
    )
