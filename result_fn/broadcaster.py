"""One source of results events per process, feeding every SSE subscriber.

The results of the poll shown are read once per change, and the SSE events are encoded
once for everyone, at most ``max_events_per_s`` times a second: changes committed during
the pause are read, and sent, together. A subscriber is sent the whole results document
first and whenever the poll, its state or the pipeline's changes, and a short ``counts``
event when only the counts do (result_fn/results.py). A change is noticed in one of two
ways, chosen by how many PostgreSQL connections the process may hold
(RESULTS_MAX_CONNECTIONS):
- with two or more, one connection LISTENs, and each NOTIFY (or reconnect) triggers a read,
  with a read every ``poll_s`` as a safety net;
- with one (a Lambda invocation per viewer), that connection reads every ``poll_s``, and
  nothing listens.
Each subscriber only remembers the version it sent last and is woken to fetch the newest
event: a slow subscriber skips versions instead of queueing them, so it never slows the
others or grows memory. A ticker wakes every subscriber every ``ping_s`` to send a
keep-alive comment. ``async with`` starts the background tasks and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import NamedTuple

import psycopg
from sse_starlette import ServerSentEvent
from sse_starlette.sse import AppStatus

from common.schema import CHANNEL, PollTally, SchemaMissing
from common.tasks import stop
from result_fn import metrics
from result_fn.pipeline import PipelineStatus
from result_fn.reader import NoSuchPoll, Reader, build
from result_fn.results import Results

log = logging.getLogger("result_fn.broadcaster")

_RECONNECT_START_S, _RECONNECT_CAP_S = 0.2, 5.0
_RETRY_READ_S = 0.2
_PIPELINE_CHECK_S = 1.0
_SHUTDOWN_CHECK_S = 0.25
PING = ServerSentEvent(comment="ping").encode()


class Published(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    results: Results
    event: bytes  # the whole document as an SSE event, encoded once for every subscriber
    counts: bytes  # the counts alone


class Subscription:
    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster
        self._waiter: asyncio.Future[None] | None = None
        self._pings_seen = broadcaster.pings
        self.sent: Results | None = None
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
            if latest is not None and (sent := self.sent) is not latest.results:
                self.sent = latest.results
                metrics.EVENTS_SENT.inc()
                if sent is not None and sent.shape == latest.results.shape:
                    return latest.counts
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
    def __init__(self, reader: Reader, *, listen_url: str | None, name: str, poll_s: float,
                 ping_s: float, retry_ms: int, max_events_per_s: float) -> None:
        self._reader = reader
        self._listen_url = listen_url  # None: no LISTEN connection, poll instead
        self._name = name  # the LISTEN connection's application_name
        self._poll_s = poll_s
        self._ping_s = ping_s
        self._retry_ms = retry_ms
        self._min_interval_s = 1 / max_events_per_s
        self._found: PollTally | None = None
        self._pipeline: PipelineStatus | None = None
        self._changed = asyncio.Event()
        self._subscribers: set[Subscription] = set()
        self._runner: asyncio.Task[None] | None = None
        self._problem: str | None = None  # the last read failure, logged once
        self.latest: Published | None = None
        self.pings = 0
        self.following = False  # changes reach this process: LISTEN is up, or a poll worked
        self.closing = False  # the server is stopping: every stream ends now

    async def __aenter__(self) -> Broadcaster:
        self._runner = asyncio.create_task(self._run())
        self._runner.add_done_callback(_report_stop)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await stop(self._runner)

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
        if self._found is None or self._pipeline is None:
            return
        results = build(self._found, self._pipeline)
        if self.latest is not None and self.latest.results.key == results.key:
            return
        event = ServerSentEvent(data=results.json, id=str(results.version),
                                retry=self._retry_ms).encode()
        counts = ServerSentEvent(data=results.counts_json, id=str(results.version),
                                 event="counts").encode()
        self.latest = Published(results, event, counts)
        self._wake_all()

    def _wake_all(self) -> None:
        for subscription in self._subscribers:
            subscription.wake()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            if self._listen_url is not None:
                group.create_task(self._listen(self._listen_url))
            group.create_task(self._refresh())
            group.create_task(self._watch_pipeline())
            group.create_task(self._ping())
            group.create_task(self._close_on_shutdown())

    async def _listen(self, url: str) -> None:
        delay = _RECONNECT_START_S
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=3, application_name=self._name)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.following = True
                    delay = _RECONNECT_START_S
                    self._changed.set()  # changes made while disconnected were not notified
                    log.info("listening for result changes")
                    async for _ in conn.notifies():
                        self._changed.set()
            except psycopg.Error as error:
                log.warning("LISTEN connection lost, reconnecting in %.1fs: %s", delay, error)
            finally:
                self.following = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_CAP_S)

    async def _refresh(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._changed.wait()
            self._changed.clear()
            try:
                self._found, self._pipeline = await self._reader.read()
            except (psycopg.Error, SchemaMissing, NoSuchPoll) as error:
                self._failed("could not read the tallies", error)
                await asyncio.sleep(_RETRY_READ_S)
                continue
            self._read_again()
            self._publish_if_changed()
            await asyncio.sleep(self._min_interval_s)

    async def _watch_pipeline(self) -> None:
        """A stalled worker sends no NOTIFY: look every second so the page says so; and a
        database that does not answer is said too (the figures shown are the last read)."""
        while True:
            await asyncio.sleep(_PIPELINE_CHECK_S)
            try:
                self._pipeline = await self._reader.pipeline()
            except (psycopg.Error, SchemaMissing) as error:
                self._failed("could not read the pipeline status", error)
                if self._pipeline is not None and self._pipeline.state != "down":
                    self._pipeline = self._pipeline.unreadable()
            self._publish_if_changed()

    def _failed(self, what: str, error: psycopg.Error | SchemaMissing | NoSuchPoll) -> None:
        self._reader.forget_schema(error)
        if self._listen_url is None:
            self.following = False
        problem = f"{what}: {error or 'no poll yet'}"
        if problem != self._problem:  # once per problem, not once per retry
            self._problem = problem
            level = logging.WARNING if isinstance(error, psycopg.Error) else logging.INFO
            log.log(level, problem)

    def _read_again(self) -> None:
        if self._listen_url is None:
            self.following = True
        if self._problem is not None:
            log.info("reading the results again")
            self._problem = None

    async def _close_on_shutdown(self) -> None:
        """End every stream as soon as the server is asked to stop.

        uvicorn waits for open responses before it shuts down, and a stream would run to
        the end of its lifetime: uvicorn would cancel it after its graceful timeout, with
        an error per stream. sse-starlette notices the stop signal (``AppStatus``), so
        the streams end cleanly at once and browsers reconnect to another instance.
        """
        while not AppStatus.should_exit:  # noqa: ASYNC110 - a flag set by a signal handler
            await asyncio.sleep(_SHUTDOWN_CHECK_S)
        self.closing = True
        log.info("shutting down: ending %d live streams", len(self._subscribers))
        for subscription in list(self._subscribers):
            subscription.close()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._ping_s)
            self.pings += 1
            self._wake_all()


def _report_stop(runner: asyncio.Task[None]) -> None:
    if not runner.cancelled() and (error := runner.exception()) is not None:
        log.error("the results broadcaster stopped: live results no longer update",
                  exc_info=error)
