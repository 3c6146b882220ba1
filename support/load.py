"""A steady vote load through a real vote_fn: clients that each send one new voter's vote
after another, recording what they were told (for the checker) and when (for the
windows a fault test measures)."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import anyio
import httpx2 as httpx

from support.checker import History
from support.http import no_cookies

OPTION_IDS = ("cats", "dogs")


@dataclass
class VoteLoad:
    """Clients posting votes through vote_fn, each a new voter with its own vote id,
    recording in ``history`` what each was told, and in ``answers`` when."""

    url: str
    history: History = field(default_factory=History)
    statuses: Counter[str] = field(default_factory=Counter)
    answers: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, status)
    concurrency: int = 16
    limit: int = 40_000  # bounds the run whatever happens

    def __post_init__(self) -> None:
        self.stopping = anyio.Event()

    @property
    def errors(self) -> int:
        return len(self.history.indeterminate) + len(self.history.failed)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, timeout=10, limits=limits,
                                     cookies=no_cookies()) as client, \
                anyio.create_task_group() as group:
            for n in range(self.concurrency):
                group.start_soon(self._client, client, random.Random(n))

    def _answered(self, status: str) -> None:
        self.statuses[status] += 1
        self.answers.append((time.monotonic(), status))

    async def _client(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        while not self.stopping.is_set() and self.history.sent < self.limit:
            vote_id, option = uuid.uuid4().hex, rng.choice(OPTION_IDS)
            try:
                response = await client.post("/api/vote",
                                             json={"vote": option, "vote_id": vote_id})
            except httpx.ConnectError:  # never reached vote_fn: must not be counted
                self.history.failed[vote_id] = option
                self._answered("refused")
            except httpx.TransportError as error:  # sent, answer lost: may be counted
                self.history.indeterminate[vote_id] = option
                self._answered(type(error).__name__)
            else:
                status = str(response.status_code)
                if status == "503" and "retry-after" not in response.headers:
                    status = "503 without Retry-After"
                self._answered(status)
                if response.status_code == 202:
                    self.history.acknowledged[vote_id] = option
                    continue
                self.history.indeterminate[vote_id] = option
            await anyio.sleep(0.01)  # a client backs off a little after an error
