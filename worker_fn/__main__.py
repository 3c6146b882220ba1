"""``python -m worker_fn``: one drain from a shell, until the queue is empty.
``python -m worker_fn migrate``: bring the database schema to this code's version (the
first drain does it too; run it at deploy time to have it done before any reader looks).
``python -m worker_fn status``: the pipeline as the worker sees it, as JSON.
``python -m worker_fn reset --actor NAME --reason TEXT --yes``: empty the poll (audited)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from contextlib import AbstractAsyncContextManager

from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from common.database import open_pool
from common.redis_client import open_redis
from common.runtime import DRAINING_THRESHOLD, tune_gc
from common.settings import exit_on_error
from worker_fn.admin import reset_poll
from worker_fn.drain import DependencyDown, Drain, DrainLimits
from worker_fn.migrations import prepare
from worker_fn.settings import APPLICATION_NAME, WorkerSettings
from worker_fn.status import pipeline_status


def connections_to(settings: WorkerSettings,
                   size: int) -> AbstractAsyncContextManager[AsyncConnectionPool]:
    return open_pool(settings.database_url, max_size=size, name=APPLICATION_NAME)


async def drain_once(settings: WorkerSettings, budget_s: float) -> int:
    limits = DrainLimits(budget_s=budget_s, batch_max=settings.batch_max,
                         lease_s=settings.lease_s, wait_for_votes=False,
                         failpoint=settings.failpoint)
    redis = open_redis(settings.redis)
    try:
        async with connections_to(settings, 2) as pool:
            tune_gc(DRAINING_THRESHOLD)
            report = await Drain(redis, pool, settings.first_poll, limits).run()
    except DependencyDown as error:
        print(json.dumps({"error": str(error)}), file=sys.stderr)
        return 1
    finally:
        await redis.aclose()
    print(json.dumps(report.as_dict()))
    return 0


async def migrate(settings: WorkerSettings) -> int:
    async with connections_to(settings, 1) as connections, connections.connection() as conn:
        await prepare(conn, settings.first_poll)
    print(json.dumps({"schema": "ready"}))
    return 0


async def show_status(settings: WorkerSettings) -> int:
    redis = open_redis(settings.redis)
    try:
        async with connections_to(settings, 1) as pool:
            status = await pipeline_status(redis, pool)
    except RedisError as error:
        print(json.dumps({"error": f"Redis is unreachable: {error}"}), file=sys.stderr)
        return 1
    finally:
        await redis.aclose()
    print(json.dumps(status, indent=2))
    return 0


async def reset(settings: WorkerSettings, actor: str, reason: str) -> int:
    async with connections_to(settings, 1) as connections, connections.connection() as conn:
        outcome = await reset_poll(conn, f"cli:{actor}", reason)
    print(json.dumps(outcome))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m worker_fn", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("drain", "migrate", "status", "reset"),
                        default="drain")
    parser.add_argument("--budget", type=float, default=None,
                        help="drain: seconds to drain at most (default: WORKER_BUDGET_SECONDS)")
    parser.add_argument("--actor", help="reset: who resets (recorded in audit_log)")
    parser.add_argument("--reason", default="", help="reset: why (recorded in audit_log)")
    parser.add_argument("--yes", action="store_true", help="reset: really empty the poll")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = exit_on_error(WorkerSettings.from_env)
    if args.command == "migrate":
        sys.exit(exit_on_error(lambda: asyncio.run(migrate(settings))))
    if args.command == "status":
        sys.exit(asyncio.run(show_status(settings)))
    if args.command == "reset":
        if not (args.actor and args.yes):
            parser.error("reset empties the poll: pass --actor NAME and --yes")
        sys.exit(asyncio.run(reset(settings, args.actor, args.reason)))
    budget = settings.budget_s if args.budget is None else args.budget
    sys.exit(asyncio.run(drain_once(settings, budget)))


if __name__ == "__main__":
    main()
