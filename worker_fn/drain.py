"""One drain invocation: claim, apply in one transaction, commit, then release.

The drain runs until its time budget is spent. With ``wait_for_votes`` it blocks on
the empty queue for the next vote instead of returning, so on a one-minute schedule
a vote is still applied within a fraction of a second; a drain from a shell stops
as soon as the queue is empty. While PostgreSQL applies one group of batches, the
next ones are claimed and decoded (worker_fn/prefetch.py), so Redis, Python and
PostgreSQL work at the same time, and a backlog goes in as few transactions as
PostgreSQL can keep up with. If PostgreSQL fails, the claims go back to the queue and
the drain backs off and retries until its budget runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from common.polls import Poll
from common.redis_client import RedisClient
from common.schema import read_polls
from worker_fn import metrics
from worker_fn.apply import apply_batch, heartbeat
from worker_fn.claims import Batch, Claims
from worker_fn.migrations import prepare
from worker_fn.prefetch import Group, Prefetch

log = logging.getLogger("worker_fn.drain")

_IDLE_WAIT_S = 1.0  # longest single block on an empty queue
_BACKOFF_START_S, _BACKOFF_CAP_S = 0.2, 5.0
# Batches claimed ahead of PostgreSQL, so at most this many go in one transaction
# (200,000 votes at the default WORKER_BATCH_MAX).
_PREFETCH_DEPTH = 10


class DependencyDown(RuntimeError):
    """Redis or PostgreSQL could not be reached; the votes stay queued."""


@dataclass
class DrainReport:
    owner: str
    applied: int = 0  # ballots that changed
    claimed: int = 0  # queue entries taken (valid or not)
    dead_lettered: int = 0
    recovered: int = 0  # entries returned to the queue from crashed drains
    batches: int = 0  # claims, of at most WORKER_BATCH_MAX entries
    transactions: int = 0  # each applies every batch decoded while the one before ran
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


class Drain:
    def __init__(self, redis: RedisClient, pool: AsyncConnectionPool, first_poll: Poll,
                 limits: DrainLimits) -> None:
        self._redis = redis
        self._pool = pool
        self._first_poll = first_poll
        self._limits = limits
        self._prepared = False  # the schema and the options' tally rows (once a process)

    def claims(self) -> Claims:
        """The claims of a new drain: they name its owner and lease."""
        return Claims(self._redis, uuid.uuid4().hex, self._limits.lease_s)

    async def run(self, claims: Claims | None = None) -> DrainReport:
        started = time.monotonic()
        deadline = started + self._limits.budget_s
        claims = claims or self.claims()
        report = DrainReport(owner=claims.owner)
        try:
            report.recovered = await claims.recover_abandoned()
            await self._loop(claims, report, deadline)
            await claims.give_back_all()  # nothing is held by now: this drops the lease
        except RedisError as error:
            await self._give_back_quietly(claims)
            raise DependencyDown(f"Redis is unreachable: {error}") from error
        except BaseException:
            # Cancelled (shutdown) or failed mid-batch: hand the claims back now rather
            # than after the lease expires. Replaying a committed batch changes nothing.
            await self._give_back_quietly(claims)
            raise
        finally:
            report.seconds = round(time.monotonic() - started, 3)
        return report

    async def _next(self, claims: Claims, deadline: float) -> Batch | None:
        """The next batch: claimed at once, or waited for while budget remains."""
        self._failpoint("before_claim")
        batch = await claims.claim(self._limits.batch_max)
        while not batch.items:
            remaining = deadline - time.monotonic()
            if not self._limits.wait_for_votes or remaining <= 0.01 or claims.closed:
                return None
            await self._heartbeat()
            first = await claims.wait_for_one(min(_IDLE_WAIT_S, remaining))
            if first is not None:
                batch = first
        self._failpoint("after_claim")
        metrics.CLAIMED.inc(len(batch.items))
        metrics.QUEUE_DEPTH.set(batch.queued_after)
        return batch

    async def _batches(self, claims: Claims, deadline: float) -> AsyncIterator[Batch]:
        """Batches until the queue is empty or, when waiting for votes, the budget is spent;
        the first is claimed even with no budget left."""
        while (batch := await self._next(claims, deadline)) is not None:
            yield batch
            if time.monotonic() >= deadline:
                return

    async def _loop(self, claims: Claims, report: DrainReport, deadline: float) -> None:
        backoff = _BACKOFF_START_S
        while True:
            committed = report.transactions
            try:
                async with self._connection(timeout_s=5.0) as conn:
                    polls = await read_polls(conn)
                async with Prefetch(self._batches(claims, deadline), polls,
                                    _PREFETCH_DEPTH) as prefetch:
                    await self._apply_all(prefetch, claims, report)
                return
            except psycopg.OperationalError as error:
                failure = error
            metrics.FAILURES.inc()
            report.failures += 1
            if report.transactions > committed:
                backoff = _BACKOFF_START_S  # it had recovered since the last failure
            await claims.give_back_all()
            log.warning("PostgreSQL failed, votes stay queued (retry in %.1fs): %s",
                        backoff, failure)
            if deadline - time.monotonic() <= backoff:
                raise DependencyDown(f"PostgreSQL is unreachable: {failure}") from failure
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_CAP_S)

    async def _apply_all(self, prefetch: Prefetch, claims: Claims, report: DrainReport) -> None:
        """Apply each group in one transaction, then release its batches."""
        while (group := await prefetch.take()) is not None:
            report.applied += await self._apply(group)
            self._failpoint("after_commit")
            await claims.release([(claimed.id, claimed.dead) for claimed in group.claimed])
            for claimed in group.claimed:
                report.claimed += claimed.entries
                report.dead_lettered += len(claimed.dead)
                report.batches += 1
                metrics.DEAD_LETTERED.inc(len(claimed.dead))
                if claimed.dead:
                    log.warning("dead-lettered %d queue entries: %s", len(claimed.dead),
                                sorted({reason for _, reason in claimed.dead}))
            report.transactions += 1

    @staticmethod
    async def _give_back_quietly(claims: Claims) -> None:
        """Hand the claims back, to the end even if this task is cancelled again meanwhile."""
        try:
            await asyncio.shield(claims.give_back_all())
        except RedisError as error:
            log.warning("could not return the claims of %s; they are recovered when its "
                        "lease expires: %s", claims.owner, error)

    async def _apply(self, group: Group) -> int:
        """Apply a group in one transaction. A cancellation (shutdown) does not cut the
        transaction off: psycopg, cancelled in the middle of a COPY, could wait for the
        COPY's end for good (worker_fn/app.py's InFlight). The drain hands its claims back
        at once; the transaction commits or fails
        by itself meanwhile, and replaying a committed group changes nothing."""
        started = time.monotonic()
        changed = await asyncio.shield(self._transaction(group))
        if group.oldest_ms is not None:
            metrics.BATCHES.inc()
            metrics.APPLIED.inc(changed)
            metrics.BATCH_SECONDS.observe(time.monotonic() - started)
            metrics.LAG_SECONDS.observe(max(0.0, time.time() - group.oldest_ms / 1000))
        return changed

    async def _transaction(self, group: Group) -> int:
        async with self._connection(timeout_s=5.0) as conn:
            return await apply_batch(
                conn, group.rows, votes=group.votes, queued=group.queued_after,
                poll_events=group.poll_events,
                before_commit=lambda: self._failpoint("mid_transaction"))

    @contextlib.asynccontextmanager
    async def _connection(self, timeout_s: float) -> AsyncIterator[AsyncConnection[TupleRow]]:
        async with self._pool.connection(timeout=timeout_s) as conn:
            if not self._prepared:
                await prepare(conn, self._first_poll)
                self._prepared = True
            yield conn

    async def _heartbeat(self) -> None:
        """Tell the results page the worker is alive while it waits on an empty queue."""
        try:
            async with self._connection(timeout_s=1.0) as conn:
                await heartbeat(conn, queued=0)
        except psycopg.Error as error:
            log.debug("heartbeat not recorded: %s", error)

    def _failpoint(self, name: str) -> None:
        if self._limits.failpoint == name:
            log.error("failpoint %s: killing this process", name)
            os.kill(os.getpid(), signal.SIGKILL)
