"""One LISTEN connection per process feeding every SSE subscriber.

On each NOTIFY (and after every reconnect, and every ``poll_s`` as a safety net) the
tallies are read once and encoded once. Each subscriber only remembers the version
it sent last and is woken to fetch the newest results: a slow subscriber skips
versions instead of queueing them, so it never slows the others or grows memory.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool

from common.schema import CHANNEL, ensure_schema, read_tally
from common.settings import Options
from result_fn.results import Results, build_results

log = logging.getLogger("result_fn.broadcaster")

_RECONNECT_START_S, _RECONNECT_CAP_S = 0.2, 5.0


class Subscription:
    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster
        self._wake = asyncio.Event()
        self.sent_version: int | None = None

    def wake(self) -> None:
        self._wake.set()

    async def next(self) -> Results:
        """The newest results this subscriber has not been sent yet (waits for them)."""
        while True:
            latest = self._broadcaster.latest
            if latest is not None and latest.version != self.sent_version:
                self.sent_version = latest.version
                return latest
            self._wake.clear()
            await self._wake.wait()


class Broadcaster:
    def __init__(self, database_url: str, pool: AsyncConnectionPool, options: Options,
                 poll_s: float) -> None:
        self._database_url = database_url
        self._pool = pool
        self._options = options
        self._poll_s = poll_s
        self._changed = asyncio.Event()
        self._subscribers: set[Subscription] = set()
        self.latest: Results | None = None
        self.listening = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    async def run(self) -> None:
        """Listen and refresh until cancelled (the lifespan owns this task)."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._listen)
            group.start_soon(self._refresh)

    async def _listen(self) -> None:
        delay = _RECONNECT_START_S
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._database_url, autocommit=True, connect_timeout=3)
                async with conn:
                    await ensure_schema(conn, self._options)
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    delay = _RECONNECT_START_S
                    self._changed.set()  # changes made while disconnected were not notified
                    log.info("listening for result changes")
                    async for _ in conn.notifies():
                        self._changed.set()
            except psycopg.Error as error:
                log.warning("LISTEN connection lost, reconnecting in %.1fs: %s", delay, error)
            finally:
                self.listening = False
            await anyio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_CAP_S)

    async def _refresh(self) -> None:
        while True:
            with anyio.move_on_after(self._poll_s):
                await self._changed.wait()
            self._changed.clear()
            try:
                async with self._pool.connection(timeout=2.0) as conn:
                    tally = await read_tally(conn)
            except (psycopg.Error, LookupError) as error:
                log.warning("could not read the tallies: %s", error)
                await anyio.sleep(_RECONNECT_START_S)
                continue
            if self.latest is None or tally.version != self.latest.version:
                self.latest = build_results(tally, self._options)
                for subscription in self._subscribers:
                    subscription.wake()
