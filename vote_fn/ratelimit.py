"""Votes per client address, limited in Redis so every vote instance shares one count.

The limit is a generic cell rate algorithm (GCRA): a client may send ``votes`` at once,
then one every ``window / votes``; a refused vote costs nothing and says how long to
wait. Each client has one key holding its "theoretical arrival time", expiring when idle.

The check runs inside the script that pushes the votes (see vote_fn/queue.py), so a
limited vote costs no extra round trip: one script call checks and pushes all the votes
that concurrent requests are waiting on. The keys share the queue's ``{votes}`` hash tag
because a script may only touch keys of one cluster slot.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass

RATE_KEY_PREFIX = "{votes}:rate:"

# KEYS[1]: the queue; KEYS[2..]: one rate key per client in this batch.
# ARGV[1]: µs between votes at the steady rate; ARGV[2]: the burst, in µs (the window);
# ARGV[3..]: for each vote, the KEYS index of its client's key, then the vote itself.
# Returns, for each vote in order, 0 if it was pushed, else the µs to wait before a retry.
# Times are whole µs: exact in Lua's doubles (up to 2^53, the year 2255).
CHECK_AND_PUSH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local arrival, results, accepted = {}, {}, {}
for i = 3, #ARGV, 2 do
  local k = tonumber(ARGV[i])
  local tat = arrival[k]
  if tat == nil then
    tat = math.max(tonumber(redis.call('GET', KEYS[k]) or 0), now)
  end
  if tat + interval - now > burst then
    results[#results + 1] = tat + interval - now - burst
  else
    tat = tat + interval
    accepted[#accepted + 1] = ARGV[i + 1]
    results[#results + 1] = 0
  end
  arrival[k] = tat
end
for k, tat in pairs(arrival) do
  if tat > now then
    redis.call('SET', KEYS[k], string.format('%d', tat), 'PX',
               string.format('%d', math.ceil((tat - now) / 1000)))
  end
end
for i = 1, #accepted, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(accepted, i, math.min(i + 999, #accepted)))
end
return results
"""


@dataclass(frozen=True, slots=True)
class RateLimit:
    votes: int  # a client's votes per window (and its burst)
    window_s: float

    @property
    def interval_us(self) -> int:
        return math.ceil(self.window_s * 1_000_000 / self.votes)

    @property
    def burst_us(self) -> int:
        return self.interval_us * self.votes


class RateLimited(Exception):
    """The client sent too many votes; it may retry after ``retry_after_s``."""

    def __init__(self, wait_us: int) -> None:
        super().__init__(f"rate limited for {wait_us} µs")
        self.retry_after_s = max(1, math.ceil(wait_us / 1_000_000))


def rate_key(address: str) -> str:
    """The key of a client address. An IPv6 client is limited by its /64: one host
    commonly holds a whole /64 and could otherwise vote from each of its addresses."""
    if ":" not in address:  # IPv4, as the server or common/proxies.py wrote it
        return RATE_KEY_PREFIX + address
    return _ipv6_key(address)


@functools.lru_cache(maxsize=4096)
def _ipv6_key(address: str) -> str:
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return RATE_KEY_PREFIX + address
    if ip.ipv4_mapped is not None:
        return RATE_KEY_PREFIX + str(ip.ipv4_mapped)
    return RATE_KEY_PREFIX + str(ipaddress.IPv6Network((ip, 64), strict=False))
