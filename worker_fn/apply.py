"""Applying a batch of votes to PostgreSQL in one idempotent transaction.

The batch is first reduced to the latest vote of each voter (by accepted time, then
vote id) in Python, off PostgreSQL's critical path; PostgreSQL refuses to touch one
row twice in one statement anyway. Then one set-based statement upserts the ballots
only where the vote is newer than the stored one and moves the tallies by exactly the
rows that changed (``RETURNING old.option``, PostgreSQL 18+), so replaying a batch
changes nothing. Parameters go in binary format. An advisory lock makes overlapping
drains take turns, so two of them never compute deltas from the same stale row. The
NOTIFY is delivered by PostgreSQL only when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from common.event import VoteEvent
from common.schema import APPLY_LOCK, CHANNEL

_UPSERT = """
WITH changed AS (
    INSERT INTO ballots AS b (voter, option, vote_id, accepted_ms)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[])
        AS v(voter, option, vote_id, accepted_ms)
    WHERE v.accepted_ms >= (SELECT reset_at_ms FROM results_meta)
    ON CONFLICT (voter) DO UPDATE
        SET option = excluded.option, vote_id = excluded.vote_id,
            accepted_ms = excluded.accepted_ms
        WHERE (excluded.accepted_ms, excluded.vote_id) > (b.accepted_ms, b.vote_id)
    RETURNING old.option AS was, new.option AS now
), deltas AS (
    SELECT now AS option, count(*) AS delta FROM changed GROUP BY now
    UNION ALL
    SELECT was, -count(*) FROM changed WHERE was IS NOT NULL GROUP BY was
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

_RECORD_BATCH = """
UPDATE pipeline_status SET worker_seen_at = now(), last_batch_at = now(),
    last_batch_votes = %s, queued_at_last_look = %s
"""

_HEARTBEAT = """
UPDATE pipeline_status SET worker_seen_at = now(), queued_at_last_look = %s
"""


def latest_per_voter(events: Iterable[VoteEvent]) -> list[VoteEvent]:
    """One vote per voter: the latest by accepted time, then vote id."""
    latest: dict[str, VoteEvent] = {}
    for event in events:
        held = latest.get(event.voter)
        if held is None or (event.accepted_ms, event.vote_id) > (held.accepted_ms, held.vote_id):
            latest[event.voter] = event
    return list(latest.values())


async def heartbeat(conn: AsyncConnection[TupleRow], queued: int) -> None:
    """The worker is alive and saw ``queued`` votes waiting (shown on the results page)."""
    await conn.execute(_HEARTBEAT, (queued,))


async def apply_batch(conn: AsyncConnection[TupleRow], votes: Sequence[VoteEvent], *,
                      queued: int = 0, before_commit: Callable[[], None] | None = None) -> int:
    """Apply votes (at most one per voter: see latest_per_voter); return how many
    ballots changed (0 for a replayed batch). ``queued`` is the queue length the
    worker saw when it claimed them, recorded for the pipeline status."""
    if not votes:
        return 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK,))
        cursor = await conn.execute(_UPSERT, (
            [vote.voter for vote in votes],
            [vote.option for vote in votes],
            [vote.vote_id for vote in votes],
            [vote.accepted_ms for vote in votes],
        ))
        row = await cursor.fetchone()
        changed = int(row[0]) if row else 0
        if changed:
            cursor = await conn.execute(_BUMP_VERSION)
            version_row = await cursor.fetchone()
            assert version_row is not None
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version_row[0])))
        await conn.execute(_RECORD_BATCH, (len(votes), queued))
        if before_commit is not None:
            before_commit()
    return changed
