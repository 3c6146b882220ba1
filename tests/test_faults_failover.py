"""Failover without waiting for the dead: a real Valkey cluster (three primaries, a replica
each) loses the primary that holds the queue, frozen (SIGSTOP: a hung host, which answers
nothing and refuses nothing) or killed, under a steady vote load. vote_fn answers 503
with Retry-After for no longer than the replica's promotion plus a second, then takes
votes again without a restart, and its /healthz says so at the same times; the worker
drains by itself, and its /readyz is 503 while the queue's node is gone; no acknowledged
vote is lost or counted twice."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2 as httpx
import psycopg
import pytest

from common import keys
from common.settings import SettingsError
from support.checker import assert_exact, check, final_read
from support.cluster import Cluster
from support.functions import FunctionProcess, tick
from support.load import VoteLoad
from support.servers import ServerProcess
from support.stores import drained, store_client
from support.waits import wait_for, wait_until
from vote_fn.queue import DEADLINE_S
from vote_fn.settings import VoteSettings

Conn = psycopg.Connection[tuple[object, ...]]
ACKS_PER_PHASE = 1000  # acknowledged votes before the fault, and again after the promotion
FROZEN_S = 10  # a frozen primary stays so far past its replica's promotion
RECOVERY_S = 1.0  # the promise: no 503 later than this after the promotion
IN_FLIGHT_S = 0.5  # a request sent before the fault may still be answered by then


@dataclass(frozen=True)
class Call:
    sent: float  # time.monotonic() before the call: it left then or later
    answered: float  # and after it: the answer came then or earlier
    result: str


@dataclass
class Poller:
    """Calls ``once`` in a thread of its own until stopped, recording each call. (A busy
    test process may run the thread late: only these bounds hold.)"""

    once: Callable[[], str]
    interval_s: float
    seen: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            result = self.once()
            self.seen.append(Call(sent, time.monotonic(), result))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(90)


def health_of(function: FunctionProcess, path: str = "/healthz") -> Callable[[], str]:
    def once() -> str:
        try:
            response = httpx.get(f"{function.url}{path}", timeout=5)
        except httpx.TransportError as error:
            return type(error).__name__
        missing = response.status_code == 503 and "retry-after" not in response.headers
        return f"{response.status_code}{' without Retry-After' if missing else ''}"
    return once


def ticks_of(worker: FunctionProcess) -> Callable[[], str]:
    """One scheduled drain; its status and how many entries it claimed."""
    def once() -> str:
        status, report = tick(worker)
        return f"{status} claimed={report.get('claimed', 0)}"
    return once


def failover_env(function_env: dict[str, str], cluster: Cluster,
                 *shard: ServerProcess) -> dict[str, str]:
    """The functions start from a node outside the shard (in the cloud, the service's one
    endpoint). A drain that the fault cuts off leaves its claim to a later one once its
    lease expires: 1 s here, not the default 30 s."""
    return {**function_env, "REDIS_URL": cluster.url_avoiding(*shard), "REDIS_CLUSTER": "true",
            "WORKER_LEASE_SECONDS": "1"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster.start(tmp_path / "cluster") as started:
        yield started


@dataclass
class Failover:
    fault_at: float
    promoted_at: float
    vote_errors: list[float]  # when each vote was answered with anything but 202
    accepted_again: float  # when the first vote after the last of those was acknowledged
    health: list[Call]
    ticks: list[Call]
    readiness: list[Call]  # the worker's /readyz

    def summary(self, fault: str, load: VoteLoad) -> str:
        health_errors = [call.answered for call in self.health if call.result != "200"]
        not_ready = [call.answered for call in self.readiness if call.result != "200"] or [
            math.nan]
        first, last = self.vote_errors[0], self.vote_errors[-1]
        return (f"failover {fault}: promoted {self.promoted_at - self.fault_at:.2f} s after "
                f"the fault; votes refused from {first - self.fault_at:.2f} s to "
                f"{last - self.fault_at:.2f} s ({last - self.promoted_at:+.2f} s from the "
                f"promotion), accepted again from {self.accepted_again - self.fault_at:.2f} s "
                f"({self.accepted_again - self.promoted_at:+.2f} s); /healthz 503 from "
                f"{health_errors[0] - self.fault_at:.2f} s to "
                f"{health_errors[-1] - self.fault_at:.2f} s; worker /readyz 503 from "
                f"{not_ready[0] - self.fault_at:.2f} s to {not_ready[-1] - self.fault_at:.2f} s; "
                f"client outcomes "
                f"{dict(load.statuses)}")


async def vote_through_a_failover(cluster: Cluster, primary: ServerProcess,
                                  replica: ServerProcess, vote: FunctionProcess,
                                  worker: FunctionProcess, load: VoteLoad,
                                  fault: Callable[[], object],
                                  heal: Callable[[], object] | None) -> Failover:
    """Votes stream in; after ACKS_PER_PHASE acks ``fault`` hits ``primary``; the replica's
    promotion is timed; ``heal`` (if any) runs FROZEN_S after the fault; the stream stops
    ACKS_PER_PHASE acks after the promotion."""
    acked = load.history.acknowledged
    with Poller(health_of(vote), 0.05) as health, Poller(ticks_of(worker), 0.2) as ticks, \
            Poller(health_of(worker, "/readyz"), 0.2) as readiness:
        async with anyio.create_task_group() as group:
            group.start_soon(load.run)
            await wait_for(lambda: len(acked) >= ACKS_PER_PHASE, 60, "votes acknowledged")
            fault_at = time.monotonic()
            await anyio.to_thread.run_sync(fault)
            await anyio.to_thread.run_sync(lambda: wait_until(
                lambda: cluster.promoted(replica), 30, "the replica promoted", interval_s=0.02))
            promoted_at = cluster.promoted_at(replica) - (time.time() - time.monotonic())
            after = len(acked)
            await wait_for(lambda: len(acked) >= after + ACKS_PER_PHASE, 60,
                           "votes acknowledged after the promotion")
            if heal is not None:
                await anyio.sleep(fault_at + FROZEN_S - time.monotonic())
                await anyio.to_thread.run_sync(heal)
            load.stopping.set()
        # The worker, ticking as the scheduler does, drains what was queued by itself.
        with store_client({"REDIS_URL": cluster.url_avoiding(primary), "REDIS_CLUSTER": "true"}
                          ) as client:
            await anyio.to_thread.run_sync(lambda: wait_until(
                lambda: drained(client), 60, "the queue drained by the worker alone"))
    errors = [t for t, status in load.answers if status != "202" and t >= fault_at]
    assert errors, "no vote was refused: the fault did not reach vote_fn"
    accepted_again = min(t for t, status in load.answers
                         if status == "202" and t > errors[-1])
    return Failover(fault_at, promoted_at, errors, accepted_again, health.seen, ticks.seen,
                    readiness.seen)


def assert_recovered_at_the_promotion(failover: Failover, load: VoteLoad) -> None:
    promoted_at = failover.promoted_at
    assert set(load.statuses) <= {"202", "503"}, load.statuses  # each 503 with Retry-After
    # When the last refused vote was answered: it was sent earlier still.
    assert failover.vote_errors[-1] <= promoted_at + RECOVERY_S, \
        f"votes refused until {failover.vote_errors[-1] - promoted_at:.2f} s after the promotion"
    assert failover.accepted_again <= promoted_at + RECOVERY_S, \
        f"no vote accepted until {failover.accepted_again - promoted_at:.2f} s after it"
    health = [call for call in failover.health if call.sent >= failover.fault_at + IN_FLIGHT_S]
    assert {call.result for call in health} <= {"200", "503"}, health
    # Health said 503 while no vote could be queued, and 200 once votes could be again.
    assert all(call.result == "503" for call in health if call.answered <= promoted_at), health
    assert all(call.result == "200" for call in health
               if call.sent >= promoted_at + RECOVERY_S), health
    # The worker drained again by itself once the replica had taken over: a tick sent after
    # the fault (it could claim from the replica only) claimed votes and answered after the
    # promotion. (It may have been sent a moment before the promotion and waited it out.)
    assert any(call.result.startswith("200") and not call.result.endswith("claimed=0")
               for call in failover.ticks
               if call.sent >= failover.fault_at + IN_FLIGHT_S and call.answered > promoted_at
               ), failover.ticks
    # The worker's readiness looked at the queue's own node: not ready while it was gone
    # (a PING to some other node would have said 200 throughout), ready again after.
    readiness = failover.readiness
    assert any(call.result == "503" for call in readiness
               if call.sent >= failover.fault_at + IN_FLIGHT_S and call.answered <= promoted_at
               ), readiness
    assert readiness[-1].result == "200", readiness


@pytest.mark.anyio
async def test_a_frozen_queue_primary_costs_503s_only_until_its_replica_takes_over(
        cluster: Cluster, function_env: dict[str, str], db: Conn, tmp_path: Path) -> None:
    """SIGSTOP of the queue's primary for 10 s: 503s end within a second of the
    promotion (~3 s in), long before the old primary wakes up."""
    primary, replica = cluster.shard_of(keys.QUEUE)
    env = failover_env(function_env, cluster, primary, replica)
    assert primary.process is not None
    with FunctionProcess("vote", env, tmp_path) as vote, \
            FunctionProcess("worker", env, tmp_path) as worker:
        load = VoteLoad(vote.url)
        failover = await vote_through_a_failover(
            cluster, primary, replica, vote, worker, load,
            lambda: primary.process.send_signal(signal.SIGSTOP),  # type: ignore[union-attr]
            lambda: primary.process.send_signal(signal.SIGCONT))  # type: ignore[union-attr]
    print(failover.summary("SIGSTOP", load))
    assert_recovered_at_the_promotion(failover, load)
    assert failover.vote_errors[-1] < failover.fault_at + FROZEN_S  # not waiting for the dead

    outcome = check(load.history, final_read(env))
    print(outcome.summary("failover, queue primary frozen"))
    assert_exact(outcome)


@pytest.mark.anyio
async def test_a_killed_queue_primary_costs_503s_only_until_its_replica_takes_over(
        cluster: Cluster, function_env: dict[str, str], db: Conn, tmp_path: Path) -> None:
    """SIGKILL of the queue's primary: 503s end within a second of the promotion."""
    primary, replica = cluster.shard_of(keys.QUEUE)
    env = failover_env(function_env, cluster, primary, replica)
    with FunctionProcess("vote", env, tmp_path) as vote, \
            FunctionProcess("worker", env, tmp_path) as worker:
        load = VoteLoad(vote.url)
        failover = await vote_through_a_failover(cluster, primary, replica, vote, worker, load,
                                                 primary.kill, None)
    print(failover.summary("SIGKILL", load))
    assert_recovered_at_the_promotion(failover, load)

    outcome = check(load.history, final_read(env))
    print(outcome.summary("failover, queue primary killed"))
    assert_exact(outcome)



def test_vote_fns_redis_timeout_ends_a_round_trip_before_its_deadline() -> None:
    """The client's own timeout, which makes the cluster client read its slot map again,
    must come before the push's deadline gives the round trip up: vote_fn's default is
    below half the deadline, and a larger REDIS_TIMEOUT_SECONDS stops the start."""
    environ = {"REDIS_URL": "redis://127.0.0.1:1/0", "VOTE_SECRET": "x" * 32}
    assert VoteSettings.from_env(environ).redis.timeout_s <= DEADLINE_S / 2
    with pytest.raises(SettingsError, match=r"REDIS_TIMEOUT_SECONDS=0\.5 is out of range"):
        VoteSettings.from_env({**environ, "REDIS_TIMEOUT_SECONDS": "0.5"})
