"""The polls as vote_fn serves them, kept in Valkey (vote_fn's one store): each poll's
definition, and which one is open.

Every presenter's action is one script that changes the keys AND queues the matching event
for the worker (common/event.py), so PostgreSQL learns of it in order with the votes: a poll
is defined before a vote in it can be queued, and a vote is queued only while its poll is
open (the push checks it in its own round trip: vote_fn/queue.py). The events' time is
Valkey's clock, in µs. The first poll comes from the settings, which the worker reads too:
vote_fn keeps it stored in Valkey as they say (also after the store lost its data), and
queues nothing for it.

In-process, the definitions are cached (a presenter's polls never change; the first poll
changes only with the settings, at a start) and the open poll is read again every
``REFRESH_S``: a page follows a change within that plus its own polling.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import orjson
from redis.exceptions import RedisError

from common import keys
from common.polls import Poll, poll_from_dict
from common.redis_client import RedisClient
from common.tasks import stop

log = logging.getLogger("vote_fn.polls")
REFRESH_S = 0.5

# Each script takes the time once and stamps its events with it (and one µs later for a
# second event); it returns what the caller needs to answer.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function event(kind, poll, at, extra)
  return string.format('{"type":"%s","poll":"%s","ts":%d,"actor":%s%s}', kind, poll, at,
                       cjson.encode(ARGV[1]), extra or '')
end
"""

# KEYS: polls, open. ARGV: the first poll's id, its definition (JSON, without its first
# brace), '1' to keep it open (no presenter). Keeps it stored as the settings say, opens it
# when no presenter runs the polls or none was ever stored (a new deployment, or a store
# that lost its data), and returns the open poll's id. Writes nothing when all is so.
_FIRST_AND_OPEN = """
local fresh = redis.call('HLEN', KEYS[1]) == 0
local definition = '{' .. ARGV[2]
if redis.call('HGET', KEYS[1], ARGV[1]) ~= definition then
  redis.call('HSET', KEYS[1], ARGV[1], definition)
end
local open = redis.call('GET', KEYS[2])
if (fresh or ARGV[3] == '1') and open ~= ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1])
  open = ARGV[1]
end
return open
"""

# KEYS: polls, open, queue. ARGV: actor, the new poll's id, its definition (as above).
_CREATE = _NOW + """
if redis.call('HSETNX', KEYS[1], ARGV[2], '{' .. ARGV[3]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[3], event('poll', ARGV[2], now, ',' .. ARGV[3]:sub(1, -2)))
return 1
"""

# KEYS: polls, open, queue. ARGV: actor, poll id. Opens it, closing the one open before.
# Returns 0 for an unknown poll.
_OPEN = _NOW + """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return 0
end
local before = redis.call('GET', KEYS[2])
if before and before ~= ARGV[2] then
  redis.call('LPUSH', KEYS[3], event('close', before, now))
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], event('open', ARGV[2], now + 1))
return 1
"""

# KEYS: polls, open, queue. ARGV: actor, poll id. Returns 0 for an unknown poll.
_CLOSE = _NOW + """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return 0
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
end
redis.call('LPUSH', KEYS[3], event('close', ARGV[2], now))
return 1
"""


class UnknownPoll(LookupError):
    """No poll has that id."""


def _definition(poll: Poll) -> str:
    """The poll's definition as stored, without its first brace (the scripts splice it
    into the event, and put the brace back for the stored copy)."""
    document = poll.as_dict()
    del document["poll"]
    return orjson.dumps(document).decode()[1:]


class PollBook:
    """The polls vote_fn serves. ``async with`` defines the first poll as the settings say
    and keeps the open one fresh in the background."""

    def __init__(self, redis: RedisClient, first: Poll, *, presenter: bool) -> None:
        self._redis = redis
        self._first = first
        self._presenter = presenter  # False: the first poll is the only one, always open
        self._definitions: dict[str, Poll] = {first.id: first}
        self._open: str | None = None
        self._scripts = {name: redis.register_script(source) for name, source in (
            ("first_and_open", _FIRST_AND_OPEN), ("create", _CREATE), ("open", _OPEN),
            ("close", _CLOSE))}
        self._refresher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PollBook:
        try:
            await self.refresh()
        except RedisError as error:  # the store is down: the refresher tries again
            log.warning("the polls could not be read yet: %s", error)
        self._refresher = asyncio.create_task(self._keep_fresh())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._refresher is not None
        await stop(self._refresher)

    @property
    def open(self) -> Poll | None:
        """The open poll, as last read (at most REFRESH_S ago)."""
        return self._definitions.get(self._open) if self._open else None

    async def get(self, poll_id: str) -> Poll:
        """A poll by its id; raises UnknownPoll or RedisError."""
        if (poll := self._definitions.get(poll_id)) is not None:
            return poll
        raw = await self._redis.hget(keys.POLLS, poll_id)
        if raw is None:
            raise UnknownPoll(poll_id)
        poll = poll_from_dict(poll_id, orjson.loads(raw))
        self._definitions[poll_id] = poll
        return poll

    async def refresh(self) -> None:
        """Read which poll is open again, storing the first poll as the settings say if
        the store lacks it; raises RedisError."""
        open_id = await self._scripts["first_and_open"](
            keys=[keys.POLLS, keys.OPEN_POLL],
            args=[self._first.id, _definition(self._first), "0" if self._presenter else "1"])
        open_id = open_id.decode() if isinstance(open_id, bytes) else open_id
        if open_id is not None:
            try:
                await self.get(open_id)
            except UnknownPoll:  # only a hand-edited store could say so
                log.error("the open poll %r has no definition: taken as none open", open_id)
                open_id = None
        self._open = open_id

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except RedisError as error:
                log.debug("the open poll could not be read: %s", error)

    async def create(self, poll: Poll, actor: str) -> Poll:
        """A new poll (closed) with a new id; the id in ``poll`` is ignored."""
        while True:
            created = Poll(f"p-{secrets.token_hex(4)}", poll.question, poll.options,
                           poll.results)
            if await self._run("create", actor, created.id, _definition(created)):
                self._definitions[created.id] = created
                return created

    async def open_poll(self, poll_id: str, actor: str) -> None:
        if not await self._run("open", actor, poll_id):
            raise UnknownPoll(poll_id)
        self._open = poll_id

    async def close_poll(self, poll_id: str, actor: str) -> None:
        if not await self._run("close", actor, poll_id):
            raise UnknownPoll(poll_id)
        if self._open == poll_id:
            self._open = None

    async def _run(self, script: str, actor: str, *args: str) -> int:
        return int(await self._scripts[script](
            keys=[keys.POLLS, keys.OPEN_POLL, keys.QUEUE], args=[actor, *args]))
