"""The PostgreSQL schema as the functions read it. One place creates and changes it: the
worker's migrations (worker_fn/migrations.py); result_fn only reads.

- ``polls``: each poll's question, options and results mode (common/polls.py);
  ``poll_state``: the open one (``current``), and the one shown when none is (``last``).
- ``ballots``: one row per voter and poll; the latest vote wins (by accepted time, then
  vote id).
- ``tallies``: exact per-option counts kept in the same transaction as ``ballots``,
  so reading the results is O(number of options), never a GROUP BY over all votes.
- ``results_meta``: a single row whose ``version`` rises on every committed change, and
  the time of the last reset (votes accepted before it are ignored).
- ``pipeline_status``: what the worker saw last (written by each drain), so a stalled
  worker is visible on the results page without result_fn talking to Redis.
- ``audit_log``: operator actions: a presenter's polls, resets.
- ``schema_version``: the version the migrations brought the schema to.
"""

from __future__ import annotations

from typing import NamedTuple

import psycopg
from psycopg.rows import TupleRow

from common.polls import Poll, poll_from_dict

CHANNEL = "results"
# pg_advisory_xact_lock keys: migrations take turns, and so do drain transactions.
SCHEMA_LOCK = 0x766F7465  # "vote"
APPLY_LOCK = 0x766F7466
SCHEMA_VERSION = 2  # what this code reads; worker_fn/migrations.py brings a database to it


class SchemaMissing(LookupError):
    """The worker has not yet created the tables, or not yet brought them to this version."""

    def __init__(self, found: int) -> None:
        super().__init__(f"the database schema is at version {found} and this code needs "
                         f"{SCHEMA_VERSION}: the worker brings it there before its first drain")
        self.found = found


class Tally(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    version: int
    votes: dict[str, int]


class PipelineRow(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    """What the worker recorded last, with ages measured by the database's clock."""

    worker_seen_age_s: float | None  # None: no drain has run yet
    last_batch_at_ms: int | None
    last_batch_votes: int
    queued_at_last_look: int


async def schema_version(conn: psycopg.AsyncConnection[TupleRow]) -> int:
    """The schema's version, 0 on a database nobody has prepared. It never names a table
    that may not exist, so asking puts no error into PostgreSQL's log."""
    cursor = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await conn.execute("SELECT version FROM schema_version")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def require_schema(conn: psycopg.AsyncConnection[TupleRow]) -> None:
    """Raise SchemaMissing unless the schema is at this code's version or newer."""
    if (found := await schema_version(conn)) < SCHEMA_VERSION:
        raise SchemaMissing(found)


class PollTally(NamedTuple):  # a tuple: defined ~0.5 ms sooner than a dataclass
    poll: Poll
    open: bool
    tally: Tally


_POLL_TALLY = """
SELECT p.id, p.question, p.options, p.results, p.id IS NOT DISTINCT FROM s.current,
       m.version, t.option, t.votes
FROM poll_state s
JOIN polls p ON p.id = coalesce(%(poll)s, s.current, s.last)
CROSS JOIN results_meta m
LEFT JOIN tallies t ON t.poll = p.id
"""


async def read_poll_tally(conn: psycopg.AsyncConnection[TupleRow],
                          poll_id: str | None = None) -> PollTally | None:
    """A poll (by default the one shown: the open one, else the last one opened), whether
    it is open, and its counts, in one consistent statement; None when there is no such
    poll (or none yet)."""
    cursor = await conn.execute(_POLL_TALLY, {"poll": poll_id})
    rows = await cursor.fetchall()
    if not rows:
        return None
    first = rows[0]
    poll = poll_from_dict(str(first[0]), {"question": first[1], "options": first[2],
                                          "results": first[3]})
    votes = {str(option): int(count) for *_, option, count in rows if option is not None}
    return PollTally(poll, bool(first[4]), Tally(int(first[5]), votes))


async def read_polls(conn: psycopg.AsyncConnection[TupleRow],
                     poll_id: str | None = None) -> dict[str, Poll]:
    """Every poll, or the one named."""
    cursor = await conn.execute(
        "SELECT id, question, options, results FROM polls WHERE %(id)s::text IS NULL OR "
        "id = %(id)s", {"id": poll_id})
    return {str(row[0]): poll_from_dict(str(row[0]), {"question": row[1], "options": row[2],
                                                      "results": row[3]})
            for row in await cursor.fetchall()}


async def read_pipeline(conn: psycopg.AsyncConnection[TupleRow]) -> PipelineRow:
    cursor = await conn.execute(
        "SELECT extract(epoch FROM clock_timestamp() - worker_seen_at)::float8, "
        "(extract(epoch FROM last_batch_at) * 1000)::bigint, last_batch_votes, "
        "queued_at_last_look FROM pipeline_status")
    row = await cursor.fetchone()
    if row is None:
        raise SchemaMissing(0)
    return PipelineRow(row[0], row[1], int(row[2]), int(row[3]))
