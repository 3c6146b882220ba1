"""Small helpers the tests share: expected tallies, queue pushes, database reads."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

import psycopg
import redis

from common import keys
from common.event import VoteEvent


def make_votes(voters: int, changes: int, options: tuple[str, ...] = ("cats", "dogs"),
               seed: int = 7) -> list[VoteEvent]:
    """One vote per voter, then ``changes`` later votes by some of them."""
    rng = random.Random(seed)
    ids = [f"voter-{n:012d}" for n in range(voters)]
    votes = [VoteEvent(f"{rng.getrandbits(128):032x}", voter, rng.choice(options), 1_000 + n)
             for n, voter in enumerate(ids)]
    for n in range(changes):
        votes.append(VoteEvent(f"{rng.getrandbits(128):032x}", rng.choice(ids),
                               rng.choice(options), 10_000_000 + n))
    return votes


def expected_tally(votes: Iterable[VoteEvent]) -> dict[str, int]:
    latest: dict[str, VoteEvent] = {}
    for vote in votes:
        held = latest.get(vote.voter)
        if held is None or (vote.accepted_ms, vote.vote_id) > (held.accepted_ms, held.vote_id):
            latest[vote.voter] = vote
    return dict(Counter(vote.option for vote in latest.values()))


def push(client: redis.Redis, votes: Iterable[VoteEvent | bytes]) -> None:
    payloads = [v if isinstance(v, bytes) else v.encode() for v in votes]
    for start in range(0, len(payloads), 5000):
        client.lpush(keys.QUEUE, *payloads[start:start + 5000])


def tally(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    rows = conn.execute("SELECT option, votes FROM tallies WHERE votes <> 0").fetchall()
    return {str(option): int(votes) for option, votes in rows}  # type: ignore[call-overload]


def ballots_by_voter(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    rows = conn.execute("SELECT voter, option FROM ballots").fetchall()
    return {str(voter): str(option) for voter, option in rows}


def version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT version FROM results_meta").fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def leftover_claims(client: redis.Redis) -> list[bytes]:
    return sorted(client.scan_iter(match="{votes}:processing:*")) + sorted(
        client.scan_iter(match="{votes}:lease:*"))
