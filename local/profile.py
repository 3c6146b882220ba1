"""The one description of the deployment that the local profile, local/compose.yaml and
template.yaml must agree on: the functions, the settings each reads, their health path,
and the worker's schedule. ``tests/test_profile_drift.py`` fails on any difference.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    package: str  # the folder, and the container image
    app: str  # the uvicorn factory: python -m uvicorn APP --factory
    health_path: str
    settings: tuple[str, ...]  # every environment variable its settings read


COMMON = ("VOTE_OPTIONS", "LOG_FORMAT")
REDIS = ("REDIS_URL", "REDIS_CLUSTER", "REDIS_TIMEOUT_SECONDS")

FUNCTIONS = (
    FunctionSpec("vote", "vote_fn", "vote_fn.app:create_app", "/healthz",
                 (*COMMON, *REDIS, "VOTE_SECRET", "INSTANCE_ID", "RESULTS_URL")),
    FunctionSpec("worker", "worker_fn", "worker_fn.app:create_app", "/healthz",
                 (*COMMON, *REDIS, "DATABASE_URL", "WORKER_BUDGET_SECONDS",
                  "WORKER_BATCH_MAX", "WORKER_LEASE_SECONDS", "WORKER_ADMIN_TOKEN",
                  "WORKER_FAILPOINT")),
    FunctionSpec("result", "result_fn", "result_fn.app:create_app", "/healthz",
                 (*COMMON, "DATABASE_URL", "STREAM_LIFETIME_SECONDS", "STREAM_RETRY_MS",
                  "STREAM_PING_SECONDS", "STREAM_MAX_SUBSCRIBERS", "RESULTS_POLL_SECONDS",
                  "PIPELINE_STALL_SECONDS")),
)

# The scheduler POSTs this path; in the cloud the Lambda Web Adapter delivers the
# EventBridge Scheduler event there (AWS_LWA_PASS_THROUGH_PATH).
WORKER_EVENTS_PATH = "/events"
# The cloud schedule: rate(1 minute) is the shortest EventBridge allows. Each drain
# runs for most of the minute, blocking on the queue, so votes still land in well
# under a second; the budget stays below the function timeout.
SCHEDULE_SECONDS = 60
WORKER_BUDGET_SECONDS = 55
WORKER_TIMEOUT_SECONDS = 60
# The no-Docker local profile ticks faster, so a restarted worker resumes quickly.
LOCAL_SCHEDULE_SECONDS = 5


def local_budget_seconds(schedule_s: float) -> float:
    """A drain ends just before the next tick, as in the cloud (a tick that finds the
    worker still busy is dropped, like a throttled invocation at concurrency 1)."""
    return max(0.5, schedule_s - 0.5)


def uvicorn_argv(spec: FunctionSpec, host: str, port: int | str) -> list[str]:
    """The same server command locally, in compose and in the image."""
    # After SIGTERM, in-flight requests get 3 s; then a drain is cancelled and hands its
    # claim back to the queue, and open SSE streams are closed (browsers reconnect).
    return ["python", "-m", "uvicorn", spec.app, "--factory", "--host", host,
            "--port", str(port), "--no-access-log", "--timeout-graceful-shutdown", "3"]


def by_name(name: str) -> FunctionSpec:
    return next(spec for spec in FUNCTIONS if spec.name == name)
