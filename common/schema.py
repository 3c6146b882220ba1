"""The PostgreSQL schema, created idempotently, and the one read that result_fn needs.

- ``ballots``: one row per voter; the latest vote wins (by accepted time, then vote id).
- ``tallies``: exact per-option counts kept in the same transaction as ``ballots``,
  so reading the results is O(number of options), never a GROUP BY over all votes.
- ``results_meta``: a single row whose ``version`` rises on every committed change, and
  the time of the last reset (votes accepted before it are ignored).
- ``pipeline_status``: what the worker saw last (written by each drain), so a stalled
  worker is visible on the results page without result_fn talking to Redis.
- ``audit_log``: operator actions such as resetting a poll.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

from common.settings import Options

CHANNEL = "results"
# Serialises DDL and drain batches across processes (pg_advisory_xact_lock key).
SCHEMA_LOCK = 0x766F7465  # "vote"
APPLY_LOCK = 0x766F7466

_DDL = """
CREATE TABLE IF NOT EXISTS ballots (
    voter       text PRIMARY KEY,
    option      text NOT NULL,
    vote_id     text NOT NULL,
    accepted_ms bigint NOT NULL
) WITH (fillfactor = 70);
CREATE TABLE IF NOT EXISTS tallies (
    option text PRIMARY KEY,
    votes  bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results_meta (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO results_meta (singleton) VALUES (true) ON CONFLICT DO NOTHING;
ALTER TABLE results_meta ADD COLUMN IF NOT EXISTS reset_at_ms bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS pipeline_status (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    worker_seen_at      timestamptz,
    last_batch_at       timestamptz,
    last_batch_votes    integer NOT NULL DEFAULT 0,
    queued_at_last_look bigint NOT NULL DEFAULT 0
);
INSERT INTO pipeline_status (singleton) VALUES (true) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS audit_log (
    id     bigserial PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    action text NOT NULL,
    actor  text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
"""


MIN_SERVER_VERSION = 180000  # the drain's upsert uses RETURNING old.* (PostgreSQL 18)


class UnsupportedServer(RuntimeError):
    """The PostgreSQL server is older than the schema needs."""


@dataclass(frozen=True, slots=True)
class Tally:
    version: int
    votes: dict[str, int]


@dataclass(frozen=True, slots=True)
class PipelineRow:
    """What the worker recorded last, with ages measured by the database's clock."""

    worker_seen_age_s: float | None  # None: no drain has run yet
    last_batch_at_ms: int | None
    last_batch_votes: int
    queued_at_last_look: int


async def ensure_schema(conn: psycopg.AsyncConnection[TupleRow], options: Options) -> None:
    """Create the tables and a tally row per configured option; safe to run concurrently."""
    if conn.info.server_version < MIN_SERVER_VERSION:
        raise UnsupportedServer(
            f"PostgreSQL {conn.info.server_version // 10000} is too old: 18 or newer is needed")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in _DDL.split(";"):
            if statement.strip():
                await conn.execute(statement)
        await conn.execute(
            "INSERT INTO tallies (option) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (list(options.ids),),
        )


async def read_tally(conn: psycopg.AsyncConnection[TupleRow]) -> Tally:
    """The results version and every option's count, read in one consistent statement."""
    cursor = await conn.execute(
        "SELECT m.version, t.option, t.votes FROM results_meta m LEFT JOIN tallies t ON true"
    )
    rows = await cursor.fetchall()
    if not rows:
        raise LookupError("results_meta is empty: the schema has not been created")
    version = int(rows[0][0])
    votes = {str(option): int(count) for _, option, count in rows if option is not None}
    return Tally(version, votes)


async def read_pipeline(conn: psycopg.AsyncConnection[TupleRow]) -> PipelineRow:
    cursor = await conn.execute(
        "SELECT extract(epoch FROM clock_timestamp() - worker_seen_at)::float8, "
        "(extract(epoch FROM last_batch_at) * 1000)::bigint, last_batch_votes, "
        "queued_at_last_look FROM pipeline_status")
    row = await cursor.fetchone()
    if row is None:
        raise LookupError("pipeline_status is empty: the schema has not been created")
    return PipelineRow(row[0], row[1], int(row[2]), int(row[3]))
