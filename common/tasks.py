"""Stopping a background task for good.

``task.cancel()`` asks once, and on Python 3.11 a Redis command can answer the request by
returning normally: redis-py sends each command under ``asyncio.wait_for`` when a socket
timeout is set (always, here), and 3.11's ``wait_for`` returns the result, dropping the
cancellation, when the two arrive together (CPython gh-86296, fixed in 3.12). The task then
goes on with its loop, and whoever awaits it waits for ever: vote_fn's lifespan hung at
shutdown on its poll refresher that way (RELIABILITY.md, "Found by this suite")."""

from __future__ import annotations

import asyncio
from typing import Any

RECANCEL_S = 0.01  # how long a cancelled task has to end before it is cancelled again


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` until it has ended; raise what it raised, if it failed before it
    was cancelled, as awaiting it would."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    if not task.cancelled():
        task.result()
