"""Applying a batch of votes to PostgreSQL in one idempotent transaction.

The batch is first reduced to the latest vote of each voter (by accepted time, then
vote id) in Python, off PostgreSQL's critical path; PostgreSQL refuses to touch one
row twice in one statement anyway. Then one set-based statement upserts the ballots
only where the vote is newer than the stored one and moves the tallies by exactly the
rows that changed (``RETURNING old.option``, PostgreSQL 18+), so replaying a batch
changes nothing. The same statement bumps the results version and notifies result_fn,
so a batch is one statement between the lock and the commit. An advisory lock makes
overlapping drains take turns, so two of them never compute deltas from the same stale
row. The NOTIFY is delivered by PostgreSQL only when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import orjson
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Json

from common.event import VoteEvent
from common.schema import APPLY_LOCK, CHANNEL

# One statement does the whole batch: upsert the ballots that are newer, move the tallies
# by the rows that changed, and (only if any did) bump the version and notify. The rows
# arrive as one JSON array, which orjson writes ~10x faster than psycopg dumps four
# arrays in Python, and PostgreSQL reads as fast. Data-modifying CTEs run once and to
# completion; ``notified`` is a plain SELECT, so the final SELECT reads it to run it.
_APPLY = """
WITH changed AS (
    INSERT INTO ballots AS b (voter, option, vote_id, accepted_ms)
    SELECT v.voter, v.option, v.vote_id, v.accepted_ms
    FROM json_to_recordset(%(rows)s) AS v(voter text, option text, vote_id text,
                                                  accepted_ms bigint)
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
), bumped AS (
    UPDATE results_meta SET version = version + 1, updated_at = now()
    WHERE EXISTS (SELECT FROM changed)
    RETURNING version
), notified AS (
    SELECT pg_notify(%(channel)s, version::text) FROM bumped
), recorded AS (
    UPDATE pipeline_status SET worker_seen_at = now(), last_batch_at = now(),
        last_batch_votes = %(votes)s, queued_at_last_look = %(queued)s
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM notified)
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


def rows_json(votes: Iterable[VoteEvent]) -> Json:
    """The votes as the JSON array of objects that ``json_to_recordset`` reads."""
    return Json([{"voter": vote.voter, "option": vote.option, "vote_id": vote.vote_id,
                  "accepted_ms": vote.accepted_ms} for vote in votes], dumps=orjson.dumps)


async def apply_batch(conn: AsyncConnection[TupleRow], votes: Sequence[VoteEvent], *,
                      queued: int = 0, before_commit: Callable[[], None] | None = None) -> int:
    """Apply votes (at most one per voter: see latest_per_voter); return how many
    ballots changed (0 for a replayed batch). ``queued`` is the queue length the
    worker saw when it claimed them, recorded for the pipeline status."""
    if not votes:
        return 0
    params = {"rows": rows_json(votes), "channel": CHANNEL, "votes": len(votes),
              "queued": queued}
    # Not in a psycopg pipeline: with one, a drain cancelled by SIGTERM sometimes (2 in ~30
    # runs of test_sigterm_mid_drain_hands_the_claim_back_at_once) did not hand its claims
    # back within the shutdown's 5 s; saving a round trip a batch is not worth that.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK,))
        cursor = await conn.execute(_APPLY, params)
        row = await cursor.fetchone()
        changed = int(row[0]) if row else 0
        if before_commit is not None:
            before_commit()
    return changed
