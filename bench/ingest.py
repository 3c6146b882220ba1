"""Ingestion: ``POST /api/vote`` under wrk vs a baseline app that only reads the body.

Both run under the same uvicorn options (the local profile's command, 2 workers) against
the same Valkey. vote_fn is driven twice: a new voter per request (no cookie) and one
voter keeping its signed cookie. The baseline is driven before and after them, and the
ratio is taken against the mean of those two runs. After each vote_fn run every
acknowledged (2xx) vote must be in the queue; a few more may be there, from requests
still in flight when wrk stopped.

The queue floor (bench/queue_floor.py: the baseline app that also pushes each
body through vote_fn's coalescing queue) is driven the same way, just inside the
baselines (baseline, floor, vote_fn twice, floor, baseline). What is left between it
and vote_fn is the vote's own work: reading and checking the ballot, the voter's
identity and cookies, the receipt, the security headers, the request id, the metrics.

The CPU time of vote_fn's processes (the uvicorn supervisor and its workers) over each
measured run, divided by the votes acknowledged, is the CPU a vote costs (bench/cost.py
prices vote_fn on Lambda with it); Valkey's share is not in it.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass

import psutil
import redis

from bench.harness import BASELINE, WRK_HINT, Processes, WrkRun, cpu_seconds, require, wrk
from bench.report import Figure
from common import keys
from local import profile

TARGET = 0.85  # of the queue floor measured in the same run (issue 15's restated target)
BODY = '{"vote":"cats"}'
QUEUE_FLOOR = profile.FunctionSpec("queue-floor", "bench", "bench.queue_floor:create_app",
                                   BASELINE.health_path, ())


@dataclass(frozen=True)
class Sizes:
    seconds: int
    warmup_s: int
    connections: int = 64
    workers: int = 2


FULL, QUICK = Sizes(seconds=10, warmup_s=2), Sizes(seconds=1, warmup_s=1)


def run(quick: bool) -> list[Figure]:
    require("wrk", WRK_HINT)
    sizes = QUICK if quick else FULL
    with Processes("voting-bench-ingest-") as procs:
        url = procs.valkey()
        client = redis.Redis.from_url(url)
        env = {"REDIS_URL": url, "VOTE_RATE_LIMIT": "0"}  # no rate limit while measured
        baseline_app = procs.function(BASELINE, env, workers=sizes.workers)
        floor_app = procs.function(QUEUE_FLOOR, env, workers=sizes.workers)
        vote = procs.function(profile.by_name("vote"), env, workers=sizes.workers)
        # The baseline runs before and after the votes, so a drift of a shared machine's
        # load during the scenario moves the ceiling as it moves the figures.
        baselines = [_drive(baseline_app.url, sizes, ["post", BODY])]
        floors = [_drive(floor_app.url, sizes, ["post", BODY])]
        measured: dict[str, tuple[WrkRun, int, float]] = {}
        vote_cpu = TreeCpu(vote.pid)

        def before_measuring() -> None:
            client.delete(keys.QUEUE)
            vote_cpu.start()

        for name, cookie in (("new voter per request", None),
                             ("kept cookie", _voter_cookie(vote.url))):
            args = ["post", BODY, *([cookie] if cookie else [])]
            result = _drive(vote.url, sizes, args, before=before_measuring)
            cpu_s = vote_cpu.seconds()
            measured[name] = (result, _settled_length(client), cpu_s)
        floors.append(_drive(floor_app.url, sizes, ["post", BODY]))
        baselines.append(_drive(baseline_app.url, sizes, ["post", BODY]))
        client.close()
    ceiling = statistics.mean(b.ok_per_s for b in baselines)
    floor = statistics.mean(f.ok_per_s for f in floors)
    return [Figure(
        "ingest", name, got.ok_per_s, "votes/s", TARGET, at_least=True, ceiling=ceiling,
        ceiling_name="baseline app",
        note=f"p50 {got.p50_ms:.1f} ms, p99 {got.p99_ms:.1f} ms (baseline p50 "
             f"{baselines[0].p50_ms:.1f} ms); {queued:,} in the queue for {got.ok:,} 2xx, "
             f"{got.non_2xx} other answers; queue floor {floor / ceiling:.2f}x, the vote's "
             f"own work {(got.ok_per_s - floor) / ceiling:+.2f}x",
        floor=floor, floor_name="queue floor", floor_rule="times",
        details={"acknowledged": got.ok, "in_queue": queued,
                 "all_acknowledged_queued": queued >= got.ok, "non_2xx": got.non_2xx,
                 "socket_errors": got.socket_errors, "p50_ms": got.p50_ms,
                 "p99_ms": got.p99_ms, "baseline_runs": [asdict(b) for b in baselines],
                 "queue_floor_runs": [asdict(f) for f in floors],
                 "connections": sizes.connections, "seconds": got.seconds,
                 "uvicorn_workers": sizes.workers,
                 "cpu_seconds_per_vote": cpu_s / max(1, got.ok)})
        for name, (got, queued, cpu_s) in measured.items()]


def _drive(base_url: str, sizes: Sizes, args: list[str],
           before: Callable[[], object] = lambda: None) -> WrkRun:
    """A warm-up run, then ``before()``, then the measured run."""
    wrk(base_url + "/api/vote", seconds=sizes.warmup_s, connections=sizes.connections,
        script_args=args)
    before()
    return wrk(base_url + "/api/vote", seconds=sizes.seconds, connections=sizes.connections,
               script_args=args)


class TreeCpu:
    """CPU seconds of a process and its children (uvicorn's workers) since ``start()``."""

    def __init__(self, pid: int) -> None:
        self._parent = psutil.Process(pid)
        self._started = 0.0

    def start(self) -> None:
        self._started = cpu_seconds(self._parent)

    def seconds(self) -> float:
        return cpu_seconds(self._parent) - self._started


def _voter_cookie(base_url: str) -> str:
    """One vote through the API; its signed voter cookie, as a Cookie header value."""
    request = urllib.request.Request(base_url + "/api/vote", data=BODY.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        cookies: list[str] = response.headers.get_all("Set-Cookie") or []
    return next(c.split(";", 1)[0] for c in cookies if c.startswith("voter_id="))


def _settled_length(client: redis.Redis, timeout_s: float = 10) -> int:
    """The queue length once requests still in flight when wrk stopped have landed."""
    deadline = time.monotonic() + timeout_s
    length = int(client.llen(keys.QUEUE))
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = int(client.llen(keys.QUEUE))
        if now == length:
            break
        length = now
    return length
