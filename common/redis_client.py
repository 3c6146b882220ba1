"""One way to open the Redis/Valkey client, standalone or cluster, with bounded timeouts
and verified TLS.

Timeouts are short and retries few, so that a dependency that is down turns into a
fast 503 instead of a hang. A retried push is harmless: each vote carries its id.

The cluster client reads its slot map again only after one of its own commands failed
with a connection error or its own timeout (ARCHITECTURE.md, "The cloud"). A caller that
gives a command up first, on a deadline of its own, leaves it talking to a hung primary
long after a replica took over: the socket timeout must end a command before any deadline
around it does (vote_fn bounds REDIS_TIMEOUT_SECONDS by its push's deadline).

``rediss://`` verifies the server's certificate and its name (redis-py's defaults), against
the system's CA bundle or ``REDIS_CA_FILE``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import redis
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError, RedisClusterException, TimeoutError

from common.settings import Env, SettingsError

RedisClient = Redis | RedisCluster


class _RedisCluster(RedisCluster):
    """redis-py's cluster client, raising ConnectionError, a RedisError as the standalone
    client's would be, when it cannot read the slot map from any node. Its own
    RedisClusterException is no RedisError: code that turns a store that is down into a
    503 missed it (vote_fn failed to start, and a vote got a 500)."""

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as error:
            raise ConnectionError(str(error)) from error


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str
    cluster: bool
    timeout_s: float
    ca_file: str | None = None  # verifies a rediss:// server; None: the system's CAs

    @classmethod
    def from_env(cls, env: Env, *, default_timeout_s: float,
                 max_timeout_s: float = 60) -> RedisSettings:
        url = env.url("REDIS_URL", ("redis", "rediss", "unix"))
        return cls(
            url=url,
            cluster=env.boolean("REDIS_CLUSTER", False),
            timeout_s=env.number("REDIS_TIMEOUT_SECONDS", default_timeout_s, low=0.05,
                                 high=max_timeout_s),
            ca_file=_ca_file(env, url),
        )


def _ca_file(env: Env, url: str) -> str | None:
    """REDIS_CA_FILE, once it is known to hold certificates that TLS can load."""
    path = env.optional("REDIS_CA_FILE")
    if path is None:
        return None
    if not url.startswith("rediss://"):
        raise SettingsError("REDIS_CA_FILE is set but REDIS_URL does not use TLS: "
                            "expected a URL starting with rediss://")
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as error:
        raise SettingsError(f"REDIS_CA_FILE={path!r} cannot be used: {error}") from None
    return path


def open_redis(settings: RedisSettings, *, retries: int = 1) -> RedisClient:
    """Create the client; it connects lazily, on the first command. ``retries``: how many
    times a command that failed on its connection is sent again."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=retries,
                  supported_errors=(ConnectionError, TimeoutError))
    tls: dict[str, Any] = {"ssl_ca_certs": settings.ca_file} if settings.ca_file else {}
    client_class = _RedisCluster if settings.cluster else Redis
    return client_class.from_url(
        settings.url, socket_connect_timeout=settings.timeout_s,
        socket_timeout=settings.timeout_s, retry=retry, **tls,
        # The version each connection announces (CLIENT SETINFO): left out, redis-py reads
        # it from the installed package's metadata for every new connection (~3 ms, a scan
        # of sys.path: a cold start's first connection, and each after a failover).
        driver_info=DriverInfo(lib_version=redis.__version__),
    )
