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
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

LABELS = ("app_name", "method", "path", "status_code")
DURATION = Histogram("http_request_duration_seconds", "Time to answer an HTTP request", LABELS,
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                              2.5, 5, 10))
UNMATCHED = "__unmatched__"
_COUNT = "http_request_duration_seconds_count"


class _Requests:
    """``http_requests_total``: the duration histogram's counts, read at each scrape. (A
    counter of its own cost every request a second lock and call, ~0.4 µs of a vote.)"""

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("http_requests", "HTTP requests answered", labels=LABELS)

    def describe(self) -> list[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        for metric in DURATION.collect():
            for sample in metric.samples:
                if sample.name == _COUNT:
                    family.add_metric([sample.labels[name] for name in LABELS], sample.value)
        yield family


REGISTRY.register(_Requests())


@functools.lru_cache(maxsize=256)  # the labels come from route templates: a few dozen
def _series(labels: tuple[str, str, str, str]) -> Histogram:
    return DURATION.labels(*labels)


def record(app_name: str, method: str, path: str, status: int, seconds: float) -> None:
    """Count one answered request."""
    _series((app_name, method, path, str(status))).observe(seconds)


async def metrics(request: Request) -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


metrics_route = Route("/metrics", metrics)
