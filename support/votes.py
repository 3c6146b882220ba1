"""Votes for the tests and the benchmarks, and the oracle of what they must add up to.

``expected_tally`` counts the latest vote of each voter in plain Python, from the votes
themselves: it shares nothing with the worker's code or its SQL, so a bug there cannot
pass by agreeing with itself.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence

import redis

from common import keys
from common.event import PollEvent, VoteEvent


def make_votes(voters: int, changes: int, *, options: Sequence[str] = ("cats", "dogs"),
               seed: int = 7, first_ms: int = 1_000) -> list[VoteEvent]:
    """One vote per voter, then ``changes`` later votes by voters drawn at random; vote
    number n was accepted at ``first_ms + n``."""
    rng = random.Random(seed)
    ids = [f"voter-{n:012d}" for n in range(voters)]
    return [VoteEvent(f"{rng.getrandbits(128):032x}", ids[n] if n < voters else rng.choice(ids),
                      rng.choice(options), first_ms + n) for n in range(voters + changes)]


def expected_tally(votes: Iterable[VoteEvent]) -> dict[str, int]:
    """Each option's count of the voters whose latest vote (by accepted time, then vote
    id) is for it."""
    latest: dict[str, VoteEvent] = {}
    for vote in votes:
        held = latest.get(vote.voter)
        if held is None or (vote.accepted_ms, vote.vote_id) > (held.accepted_ms, held.vote_id):
            latest[vote.voter] = vote
    return dict(Counter(vote.option for vote in latest.values()))


def push(client: redis.Redis, votes: Sequence[VoteEvent | PollEvent | bytes],
         chunk: int = 10_000) -> None:
    """LPUSH in order, as vote_fn pushes them, so the oldest is claimed first (a poll's
    action goes the same way, and a bytes entry as it is); ten commands a round trip."""
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(votes), chunk):
            pipe.lpush(keys.QUEUE, *(vote if isinstance(vote, bytes) else vote.encode()
                                     for vote in votes[start:start + chunk]))
            if len(pipe) >= 10:
                pipe.execute()
        pipe.execute()
