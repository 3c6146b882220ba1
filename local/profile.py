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


COMMON = ("LOG_FORMAT",)
FIRST_POLL = ("POLL_QUESTION", "VOTE_OPTIONS")
REDIS = ("REDIS_URL", "REDIS_CLUSTER", "REDIS_TIMEOUT_SECONDS", "REDIS_CA_FILE")

FUNCTIONS = (
    FunctionSpec("vote", "vote_fn", "vote_fn.app:create_app", "/healthz",
                 (*COMMON, *FIRST_POLL, *REDIS, "VOTE_SECRET", "INSTANCE_ID", "RESULTS_URL",
                  "VOTE_RATE_LIMIT", "VOTE_RATE_WINDOW_SECONDS", "VOTE_NEW_VOTERS_LIMIT",
                  "VOTE_NEW_VOTERS_BURST", "FORWARDED_ALLOW_IPS", "ADMIN_TOKEN",
                  "VOTE_WAIT_REPLICAS")),
    FunctionSpec("worker", "worker_fn", "worker_fn.app:create_app", "/healthz",
                 (*COMMON, *FIRST_POLL, *REDIS, "DATABASE_URL", "WORKER_BUDGET_SECONDS",
                  "WORKER_BATCH_MAX", "WORKER_LEASE_SECONDS", "WORKER_ADMIN_TOKEN",
                  "WORKER_FAILPOINT")),
    FunctionSpec("result", "result_fn", "result_fn.app:create_app", "/healthz",
                 (*COMMON, "DATABASE_URL", "STREAM_LIFETIME_SECONDS", "STREAM_RETRY_MS",
                  "STREAM_PING_SECONDS", "STREAM_MAX_SUBSCRIBERS", "RESULTS_POLL_SECONDS",
                  "PIPELINE_STALL_SECONDS", "STREAM_MAX_PER_CLIENT", "FORWARDED_ALLOW_IPS",
                  "RESULTS_MAX_CONNECTIONS", "STREAM_MAX_EVENTS_PER_SECOND", "VOTE_URL")),
)

# The scheduler POSTs this path; in the cloud the Lambda Web Adapter delivers the
# EventBridge Scheduler event there (AWS_LWA_PASS_THROUGH_PATH).
WORKER_EVENTS_PATH = "/events"
# The cloud schedule: rate(1 minute) is the shortest EventBridge allows. Each drain
# blocks on the queue until just before the next tick, so votes land in well under a
# second: between two drains a vote waits at most DRAIN_GAP_SECONDS. The gap lets the
# drain finish its last batch and return before the next tick, which then finds the
# function (reserved concurrency 1) free.
SCHEDULE_SECONDS = 60
DRAIN_GAP_SECONDS = 0.3
WORKER_BUDGET_SECONDS = SCHEDULE_SECONDS - DRAIN_GAP_SECONDS
WORKER_TIMEOUT_SECONDS = 65  # the hard stop; a drain overrunning its budget still commits
# The no-Docker local profile ticks faster, so a restarted worker resumes quickly.
LOCAL_SCHEDULE_SECONDS = 5


def local_budget_seconds(schedule_s: float) -> float:
    """A drain ends just before the next tick, as in the cloud."""
    return max(0.5, round(schedule_s - DRAIN_GAP_SECONDS, 3))


def uvicorn_argv(spec: FunctionSpec, host: str, port: int | str) -> list[str]:
    """The same server command locally, in compose and in the image."""
    # After SIGTERM, in-flight requests get 3 s; then a drain is cancelled and hands its
    # claim back to the queue, and open SSE streams are closed (browsers reconnect).
    return ["python", "-m", "uvicorn", spec.app, "--factory", "--host", host,
            "--port", str(port), "--no-access-log", "--timeout-graceful-shutdown", "3"]


def by_name(name: str) -> FunctionSpec:
    return next(spec for spec in FUNCTIONS if spec.name == name)
