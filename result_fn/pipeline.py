"""Is the pipeline moving? Judged from what the worker records in PostgreSQL, so the
results page can say so without result_fn talking to Redis."""

from __future__ import annotations

from dataclasses import dataclass

from common.schema import PipelineRow


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    state: str  # "ok", "stalled" or "waiting" (no drain has run yet)
    message: str
    last_batch_at_ms: int | None
    queued_at_last_look: int

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "message": self.message,
                "last_batch_at_ms": self.last_batch_at_ms,
                "queued_at_last_look": self.queued_at_last_look}


def assess(row: PipelineRow, stall_s: float) -> PipelineStatus:
    if row.worker_seen_age_s is None:
        return PipelineStatus("waiting", "The worker has not run yet: votes are queued until "
                              "it does.", row.last_batch_at_ms, row.queued_at_last_look)
    if row.worker_seen_age_s > stall_s:
        return PipelineStatus(
            "stalled",
            f"The worker has not checked the queue for {row.worker_seen_age_s:.0f} s: new "
            "votes are kept in the queue but not counted. Check that the worker and its "
            "schedule are running.", row.last_batch_at_ms, row.queued_at_last_look)
    return PipelineStatus("ok", "Votes are being counted.", row.last_batch_at_ms,
                          row.queued_at_last_look)
