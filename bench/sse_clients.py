"""The fan-out load generator: many SSE subscribers on raw asyncio sockets in one process.

``python -m bench.sse_clients --port P --subscribers N --timeout S`` talks JSON lines:

- prints ``{"ready": n, "failed": n}`` once every subscriber holds its first event (the
  snapshot), or the timeout has passed;
- then reads one line ``{"commits": {"<version>": <commit time>, ...}}`` (times from
  ``time.monotonic()``, which is one clock for every process on Linux);
- prints the summary: for each subscriber and each committed version, the delay from
  the commit until the subscriber held that version or a newer one; and exits.

A subscriber records only the ``id:`` (results version) of each event and when it
arrived: a protocol callback and one regular expression per read, so one process keeps
up with 50,000 events a second where an HTTP client library per stream would not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import statistics
import sys
import time
from array import array
from typing import cast

from bench.harness import percentile, raise_fd_limit

_ID = re.compile(rb"(?:^|\n)id: (\d+)\r?\n")
CONNECTING_AT_ONCE = 100
MAX_WAIT_S = 600  # for the commit times: the generator never outlives a stuck benchmark


class Subscriber(asyncio.Protocol):
    def __init__(self, request: bytes, first_event: asyncio.Future[None]) -> None:
        self._request = request
        self._first_event = first_event
        self._tail = b""
        self.status = 0
        self.versions = array("q")  # each newer version received, with its arrival time
        self.times = array("d")
        self.received = 0  # bytes, as sent: the response head, events, keep-alives, framing
        self.events = 0  # every event received, newer or not
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.received += len(data)
        buffer = self._tail + data if self._tail else data
        if not self.status and b"\r\n" in buffer:
            self.status = int(buffer[9:12])
        cut = buffer.rfind(b"\n") + 1
        for match in _ID.finditer(buffer, 0, cut):
            self.events += 1
            version = int(match[1])
            if not self.versions or version > self.versions[-1]:
                self.versions.append(version)
                self.times.append(now)
        self._tail = buffer[cut:]
        if self.versions and not self._first_event.done():
            self._first_event.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self._first_event.done():
            self._first_event.set_exception(ConnectionError("closed before the first event"))


async def subscribe_all(port: int, count: int, timeout_s: float) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    request = (f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    gate = asyncio.Semaphore(CONNECTING_AT_ONCE)  # do not overflow the listen backlog
    deadline = loop.time() + timeout_s
    subscribers: list[Subscriber] = []

    async def one() -> None:
        async with gate:
            first_event: asyncio.Future[None] = loop.create_future()
            try:
                async with asyncio.timeout_at(deadline):
                    _, subscriber = await loop.create_connection(
                        lambda: Subscriber(request, first_event), "127.0.0.1", port)
                    await first_event
            except (OSError, TimeoutError) as error:
                print(f"subscriber failed: {error!r}", file=sys.stderr)
                return
            subscribers.append(subscriber)

    await asyncio.gather(*(one() for _ in range(count)))
    return subscribers


def summarize(subscribers: list[Subscriber], commits: dict[int, float],
              at_ready: list[tuple[int, int]]) -> dict[str, object]:
    """``at_ready``: each subscriber's (bytes, events) once every one held its snapshot."""
    versions = sorted(commits)
    delays = array("d")
    first = dict.fromkeys(versions, float("inf"))  # per change: its first subscriber's delay
    missed = on_latest = 0
    for sub in subscribers:
        index = 0
        for version, arrived in zip(sub.versions, sub.times, strict=True):
            while index < len(versions) and versions[index] <= version:
                delay = arrived - commits[versions[index]]
                delays.append(delay)
                first[versions[index]] = min(first[versions[index]], delay)
                index += 1
        missed += len(versions) - index
        on_latest += bool(versions) and bool(sub.versions) and sub.versions[-1] >= versions[-1]
    ordered = sorted(delays)
    sent = events = 0  # after every subscriber held its snapshot
    for sub, (bytes_at_ready, events_at_ready) in zip(subscribers, at_ready, strict=True):
        sent += sub.received - bytes_at_ready
        events += sub.events - events_at_ready
    return {
        "subscribers": len(subscribers), "changes": len(versions),
        "delays": len(ordered), "missed": missed, "on_latest": on_latest,
        "lost_connections": sum(sub.lost for sub in subscribers),
        "non_200": sum(sub.status != 200 for sub in subscribers),
        **{f"p{q}_ms": percentile(ordered, q) * 1000 for q in (50, 90, 99)},
        "max_ms": (ordered[-1] * 1000) if ordered else float("nan"),
        # the notify-to-first-byte path alone, without the fan-out to everyone else
        "first_subscriber_p50_ms": percentile(sorted(first.values()), 50) * 1000,
        # What a viewer is sent (bench/cost.py prices it): on connecting, the response head
        # and the snapshot; then per event, with its HTTP chunk framing and a share of the
        # keep-alives sent in the meantime.
        "connect_bytes": round(statistics.mean(b for b, _ in at_ready), 1) if at_ready else 0,
        "bytes_per_event": round(sent / max(1, events), 1),
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(port: int, count: int, timeout_s: float) -> None:
    subscribers = await subscribe_all(port, count, timeout_s)
    print(json.dumps({"ready": len(subscribers), "failed": count - len(subscribers)}),
          flush=True)
    at_ready = [(sub.received, sub.events) for sub in subscribers]
    started, cpu_started = time.monotonic(), cpu_seconds()
    line = await asyncio.wait_for(asyncio.to_thread(sys.stdin.readline), timeout=MAX_WAIT_S)
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_started
    commits = {int(version): t for version, t in json.loads(line)["commits"].items()}
    summary = summarize(subscribers, commits, at_ready)
    summary["generator_cpu_percent"] = round(100 * cpu / wall, 1) if wall else 0.0
    print(json.dumps(summary), flush=True)
    for sub in subscribers:
        if sub.transport is not None:
            sub.transport.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.sse_clients", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds for every subscriber to connect and get its first event")
    args = parser.parse_args()
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.port, args.subscribers, args.timeout))
    else:
        uvloop.run(main(args.port, args.subscribers, args.timeout))
