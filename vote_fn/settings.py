"""vote_fn settings, read once at start-up."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from common.logs import log_format
from common.redis_client import RedisSettings
from common.settings import Env, Options, SettingsError


@dataclass(frozen=True, slots=True)
class VoteSettings:
    options: Options
    redis: RedisSettings
    secret: str  # signs voter ids
    instance_id: str  # shown on the page, as the classic shows its container id
    results_url: str = ""  # result_fn's public URL: the page links to it and polls receipts
    log_format: str = "json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VoteSettings:
        env = Env(environ)
        secret = env.raw("VOTE_SECRET")
        if len(secret) < 16:
            raise SettingsError("VOTE_SECRET is too short: use at least 16 random characters")
        results_url = ""
        if env.optional("RESULTS_URL"):
            results_url = env.url("RESULTS_URL", ("http", "https")).rstrip("/")
        return cls(
            options=env.options(),
            redis=RedisSettings.from_env(env, default_timeout_s=0.5),
            secret=secret,
            instance_id=env.raw("INSTANCE_ID", f"{socket.gethostname()}-{os.getpid()}"),
            results_url=results_url,
            log_format=log_format(env),
        )
