"""What every function exposes for operators: request ids, HTTP metrics and /metrics."""

from __future__ import annotations

from asgi_correlation_id import CorrelationIdMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.http_metrics import HttpMetrics

REQUEST_ID_HEADER = "X-Request-ID"
UNMEASURED_PATHS = ("/metrics", "/healthz", "/readyz")


def middleware(function: str, unmeasured: tuple[str, ...] = ()) -> list[Middleware]:
    """Request id first (so every log line of the request has it), then HTTP metrics."""
    return [
        # The id is not written back into the request's headers: nothing reads it there.
        Middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER,
                   update_request_header=False),
        Middleware(HttpMetrics, app_name=function, skip_paths=(*UNMEASURED_PATHS, *unmeasured)),
    ]


async def metrics(request: Request) -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


metrics_route = Route("/metrics", metrics)
