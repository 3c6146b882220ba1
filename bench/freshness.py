"""Freshness: time from a vote's 2xx to the first SSE event whose tallies include it,
under a steady background load of votes, with the worker invoked as the cloud does.

Real Valkey and PostgreSQL; vote_fn (2 uvicorn workers), worker_fn and result_fn under
the local profile's uvicorn command. The worker is invoked the way the template invokes
it: the scheduler of local/scheduler.py POSTs a scheduler event to ``/events`` every
``SCHEDULE_SECONDS``, dropping a tick while a drain still runs, and each drain blocks on
the queue for ``WORKER_BUDGET_SECONDS``. The full run uses the cloud's cadence (60 s /
55 s) over exactly one schedule period, so the gap between two drains, when no drain
runs, falls inside the measurement in its true proportion (5 s of every 60 s).

wrk (bench/wrk_paced.lua) sends the background load at a fixed rate: a new voter per
request, always for ``cats``. A probe client posts one vote at a time for ``dogs``, each
from a new voter, and one SSE subscriber to result_fn's ``/stream`` records every event.
So the ``dogs`` count is exactly the number of probes counted; probes are sent one after
another's 2xx and the queue is drained oldest first, so a count of k means probes 1..k
are in: probe k's freshness is the arrival of the first event with ``dogs`` >= k, less
its 2xx. The pipeline is checked afterwards: ``dogs`` equals the probes acknowledged and
``cats`` holds at least every background vote wrk saw acknowledged.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import psycopg

from bench.harness import BenchError, Processes, WrkRun, create_schema, parse_wrk, percentile
from bench.report import Figure
from common.schema import read_poll_tally
from local import profile, scheduler
from support.sse import results

TARGET_P50_MS, TARGET_P99_MS = 100.0, 300.0
BACKGROUND, PROBE = "cats", "dogs"
WRK_PACED = Path(__file__).resolve().parent / "wrk_paced.lua"


@dataclass(frozen=True)
class Sizes:
    rate: int  # background votes/s
    window_s: float  # probes are sent for this long
    probes_per_s: float
    schedule_s: float  # scheduler ticks
    budget_s: float  # WORKER_BUDGET_SECONDS
    warmup_s: float = 3.0  # background load before the first probe
    connections: int = 32  # wrk: enough to hold the rate through latency spikes
    workers: int = 2  # vote_fn


FULL = Sizes(rate=2_000, window_s=profile.SCHEDULE_SECONDS, probes_per_s=20,
             schedule_s=profile.SCHEDULE_SECONDS, budget_s=profile.WORKER_BUDGET_SECONDS)
QUICK = Sizes(rate=500, window_s=2, probes_per_s=10, warmup_s=1,
              schedule_s=profile.LOCAL_SCHEDULE_SECONDS,
              budget_s=profile.local_budget_seconds(profile.LOCAL_SCHEDULE_SECONDS))


@dataclass
class Observed:
    """What the bench process saw, all on its own perf_counter clock."""

    baseline: dict[str, int] = field(default_factory=dict)  # counts in the first event
    event_times: list[float] = field(default_factory=list)
    event_probe_counts: list[int] = field(default_factory=list)  # PROBE count, per event
    acks: list[float] = field(default_factory=list)  # 2xx of each probe, in order
    sends: list[float] = field(default_factory=list)  # when each acknowledged probe was sent
    probe_errors: list[str] = field(default_factory=list)
    drains: list[list[float]] = field(default_factory=list)  # [POST sent, answer] per tick
    final_tally: dict[str, int] = field(default_factory=dict)


def run(quick: bool) -> list[Figure]:
    sizes = QUICK if quick else FULL
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    with Processes("voting-bench-freshness-") as procs:
        redis_url, database_url = procs.valkey(), procs.postgres()
        # The worker's first drain would bring the schema, but the measurement starts from
        # result_fn's first event, which comes only once there is one: prepare it first,
        # as the other scenarios do.
        create_schema(database_url)
        worker = procs.function(profile.by_name("worker"), {
            "REDIS_URL": redis_url, "DATABASE_URL": database_url,
            "WORKER_BUDGET_SECONDS": str(sizes.budget_s)})
        # as the local profile runs it: the worker unseen for 3 s shows as stalled
        result = procs.function(profile.by_name("result"), {
            "DATABASE_URL": database_url, "PIPELINE_STALL_SECONDS": "3"})
        vote = procs.function(profile.by_name("vote"), {
            "REDIS_URL": redis_url, "RESULTS_URL": result.url,
            "VOTE_RATE_LIMIT": "0"}, workers=sizes.workers)  # no rate limit while measured

        wrk_seconds = int(sizes.warmup_s + sizes.window_s + 2)
        observed = Observed()

        def start_background() -> Callable[[], WrkRun]:
            threads = 1
            process = procs.start("wrk", [
                shutil.which("wrk") or "wrk", f"-t{threads}", f"-c{sizes.connections}",
                f"-d{wrk_seconds}s", "--timeout", "5s", "-s", str(WRK_PACED),
                vote.url + "/api/vote", "--", str(sizes.rate), str(threads),
                json.dumps({"vote": BACKGROUND})], pipes=True)

            def finish() -> WrkRun:
                out, _ = process.communicate(timeout=wrk_seconds + 60)
                return parse_wrk(out.decode(), process.returncode, procs.log_tail("wrk"))

            return finish

        background = asyncio.run(_measure(sizes, vote.url, result.url,
                                          worker.url + profile.WORKER_EVENTS_PATH,
                                          database_url, start_background, observed))
    return _figures(sizes, observed, background)


async def _measure(sizes: Sizes, vote_url: str, result_url: str, events_url: str,
                   database_url: str, start_background: Callable[[], Callable[[], WrkRun]],
                   observed: Observed) -> WrkRun:
    first_event = asyncio.Event()
    subscriber = asyncio.create_task(_subscribe(result_url, observed, first_event))
    ticks: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(first_event.wait(), 10)
        ticks = asyncio.create_task(_schedule(events_url, sizes.schedule_s, observed.drains))
        finish_background = start_background()
        await asyncio.sleep(sizes.warmup_s)
        await _probe(vote_url, sizes, observed)
        background = await asyncio.to_thread(finish_background)
        # With the scheduler still ticking: the drain applies whatever is still queued.
        expected_probes = observed.baseline.get(PROBE, 0) + len(observed.acks)
        await _wait_for(lambda: _final_tally(database_url, observed, expected_probes,
                                             background.ok),
                        timeout_s=sizes.schedule_s - sizes.budget_s + 15)
        await _wait_for(lambda: _seen(observed, expected_probes), timeout_s=5)
        if subscriber.done():  # the stream ended early: its error says why
            subscriber.result()
            raise BenchError("the SSE stream ended during the measurement")
    finally:
        for task in (ticks, subscriber):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (ticks, subscriber) if t), return_exceptions=True)
    return background


async def _subscribe(result_url: str, observed: Observed, first: asyncio.Event) -> None:
    """One SSE subscriber: the arrival time and the PROBE count of every event."""
    timeout = httpx.Timeout(5.0, read=None)
    async with httpx.AsyncClient(timeout=timeout) as client, \
            client.stream("GET", result_url + "/stream") as response:
        if response.status_code != 200:
            raise BenchError(f"/stream answered {response.status_code}")
        async for document in results(response):
            arrived = time.perf_counter()
            counts = {o["id"]: int(o["votes"]) for o in document["options"]}
            if not first.is_set():
                observed.baseline = counts
                first.set()
            observed.event_times.append(arrived)
            observed.event_probe_counts.append(counts.get(PROBE, 0))


async def _schedule(events_url: str, every_s: float, drains: list[list[float]]) -> None:
    """local/scheduler.py's loop and tick, run here so that each drain's span is known:
    ``run`` looks ``tick`` up at each call, so the recording wrapper is what it calls."""
    real_tick = scheduler.tick
    running: set[asyncio.Task[object]] = set()

    async def recording_tick(client: httpx.AsyncClient, url: str, timeout_s: float) -> bool:
        span = [time.perf_counter(), float("inf")]
        drains.append(span)
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            return await real_tick(client, url, timeout_s)
        finally:
            running.discard(task)
            span[1] = time.perf_counter()

    scheduler.tick = recording_tick
    try:
        await scheduler.run(events_url, every_s)
    finally:
        scheduler.tick = real_tick
        for task in list(running):  # the drain in flight: its POST is abandoned quietly
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _probe(vote_url: str, sizes: Sizes, observed: Observed) -> None:
    """Votes for PROBE, each from a new voter, paced, each sent after the last one's 2xx."""
    count = max(1, int(sizes.window_s * sizes.probes_per_s))
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=vote_url, timeout=5.0) as client:
        started = loop.time()
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / sizes.probes_per_s - loop.time()))
            client.cookies.clear()  # no voter cookie: a new voter each time
            sent = time.perf_counter()
            try:
                response = await client.post("/api/vote", json={"vote": PROBE})
            except httpx.HTTPError as error:
                observed.probe_errors.append(repr(error))
                continue
            if response.status_code // 100 == 2:
                observed.acks.append(time.perf_counter())
                observed.sends.append(sent)
            else:
                observed.probe_errors.append(f"{response.status_code} {response.text[:80]}")


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def _final_tally(database_url: str, observed: Observed, probes: int,
                       background_ok: int) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        observed.final_tally = (await read_poll_tally(conn)).tally.votes  # type: ignore[union-attr]
    counted = observed.final_tally.get(BACKGROUND, 0) - observed.baseline.get(BACKGROUND, 0)
    return observed.final_tally.get(PROBE, 0) >= probes and counted >= background_ok


