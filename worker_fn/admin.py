"""Operator actions on the poll, each recorded in the audit table.

Resetting a poll empties the ballots and tallies and records the reset time: votes
accepted before it that are still in the queue are ignored when they arrive, so the
worker needs nothing from Redis and a drain running at the same time stays exact
(it takes turns with the reset through the same advisory lock).
"""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from common.schema import APPLY_LOCK, CHANNEL


async def reset_poll(conn: AsyncConnection[TupleRow], actor: str, reason: str) -> dict[str, int]:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK,))
        cursor = await conn.execute("SELECT count(*) FROM ballots")
        counted = await cursor.fetchone()
        await conn.execute("TRUNCATE ballots")
        await conn.execute("UPDATE tallies SET votes = 0")
        cursor = await conn.execute(
            "UPDATE results_meta SET version = version + 1, updated_at = now(), "
            "reset_at_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint "
            "RETURNING version, reset_at_ms")
        row = await cursor.fetchone()
        assert row is not None and counted is not None
        outcome = {"ballots_removed": int(counted[0]), "version": int(row[0]),
                   "reset_at_ms": int(row[1])}
        await conn.execute(
            "INSERT INTO audit_log (action, actor, detail) VALUES ('reset', %s, %s)",
            (actor, Jsonb({**outcome, "reason": reason})))
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(row[0])))
    return outcome
