"""Prometheus metrics of result_fn (served at /metrics with the HTTP metrics)."""

from prometheus_client import Counter, Gauge

SUBSCRIBERS = Gauge("result_sse_subscribers", "Open live-results streams in this process")
EVENTS_SENT = Counter("result_sse_events_sent", "Results events written to live streams")
REFUSED = Counter("result_sse_refused",
                  "Streams refused (503 process full, 429 client full), by reason", ["reason"])
