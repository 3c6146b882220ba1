"""Is the pipeline moving? Judged from what the worker records in PostgreSQL, so the
results page can say so without result_fn talking to Redis.

The pages show ages that keep growing between two events, from what the server measured
rather than from the browser's clock, which may be minutes off: each status says when it
was measured (``measured_at_ms``, this server's clock) and how long the worker had not
been seen then (``worker_seen_age_s``, the database's clock); a page adds the time passed
since, by the server clock it learnt when it loaded.
"""

from __future__ import annotations

from typing import NamedTuple

from common.event import now_ms
from common.schema import PipelineRow


class PipelineStatus(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    state: str  # "ok", "stalled", "waiting" (no drain has run yet) or "down" (unreadable)
    message: str
    last_batch_at_ms: int | None
    queued_at_last_look: int
    worker_seen_age_s: float | None = None  # None: never seen, or not known
    measured_at_ms: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "message": self.message,
                "last_batch_at_ms": self.last_batch_at_ms,
                "queued_at_last_look": self.queued_at_last_look,
                "worker_seen_age_s": self.worker_seen_age_s,
                "measured_at_ms": self.measured_at_ms}

    def unreadable(self) -> PipelineStatus:
        """This status once the database stopped answering: the figures shown are the last
        ones read, and the page must not say that votes are being counted."""
        return PipelineStatus("down", "The results database is not answering: the figures "
                              "shown may be out of date.", self.last_batch_at_ms,
                              self.queued_at_last_look, None, now_ms())


def assess(row: PipelineRow, stall_s: float) -> PipelineStatus:
    measured = now_ms()
    age = None if row.worker_seen_age_s is None else round(row.worker_seen_age_s, 1)
    if age is None:
        return PipelineStatus("waiting", "The worker has not run yet: votes are queued until "
                              "it does.", row.last_batch_at_ms, row.queued_at_last_look,
                              age, measured)
    if age > stall_s:
        return PipelineStatus(
            "stalled",
            "The worker has stopped checking the queue: new votes are kept in the queue but "
            "not counted. Check that the worker and its schedule are running.",
            row.last_batch_at_ms, row.queued_at_last_look, age, measured)
    return PipelineStatus("ok", "Votes are being counted.", row.last_batch_at_ms,
                          row.queued_at_last_look, age, measured)
