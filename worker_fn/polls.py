"""Applying a presenter's poll actions, which reach the worker through the queue in order
with the votes (common/event.py): a poll's definition, its opening, its closing.

Each action carries its time, and a stored state changes only for a later one, so a batch
that is replayed, or a claim returned to the queue behind newer entries, changes nothing.
Each action is recorded in the audit log once (keyed by action, poll and time).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from common.event import PollEvent

_DEFINE = """
WITH defined AS (
    INSERT INTO polls AS p (id, question, options, results, defined_us)
    VALUES (%(poll)s, %(question)s, %(options)s, %(results)s, %(at)s)
    ON CONFLICT (id) DO UPDATE
        SET question = excluded.question, options = excluded.options,
            results = excluded.results, defined_us = excluded.defined_us
        WHERE excluded.defined_us > p.defined_us
    RETURNING id
)
INSERT INTO tallies (poll, option)
SELECT id, unnest(%(option_ids)s::text[]) FROM defined
ON CONFLICT DO NOTHING
"""
_OPEN = """
UPDATE poll_state SET current = %(poll)s, last = %(poll)s, changed_us = %(at)s
WHERE changed_us < %(at)s
"""
_CLOSE = """
UPDATE poll_state SET current = NULL, changed_us = %(at)s
WHERE current = %(poll)s AND changed_us < %(at)s
"""
_AUDIT = """
INSERT INTO audit_log (action, actor, detail, event_key) VALUES (%s, %s, %s, %s)
ON CONFLICT (event_key) DO NOTHING
"""
AUDIT_ACTIONS = {"poll": "define poll", "open": "open poll", "close": "close poll"}


async def define_poll(conn: AsyncConnection[TupleRow], event: PollEvent) -> None:
    poll = event.definition
    assert poll is not None
    await conn.execute(_DEFINE, {
        "poll": poll.id, "question": poll.question, "options": Jsonb(poll.options.as_list()),
        "results": poll.results, "at": event.at_us, "option_ids": list(poll.options.ids)})


async def apply_poll_events(conn: AsyncConnection[TupleRow],
                            events: Sequence[PollEvent]) -> None:
    """Apply the actions in their queue order, inside the caller's transaction."""
    for event in events:
        if event.action == "poll":
            await define_poll(conn, event)
        else:
            await conn.execute(_OPEN if event.action == "open" else _CLOSE,
                               {"poll": event.poll, "at": event.at_us})
        detail = {"poll": event.poll, "at_us": event.at_us,
                  **(event.definition.as_dict() if event.definition else {})}
        await conn.execute(_AUDIT, (AUDIT_ACTIONS[event.action], event.actor, Jsonb(detail),
                                    f"{event.action}:{event.poll}:{event.at_us}"))
