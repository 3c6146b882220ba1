"""Reading Server-Sent Events from a live HTTP response (httpx), as a browser's EventSource does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx


@dataclass
class Event:
    event: str = "message"  # the type: the whole results document, or "counts"
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """Yield each event (blank-line terminated); comment lines are kept on the next event."""
    event, data_lines = Event(), list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data_lines or event.id is not None:
                event.data = "\n".join(data_lines)
                yield event
                event, data_lines = Event(), list[str]()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            event.comments.append(value)
        elif name == "data":
            data_lines.append(value)
        elif name == "id":
            event.id = value
        elif name == "retry":
            event.retry = int(value)
        elif name == "event":
            event.event = value


async def results(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The results document after each event: a whole one, or the last one with the counts
    of a ``counts`` event applied (result_fn/results.py)."""
    document: dict[str, Any] | None = None
    async for event in events(response):
        data = json.loads(event.data)
        if event.event == "counts":
            assert document is not None, "a counts event came before the whole document"
            document = apply_counts(document, data)
        else:
            document = data
        yield document


def apply_counts(document: dict[str, Any], counts: dict[str, Any]) -> dict[str, Any]:
    votes = counts["votes"] or [None] * len(document["options"])
    total = counts["total"]
    options = [{**option, "votes": n,
                "percent": None if n is None else (round(100 * n / total, 1) if total else 0.0)}
               for option, n in zip(document["options"], votes, strict=True)]
    return {**document, "options": options, "total": total, "version": counts["version"]}
