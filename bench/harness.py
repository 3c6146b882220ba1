"""What every scenario needs beyond the servers and functions of support/: a scope that
stops them all, the app's schema, wrk, and a few figures' helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from common.polls import DEFAULT_QUESTION, FIRST, Poll, parse_options
from local import profile
from support.functions import FunctionProcess
from support.processes import child_env, log_tail, spawn, stop
from support.servers import start_postgres, start_valkey
from worker_fn.migrations import prepare

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"
WRK_HINT = "apt-get install wrk"
BENCH_SECRET = "bench-secret-0123456789abcdef"
VOTE_OPTIONS = "cats:Cats,dogs:Dogs"
OPTIONS = parse_options(VOTE_OPTIONS)
FIRST_POLL = Poll(FIRST, DEFAULT_QUESTION, OPTIONS)
BASELINE = profile.FunctionSpec("baseline", "bench", "bench.baseline:create_app", "/healthz", ())


class BenchError(RuntimeError):
    """A scenario could not run (a server did not start, a process failed...)."""


class Unavailable(BenchError):
    """A tool the scenario needs is not installed: the scenario is skipped, and says so."""


def require(tool: str, install_hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise Unavailable(f"{tool} is not installed ({install_hint})")
    return path


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(process: psutil.Process) -> float:
    """CPU seconds (user + system) a process and its children (uvicorn's workers) used so
    far."""
    times = [p.cpu_times() for p in (process, *process.children(recursive=True))]
    return sum(t.user + t.system for t in times)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


class Processes(contextlib.ExitStack):
    """The processes and the temporary folder of one scenario; all stopped on exit."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.folder = Path(self.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        self.env = child_env(LOG_FORMAT="text", VOTE_SECRET=BENCH_SECRET,
                             VOTE_OPTIONS=VOTE_OPTIONS)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, *,
              pipes: bool = False) -> subprocess.Popen[bytes]:
        """Start ``argv`` (stderr, and stdout unless ``pipes``, to ``<name>.log``)."""
        process = spawn(argv, self.folder / f"{name}.log", {**self.env, **(env or {})},
                        pipes=pipes)
        self.callback(stop, process)
        return process

    def log_tail(self, name: str) -> str:
        return log_tail(self.folder / f"{name}.log")

    def valkey(self) -> str:
        server = start_valkey(self.folder)
        self.callback(server.stop)
        return server.url

    def postgres(self) -> str:
        server = start_postgres(self.folder)
        self.callback(server.stop)
        return server.url

    def function(self, spec: profile.FunctionSpec, env: dict[str, str],
                 workers: int = 1) -> FunctionProcess:
        """A function (or the baseline app) under the local profile's uvicorn command."""
        function = FunctionProcess(spec, {**self.env, **env}, self.folder, workers=workers)
        self.callback(function.stop)
        return function.start()


def create_schema(url: str) -> None:
    """The app's schema, brought to its current version by the worker's own migrations
    (worker_fn/migrations.py), as its first drain does."""

    async def create() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await prepare(conn, FIRST_POLL)

    asyncio.run(create())


@dataclass(frozen=True)
class WrkRun:
    requests: int  # complete responses
    non_2xx: int  # wrk counts status >= 400 as errors; 3xx never happens here
    socket_errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.seconds


def wrk(url: str, *, seconds: int, connections: int, threads: int = 2,
        script_args: Sequence[str] = ()) -> WrkRun:
    """Run wrk against ``url``; script_args ``("post", BODY[, COOKIE])`` send a JSON POST."""
    argv = [require("wrk", WRK_HINT), f"-t{min(threads, connections)}", f"-c{connections}",
            f"-d{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), url]
    if script_args:
        argv += ["--", *script_args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                            check=False)
    return parse_wrk(result.stdout, result.returncode, f"{' '.join(argv)}\n{result.stderr}")


def parse_wrk(stdout: str, returncode: int | None, context: str) -> WrkRun:
    """The figures a wrk script printed (``BENCH {...}``); ``context`` goes in the error."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH ")), None)
    if returncode or line is None:
        raise BenchError(f"wrk failed ({returncode}):\n{stdout}\n{context}")
    data = json.loads(line.removeprefix("BENCH "))
    return WrkRun(data["requests"], data["status"],
                  data["connect"] + data["read"] + data["write"] + data["timeout"],
                  data["duration_us"] / 1e6, data["p50_us"] / 1000, data["p99_us"] / 1000)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t:`` ... then ``t[0]`` holds the elapsed seconds."""
    holder: list[float] = []
    started = time.perf_counter()
    try:
        yield holder
    finally:
        holder.append(time.perf_counter() - started)
