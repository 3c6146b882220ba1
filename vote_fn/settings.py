"""vote_fn settings, read once at start-up."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from common.logs import log_format
from common.polls import Poll
from common.proxies import DEFAULT_TRUSTED, Network, parse_trusted
from common.redis_client import RedisSettings
from common.settings import Env, SettingsError, admin_token
from vote_fn.queue import DEADLINE_S, ReplicaWait
from vote_fn.ratelimit import Limits, RateLimit
from vote_fn.voter import SigningKey, parse_keys


@dataclass(frozen=True, slots=True)
class VoteSettings:
    first_poll: Poll  # POLL_QUESTION and VOTE_OPTIONS
    redis: RedisSettings
    keys: tuple[SigningKey, ...]  # sign voter ids: the first signs, any verifies
    instance_id: str  # shown on the page, as the classic shows its container id
    limits: Limits | None = None  # per voter and new voters per address; None: no limit
    trusted_proxies: tuple[Network, ...] = ()  # whose X-Forwarded-* headers count
    results_url: str = ""  # result_fn's public URL: the page links to it and polls receipts
    log_format: str = "json"
    admin_token: str | None = None  # turns on the presenter's API and page (vote_fn/admin.py)
    wait: ReplicaWait | None = None  # replicas that hold a vote before its 202; None: none

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VoteSettings:
        env = Env(environ)
        try:
            keys = parse_keys(env.raw("VOTE_SECRET"))
        except ValueError as error:
            raise SettingsError(f"VOTE_SECRET is invalid: {error}") from None
        results_url = ""
        if env.optional("RESULTS_URL"):
            results_url = env.url("RESULTS_URL", ("http", "https")).rstrip("/")
        # The defaults let a hall of 2,000 behind one address vote at once and change
        # their minds, and hold a cookie-dropping flood to 3,000 votes a minute
        # (vote_fn/ratelimit.py, SECURITY.md).
        votes = env.integer("VOTE_RATE_LIMIT", 10, low=0, high=1_000_000)
        window_s = env.number("VOTE_RATE_WINDOW_SECONDS", 60, low=1, high=86_400)
        new_voters = env.integer("VOTE_NEW_VOTERS_LIMIT", 1_000, low=0, high=1_000_000)
        # Below 2^53 µs of burst for any window, so the script's arithmetic stays exact.
        new_burst = env.integer("VOTE_NEW_VOTERS_BURST", 2_000, low=1, high=100_000)
        limits = None
        if votes:
            limits = Limits(RateLimit(votes, votes, window_s),
                            RateLimit(new_voters, new_burst, window_s) if new_voters else None)
        # At most half the push's deadline: a round trip starts with at least that much of
        # it left, so the client's own timeout ends it first (vote_fn/queue.py).
        redis = RedisSettings.from_env(env, default_timeout_s=0.2, max_timeout_s=DEADLINE_S / 2)
        replicas = env.integer("VOTE_WAIT_REPLICAS", 0, low=0, high=5)
        return cls(
            first_poll=env.first_poll(),
            redis=redis,
            keys=keys,
            instance_id=env.raw("INSTANCE_ID", f"{socket.gethostname()}-{os.getpid()}"),
            limits=limits,
            trusted_proxies=env.parsed("FORWARDED_ALLOW_IPS", parse_trusted, DEFAULT_TRUSTED),
            results_url=results_url,
            log_format=log_format(env),
            admin_token=admin_token(env, "ADMIN_TOKEN"),
            wait=ReplicaWait(replicas, round(redis.timeout_s * 500)) if replicas else None,
        )
