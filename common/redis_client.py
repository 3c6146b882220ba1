"""One way to open the Redis/Valkey client, standalone or cluster, with bounded timeouts.

Timeouts are short and retries few, so that a dependency that is down turns into a
fast 503 instead of a hang. A retried push is harmless: each vote carries its id.

The cluster client reads its slot map again only after one of its own commands failed
with a connection error or its own timeout (ARCHITECTURE.md, "The cloud"). A caller that
gives a command up first, on a deadline of its own, leaves it talking to a hung primary
long after a replica took over: the socket timeout must end a command before any deadline
around it does (vote_fn bounds REDIS_TIMEOUT_SECONDS by its push's deadline).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

from common.settings import Env

RedisClient = Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    cluster: bool
    timeout_s: float

    @classmethod
    def from_env(cls, env: Env, *, default_timeout_s: float,
                 max_timeout_s: float = 60) -> RedisSettings:
        return cls(
            url=env.url("REDIS_URL", ("redis", "rediss", "unix")),
            cluster=env.boolean("REDIS_CLUSTER", False),
            timeout_s=env.number("REDIS_TIMEOUT_SECONDS", default_timeout_s, low=0.05,
                                 high=max_timeout_s),
        )


def open_redis(settings: RedisSettings, *, retries: int = 1) -> RedisClient:
    """Create the client; it connects lazily, on the first command. ``retries``: how many
    times a command that failed on its connection is sent again."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=retries,
                  supported_errors=(ConnectionError, TimeoutError))
    if settings.cluster:
        return RedisCluster.from_url(
            settings.url, socket_connect_timeout=settings.timeout_s,
            socket_timeout=settings.timeout_s, retry=retry,
        )
    return Redis.from_url(
        settings.url, socket_connect_timeout=settings.timeout_s,
        socket_timeout=settings.timeout_s, retry=retry,
    )
