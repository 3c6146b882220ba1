"""Applying a batch of votes to PostgreSQL in one idempotent transaction.

One set-based statement: the batch is grouped by voter (the latest vote of each
voter wins, by accepted time then vote id), upserted into ``ballots`` only where
it is newer than what is stored, and the tallies move by exactly the rows that
changed. Replaying a batch therefore changes nothing. An advisory lock makes
overlapping drains take turns, so two of them never compute deltas from the same
stale row. The NOTIFY is delivered by PostgreSQL only when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from common.event import VoteEvent
from common.schema import APPLY_LOCK, CHANNEL

_UPSERT = """
WITH incoming AS (
    SELECT DISTINCT ON (voter) voter, option, vote_id, accepted_ms
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[])
        AS v(voter, option, vote_id, accepted_ms)
    ORDER BY voter, accepted_ms DESC, vote_id DESC
), previous AS (
    SELECT b.voter, b.option FROM ballots b JOIN incoming USING (voter)
), changed AS (
    INSERT INTO ballots AS b (voter, option, vote_id, accepted_ms)
    SELECT voter, option, vote_id, accepted_ms FROM incoming
    ON CONFLICT (voter) DO UPDATE
        SET option = excluded.option, vote_id = excluded.vote_id,
            accepted_ms = excluded.accepted_ms
        WHERE (excluded.accepted_ms, excluded.vote_id) > (b.accepted_ms, b.vote_id)
    RETURNING b.voter, b.option
), deltas AS (
    SELECT option, count(*) AS delta FROM changed GROUP BY option
    UNION ALL
    SELECT p.option, -count(*) FROM previous p JOIN changed c USING (voter) GROUP BY p.option
), tallied AS (
    UPDATE tallies t SET votes = t.votes + d.delta
    FROM (SELECT option, sum(delta) AS delta FROM deltas GROUP BY option) d
    WHERE t.option = d.option AND d.delta <> 0
)
SELECT count(*) FROM changed
"""

_BUMP_VERSION = """
UPDATE results_meta SET version = version + 1, updated_at = now() RETURNING version
"""


async def apply_batch(conn: AsyncConnection[TupleRow], events: Sequence[VoteEvent], *,
                      before_commit: Callable[[], None] | None = None) -> int:
    """Apply the votes; return how many ballots changed (0 for a replayed batch)."""
    if not events:
        return 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK,))
        cursor = await conn.execute(_UPSERT, (
            [event.voter for event in events],
            [event.option for event in events],
            [event.vote_id for event in events],
            [event.accepted_ms for event in events],
        ))
        row = await cursor.fetchone()
        changed = int(row[0]) if row else 0
        if changed:
            cursor = await conn.execute(_BUMP_VERSION)
            version_row = await cursor.fetchone()
            assert version_row is not None
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version_row[0])))
        if before_commit is not None:
            before_commit()
    return changed
