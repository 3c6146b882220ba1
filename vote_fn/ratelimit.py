"""Vote limits, kept in Redis so that every vote instance shares them: votes per voter, and
new voters per client address.

A hall's audience shares one address (ARCHITECTURE.md, "Who votes from where"), so the
address alone cannot tell a hall from a script. What a script needs to move the tallies
is many voters, and a voter is a signed cookie that only vote_fn mints. So each vote is
charged to exactly one of two limits:

1. A vote with a genuine voter cookie is charged to its voter (``VOTE_RATE_LIMIT`` per
   window, up to as many at once): a person changing their mind, never a hall's worth.
2. Any other vote starts a voter (a new random one, or for a cookie-less client that names
   its own vote id, the voter derived from that id: one per vote id), and is charged to its
   client address, an IPv6 client to its /64 (``VOTE_NEW_VOTERS_LIMIT`` per window, up to
   ``VOTE_NEW_VOTERS_BURST`` at once).

Each limit is a generic cell rate algorithm (GCRA): a key holds the "theoretical arrival
time"; a vote is let through while that time is at most ``burst - 1`` intervals ahead of
now, and moves it one interval on. A refused vote costs nothing and says how long to wait.
With a steady ``per_window`` and a ``burst``, at most ``burst + per_window`` votes pass in
any one window, and ``burst`` at once: with the defaults a hall's 2,000 first votes at
once, and at most 3,000 new voters a minute from one address, however they are sent.

The checks run inside the script that pushes the votes (vote_fn/queue.py), so a limited
vote costs no extra round trip: one script call checks and pushes all the votes that
concurrent requests are waiting on. The keys share the queue's ``{votes}`` hash tag
because a script may only touch keys of one cluster slot.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from dataclasses import dataclass
from typing import NamedTuple

RATE_KEY_PREFIX = "{votes}:rate:"  # + a client address: its new voters
VOTER_KEY_PREFIX = "{votes}:voter:"  # + a voter id: its votes

# KEYS[1]: the queue; KEYS[2]: the open poll's id; KEYS[3..]: the limit keys of this
# batch's voters and addresses. ARGV[1]: the poll the votes are for (vote_fn/queue.py);
# ARGV[2], ARGV[3]: a voter's interval and burst; ARGV[4], ARGV[5]: an address's new
# voters' interval and burst (µs; the burst as a span of time: intervals times votes).
# ARGV[6..]: for each vote, the KEYS index of what it is charged to (positive: a voter,
# negative: an address's new voters, 0: nothing), then the vote itself.
# Returns -1 if the poll is not open (nothing is pushed or charged); else, for each vote in
# order, 0 if it was pushed, else the µs to wait before a retry.
# Times are whole µs: exact in Lua's doubles (up to 2^53, the year 2255).
CHECK_AND_PUSH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limits = {{tonumber(ARGV[2]), tonumber(ARGV[3])}, {tonumber(ARGV[4]), tonumber(ARGV[5])}}
local arrival, results, accepted = {}, {}, {}
for i = 6, #ARGV, 2 do
  local k = tonumber(ARGV[i])
  local wait = 0
  if k ~= 0 then
    local limit = limits[1]
    if k < 0 then
      k, limit = -k, limits[2]
    end
    local tat = arrival[k]
    if tat == nil then
      tat = math.max(tonumber(redis.call('GET', KEYS[k]) or 0), now)
    end
    wait = tat + limit[1] - now - limit[2]
    if wait <= 0 then
      tat = tat + limit[1]
    end
    arrival[k] = tat
  end
  if wait > 0 then
    results[#results + 1] = wait
  else
    accepted[#accepted + 1] = ARGV[i + 1]
    results[#results + 1] = 0
  end
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
CHECK_AND_PUSH_ARGS = 5  # the ARGV before the votes'


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_window: int  # the steady rate
    burst: int  # how many may come at once
    window_s: float

    @property
    def interval_us(self) -> int:
        return math.ceil(self.window_s * 1_000_000 / self.per_window)

    @property
    def burst_us(self) -> int:
        return self.interval_us * self.burst


class Charge(NamedTuple):
    """What one vote is charged to: a limit key, and the sign that tells the script which
    limit (1: a voter's, -1: an address's new voters)."""

    key: str
    sign: int


@dataclass(frozen=True, slots=True)
class Limits:
    voter: RateLimit
    new_voters: RateLimit | None = None  # per client address; None: not limited

    def charge(self, voter: str | None, address: str) -> Charge | None:
        """``voter``: the one a genuine cookie proves, else None (the vote starts one)."""
        if voter is not None:
            return Charge(VOTER_KEY_PREFIX + voter, 1)
        if self.new_voters is None:
            return None
        return Charge(rate_key(address), -1)

    def script_args(self) -> tuple[int, ...]:
        """CHECK_AND_PUSH's ARGV between the poll and the votes."""
        new_voters = self.new_voters or self.voter  # unused when None: nothing is charged to it
        return (self.voter.interval_us, self.voter.burst_us,
                new_voters.interval_us, new_voters.burst_us)


class RateLimited(Exception):
    """Too many votes from one voter, or too many new voters from one address; a retry
    may come after ``retry_after_s``."""

    def __init__(self, wait_us: int, new_voter: bool) -> None:
        super().__init__(f"rate limited for {wait_us} µs")
        self.retry_after_s = max(1, math.ceil(wait_us / 1_000_000))
        self.new_voter = new_voter


def rate_key(address: str) -> str:
    """The key of a client address's new voters. An IPv6 client is limited by its /64:
    one host commonly holds a whole /64 and could otherwise vote from each of its
    addresses."""
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
