"""Applying a batch of votes to PostgreSQL in one idempotent transaction.

The votes are copied (COPY, as text rows made off PostgreSQL's critical path by
``copy_rows``) into a temporary table of the session. Then one set-based
statement keeps the latest vote of each voter (by accepted time, then vote id), sorted
by voter so the upsert walks the primary key in order, upserts the ballots only where
the vote is newer than the stored one, and moves the tallies by exactly the rows that
changed (``RETURNING old.option``, PostgreSQL 18+), so replaying a batch changes
nothing; it is the pure-SQL ceiling's statement (bench/drain.py), run per batch. The
same statement bumps the results version and notifies result_fn. A presenter's poll
actions in the batch are applied first (worker_fn/polls.py), so a poll exists, with its
tally rows, before the votes cast in it. An advisory lock makes
overlapping drains take turns, so two of them never compute deltas from the same stale
row. The NOTIFY is delivered by PostgreSQL only when the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from common.event import PollEvent, VoteEvent
from common.schema import APPLY_LOCK, CHANNEL
from worker_fn.polls import apply_poll_events

# The batch's rows, emptied at every commit; created once per session (later creations
# are skipped with a notice).
_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS staged_votes (
    vote_id text, voter text, option text, accepted_ms bigint, poll text
) ON COMMIT DELETE ROWS
"""
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
# The columns in copy_rows' order.
_COPY = "COPY staged_votes (vote_id, voter, option, accepted_ms, poll) FROM STDIN"

# One statement does the whole batch: upsert the ballots that are newer, move the tallies
# by the rows that changed, and (only if any did) bump the version and notify.
# Data-modifying CTEs run once and to completion; ``notified`` is a plain SELECT, so the
# final SELECT reads it to run it.
_APPLY = """
WITH changed AS (
    INSERT INTO ballots AS b (poll, voter, option, vote_id, accepted_ms)
    SELECT DISTINCT ON (v.poll, v.voter) v.poll, v.voter, v.option, v.vote_id, v.accepted_ms
    FROM staged_votes v
    WHERE v.accepted_ms >= (SELECT reset_at_ms FROM results_meta)
    ORDER BY v.poll, v.voter, v.accepted_ms DESC, v.vote_id DESC
    ON CONFLICT (poll, voter) DO UPDATE
        SET option = excluded.option, vote_id = excluded.vote_id,
            accepted_ms = excluded.accepted_ms
        WHERE (excluded.accepted_ms, excluded.vote_id) > (b.accepted_ms, b.vote_id)
    RETURNING new.poll AS poll, old.option AS was, new.option AS now
), deltas AS (
    SELECT poll, now AS option, count(*) AS delta FROM changed GROUP BY poll, now
    UNION ALL
    SELECT poll, was, -count(*) FROM changed WHERE was IS NOT NULL GROUP BY poll, was
), tallied AS (
    UPDATE tallies t SET votes = t.votes + d.delta
    FROM (SELECT poll, option, sum(delta) AS delta FROM deltas GROUP BY poll, option) d
    WHERE t.poll = d.poll AND t.option = d.option AND d.delta <> 0
), bumped AS (
    UPDATE results_meta SET version = version + 1, updated_at = now()
    WHERE EXISTS (SELECT FROM changed) OR %(polls_changed)s
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


async def heartbeat(conn: AsyncConnection[TupleRow], queued: int) -> None:
    """The worker is alive and saw ``queued`` votes waiting (shown on the results page)."""
    await conn.execute(_HEARTBEAT, (queued,))


def copy_rows(votes: Iterable[VoteEvent]) -> bytes:
    """The votes as rows of COPY's text format, in the order of ``_COPY``'s columns.

    Written here rather than by psycopg's ``write_row`` (about twice the Python time a
    row) so the drain can make them while PostgreSQL applies the group before. No escaping
    is needed: every field was validated by ``common.event.decode`` (hex vote ids, voter
    ids of ``[0-9A-Za-z_-]``, option ids of ``[a-z0-9_-]``, an integer, poll ids of
    ``[a-z0-9-]``), so none can hold the tab, newline or backslash that COPY reads
    specially.
    """
    return "".join([f"{vote.vote_id}\t{vote.voter}\t{vote.option}\t{vote.accepted_ms}\t"
                    f"{vote.poll}\n" for vote in votes]).encode()


async def apply_batch(conn: AsyncConnection[TupleRow], rows: Sequence[bytes], *, votes: int,
                      queued: int = 0, poll_events: Sequence[PollEvent] = (),
                      before_commit: Callable[[], None] | None = None) -> int:
    """Apply the poll actions, then ``votes`` votes given as blocks of ``copy_rows`` (in
    any order, any number per voter); return how many ballots changed (0 for a replayed
    batch). ``queued`` is the queue length the worker saw when it claimed them, recorded
    for the pipeline status."""
    if not votes and not poll_events:
        return 0
    params = {"channel": CHANNEL, "votes": votes, "queued": queued,
              "polls_changed": bool(poll_events)}
    # Not in a psycopg pipeline: with one, a drain cancelled by SIGTERM sometimes (2 in ~30
    # runs of test_sigterm_mid_drain_hands_the_claim_back_at_once) did not hand its claims
    # back within the shutdown's 5 s; saving a round trip a batch is not worth that.
    async with conn.transaction():
        await conn.execute(_LOCK, (APPLY_LOCK,))
        await apply_poll_events(conn, poll_events)
        await conn.execute(_STAGE)
        cursor = conn.cursor()
        async with cursor.copy(_COPY) as copy:
            for block in rows:
                await copy.write(block)
        await cursor.execute(_APPLY, params)
        row = await cursor.fetchone()
        changed = int(row[0]) if row else 0
        if before_commit is not None:
            before_commit()
    return changed
