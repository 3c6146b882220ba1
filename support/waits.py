"""Waiting for a condition to hold, instead of sleeping for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


class GiveUp(Exception):
    """Raised by a condition that can no longer become true (the process it waits for
    has exited): the wait fails at once instead of at its deadline."""


def wait_until(check: Callable[[], T], timeout_s: float, what: str,
               interval_s: float = 0.05) -> T:
    """Poll ``check`` until it returns a truthy value, and return that value; fail with
    TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except GiveUp:
            raise
        except Exception as error:  # the condition is "it works": any failure means not yet
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not true within {timeout_s:g}s (last error: {last_error!r})")


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str,
                   interval_s: float = 0.01) -> None:
    """Yield to the other tasks until ``condition`` holds; fail with TimeoutError naming
    ``what``. For plain data that other tasks write, where there is no event to await."""
    try:
        with anyio.fail_after(timeout_s):
            while not condition():  # noqa: ASYNC110 - plain data written by other tasks
                await anyio.sleep(interval_s)
    except TimeoutError:
        raise TimeoutError(f"{what} not true within {timeout_s:g}s") from None
