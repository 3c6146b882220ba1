"""HTTP request metrics: requests and their duration by method, route and status, and the
``/metrics`` page that serves every metric of the process.

The edge records each request (common/edge.py). The label is the template of the route that
matched (``/static``, ``/api/receipts/{vote_id}``), never the raw URL, so the series stay
few; unmatched paths share one label. (This replaced starlette_exporter's middleware, which
cost ~55 µs a request, a quarter of vote_fn's CPU per vote in our measurement: it built a
Request and its URL, copied the scope and matched the route again.)
"""

from __future__ import annotations

import functools

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

LABELS = ("app_name", "method", "path", "status_code")
REQUESTS = Counter("http_requests", "HTTP requests answered", LABELS)
DURATION = Histogram("http_request_duration_seconds", "Time to answer an HTTP request", LABELS,
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                              2.5, 5, 10))
UNMATCHED = "__unmatched__"


@functools.lru_cache(maxsize=256)  # the labels come from route templates: a few dozen
def _series(labels: tuple[str, str, str, str]) -> tuple[Counter, Histogram]:
    return REQUESTS.labels(*labels), DURATION.labels(*labels)


def record(app_name: str, method: str, path: str, status: int, seconds: float) -> None:
    """Count one answered request."""
    requests, duration = _series((app_name, method, path, str(status)))
    requests.inc()
    duration.observe(seconds)


async def metrics(request: Request) -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


metrics_route = Route("/metrics", metrics)
