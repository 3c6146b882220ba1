"""Claiming and decoding batches ahead of PostgreSQL, gathered into groups.

While PostgreSQL applies one group, the next batches are claimed and decoded into the
next group, at most ``depth`` of them. Whenever PostgreSQL is free the drain takes the
whole group, so a backlog is applied in groups as large as PostgreSQL falls behind
(group commit), while a trickle of votes still goes through one small batch at a time.
Each batch's votes are made into COPY rows here, off PostgreSQL's critical path; keeping
the latest vote of each voter is left to PostgreSQL, which sorts the group by voter
anyway (worker_fn/apply.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from common.event import InvalidEvent, VoteEvent, decode
from common.settings import Options
from worker_fn.apply import copy_rows
from worker_fn.claims import Batch

log = logging.getLogger("worker_fn.prefetch")

_YIELD_EVERY = 1000  # entries decoded between turns of the event loop


@dataclass
class Claimed:
    """A claimed batch once decoded (its entries are not kept)."""

    id: str
    entries: int
    queued_after: int  # queue length left after the claim
    dead: list[tuple[bytes, str]]  # (entry, reason): set aside when the batch is released


@dataclass
class Group:
    """Batches applied in one transaction, and their valid votes as COPY rows."""

    claimed: list[Claimed] = field(default_factory=list)
    rows: list[bytes] = field(default_factory=list)  # one block of copy_rows per batch
    votes: int = 0
    oldest_ms: int | None = None  # the earliest accepted time among the votes

    def add(self, batch: Batch, votes: list[VoteEvent], dead: list[tuple[bytes, str]]) -> None:
        if votes:
            self.rows.append(copy_rows(votes))
            self.votes += len(votes)
            oldest = min(vote.accepted_ms for vote in votes)
            self.oldest_ms = oldest if self.oldest_ms is None else min(self.oldest_ms, oldest)
        self.claimed.append(Claimed(batch.id, len(batch.items), batch.queued_after, dead))

    @property
    def queued_after(self) -> int:
        return self.claimed[-1].queued_after


async def decode_batch(batch: Batch,
                       options: Options) -> tuple[list[VoteEvent], list[tuple[bytes, str]]]:
    """Split queue entries into votes and dead letters, letting other tasks run."""
    votes: list[VoteEvent] = []
    dead: list[tuple[bytes, str]] = []
    for n, raw in enumerate(batch.items, 1):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        try:
            votes.append(decode(raw, options))
        except InvalidEvent as error:
            dead.append((raw, str(error)))
    return votes, dead


class Prefetch:
    """Batches from ``batches``, decoded into the group that ``take`` hands out."""

    def __init__(self, batches: AsyncIterator[Batch], options: Options, depth: int) -> None:
        self._options = options
        self._group = Group()
        self._slots = asyncio.Semaphore(depth)
        self._grown = asyncio.Event()
        self._stopping = False
        self._raised = False  # the error that stopped it was raised by take
        self._task = asyncio.create_task(self._run(batches))

    async def _run(self, batches: AsyncIterator[Batch]) -> None:
        try:
            while True:
                await self._slots.acquire()
                if self._stopping or (batch := await anext(batches, None)) is None:
                    return
                votes, dead = await decode_batch(batch, self._options)
                self._group.add(batch, votes, dead)  # no await: never taken half-added
                self._grown.set()
        finally:
            self._grown.set()  # the task is done by the time take() wakes

    async def take(self) -> Group | None:
        """The group decoded so far (waiting for its first batch); None when no more
        will come. The error that stopped the prefetching is raised then."""
        while not self._group.claimed:
            if self._task.done():
                self._raised = True
                await self._task
                return None
            self._grown.clear()
            await self._grown.wait()
        group, self._group = self._group, Group()
        for _ in group.claimed:
            self._slots.release()
        return group

    async def stop(self) -> None:
        """Stop prefetching; the batches it holds stay in ``Claims.outstanding``.

        Cancelling is not enough on its own: redis-py (8.1) sometimes swallows the
        cancellation of a command, and the task would then wait for room forever. So it
        also sees a flag, and is given room to see it.
        """
        self._stopping = True
        self._task.cancel()
        self._slots.release()
        await asyncio.wait({self._task})
        if not (self._task.cancelled() or self._raised) and self._task.exception() is not None:
            log.warning("prefetching the next batch failed: %s", self._task.exception())
