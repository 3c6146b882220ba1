"""Claiming queued votes into processing lists owned by one drain, and giving them back.

A vote leaves Redis only after PostgreSQL has committed it: a drain moves a batch
atomically from the queue into a processing list of its own (one list per batch,
registered in the claims set, under the drain's lease), and deletes that list only
after the commit. If the drain dies, its lease expires and the next drain moves the
list back onto the queue. One list per batch lets a drain claim the next batch while
PostgreSQL applies the current one. Every key shares the ``{votes}`` hash tag, so
each script touches one cluster slot.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from common import keys
from common.commands import script_room
from common.redis_client import RedisClient

# KEYS: queue, processing, lease, claims. ARGV: batch id, lease_ms, count.
# Returns {queue length left, items}.
_CLAIM = """
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[3]), -1)
local n = #items
if n > 0 then
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('LTRIM', KEYS[1], 0, -n - 1)
  for i = 1, n, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, n)))
  end
end
return {redis.call('LLEN', KEYS[1]), items}
"""

# KEYS: lease, claims. ARGV: batch id, lease_ms. Registers a list before BLMOVE fills it.
_REGISTER = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: dead, claims, then one processing list per batch. ARGV: the batch ids (one per
# list), then dead-letter entries. The batches are committed: drop their lists (UNLINK
# frees them off Valkey's main thread) and set the rejects aside.
_RELEASE = """
local n = #KEYS - 2
for i = 1, n do
  redis.call('UNLINK', KEYS[i + 2])
  redis.call('SREM', KEYS[2], ARGV[i])
end
for i = n + 1, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return n
"""

# KEYS: queue, processing, lease, claims. ARGV: batch id, force.
# Move a batch's list back to the oldest end of the queue (unless its owner is alive).
_GIVE_BACK = """
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
"""


@dataclass
class Batch:
    id: str
    items: list[bytes]
    queued_after: int  # queue length left after this claim


class Claims:
    """The queue operations of one drain invocation, identified by ``owner``."""

    def __init__(self, redis: RedisClient, owner: str, lease_s: float) -> None:
        self._redis = redis
        self.owner = owner
        self._lease_ms = max(1, int(lease_s * 1000))
        self._claim = redis.register_script(_CLAIM)
        self._register = redis.register_script(_REGISTER)
        self._release = redis.register_script(_RELEASE)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._numbers = itertools.count()
        self.outstanding: set[str] = set()  # batches claimed and not yet released
        self.closed = False  # shutting down: claim nothing more

    def _keys(self, batch_id: str) -> list[str]:
        return [keys.QUEUE, keys.processing(batch_id), keys.lease(keys.batch_owner(batch_id)),
                keys.CLAIMS]

    def _new_id(self) -> str:
        return f"{self.owner}:{next(self._numbers)}"

    async def claim(self, count: int) -> Batch:
        """Move up to ``count`` of the oldest votes into a new processing list of ours
        (none once closed)."""
        batch_id = self._new_id()
        if self.closed:
            return Batch(batch_id, [], 0)
        self.outstanding.add(batch_id)
        depth, items = await self._claim(keys=self._keys(batch_id),
                                         args=[batch_id, self._lease_ms, count])
        if not items:
            self.outstanding.discard(batch_id)
        return Batch(batch_id, list(items), int(depth))

    async def wait_for_one(self, timeout_s: float) -> Batch | None:
        """Block until a vote arrives (claiming it) or the timeout passes."""
        if self.closed:
            return None
        batch_id = self._new_id()
        self.outstanding.add(batch_id)
        await self._register(keys=[keys.lease(self.owner), keys.CLAIMS],
                             args=[batch_id, self._lease_ms])
        item = await self._redis.blmove(keys.QUEUE, keys.processing(batch_id),
                                        timeout_s, "RIGHT", "LEFT")  # type: ignore[arg-type]
        if not isinstance(item, bytes):
            await self.give_back(batch_id)
            return None
        return Batch(batch_id, [item], 0)

    async def release(self, committed: Sequence[tuple[str, list[tuple[bytes, str]]]]) -> None:
        """These batches (id, rejected entries with reasons) are committed: drop their
        lists and dead-letter the rejects, in one round trip unless there are more
        rejects than one command may carry (common/commands.py). Then the rejects go
        first, in chunks, and the last call drops the lists: a drain that dies in between
        leaves its batches to be replayed, so a reject may be set aside twice, never lost."""
        now_ms = time.time_ns() // 1_000_000
        batch_ids = [batch_id for batch_id, _ in committed]
        entries = [
            json.dumps({"reason": reason, "at": now_ms,
                        "entry": raw.decode("utf-8", "backslashreplace")})
            for _, dead_letters in committed for raw, reason in dead_letters
        ]
        script_keys = [keys.DEAD_LETTERS, keys.CLAIMS, *map(keys.processing, batch_ids)]
        room = script_room(len(script_keys), len(batch_ids))
        while len(entries) > room:
            await self._release(keys=script_keys[:2], args=entries[:room])  # no batch: rejects
            del entries[:room]
        await self._release(keys=script_keys, args=[*batch_ids, *entries])
        self.outstanding.difference_update(batch_ids)

    async def give_back(self, batch_id: str) -> int:
        """Return one of our uncommitted batches to the queue."""
        moved = int(await self._give_back(keys=self._keys(batch_id), args=[batch_id, "1"]))
        self.outstanding.discard(batch_id)
        return moved

    async def give_back_all(self) -> int:
        """Return every batch we still hold and drop our lease (end of a drain, or a failure)."""
        moved = 0
        for batch_id in sorted(self.outstanding):
            moved += await self.give_back(batch_id)
        await self._redis.delete(keys.lease(self.owner))
        return moved

    async def recover_abandoned(self) -> int:
        """Return the batches of drains whose lease expired (they crashed or timed out)."""
        moved = 0
        for member in await self._redis.smembers(keys.CLAIMS):
            batch_id = member.decode() if isinstance(member, bytes) else str(member)
            if keys.batch_owner(batch_id) == self.owner:
                continue
            moved += max(0, int(await self._give_back(keys=self._keys(batch_id),
                                                      args=[batch_id, "0"])))
        return moved
