"""One drain invocation: claim, apply in one transaction, commit, then release.

The drain runs until its time budget is spent. With ``wait_for_votes`` it blocks on
the empty queue for the next vote instead of returning, so on a one-minute schedule
a vote is still applied within a fraction of a second; a drain from a shell stops
as soon as the queue is empty. If PostgreSQL fails, the claim goes back to the queue
and the drain backs off and retries until its budget runs out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from dataclasses import asdict, dataclass

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from common.event import InvalidEvent, VoteEvent, decode
from common.redis_client import RedisClient
from common.schema import ensure_schema
from common.settings import Options
from worker_fn.apply import apply_batch
from worker_fn.claims import Claims

log = logging.getLogger("worker_fn.drain")

_IDLE_WAIT_S = 1.0  # longest single block on an empty queue
_BACKOFF_START_S, _BACKOFF_CAP_S = 0.2, 5.0


class DependencyDown(RuntimeError):
    """Redis or PostgreSQL could not be reached; the votes stay queued."""


@dataclass
class DrainReport:
    owner: str
    applied: int = 0  # ballots that changed
    claimed: int = 0  # queue entries taken (valid or not)
    dead_lettered: int = 0
    recovered: int = 0  # entries returned to the queue from crashed drains
    batches: int = 0
    failures: int = 0  # PostgreSQL errors that were retried
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class DrainLimits:
    budget_s: float
    batch_max: int
    lease_s: float
    wait_for_votes: bool
    failpoint: str | None = None  # fault-injection tests: die here (see settings.FAILPOINTS)


def split_batch(
    items: list[bytes], options: Options
) -> tuple[list[VoteEvent], list[tuple[bytes, str]]]:
    """Decode queue entries into votes and dead letters (entry, reason)."""
    events: list[VoteEvent] = []
    dead: list[tuple[bytes, str]] = []
    for raw in items:
        try:
            events.append(decode(raw, options))
        except InvalidEvent as error:
            dead.append((raw, str(error)))
    return events, dead


class Drain:
    def __init__(self, redis: RedisClient, pool: AsyncConnectionPool, options: Options,
                 limits: DrainLimits) -> None:
        self._redis = redis
        self._pool = pool
        self._options = options
        self._limits = limits
        self._schema_ready = False

    async def run(self) -> DrainReport:
        started = time.monotonic()
        deadline = started + self._limits.budget_s
        claims = Claims(self._redis, uuid.uuid4().hex, self._limits.lease_s)
        report = DrainReport(owner=claims.owner)
        try:
            report.recovered = await claims.recover_abandoned()
            await self._loop(claims, report, deadline)
        except RedisError as error:
            raise DependencyDown(f"Redis is unreachable: {error}") from error
        except BaseException:
            # Cancelled (shutdown) or failed mid-batch: hand the claim back now rather
            # than after the lease expires. Replaying a committed batch changes nothing.
            with anyio.CancelScope(shield=True):
                await self._give_back_quietly(claims)
            raise
        finally:
            report.seconds = round(time.monotonic() - started, 3)
        return report

    async def _loop(self, claims: Claims, report: DrainReport, deadline: float) -> None:
        backoff = _BACKOFF_START_S
        while True:
            self._failpoint("before_claim")
            items = await claims.claim(self._limits.batch_max)
            if not items:
                remaining = deadline - time.monotonic()
                if not self._limits.wait_for_votes or remaining <= 0.01:
                    await claims.give_back()  # nothing held: drop the lease and the owner entry
                    return
                first = await claims.wait_for_one(min(_IDLE_WAIT_S, remaining))
                if first is None:
                    continue
                items = [first, *await claims.claim(self._limits.batch_max - 1)]
            report.claimed += len(items)
            self._failpoint("after_claim")
            events, dead = split_batch(items, self._options)
            try:
                report.applied += await self._apply(events)
            except psycopg.OperationalError as error:
                await claims.give_back()
                report.claimed -= len(items)
                report.failures += 1
                remaining = deadline - time.monotonic()
                log.warning("PostgreSQL failed, votes stay queued (retry in %.1fs): %s",
                            backoff, error)
                if remaining <= backoff:
                    raise DependencyDown(f"PostgreSQL is unreachable: {error}") from error
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_CAP_S)
                continue
            backoff = _BACKOFF_START_S
            self._failpoint("after_commit")
            await claims.release(dead)
            report.dead_lettered += len(dead)
            report.batches += 1
            if dead:
                log.warning("dead-lettered %d queue entries: %s", len(dead),
                            sorted({reason for _, reason in dead}))
            if time.monotonic() >= deadline:
                await claims.give_back()
                return

    @staticmethod
    async def _give_back_quietly(claims: Claims) -> None:
        try:
            await claims.give_back()
        except RedisError as error:
            log.warning("could not return claim %s, it is recovered when its lease expires: %s",
                        claims.owner, error)

    async def _apply(self, events: list[VoteEvent]) -> int:
        async with self._pool.connection(timeout=5.0) as conn:
            if not self._schema_ready:
                await ensure_schema(conn, self._options)
                self._schema_ready = True
            return await apply_batch(
                conn, events, before_commit=lambda: self._failpoint("mid_transaction"))

    def _failpoint(self, name: str) -> None:
        if self._limits.failpoint == name:
            log.error("failpoint %s: killing this process", name)
            os.kill(os.getpid(), signal.SIGKILL)
