"""What every scenario needs: real servers on free ports in a temporary folder, stopped by
PID at the end, the functions run with the local profile's uvicorn command, and wrk.

Every process is started in its own session, so the fallback after a graceful stop
(SIGKILL to its process group) reaches a uvicorn supervisor's workers and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from common.polls import DEFAULT_QUESTION, FIRST, Poll, parse_options
from local import profile
from local.servers import database_url, free_port, redis_url
from worker_fn.migrations import prepare

REPO = Path(__file__).resolve().parent.parent
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


def wait_until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as error:  # "it answers" is the condition: any failure means not yet
            last = error
        time.sleep(0.05)
    raise BenchError(f"{what} not true within {timeout_s:g}s (last error: {last!r})")


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


class Processes(contextlib.ExitStack):
    """The processes and the temporary folder of one scenario; all gone on exit."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.folder = Path(self.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        self.env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        self.env.update({"PYTHONUNBUFFERED": "1", "LOG_FORMAT": "text",
                         "VOTE_SECRET": BENCH_SECRET, "VOTE_OPTIONS": VOTE_OPTIONS})

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, *,
              pipes: bool = False) -> subprocess.Popen[bytes]:
        """Start ``argv`` (stderr, and stdout unless ``pipes``, to ``<name>.log``)."""
        log = (self.folder / f"{name}.log").open("ab")
        self.callback(log.close)
        process = subprocess.Popen(argv, cwd=REPO, env={**self.env, **(env or {})},
                                   stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                                   stdout=subprocess.PIPE if pipes else log, stderr=log,
                                   start_new_session=True)
        self.callback(stop, process)
        return process

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.folder / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def valkey(self) -> str:
        port = free_port()
        process = self.start("valkey", [sys.executable, "-m", "local.servers", "valkey",
                                        "--data-dir", str(self.folder / "valkey"),
                                        "--port", str(port)])
        url = redis_url(port)

        def answers() -> bool:
            with redis.Redis.from_url(url, socket_timeout=1) as client:
                return bool(client.ping())

        self._wait(process, "valkey", answers)
        return url

    def postgres(self) -> str:
        port = free_port()
        process = self.start("postgres", [sys.executable, "-m", "local.servers", "postgres",
                                          "--data-dir", str(self.folder / "postgres"),
                                          "--port", str(port)])
        url = database_url(port)

        def answers() -> bool:
            with psycopg.connect(url, connect_timeout=1) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)

        self._wait(process, "postgres", answers)
        return url

    def function(self, spec: profile.FunctionSpec, env: dict[str, str],
                 workers: int = 1) -> Started:
        """A function (or the baseline app) under the local profile's uvicorn command."""
        port = free_port()
        argv = [sys.executable, *profile.uvicorn_argv(spec, "127.0.0.1", port)[1:]]
        if workers > 1:
            argv += ["--workers", str(workers)]
        name = f"{spec.name}-{port}"
        process = self.start(name, argv, env)
        url = f"http://127.0.0.1:{port}"
        self._wait(process, name, lambda: http_get(url + spec.health_path)[0] == 200)
        return Started(spec.name, process, url)

    def _wait(self, process: subprocess.Popen[bytes], name: str,
              check: Callable[[], object]) -> None:
        def ready() -> object:
            if process.poll() is not None:
                raise BenchError(f"{name} exited with {process.returncode}:\n"
                                 f"{self.log_tail(name)}")
            return check()

        try:
            wait_until(ready, 60, f"{name} ready")
        except BenchError as error:
            raise BenchError(f"{error}\n{self.log_tail(name)}") from None


def create_schema(url: str) -> None:
    """The app's own schema (common/schema.py), as the functions create it."""

    async def create() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await prepare(conn, FIRST_POLL)

    asyncio.run(create())


def stop(process: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL to the process group we created for it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def http_get(url: str, timeout_s: float = 2) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


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
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if result.returncode or line is None:
        raise BenchError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n"
                         f"{result.stderr}")
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
