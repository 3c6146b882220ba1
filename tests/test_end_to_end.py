"""The README's run command end to end: real processes, real sockets, real servers."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2 as httpx
import pytest

from support.http import no_cookies
from support.local_stack import LocalStack, counts
from support.sse import apply_counts, events

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack.create(tmp_path / "data") as stack:
        yield stack


async def cast_votes(vote_url: str, voters: int, changers: int) -> dict[str, int]:
    """Each voter votes twice with their cookie; ``changers`` of them switch option."""
    rng = random.Random(2)
    options = ("cats", "dogs")
    latest: dict[str, str] = {}
    limits = httpx.Limits(max_connections=32)
    # Each voter sends its own cookie header; the shared client must not keep any.
    async with httpx.AsyncClient(base_url=vote_url, limits=limits, timeout=10,
                                 cookies=no_cookies()) as client:
        semaphore = anyio.Semaphore(32)

        async def voter(n: int) -> None:
            first = rng.choice(options)
            second = (options[1 - options.index(first)] if n < changers else first)
            cookie = None
            for choice in (first, second):
                async with semaphore:
                    response = await client.post(
                        "/api/vote", json={"vote": choice},
                        headers={"cookie": cookie} if cookie else {})
                assert response.status_code == 202, response.text
                if "voter_id" in response.cookies:  # set only when it changes
                    cookie = f"voter_id={response.cookies['voter_id']}"
                latest[response.json()["voter"]] = choice

        async with anyio.create_task_group() as group:
            for n in range(voters):
                group.start_soon(voter, n)
    assert len(latest) == voters
    expected = {"cats": 0, "dogs": 0}
    for choice in latest.values():
        expected[choice] += 1
    return expected


async def test_votes_show_in_results_and_the_stream_within_3_seconds(stack: LocalStack) -> None:
    """1,000 votes by 500 voters (a fifth changing) are exact in the API and SSE within 3 s."""
    async with httpx.AsyncClient(timeout=30) as client, client.stream(
            "GET", f"{stack.result_url}/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        snapshot = await anext(stream)
        assert snapshot.retry and snapshot.id is not None
        document = json.loads(snapshot.data)
        assert document["total"] == 0

        expected = await cast_votes(stack.vote_url, voters=500, changers=100)
        last_post = time.monotonic()
        with anyio.fail_after(3.0):
            async for event in stream:
                data = json.loads(event.data)
                document = apply_counts(document, data) if event.event == "counts" else data
                if counts(document) == expected:
                    break
        seen_after = time.monotonic() - last_post

    results = stack.results()
    assert counts(results) == expected and results["total"] == 500
    print(f"exact in the SSE stream {seen_after * 1000:.0f} ms after the last post")


def test_stopping_leaves_no_process_and_a_restart_keeps_every_vote(stack: LocalStack) -> None:
    """Ctrl-C stops every process it started; starting again keeps the counted votes."""
    for n in range(20):
        httpx.post(f"{stack.vote_url}/api/vote", json={"vote": "dogs" if n % 4 else "cats"},
                   timeout=5).raise_for_status()
    deadline = time.monotonic() + 5
    while counts(stack.results()) != {"cats": 5, "dogs": 15}:
        assert time.monotonic() < deadline, stack.results()
        time.sleep(0.05)

    assert stack.stop() == [], "processes left running after Ctrl-C"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.vote_url}/healthz", timeout=1)

    stack.start()
    assert counts(stack.results()) == {"cats": 5, "dogs": 15}