async def _seen(observed: Observed, probes: int) -> bool:
    return bool(observed.event_probe_counts) and observed.event_probe_counts[-1] >= probes


def _figures(sizes: Sizes, observed: Observed, background: WrkRun) -> list[Figure]:
    base = observed.baseline.get(PROBE, 0)
    latencies: list[float] = []  # ms, per probe seen in an event
    from_send: list[float] = []  # ms, from the request instead of its 2xx
    in_drain: list[float] = []
    early = 0  # the event came before the 2xx reached the client: freshness 0
    for k, acked in enumerate(observed.acks, start=1):
        i = bisect.bisect_left(observed.event_probe_counts, base + k)
        if i == len(observed.event_times):
            continue  # never seen
        ms = (observed.event_times[i] - acked) * 1000
        from_send.append((observed.event_times[i] - observed.sends[k - 1]) * 1000)
        early += ms < 0
        ms = max(0.0, ms)
        latencies.append(ms)
        if any(start <= acked <= end for start, end in observed.drains):
            in_drain.append(ms)
    if not latencies:
        raise BenchError(f"no probe vote reached the SSE stream ({len(observed.acks)} "
                         f"acknowledged, errors: {observed.probe_errors[:3]})")
    ordered, ordered_in_drain, ordered_from_send = sorted(latencies), sorted(in_drain), \
        sorted(from_send)
    counted_probes = observed.final_tally.get(PROBE, 0) - base
    counted_background = (observed.final_tally.get(BACKGROUND, 0)
                          - observed.baseline.get(BACKGROUND, 0))
    gaps = [round(nxt[0] - cur[1], 3) for cur, nxt in zip(observed.drains, observed.drains[1:],
                                                          strict=False)]
    details: dict[str, object] = {
        "tallies_exact": counted_probes == len(observed.acks)
        and counted_background >= background.ok,
        # never in an event before the end: left out of the percentiles, so they must be 0
        "probes_acknowledged": len(observed.acks), "probes_seen": len(latencies),
        "probes_never_seen": len(observed.acks) - len(latencies),
        "probes_counted": counted_probes, "probe_errors": len(observed.probe_errors),
        "probe_error_sample": observed.probe_errors[:3],
        # the SSE event came before the vote's own 2xx (counted as 0 ms): the answer,
        # not the pipeline, was the slow part
        "event_before_2xx": early, "sse_events": len(observed.event_times),
        "p50_ms": round(percentile(ordered, 50), 1), "p90_ms": round(percentile(ordered, 90), 1),
        "p99_ms": round(percentile(ordered, 99), 1), "max_ms": round(ordered[-1], 1),
        "mean_ms": round(statistics.fmean(ordered), 1),
        "p50_ms_from_request_sent": round(percentile(ordered_from_send, 50), 1),
        "p99_ms_from_request_sent": round(percentile(ordered_from_send, 99), 1),
        "probes_during_a_drain": len(in_drain),
        "probes_between_drains": len(latencies) - len(in_drain),
        "p50_ms_during_a_drain": round(percentile(ordered_in_drain, 50), 1),
        "p99_ms_during_a_drain": round(percentile(ordered_in_drain, 99), 1),
        "background_votes_per_s": round(background.ok_per_s), "background_target": sizes.rate,
        # below this the vote service (or a busy machine) could not take the load asked
        "background_rate_reached": background.ok_per_s >= 0.9 * sizes.rate,
        "background_acknowledged": background.ok, "background_counted": counted_background,
        "background_non_2xx": background.non_2xx,
        "background_socket_errors": background.socket_errors,
        "background_p50_ms": background.p50_ms, "background_p99_ms": background.p99_ms,
        "window_s": sizes.window_s, "probes_per_s": sizes.probes_per_s,
        "schedule_s": sizes.schedule_s, "worker_budget_s": sizes.budget_s,
        "drains": len(observed.drains), "seconds_between_drains": gaps,
        "vote_uvicorn_workers": sizes.workers,
    }
    label = f"vote 2xx to SSE at {sizes.rate:,} votes/s"
    return [Figure("freshness", f"{label} p50", percentile(ordered, 50), "ms", TARGET_P50_MS,
                   at_least=False, details=details),
            Figure("freshness", f"{label} p99", percentile(ordered, 99), "ms", TARGET_P99_MS,
                   at_least=False, details=details)]
