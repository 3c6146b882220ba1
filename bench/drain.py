"""Drain: queued votes moved from Valkey into PostgreSQL by ``python -m worker_fn drain``,
vs a pure-SQL ceiling: the same rows in one COPY and one set-based upsert, which is the
worker's own apply (worker_fn/apply.py) run once over all of them.

The votes come from a fixed number of voters, most of whom change their vote several
times, so the latest-vote-wins rule does real work. Both runs start from an empty
``ballots`` table after a CHECKPOINT, and both must end on the tallies that a plain
Python count of the latest vote per voter gives.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import psycopg
import redis

from bench.harness import OPTIONS, REPO, BenchError, Processes, create_schema, timed
from bench.report import Figure
from common import keys
from common.event import VoteEvent
from worker_fn.apply import apply_batch, copy_rows

TARGET = 0.4

@dataclass(frozen=True)
class Sizes:
    votes: int
    voters: int


FULL, QUICK = Sizes(votes=1_000_000, voters=200_000), Sizes(votes=20_000, voters=4_000)


def make_votes(sizes: Sizes, seed: int = 5) -> list[VoteEvent]:
    """Every voter votes once, then the rest of the votes are changes by random voters."""
    rng = random.Random(seed)
    voters = [f"voter-{n:012d}" for n in range(sizes.voters)]
    first_ms = time.time_ns() // 1_000_000 - sizes.votes
    choices = OPTIONS.ids
    return [VoteEvent(f"{rng.getrandbits(128):032x}",
                      voters[n] if n < sizes.voters else rng.choice(voters),
                      rng.choice(choices), first_ms + n) for n in range(sizes.votes)]


def expected_tallies(votes: list[VoteEvent]) -> dict[str, int]:
    latest: dict[str, VoteEvent] = {}
    for vote in votes:
        held = latest.get(vote.voter)
        if held is None or (vote.accepted_ms, vote.vote_id) > (held.accepted_ms, held.vote_id):
            latest[vote.voter] = vote
    return dict(Counter(vote.option for vote in latest.values()))


def run(quick: bool) -> list[Figure]:
    sizes = QUICK if quick else FULL
    votes = make_votes(sizes)
    expected = expected_tallies(votes)
    with Processes("voting-bench-drain-") as procs:
        database_url = procs.postgres()
        redis_url = procs.valkey()
        create_schema(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            ceiling_s = _ceiling(conn, database_url, votes)
            ceiling_ok = _tallies(conn) == expected
            _empty(conn)

            client = redis.Redis.from_url(redis_url)
            with timed() as load_s:
                _enqueue(client, votes)
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "worker_fn", "drain", "--budget", "600"], cwd=REPO,
                env={**procs.env, "REDIS_URL": redis_url, "DATABASE_URL": database_url},
                capture_output=True, text=True, timeout=900, check=False)
            process_s = time.perf_counter() - started
            if result.returncode:
                raise BenchError(f"the drain failed ({result.returncode}): {result.stderr}")
            report = json.loads(result.stdout.splitlines()[-1])
            row = conn.execute("SELECT count(*) FROM ballots").fetchone()
            drain_ok = (_tallies(conn) == expected and report["claimed"] == len(votes)
                        and row is not None and row[0] == sizes.voters
                        and client.llen(keys.QUEUE) == 0
                        and not list(client.scan_iter(match="{votes}:processing:*")))
            client.close()
    drain_s = float(report["seconds"])
    return [Figure(
        "drain", f"{len(votes):,} votes / {sizes.voters:,} voters", len(votes) / drain_s,
        "votes/s", TARGET, at_least=True, ceiling=len(votes) / ceiling_s,
        ceiling_name="COPY + upsert",
        note=f"drain {drain_s:.2f} s in {report['batches']} batches and "
             f"{report['transactions']} transactions (process {process_s:.2f} s), "
             f"ceiling {ceiling_s:.2f} s; tallies exact: drain {drain_ok}, ceiling {ceiling_ok}",
        details={"tallies_exact": drain_ok and ceiling_ok, "drain_tallies_exact": drain_ok,
                 "ceiling_tallies_exact": ceiling_ok, "drain_seconds": drain_s,
                 "drain_process_seconds": round(process_s, 3), "batches": report["batches"],
                 "transactions": report["transactions"],
                 "ceiling_seconds": round(ceiling_s, 3),
                 "enqueue_votes_per_s": round(len(votes) / load_s[0]), "expected": expected})]



def _ceiling(conn: psycopg.Connection[tuple[object, ...]], url: str,
             votes: list[VoteEvent]) -> float:
    """Seconds for the worker's own apply (worker_fn/apply.py: one COPY into its temporary
    table, then its statement: the latest vote per voter, the upsert, the tallies) run
    once over every vote."""
    rows = copy_rows(votes)
    conn.execute("CHECKPOINT")

    async def apply() -> float:
        async with await psycopg.AsyncConnection.connect(url) as applying:
            with timed() as elapsed:
                await apply_batch(applying, [rows], votes=len(votes))
        return elapsed[0]

    return asyncio.run(apply())


def _empty(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("TRUNCATE ballots")
    conn.execute("UPDATE tallies SET votes = 0")
    conn.execute("CHECKPOINT")


def _tallies(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, int]:
    rows = conn.execute("SELECT option, votes FROM tallies WHERE votes <> 0").fetchall()
    return {str(option): int(str(count)) for option, count in rows}


def _enqueue(client: redis.Redis, votes: list[VoteEvent], chunk: int = 10_000) -> None:
    """LPUSH in order, so the oldest vote is claimed first, as vote_fn pushes them."""
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(votes), chunk):
            pipe.lpush(keys.QUEUE, *(v.encode() for v in votes[start:start + chunk]))
            if len(pipe) >= 10:
                pipe.execute()
        pipe.execute()
