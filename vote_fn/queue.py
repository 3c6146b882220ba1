"""Pushing votes onto the Redis queue, coalescing concurrent requests into one round trip.

While one push is in flight, votes of other requests wait in a list; the next push
carries all of them. At low load every vote gets its own push at once; under load
one round trip carries many votes. Each request is answered only after the push
that carried its vote succeeded, so an acknowledged vote is always in Redis.

A push is one script that first checks that the votes' poll is the open one (else
nothing is pushed: a 409, vote_fn/polls.py opens and closes polls), then, with limits,
checks each vote against the limit it is charged to (vote_fn/ratelimit.py), and pushes
the votes that pass. The votes of one round trip are for one poll but at the moment a
poll changes, when those of each poll go in a script call of their own. A round trip
carries at most as many votes as fit in one command under ElastiCache's argument limit
(common/commands.py); the rest wait for the next.

Each vote must be held by Redis within ``deadline_s`` of its push, or its request gets
a TimeoutError (a 503). One timer per round trip enforces it: a round trip is given up
at the deadline of the oldest vote it carries. Votes are sent in arrival order, so a
round trip never runs past the deadline of a vote still waiting for the next one, and
no vote waits longer than its own deadline. (A timer per vote cost ~13 % of vote_fn's
throughput under load.) The client's own timeout must end a round trip before that
timer does: only its own errors make the cluster client read the slot map again, so a
deadline that fires first keeps the pushes going to a primary that hangs after its
replica took over (common/redis_client.py). vote_fn's settings bound the client's
timeout to half the deadline: a round trip starts with at least that much left.

With ``wait`` (VOTE_WAIT_REPLICAS) the round trip also waits for replicas to hold the
votes before they are acknowledged: WAIT follows the script in one pipeline. WAIT
counts the replicas that hold the writes of its own connection, so it must follow the
push on that connection: redis-py's cluster pipeline sends both to the node that holds
the queue (``target_nodes``) on one of its connections, and is told to follow no
redirection (it would send the push alone, to another node). Nor may the client retry
it: a retried cluster pipeline sends each command where it would go on its own, WAIT
to the client's default node, which would confirm a push it never saw; vote_fn opens
its client without retries when it waits. Too few replicas in time (WAIT's own timeout
is half the client's) is a 503 whose votes are queued on the primary: they may still be
counted, or be lost with the primary (RELIABILITY.md).

``check()`` makes the same round trip with no votes: /healthz answers what a push would.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from redis.asyncio import RedisCluster
from redis.exceptions import RedisError

from common import keys
from common.commands import script_room
from common.redis_client import RedisClient
from vote_fn.ratelimit import CHECK_AND_PUSH, CHECK_AND_PUSH_ARGS, Charge, Limits, RateLimited

DEADLINE_S = 0.5  # a vote not held by Redis by then is answered 503 (the promise: < 1 s)
POLL_CLOSED = -1  # what the scripts answer when the votes' poll is not open

# KEYS: queue, open poll. ARGV: the poll, then the votes. -1 if the poll is not open.
PUSH_IF_OPEN = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
for i = 2, #ARGV, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 0
"""
# Votes per round trip: without limits one argument per vote; with them two, and at worst
# a key of its own.
PLAIN_MAX_VOTES = script_room(2, 1)
LIMITED_MAX_VOTES = script_room(2, CHECK_AND_PUSH_ARGS) // 3


class PollClosed(Exception):
    """The vote's poll is not open (any more): nothing was queued."""


class NotReplicated(RedisError):
    """Fewer replicas than asked for confirmed the round trip in time. Its votes are
    queued on the primary: they may still be counted, or lost if the primary dies."""


class ReplicaWait(NamedTuple):
    replicas: int  # replicas that must hold a vote before it is acknowledged
    timeout_ms: int  # WAIT's own timeout: below the client's, so WAIT answers first


class Waiting(NamedTuple):
    payload: bytes
    poll: str
    charge: Charge | None  # what the limits charge the vote to; None: nothing
    deadline: float  # the event loop's clock
    done: asyncio.Future[None]


