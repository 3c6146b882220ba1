"""Claiming queued votes into a processing list owned by one drain, and giving them back.

A vote leaves Redis only after PostgreSQL has committed it: a drain moves a batch
atomically from the queue into its own processing list (renewing its lease), and
deletes that list only after the commit. If the drain dies, its lease expires and
the next drain moves the list back onto the queue. Every key shares the ``{votes}``
hash tag, so each script touches one cluster slot.
"""

from __future__ import annotations

import json
import time

from common import keys
from common.redis_client import RedisClient

# KEYS: queue, processing, lease, claims. ARGV: owner, lease_ms, count.
_CLAIM = """
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[3]), -1)
local n = #items
if n > 0 then
  redis.call('LTRIM', KEYS[1], 0, -n - 1)
  for i = 1, n, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, n)))
  end
end
return items
"""

# KEYS: processing, dead. ARGV: dead-letter entries. The batch is committed: drop it.
_RELEASE = """
local n = #ARGV
for i = 1, n, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, n)))
end
redis.call('DEL', KEYS[1])
return n
"""

# KEYS: queue, processing, lease, claims. ARGV: owner, force.
# Move an abandoned processing list back to the oldest end of the queue.
_GIVE_BACK = """
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return moved
"""


class Claims:
    """The queue operations of one drain invocation, identified by ``owner``."""

    def __init__(self, redis: RedisClient, owner: str, lease_s: float) -> None:
        self._redis = redis
        self.owner = owner
        self._lease_ms = max(1, int(lease_s * 1000))
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._keys = [keys.QUEUE, keys.processing(owner), keys.lease(owner), keys.CLAIMS]

    async def claim(self, count: int) -> list[bytes]:
        """Move up to ``count`` of the oldest votes into this drain's processing list."""
        items = await self._claim(keys=self._keys, args=[self.owner, self._lease_ms, count])
        return list(items)

    async def wait_for_one(self, timeout_s: float) -> bytes | None:
        """Block until a vote arrives (claiming it) or the timeout passes."""
        item = await self._redis.blmove(keys.QUEUE, keys.processing(self.owner),
                                        timeout_s, "RIGHT", "LEFT")  # type: ignore[arg-type]
        return item if isinstance(item, bytes) else None

    async def release(self, dead_letters: list[tuple[bytes, str]]) -> None:
        """The batch is committed: drop the processing list and dead-letter the rejects."""
        now_ms = time.time_ns() // 1_000_000
        entries = [
            json.dumps({"reason": reason, "at": now_ms,
                        "entry": raw.decode("utf-8", "backslashreplace")})
            for raw, reason in dead_letters
        ]
        await self._release(keys=[keys.processing(self.owner), keys.DEAD_LETTERS], args=entries)

    async def give_back(self) -> int:
        """Return this drain's uncommitted claim to the queue and drop the lease."""
        return int(await self._give_back(keys=self._keys, args=[self.owner, "1"]))

    async def recover_abandoned(self) -> int:
        """Return the claims of drains whose lease expired (they crashed or timed out)."""
        moved = 0
        for raw_owner in await self._redis.smembers(keys.CLAIMS):
            owner = raw_owner.decode() if isinstance(raw_owner, bytes) else str(raw_owner)
            if owner == self.owner:
                continue
            owner_keys = [keys.QUEUE, keys.processing(owner), keys.lease(owner), keys.CLAIMS]
            moved += max(0, int(await self._give_back(keys=owner_keys, args=[owner, "0"])))
        return moved
