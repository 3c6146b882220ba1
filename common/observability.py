"""What every function exposes for operators: request ids, HTTP metrics and /metrics."""

from __future__ import annotations

from asgi_correlation_id import CorrelationIdMiddleware
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette_exporter import PrometheusMiddleware, handle_metrics

REQUEST_ID_HEADER = "X-Request-ID"
UNMEASURED_PATHS = ["/metrics", "/healthz", "/readyz"]


def middleware(function: str, unmeasured: tuple[str, ...] = ()) -> list[Middleware]:
    """Request id first (so every log line of the request has it), then HTTP metrics."""
    return [
        Middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER),
        Middleware(PrometheusMiddleware, app_name=function, prefix="http",
                   group_paths=True,
                   skip_paths=[*UNMEASURED_PATHS, *unmeasured]),
    ]


metrics_route = Route("/metrics", handle_metrics)
