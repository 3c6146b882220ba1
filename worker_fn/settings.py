"""worker_fn settings, read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.logs import log_format
from common.polls import Poll
from common.redis_client import RedisSettings
from common.settings import Env, SettingsError, admin_token

APPLICATION_NAME = "worker_fn"  # its PostgreSQL connections', in pg_stat_activity
# Points in a drain where a fault-injection test can have the worker kill itself
# (SIGKILL, no clean-up) to prove that no vote is lost or counted twice.
FAILPOINTS = ("before_claim", "after_claim", "mid_transaction", "after_commit")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    first_poll: Poll  # POLL_QUESTION and VOTE_OPTIONS, for a queue vote_fn has not defined it in
    redis: RedisSettings
    database_url: str
    budget_s: float  # one invocation drains for at most this long (below the function timeout)
    batch_max: int
    lease_s: float  # a claim whose owner stopped renewing it for this long is recovered
    log_format: str = "json"
    admin_token: str | None = None  # enables POST /admin/reset (Authorization: Bearer ...)
    failpoint: str | None = None  # tests only: see FAILPOINTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = Env(environ)
        return cls(
            first_poll=env.first_poll(),
            redis=RedisSettings.from_env(env, default_timeout_s=5.0),
            database_url=env.url("DATABASE_URL", ("postgres", "postgresql")),
            budget_s=env.number("WORKER_BUDGET_SECONDS", 50.0, low=0, high=900),
            batch_max=env.integer("WORKER_BATCH_MAX", 20_000, low=1, high=1_000_000),
            lease_s=env.number("WORKER_LEASE_SECONDS", 30.0, low=0.1, high=3600),
            log_format=log_format(env),
            admin_token=admin_token(env, "WORKER_ADMIN_TOKEN"),
            failpoint=_failpoint(env.optional("WORKER_FAILPOINT")),
        )


def _failpoint(value: str | None) -> str | None:
    if value is not None and value not in FAILPOINTS:
        raise SettingsError(f"WORKER_FAILPOINT={value!r} is invalid: expected one of "
                            f"{', '.join(FAILPOINTS)}")
    return value
