"""The results document: every configured option with its label, votes and percentage."""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.schema import Tally
from common.settings import Options


@dataclass(frozen=True, slots=True)
class Results:
    version: int
    document: dict[str, object]
    json: str  # encoded once, sent to every subscriber


def build_results(tally: Tally, options: Options) -> Results:
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
    }
    return Results(tally.version, document, json.dumps(document, separators=(",", ":")))
