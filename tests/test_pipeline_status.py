"""The results stream shows whether the worker is moving, from PostgreSQL alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2 as httpx
import psycopg
import pytest
import redis

from support.functions import FunctionProcess
from support.processes import spawn, stop
from support.sse import results

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


class Scheduler:
    """``python -m local.scheduler`` invoking a worker every second, as the local profile does."""

    def __init__(self, worker: FunctionProcess, env: dict[str, str]) -> None:
        self.worker, self.env = worker, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = spawn(
            [sys.executable, "-m", "local.scheduler", "--url", f"{self.worker.url}/events",
             "--every", "1"], self.worker.log_dir / "scheduler.log", self.env)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace_s=10)


@pytest.mark.timeout(90)
async def test_a_stopped_worker_shows_as_stalled_within_5_seconds_and_recovers(
        function_env: dict[str, str], redis_client: redis.Redis, tmp_path: Path,
        db: psycopg.Connection[tuple[object, ...]]) -> None:
    """Stop the worker: the stream says "stalled" within 5 s; restart it: back to "ok"."""
    env = {**function_env, "WORKER_BUDGET_SECONDS": "0.9", "PIPELINE_STALL_SECONDS": "3"}
    result = FunctionProcess("result", env, tmp_path).start()
    worker = FunctionProcess("worker", env, tmp_path).start()
    scheduler = Scheduler(worker, env)
    scheduler.start()
    try:
        async with httpx.AsyncClient(timeout=30) as client, client.stream(
                "GET", f"{result.url}/stream") as response:
            stream = results(response)

            async def next_state(wanted: str) -> dict[str, object]:
                async for document in stream:
                    pipeline = document["pipeline"]
                    if pipeline["state"] == wanted:
                        return pipeline  # type: ignore[no-any-return]
                raise AssertionError("stream ended")

            with anyio.fail_after(15):
                await next_state("ok")
            scheduler.stop()
            worker.stop()
            stopped = time.monotonic()
            with anyio.fail_after(10):
                stalled = await next_state("stalled")
            seen_after = time.monotonic() - stopped
            assert seen_after < 5.0, f"stall shown after {seen_after:.1f} s"
            assert "worker" in str(stalled["message"])

            worker.start()
            scheduler.start()
            with anyio.fail_after(15):
                await next_state("ok")
    finally:
        scheduler.stop()
        worker.stop()
        result.stop()
