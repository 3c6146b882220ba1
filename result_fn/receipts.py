"""Receipts: "did my vote count?" answered from PostgreSQL alone.

vote_fn answers each vote with its id, the voter id and the time it was accepted. With
those, one primary-key read of the voter's ballot tells whether this vote is counted,
was superseded by the same voter's later vote, or is not counted yet. The answer never
says which option was chosen.
"""

from __future__ import annotations

from enum import StrEnum

from psycopg import AsyncConnection
from psycopg.rows import TupleRow


class ReceiptStatus(StrEnum):
    COUNTED = "counted"
    SUPERSEDED = "superseded"  # a later vote of the same voter is the one that counts
    PENDING = "pending"  # accepted, still on its way through the queue


async def receipt_status(conn: AsyncConnection[TupleRow], vote_id: str, voter: str,
                         accepted_ms: int) -> ReceiptStatus:
    cursor = await conn.execute(
        "SELECT vote_id, accepted_ms FROM ballots WHERE voter = %s", (voter,))
    row = await cursor.fetchone()
    if row is None:
        return ReceiptStatus.PENDING
    counted_id, counted_ms = str(row[0]), int(row[1])
    if counted_id == vote_id:
        return ReceiptStatus.COUNTED
    if (counted_ms, counted_id) > (accepted_ms, vote_id):
        return ReceiptStatus.SUPERSEDED
    return ReceiptStatus.PENDING
