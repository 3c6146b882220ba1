"""Receipts: "did my vote count?" answered from PostgreSQL alone.

vote_fn answers each vote with its id, the voter id and the time it was accepted. With
those, one read of the voter's ballots (one per poll) tells whether this vote is counted,
was superseded by the same voter's later vote in its poll, or is not counted yet. The page
also names the poll it voted in: without it, a later vote in any poll counts as a
superseding one. The answer never says which option was chosen.
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
                         accepted_ms: int, poll: str | None = None) -> ReceiptStatus:
    cursor = await conn.execute(
        "SELECT poll, vote_id, accepted_ms FROM ballots WHERE voter = %s", (voter,))
    ballots = await cursor.fetchall()
    if any(str(counted_id) == vote_id for _, counted_id, _ in ballots):
        return ReceiptStatus.COUNTED
    if any((int(counted_ms), str(counted_id)) > (accepted_ms, vote_id)
           for counted_poll, counted_id, counted_ms in ballots
           if poll is None or counted_poll == poll):
        return ReceiptStatus.SUPERSEDED
    return ReceiptStatus.PENDING