class VoteQueue:
    def __init__(self, redis: RedisClient, limits: Limits | None = None,
                 deadline_s: float = DEADLINE_S, wait: ReplicaWait | None = None) -> None:
        self._redis = redis
        self._limits = limits
        self._deadline_s = deadline_s
        self._wait = wait
        self._source = CHECK_AND_PUSH if limits else PUSH_IF_OPEN
        self._push = redis.register_script(self._source)
        self._limit_args = limits.script_args() if limits else ()
        self._max_votes = LIMITED_MAX_VOTES if limits else PLAIN_MAX_VOTES  # per round trip
        self._waiting: list[Waiting] = []
        self._pusher: asyncio.Task[None] | None = None

    async def push(self, payload: bytes, poll: str, voter: str | None = None,
                   address: str = "") -> None:
        """Return once Redis holds the vote; raise PollClosed if ``poll`` is not open,
        RateLimited if the limit the vote is charged to (``voter``, the one a genuine
        cookie proves, else the new voters of the client ``address``) refuses it,
        TimeoutError if Redis has not answered within the deadline, or the Redis error."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        charge = self._limits.charge(voter, address) if self._limits else None
        self._waiting.append(Waiting(payload, poll, charge, loop.time() + self._deadline_s,
                                     done))
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_waiting())
        await done

    async def _push_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:self._max_votes]
            del self._waiting[:self._max_votes]
            try:
                async with asyncio.timeout_at(batch[0].deadline):  # the oldest vote's
                    waits = await self._send(batch)
            except BaseException as error:
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(error)
                if not isinstance(error, Exception):
                    raise
            else:
                for waiting, wait_us in zip(batch, waits, strict=True):
                    if waiting.done.done():
                        continue
                    if wait_us == POLL_CLOSED:
                        waiting.done.set_exception(PollClosed(waiting.poll))
                    elif wait_us:
                        new_voter = waiting.charge is not None and waiting.charge.sign < 0
                        waiting.done.set_exception(RateLimited(wait_us, new_voter))
                    else:
                        waiting.done.set_result(None)

    async def _send(self, batch: list[Waiting]) -> list[int]:
        """Push the batch; for each vote 0 if pushed, POLL_CLOSED, or the µs it must wait."""
        poll = batch[0].poll
        if any(waiting.poll != poll for waiting in batch):  # a poll changed meanwhile
            answers: dict[int, int] = {}
            for each in {waiting.poll for waiting in batch}:
                part = [n for n, waiting in enumerate(batch) if waiting.poll == each]
                waits = await self._send([batch[n] for n in part])
                answers.update(zip(part, waits, strict=True))
            return [answers[n] for n in range(len(batch))]
        limit_keys: dict[str, int] = {}
        args: list[bytes | str | int] = [poll, *self._limit_args]
        for waiting in batch:
            if self._limits is None:
                args.append(waiting.payload)
                continue
            index = 0
            if (charge := waiting.charge) is not None:
                index = limit_keys.setdefault(charge.key, len(limit_keys) + 3) * charge.sign
            args += [index, waiting.payload]
        answer = await self._round_trip([keys.QUEUE, keys.OPEN_POLL, *limit_keys], args)
        if answer == POLL_CLOSED:
            return [POLL_CLOSED] * len(batch)
        if self._limits is None:
            return [0] * len(batch)
        return [int(wait) for wait in answer]

    async def check(self) -> None:
        """Return once a round trip like a push's, pushing nothing, went through in time;
        raise as a push would (RedisError, NotReplicated, TimeoutError)."""
        async with asyncio.timeout(self._deadline_s):
            await self._round_trip([keys.QUEUE, keys.OPEN_POLL], ["", *self._limit_args])

    async def _round_trip(self, script_keys: list[str], args: list[bytes | str | int]) -> Any:
        """The script's answer; with ``wait``, once the replicas hold what it pushed."""
        if self._wait is None:
            return await self._push(keys=script_keys, args=args)
        push = ("EVAL", self._source, len(script_keys), *script_keys, *args)
        wait = ("WAIT", self._wait.replicas, self._wait.timeout_ms)
        if isinstance(self._redis, RedisCluster):
            answer, replicas = await self._on_queue_node(push, wait)
        else:
            # Not a transaction: inside MULTI, WAIT answers at once, without waiting.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.execute_command(*push)
                pipe.execute_command(*wait)
                answer, replicas = await pipe.execute()
        if replicas < self._wait.replicas:
            raise NotReplicated(f"{replicas} of {self._wait.replicas} replicas confirmed the "
                                f"push within {self._wait.timeout_ms} ms")
        return answer

    async def _on_queue_node(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send ``commands`` in one pipeline on one connection of the node that holds the
        queue; after a failure, read the slot map again (as the client does after its own
        errors) before the next round trip."""
        cluster = self._redis
        assert isinstance(cluster, RedisCluster)
        try:
            await cluster.initialize()  # a no-op unless the slot map is to be read again
            node = cluster.get_node_from_key(keys.QUEUE)
            pipe = cluster.pipeline()
            for command in commands:
                pipe.execute_command(*command, target_nodes=node)
            return await pipe.execute(allow_redirections=False)
        except RedisError:
            await cluster.aclose()  # the client reads the slot map again on its next use
            raise
