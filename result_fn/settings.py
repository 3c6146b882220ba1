"""result_fn settings, read once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.logs import log_format
from common.proxies import DEFAULT_TRUSTED, Network, parse_trusted
from common.settings import Env


@dataclass(frozen=True, slots=True)
class ResultSettings:
    database_url: str
    stream_lifetime_s: float  # a stream ends itself after this; browsers reconnect
    stream_retry_ms: int  # the reconnect delay hinted to browsers
    stream_ping_s: float  # keep-alive comment interval
    max_subscribers: int  # per process; more get a fast 503
    poll_s: float  # safety net: re-read the tallies this often even without NOTIFY
    stall_s: float  # the worker unseen this long: the results page says it is stalled
    log_format: str = "json"
    max_streams_per_client: int = 20  # per client address and process; 0: no cap
    trusted_proxies: tuple[Network, ...] = ()  # whose X-Forwarded-* headers count
    # PostgreSQL connections held at most: one LISTEN plus a read pool of the rest; 1 = a
    # single connection that polls (a Lambda invocation per viewer: docs/DEPLOY.md).
    max_connections: int = 5
    max_events_per_s: float = 20  # results events a stream sends at most, each second
    vote_url: str = ""  # the vote page's public address: the pages show it and its QR code

    @property
    def listens(self) -> bool:
        return self.max_connections > 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ResultSettings:
        env = Env(environ)
        vote_url = ""
        if env.optional("VOTE_URL"):
            vote_url = env.url("VOTE_URL", ("http", "https")).rstrip("/")
        return cls(
            database_url=env.url("DATABASE_URL", ("postgres", "postgresql")),
            stream_lifetime_s=env.number("STREAM_LIFETIME_SECONDS", 300, low=1, high=86_400),
            stream_retry_ms=env.integer("STREAM_RETRY_MS", 1000, low=100, high=600_000),
            stream_ping_s=env.number("STREAM_PING_SECONDS", 15, low=1, high=3600),
            max_subscribers=env.integer("STREAM_MAX_SUBSCRIBERS", 10_000, low=1, high=1_000_000),
            poll_s=env.number("RESULTS_POLL_SECONDS", 5, low=0.1, high=3600),
            stall_s=env.number("PIPELINE_STALL_SECONDS", 15, low=1, high=3600),
            log_format=log_format(env),
            max_streams_per_client=env.integer("STREAM_MAX_PER_CLIENT", 20, low=0,
                                               high=1_000_000),
            trusted_proxies=env.parsed("FORWARDED_ALLOW_IPS", parse_trusted, DEFAULT_TRUSTED),
            max_connections=env.integer("RESULTS_MAX_CONNECTIONS", 5, low=1, high=100),
            max_events_per_s=env.number("STREAM_MAX_EVENTS_PER_SECOND", 20, low=0.1, high=100),
            vote_url=vote_url,
        )
