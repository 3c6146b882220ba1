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
import time
from dataclasses import dataclass

import psycopg
import redis

from bench.harness import OPTIONS, Processes, create_schema, timed
from bench.report import Figure
from common.event import VoteEvent
from support.functions import drain
from support.stores import drained, leftover_claims, tally
from support.votes import expected_tally, make_votes, push
from worker_fn.apply import apply_batch, copy_rows

TARGET = 0.4

@dataclass(frozen=True)
class Sizes:
    votes: int
    voters: int


FULL, QUICK = Sizes(votes=1_000_000, voters=200_000), Sizes(votes=20_000, voters=4_000)


def run(quick: bool) -> list[Figure]:
    sizes = QUICK if quick else FULL
    # Every voter votes once, then the rest of the votes are changes by random voters,
    # accepted up to now.
    votes = make_votes(sizes.voters, sizes.votes - sizes.voters, options=OPTIONS.ids, seed=5,
                       first_ms=time.time_ns() // 1_000_000 - sizes.votes)
    expected = expected_tally(votes)
    with Processes("voting-bench-drain-") as procs:
        database_url = procs.postgres()
        redis_url = procs.valkey()
        create_schema(database_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            ceiling_s = _ceiling(conn, database_url, votes)
            ceiling_ok = tally(conn) == expected
            _empty(conn)

            client = redis.Redis.from_url(redis_url)
            with timed() as load_s:
                push(client, votes)
            with timed() as process_s:
                report = drain({**procs.env, "REDIS_URL": redis_url,
                                "DATABASE_URL": database_url}, budget_s=600, timeout_s=900)
            row = conn.execute("SELECT count(*) FROM ballots").fetchone()
            drain_ok = (tally(conn) == expected and report["claimed"] == len(votes)
                        and row is not None and row[0] == sizes.voters
                        and drained(client) and not leftover_claims(client))
            client.close()
    drain_s = float(report["seconds"])
    return [Figure(
        "drain", f"{len(votes):,} votes / {sizes.voters:,} voters", len(votes) / drain_s,
        "votes/s", TARGET, at_least=True, ceiling=len(votes) / ceiling_s,
        ceiling_name="COPY + upsert",
        note=f"drain {drain_s:.2f} s in {report['batches']} batches and "
             f"{report['transactions']} transactions (process {process_s[0]:.2f} s), "
             f"ceiling {ceiling_s:.2f} s; tallies exact: drain {drain_ok}, ceiling {ceiling_ok}",
        details={"tallies_exact": drain_ok and ceiling_ok, "drain_tallies_exact": drain_ok,
                 "ceiling_tallies_exact": ceiling_ok, "drain_seconds": drain_s,
                 "drain_process_seconds": round(process_s[0], 3),
                 "batches": report["batches"],
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


