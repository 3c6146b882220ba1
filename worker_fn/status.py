"""``python -m worker_fn status``: what an operator needs to see of the pipeline.

Queue depth, the batches claimed by drains (with their owner's lease), the
dead-letter count, and the last batch the worker committed.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from common import keys
from common.redis_client import RedisClient


async def pipeline_status(redis: RedisClient, pool: AsyncConnectionPool) -> dict[str, Any]:
    claims = []
    for member in sorted(await redis.smembers(keys.CLAIMS)):
        batch_id = member.decode() if isinstance(member, bytes) else str(member)
        lease_ms = await redis.pttl(keys.lease(keys.batch_owner(batch_id)))
        claims.append({"batch": batch_id, "votes": await redis.llen(keys.processing(batch_id)),
                       "lease_ms_left": max(int(lease_ms), 0)})
    status: dict[str, Any] = {
        "queued": await redis.llen(keys.QUEUE),
        "claims": claims,
        "dead_letters": await redis.llen(keys.DEAD_LETTERS),
    }
    try:
        async with pool.connection(timeout=3.0) as conn:
            cursor = await conn.execute(
                "SELECT last_batch_at, last_batch_votes, queued_at_last_look, worker_seen_at, "
                "(SELECT sum(votes) FROM tallies), (SELECT version FROM results_meta) "
                "FROM pipeline_status")
            row = await cursor.fetchone()
    except psycopg.Error as error:
        status["postgres"] = f"unavailable: {error}"
        return status
    if row is not None:
        status.update({
            "last_batch_at": row[0].isoformat() if row[0] else None,
            "last_batch_votes": row[1], "queued_at_last_look": row[2],
            "worker_seen_at": row[3].isoformat() if row[3] else None,
            "counted": int(row[4] or 0), "results_version": row[5],
        })
    return status
