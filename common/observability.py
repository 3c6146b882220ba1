"""What every function exposes for operators: request ids, HTTP metrics and /metrics."""

from __future__ import annotations

import logging
import secrets

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from asgi_correlation_id.middleware import FAILED_VALIDATION_MESSAGE, is_valid_uuid4
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.http_metrics import HttpMetrics

REQUEST_ID_HEADER = "X-Request-ID"
CLIENT_CLOSED = 499  # the metrics' status for a client gone mid-request (nginx's code)
UNMEASURED_PATHS = ("/metrics", "/healthz", "/readyz")
log = logging.getLogger("common.observability")


def middleware(function: str, unmeasured: tuple[str, ...] = ()) -> list[Middleware]:
    """Request id first (so every log line of the request has it), then HTTP metrics."""
    return [
        # The id is not written back into the request's headers: nothing reads it there.
        Middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER,
                   update_request_header=False, generator=new_request_id),
        Middleware(HttpMetrics, app_name=function, skip_paths=(*UNMEASURED_PATHS, *unmeasured)),
    ]


def new_request_id() -> str:
    """32 random hex digits: the shape of the library's ``uuid4().hex``, made without
    building a UUID object (a few µs of every vote)."""
    return secrets.token_hex(16)


def bind_request_id(sent: str | None) -> str:
    """For a path served ahead of the middleware: what CorrelationIdMiddleware does with
    the same defaults (the caller's id when the library's validator accepts it, else a
    new one), so that the answer's header and every log line carry the same id."""
    if not sent:
        value = new_request_id()
    elif is_valid_uuid4(sent):
        value = sent
    else:
        value = new_request_id()
        log.warning(FAILED_VALIDATION_MESSAGE, value)
    correlation_id.set(value)
    return value


async def client_gone(request: Request, error: Exception) -> Response:
    """The exception handler for ``ClientDisconnect``: the client hung up before its body
    arrived, so nobody reads this answer; the metrics count it as 499, not as a server
    error, and no traceback is logged."""
    return Response(status_code=CLIENT_CLOSED)


async def metrics(request: Request) -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


metrics_route = Route("/metrics", metrics)
