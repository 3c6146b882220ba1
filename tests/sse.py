"""Reading Server-Sent Events from a live HTTP response, for the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx2 as httpx


@dataclass
class Event:
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """Yield each event (blank-line terminated); comment lines are kept on the next event."""
    event, data_lines = Event(), []
    async for line in response.aiter_lines():
        if line == "":
            if data_lines or event.id is not None:
                event.data = "\n".join(data_lines)
                yield event
                event, data_lines = Event(), []
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
