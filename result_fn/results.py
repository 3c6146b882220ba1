"""The results document of a poll: its question, every option with its label, votes and
percentage, the total, whether it is open, the results version, and whether the pipeline is
moving. A poll whose figures show only once it closes (``"results": "after_close"``) shows
its total while open, and ``null`` for each option's votes and percentage.

The live stream sends the whole document when anything but the counts changes, and a short
``counts`` event when only they do: at a few events a second to thousands of viewers, what
each event weighs is most of what a viewer costs to serve (docs/DEPLOY.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import NamedTuple

from common.polls import Poll
from common.schema import Tally
from result_fn.pipeline import PipelineStatus


class Results(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    version: int
    # What a page shows besides the counts: a change of it sends the whole document again.
    shape: tuple[Poll, bool, str]
    document: dict[str, object]
    json: str  # encoded once, sent to every subscriber
    counts_json: str

    @property
    def key(self) -> tuple[int, tuple[Poll, bool, str]]:
        """A new event is due when this changes."""
        return self.version, self.shape


def build_results(poll: Poll, is_open: bool, tally: Tally,
                  pipeline: PipelineStatus) -> Results:
    counts = [tally.votes.get(option.id, 0) for option in poll.options.items]
    total = sum(counts)
    hidden = is_open and poll.hides_figures_while_open
    shown: list[int | None] = [None] * len(counts) if hidden else list(counts)
    document: dict[str, object] = {
        "poll": poll.id,
        "question": poll.question,
        "open": is_open,
        "results": poll.results,
        "options": [
            {"id": option.id, "label": option.label, "votes": votes,
             "percent": None if votes is None else percent(votes, total)}
            for option, votes in zip(poll.options.items, shown, strict=True)
        ],
        "total": total,
        "version": tally.version,
        "pipeline": pipeline.as_dict(),
    }
    counts_document = {"version": tally.version, "votes": None if hidden else shown,
                       "total": total, "last_batch_at_ms": pipeline.last_batch_at_ms}
    return Results(tally.version, (poll, is_open, pipeline.state), document,
                   _compact(document), _compact(counts_document))


def percent(votes: int, total: int) -> float:
    return round(100 * votes / total, 1) if total else 0.0


def _compact(document: Mapping[str, object]) -> str:
    return json.dumps(document, separators=(",", ":"))
