"""One LISTEN connection per process feeding every SSE subscriber.

On each NOTIFY (and after every reconnect, and every ``poll_s`` as a safety net) the
tallies are read once and the SSE event is encoded once, at most 20 times a second.
Each subscriber only remembers the version it sent last and is woken to fetch the
newest event: a slow subscriber skips versions instead of queueing them, so it never
slows the others or grows memory. A ticker wakes every subscriber every ``ping_s`` to
send a keep-alive comment.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import anyio
import psycopg
from psycopg_pool import AsyncConnectionPool
from sse_starlette import ServerSentEvent
from sse_starlette.sse import AppStatus

from common.schema import CHANNEL, Tally, ensure_schema, read_pipeline, read_tally
from common.settings import Options
from result_fn import metrics
from result_fn.pipeline import PipelineStatus, assess
from result_fn.results import Results, build_results

log = logging.getLogger("result_fn.broadcaster")

_RECONNECT_START_S, _RECONNECT_CAP_S = 0.2, 5.0
_PIPELINE_CHECK_S = 1.0
# At most this many reads and events a second, however fast the worker commits batches:
# changes committed during the pause are read, and sent, together.
_MIN_REFRESH_S = 0.05
_SHUTDOWN_CHECK_S = 0.25
PING = ServerSentEvent(comment="ping").encode()


@dataclass(frozen=True, slots=True)
class Published:
    results: Results
    event: bytes  # the SSE event, encoded once for every subscriber


class Subscription:
    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster
        self._waiter: asyncio.Future[None] | None = None
        self._pings_seen = broadcaster.pings
        self.sent_key: tuple[int, str] | None = None
        self.closed = False

    def wake(self) -> None:
        # A bare future is cheaper than an asyncio.Event; it matters at 50,000 wake-ups/s.
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self.wake()

    async def next_chunk(self) -> bytes | None:
        """The newest event not sent yet, else a due keep-alive; None once closed."""
        broadcaster = self._broadcaster
        while not self.closed:
            latest = broadcaster.latest
            if latest is not None and latest.results.key != self.sent_key:
                self.sent_key = latest.results.key
                metrics.EVENTS_SENT.inc()
                return latest.event
            if broadcaster.pings != self._pings_seen:
                self._pings_seen = broadcaster.pings
                return PING
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return None


class Broadcaster:
    def __init__(self, database_url: str, pool: AsyncConnectionPool, options: Options, *,
                 poll_s: float, ping_s: float, retry_ms: int, stall_s: float) -> None:
        self._database_url = database_url
        self._pool = pool
        self._options = options
        self._poll_s = poll_s
        self._ping_s = ping_s
        self._retry_ms = retry_ms
        self._stall_s = stall_s
        self._tally: Tally | None = None
        self._pipeline: PipelineStatus | None = None
        self._changed = asyncio.Event()
        self._subscribers: set[Subscription] = set()
        self.latest: Published | None = None
        self.pings = 0
        self.listening = False
        self.closing = False  # the server is stopping: every stream ends now

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self._subscribers.add(subscription)
        if self.closing:
            subscription.close()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def _publish_if_changed(self) -> None:
        if self._tally is None or self._pipeline is None:
            return
        results = build_results(self._tally, self._options, self._pipeline)
        if self.latest is not None and self.latest.results.key == results.key:
            return
        event = ServerSentEvent(data=results.json, id=str(results.version),
                                retry=self._retry_ms).encode()
        self.latest = Published(results, event)
        self._wake_all()

    def _wake_all(self) -> None:
        for subscription in self._subscribers:
            subscription.wake()

    async def run(self) -> None:
        """Listen, refresh and ping until cancelled (the lifespan owns this task)."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._listen)
            group.start_soon(self._refresh)
            group.start_soon(self._watch_pipeline)
            group.start_soon(self._ping)
            group.start_soon(self._close_on_shutdown)

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
            except (psycopg.Error, RuntimeError) as error:
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
                    self._tally = await read_tally(conn)
                    self._pipeline = assess(await read_pipeline(conn), self._stall_s)
            except (psycopg.Error, LookupError) as error:
                log.warning("could not read the tallies: %s", error)
                await anyio.sleep(_RECONNECT_START_S)
                continue
            self._publish_if_changed()
            await anyio.sleep(_MIN_REFRESH_S)

    async def _watch_pipeline(self) -> None:
        """A stalled worker sends no NOTIFY: look every second so the page says so."""
        while True:
            await anyio.sleep(_PIPELINE_CHECK_S)
            try:
                async with self._pool.connection(timeout=1.0) as conn:
                    self._pipeline = assess(await read_pipeline(conn), self._stall_s)
            except (psycopg.Error, LookupError) as error:
                log.debug("could not read the pipeline status: %s", error)
                continue
            self._publish_if_changed()

    async def _close_on_shutdown(self) -> None:
        """End every stream as soon as the server is asked to stop.

        uvicorn waits for open responses before it shuts down, and a stream would run to
        the end of its lifetime: uvicorn would cancel it after its graceful timeout, with
        an error per stream. sse-starlette notices the stop signal (``AppStatus``), so
        the streams end cleanly at once and browsers reconnect to another instance.
        """
        while not AppStatus.should_exit:  # noqa: ASYNC110 - a flag set by a signal handler
            await anyio.sleep(_SHUTDOWN_CHECK_S)
        self.closing = True
        log.info("shutting down: ending %d live streams", len(self._subscribers))
        for subscription in list(self._subscribers):
            subscription.close()

    async def _ping(self) -> None:
        while True:
            await anyio.sleep(self._ping_s)
            self.pings += 1
            self._wake_all()
