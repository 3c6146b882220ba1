"""Fan-out: one result_fn process (1 uvicorn worker) streaming to thousands of SSE
subscribers while the tallies change 10 times a second.

Each change goes through the worker's own apply path (worker_fn/apply.py: upsert, tally,
version bump and NOTIFY in one transaction); its commit time is taken just before the
COMMIT is sent, so a delay can only be overstated. The subscribers live in a separate
load-generator process (bench/sse_clients.py) that reports, for every subscriber and
every change, when it first held that version or a newer one. result_fn's CPU and RSS
are read with psutil over the same window.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial

import psutil
import psycopg

from bench.harness import (
    OPTIONS,
    BenchError,
    Processes,
    cpu_seconds,
    create_schema,
    percentile,
)
from bench.report import Figure
from common.event import VoteEvent
from common.polls import FIRST
from local import profile
from worker_fn.apply import apply_batch, copy_rows

TARGET_P99_MS = 250


@dataclass(frozen=True)
class Sizes:
    subscribers: int
    changes: int
    interval_s: float = 0.1  # 10 changes a second
    settle_s: float = 1.0  # after the last change, before the subscribers are asked
    connect_timeout_s: float = 120


FULL = Sizes(subscribers=5_000, changes=200)
QUICK = Sizes(subscribers=200, changes=20, connect_timeout_s=20)


@dataclass
class Changes:
    commits: dict[int, float]  # results version -> monotonic time just before its COMMIT
    cpu_percent: float  # result_fn over the window of the changes plus the settle time
    peak_rss: int
    commit_ms: list[float]  # sorted


def run(quick: bool) -> list[Figure]:
    sizes = QUICK if quick else FULL
    with Processes("voting-bench-fanout-") as procs:
        database_url = procs.postgres()
        create_schema(database_url)
        result = procs.function(profile.by_name("result"), {
            "DATABASE_URL": database_url, "STREAM_LIFETIME_SECONDS": "3600",
            "STREAM_MAX_SUBSCRIBERS": str(max(10_000, 2 * sizes.subscribers)),
            "STREAM_MAX_PER_CLIENT": "0"})  # every subscriber comes from 127.0.0.1
        server = psutil.Process(result.pid)
        idle_rss = server.memory_info().rss
        port = result.url.rpartition(":")[2]
        clients = procs.start("sse-clients", [
            sys.executable, "-m", "bench.sse_clients", "--port", port,
            "--subscribers", str(sizes.subscribers), "--timeout", str(sizes.connect_timeout_s)],
            pipes=True)
        ready = _read_json_line(clients, sizes.connect_timeout_s + 30)
        if not ready["ready"]:
            raise BenchError(f"no subscriber got its first event: {ready}\n"
                             f"{procs.log_tail('sse-clients')}")
        connected_rss = server.memory_info().rss
        changes = asyncio.run(_change(database_url, sizes, server))
        assert clients.stdin is not None
        clients.stdin.write(json.dumps({"commits": changes.commits}).encode() + b"\n")
        clients.stdin.flush()
        summary = _read_json_line(clients, 120)
    subscribers = int(summary["subscribers"])
    mb = 1024 * 1024
    details = {**summary, "asked": sizes.subscribers, "failed_to_connect": ready["failed"],
               "result_cpu_percent": round(changes.cpu_percent, 1),
               "result_rss_mb": {"idle": round(idle_rss / mb, 1),
                                 "connected": round(connected_rss / mb, 1),
                                 "peak": round(changes.peak_rss / mb, 1)},
               "changes_per_s": round(1 / sizes.interval_s, 1),
               "commit_ms": {f"p{q}": round(percentile(changes.commit_ms, q), 2)
                             for q in (50, 99, 100)}}
    note = (f"p50 {summary['p50_ms']:.0f} ms, p99 {summary['p99_ms']:.0f} ms, "
            f"max {summary['max_ms']:.0f} ms, first subscriber p50 "
            f"{summary['first_subscriber_p50_ms']:.0f} ms; result_fn CPU "
            f"{changes.cpu_percent:.0f} %, RSS {changes.peak_rss / mb:.0f} MB peak; "
            f"generator CPU {summary['generator_cpu_percent']:.0f} %; COMMIT p99 "
            f"{percentile(changes.commit_ms, 99):.0f} ms")
    return [
        Figure("fanout", f"p99 delay, {subscribers:,} subscribers", float(summary["p99_ms"]),
               "ms", TARGET_P99_MS, at_least=False, details=details, note=note),
        Figure("fanout", "subscribers ending on the latest version",
               100 * int(summary["on_latest"]) / max(1, sizes.subscribers), "%", 100,
               at_least=True, details={"on_latest": summary["on_latest"],
                                       "asked": sizes.subscribers}),
    ]



async def _change(url: str, sizes: Sizes, server: psutil.Process) -> Changes:
    """One new voter's vote per tick through the worker's apply path, on a fixed schedule."""
    commits: dict[int, float] = {}
    commit_ms: list[float] = []  # how long each COMMIT took, as the writer saw it
    peak_rss = 0
    async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                     prepare_threshold=None) as conn:
        cpu_before, started = cpu_seconds(server), time.monotonic()
        for n in range(sizes.changes):
            await asyncio.sleep(max(0.0, started + n * sizes.interval_s - time.monotonic()))
            marks: list[float] = []
            vote = VoteEvent.new(FIRST, f"fanout-voter-{n:08d}",
                                 OPTIONS.ids[n % len(OPTIONS.ids)])
            await apply_batch(conn, [copy_rows([vote])], votes=1,
                              before_commit=partial(_mark, marks))
            commit_ms.append((time.monotonic() - marks[0]) * 1000)
            row = await (await conn.execute("SELECT version FROM results_meta")).fetchone()
            assert row is not None
            commits[int(row[0])] = marks[0]
            peak_rss = max(peak_rss, server.memory_info().rss)
        await asyncio.sleep(sizes.settle_s)
        wall = time.monotonic() - started
        cpu_percent = 100 * (cpu_seconds(server) - cpu_before) / wall
    return Changes(commits, cpu_percent, max(peak_rss, server.memory_info().rss),
                   sorted(commit_ms))


def _mark(marks: list[float]) -> None:
    marks.append(time.monotonic())


def _read_json_line(process: subprocess.Popen[bytes], timeout_s: float) -> dict[str, float]:
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if readable else b""
    if not line:
        raise BenchError(f"the SSE load generator said nothing within {timeout_s:g}s "
                         f"(exit code {process.poll()})")
    return json.loads(line)  # type: ignore[no-any-return]
