"""The results document: every configured option with its label, votes and percentage,
the total, the results version, and whether the pipeline is moving."""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.schema import Tally
from common.settings import Options
from result_fn.pipeline import PipelineStatus


@dataclass(frozen=True, slots=True)
class Results:
    version: int
    pipeline_state: str
    document: dict[str, object]
    json: str  # encoded once, sent to every subscriber

    @property
    def key(self) -> tuple[int, str]:
        """A new event is due when either part changes."""
        return self.version, self.pipeline_state


def build_results(tally: Tally, options: Options, pipeline: PipelineStatus) -> Results:
    counts = [(option, tally.votes.get(option.id, 0)) for option in options.items]
    total = sum(votes for _, votes in counts)
    document: dict[str, object] = {
        "options": [
            {"id": option.id, "label": option.label, "votes": votes,
             "percent": round(100 * votes / total, 1) if total else 0.0}
            for option, votes in counts
        ],
        "total": total,
        "version": tally.version,
        "pipeline": pipeline.as_dict(),
    }
    return Results(tally.version, pipeline.state, document,
                   json.dumps(document, separators=(",", ":")))
