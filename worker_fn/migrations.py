"""The one place that creates and changes the PostgreSQL schema (common/schema.py describes
it): the worker, before its first drain, or ``python -m worker_fn migrate`` at deploy time.

A migration runs only when the schema is behind (a plain read says so), so no start of any
function takes a DDL lock: ``ALTER TABLE ... IF NOT EXISTS`` takes an ACCESS EXCLUSIVE lock
even when there is nothing to do, and a read queued behind it waits for whatever it waits
for (measured: 5 s behind an open drain). Migrations take turns through an advisory lock and
wait at most 3 s for a table lock, so a busy table makes a migration fail fast
and be retried by the next drain rather than freeze the readers queued behind it.
"""

from __future__ import annotations

import logging
from typing import LiteralString

import psycopg
from psycopg.rows import TupleRow

from common.event import PollEvent, now_ms
from common.polls import Poll
from common.schema import SCHEMA_LOCK, SCHEMA_VERSION, schema_version
from common.settings import SettingsError
from worker_fn.polls import define_poll

log = logging.getLogger("worker_fn.migrations")
MIN_SERVER_VERSION = 180000  # the drain's upsert uses RETURNING old.* (PostgreSQL 18)

# MIGRATIONS[n - 1] brings the schema from version n - 1 to n. The first creates what a
# database made before the schema had versions may already hold, so it says IF NOT EXISTS.
MIGRATIONS: tuple[tuple[LiteralString, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS ballots (
            voter       text PRIMARY KEY,
            option      text NOT NULL,
            vote_id     text NOT NULL,
            accepted_ms bigint NOT NULL
        ) WITH (fillfactor = 70)""",
        """CREATE TABLE IF NOT EXISTS tallies (
            option text PRIMARY KEY,
            votes  bigint NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE IF NOT EXISTS results_meta (
            singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            version    bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        "INSERT INTO results_meta (singleton) VALUES (true) ON CONFLICT DO NOTHING",
        "ALTER TABLE results_meta ADD COLUMN IF NOT EXISTS reset_at_ms bigint NOT NULL DEFAULT 0",
        """CREATE TABLE IF NOT EXISTS pipeline_status (
            singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            worker_seen_at      timestamptz,
            last_batch_at       timestamptz,
            last_batch_votes    integer NOT NULL DEFAULT 0,
            queued_at_last_look bigint NOT NULL DEFAULT 0
        )""",
        "INSERT INTO pipeline_status (singleton) VALUES (true) ON CONFLICT DO NOTHING",
        """CREATE TABLE IF NOT EXISTS audit_log (
            id     bigserial PRIMARY KEY,
            at     timestamptz NOT NULL DEFAULT now(),
            action text NOT NULL,
            actor  text NOT NULL,
            detail jsonb NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE schema_version (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            version   integer NOT NULL
        )""",
    ),
    (  # 2: polls. What was counted before is the first poll's.
        """CREATE TABLE polls (
            id         text PRIMARY KEY,
            question   text NOT NULL,
            options    jsonb NOT NULL,
            results    text NOT NULL CHECK (results IN ('live', 'after_close')),
            defined_us bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE poll_state (
            singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            current    text,
            last       text,
            changed_us bigint NOT NULL DEFAULT 0
        )""",
        "INSERT INTO poll_state (singleton) VALUES (true)",
        "ALTER TABLE ballots ADD COLUMN poll text NOT NULL DEFAULT 'first'",
        "ALTER TABLE ballots ALTER COLUMN poll DROP DEFAULT",
        "ALTER TABLE ballots DROP CONSTRAINT ballots_pkey, ADD PRIMARY KEY (poll, voter)",
        "ALTER TABLE tallies ADD COLUMN poll text NOT NULL DEFAULT 'first'",
        "ALTER TABLE tallies ALTER COLUMN poll DROP DEFAULT",
        "ALTER TABLE tallies DROP CONSTRAINT tallies_pkey, ADD PRIMARY KEY (poll, option)",
        # Each admin action once, however often its queue entry is replayed.
        "ALTER TABLE audit_log ADD COLUMN event_key text UNIQUE",
    ),
)
assert len(MIGRATIONS) == SCHEMA_VERSION


class UnsupportedServer(SettingsError):
    """DATABASE_URL names a PostgreSQL older than the schema needs: no retry will help."""

    def __init__(self, server_version: int) -> None:
        super().__init__(f"DATABASE_URL names PostgreSQL {server_version // 10000}: "
                         f"{MIN_SERVER_VERSION // 10000} or newer is needed")


def check_server(server_version: int) -> None:
    if server_version < MIN_SERVER_VERSION:
        raise UnsupportedServer(server_version)


async def migrate(conn: psycopg.AsyncConnection[TupleRow]) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; return how many migrations
    ran (0: it was there already, and nothing but a read was sent)."""
    check_server(conn.info.server_version)
    async with conn.transaction():
        if (found := await schema_version(conn)) >= SCHEMA_VERSION:
            return 0
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        await conn.execute("SET LOCAL lock_timeout = '3s'")
        found = await schema_version(conn)  # again: another worker may have just done it
        for number in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_version (version) VALUES (%s) "
            "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            (SCHEMA_VERSION,))
    if found < SCHEMA_VERSION:
        log.info("schema brought from version %d to %d", found, SCHEMA_VERSION)
    return max(0, SCHEMA_VERSION - found)


async def prepare(conn: psycopg.AsyncConnection[TupleRow], first: Poll) -> None:
    """What a drain needs before its first batch: the schema, and the first poll as the
    settings define it (vote_fn reads the same settings; only they define that poll), open
    on a new database."""
    await migrate(conn)
    async with conn.transaction():
        await define_poll(conn, PollEvent("poll", first.id, now_ms() * 1000, "settings", first))
        await conn.execute("UPDATE poll_state SET current = %s, last = %s WHERE last IS NULL",
                           (first.id, first.id))
