"""Logging: one JSON object per line in the cloud, readable lines in the local profile.

Every record made while serving a request carries its request id (the
``X-Request-ID`` header, echoed in the response). uvicorn's own loggers are routed
through the same handler. Vote choices and voter ids are never logged at INFO.
"""

from __future__ import annotations

import logging
import sys

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.json import JsonFormatter

from common.settings import Env, SettingsError

FORMATS = ("json", "text")


def log_format(env: Env) -> str:
    value = env.raw("LOG_FORMAT", "json").lower()
    if value not in FORMATS:
        raise SettingsError(f"LOG_FORMAT={value!r} is invalid: expected json or text")
    return value


def configure_logging(fmt: str = "text", function: str = "-") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CorrelationIdFilter(default_value="-"))
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger",
                           "correlation_id": "request_id"},
            static_fields={"function": function}))
    else:
        handler.setFormatter(logging.Formatter(
            "%(levelname)s %(name)s [%(correlation_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if name == "uvicorn.access" and not logger.handlers:
            continue  # uvicorn --no-access-log turned it off: leave it off
        logger.handlers.clear()
        logger.propagate = True
