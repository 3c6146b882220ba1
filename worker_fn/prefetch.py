"""Claiming and decoding batches ahead of PostgreSQL, gathered into groups.

While PostgreSQL applies one group, the next batches are claimed and decoded, up to
``depth`` of them waiting (and one more being claimed). Whenever PostgreSQL is free the
drain takes all of them as one group, so a backlog is applied in groups as large as
PostgreSQL falls behind (group commit), while a trickle of votes still goes through one
small batch at a time. Each batch's votes are made into COPY rows here, off PostgreSQL's
critical path; keeping the latest vote of each voter is left to PostgreSQL, which sorts
the group by voter anyway (worker_fn/apply.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple

from common.event import InvalidEvent, PollEvent, VoteEvent, decode
from common.polls import Poll
from common.tasks import stop
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


class Decoded(NamedTuple):
    """A claimed batch, decoded: its poll actions, and its valid votes as COPY rows."""

    claimed: Claimed
    poll_events: list[PollEvent]
    rows: bytes
    votes: int
    oldest_ms: int | None  # the earliest accepted time among its votes


@dataclass
class Group:
    """Batches applied in one transaction, and their valid votes as COPY rows."""

    claimed: list[Claimed] = field(default_factory=list)
    poll_events: list[PollEvent] = field(default_factory=list)  # in queue order
    rows: list[bytes] = field(default_factory=list)  # one block of copy_rows per batch
    votes: int = 0
    oldest_ms: int | None = None

    def add(self, decoded: Decoded) -> None:
        self.claimed.append(decoded.claimed)
        self.poll_events += decoded.poll_events
        oldest = decoded.oldest_ms
        if oldest is not None:  # it has votes
            self.rows.append(decoded.rows)
            self.votes += decoded.votes
            self.oldest_ms = oldest if self.oldest_ms is None else min(self.oldest_ms, oldest)

    @property
    def queued_after(self) -> int:
        return self.claimed[-1].queued_after


async def decode_batch(batch: Batch, polls: dict[str, Poll]) -> Decoded:
    """Split queue entries into poll actions, votes (made into COPY rows) and dead letters,
    letting other tasks run. A vote is checked against the polls known at its place in
    the queue: ``polls`` learns each definition as it is decoded."""
    votes: list[VoteEvent] = []
    poll_events: list[PollEvent] = []
    dead: list[tuple[bytes, str]] = []
    # A claim lists its entries newest first (the queue's oldest end is its right one):
    # decode them in the order they were queued, so a poll comes before its votes.
    for n, raw in enumerate(reversed(batch.items), 1):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        try:
            event = decode(raw, polls)
        except InvalidEvent as error:
            dead.append((raw, str(error)))
            continue
        if isinstance(event, VoteEvent):
            votes.append(event)
            continue
        poll_events.append(event)
        if event.definition is not None:
            polls[event.poll] = event.definition
    return Decoded(Claimed(batch.id, len(batch.items), batch.queued_after, dead), poll_events,
                   copy_rows(votes) if votes else b"", len(votes),
                   min(vote.accepted_ms for vote in votes) if votes else None)


class Prefetch:
    """Batches from ``batches``, claimed and decoded ahead, handed out in groups by
    ``take``. ``async with`` starts the prefetching task and stops it; the batches it
    still holds stay in ``Claims.outstanding`` for the drain to give back."""

    def __init__(self, batches: AsyncIterator[Batch], polls: dict[str, Poll],
                 depth: int) -> None:
        self._batches = batches
        self._polls = polls
        # Decoded batches, at most ``depth``; None once no more will come.
        self._ready: asyncio.Queue[Decoded | None] = asyncio.Queue(maxsize=depth)
        self._ended = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Prefetch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task = self._task
        assert task is not None
        try:
            await stop(task)
        except Exception as error:
            if not self._ended:
                log.warning("prefetching the next batch failed: %s", error)

    async def _run(self) -> None:
        try:
            async for batch in self._batches:
                await self._ready.put(await decode_batch(batch, self._polls))
        finally:
            await self._ready.put(None)  # however it ended; a full queue waits for take()

    async def take(self) -> Group | None:
        """Every batch decoded so far as one group, waiting for the first; None when no more
        will come, raising the error that stopped the prefetching, if any."""
        group = Group()
        item = None if self._ended else await self._ready.get()
        while item is not None:
            group.add(item)
            try:
                item = self._ready.get_nowait()
            except asyncio.QueueEmpty:
                return group
        self._ended = True
        if group.claimed:
            return group
        assert self._task is not None
        await self._task  # done by now: it put the end last
        return None
