"""worker_fn settings, read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.redis_client import RedisSettings
from common.settings import Env, Options


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    options: Options
    redis: RedisSettings
    database_url: str
    budget_s: float  # one invocation drains for at most this long (below the function timeout)
    batch_max: int
    lease_s: float  # a claim whose owner stopped renewing it for this long is recovered

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = Env(environ)
        return cls(
            options=env.options(),
            redis=RedisSettings.from_env(env, default_timeout_s=5.0),
            database_url=env.url("DATABASE_URL", ("postgres", "postgresql")),
            budget_s=env.number("WORKER_BUDGET_SECONDS", 50.0, low=0, high=900),
            batch_max=env.integer("WORKER_BATCH_MAX", 20_000, low=1, high=1_000_000),
            lease_s=env.number("WORKER_LEASE_SECONDS", 30.0, low=1, high=3600),
        )
