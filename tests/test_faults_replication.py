"""Acknowledged means replicated, on request (VOTE_WAIT_REPLICAS). Replication is
asynchronous: a primary that dies with votes its replica never got loses them, though it
acknowledged them. The kill -9 test makes that window certain instead of a matter of
microseconds: the replica is frozen and its link to the primary cut before the votes,
and the primary is killed right after them."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest
import redis

from common import keys
from support.checker import History, assert_exact, check, final_read
from support.cluster import Cluster
from support.functions import FunctionProcess
from support.http import http_get, no_cookies
from support.processes import wait_ready
from support.servers import ServerProcess
from support.waits import wait_until

Conn = psycopg.Connection[tuple[object, ...]]
VOTES = 40  # before the replication is cut, and again after


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster.start(tmp_path / "cluster") as started:
        yield started


def vote(client: httpx.Client, history: History, option: str) -> int:
    """One new voter's vote, recorded as the checker needs it; the status."""
    vote_id = uuid.uuid4().hex
    response = client.post("/api/vote", json={"vote": option, "vote_id": vote_id})
    if response.status_code == 202:
        history.acknowledged[vote_id] = option
    else:
        assert response.headers["retry-after"], response
        history.indeterminate[vote_id] = option
    return response.status_code


def offsets(cluster: Cluster, primary: ServerProcess, replica: ServerProcess) -> tuple[int, int]:
    """How far the primary has written its replication stream, and the replica applied it."""
    with cluster.client(primary) as client:
        written = client.info("replication")["master_repl_offset"]
    with cluster.client(replica) as client:
        applied = client.info("replication")["slave_repl_offset"]
    return int(written), int(applied)


def cut_replication(cluster: Cluster, primary: ServerProcess, replica: ServerProcess) -> None:
    """Freeze the replica once it holds everything, then close its link on the primary's
    side: what the primary writes from now on reaches no replica (a replica that reconnects
    catches up from the primary's backlog, so it must not be able to)."""
    wait_until(lambda: len(set(offsets(cluster, primary, replica))) == 1, 10,
               "the replica holding everything the primary wrote")
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)
    with cluster.client(primary) as client:
        assert client.execute_command("CLIENT", "KILL", "TYPE", "replica") == 1


@pytest.mark.parametrize("wait_replicas", [0, 1])
def test_a_primary_killed_right_after_acknowledging_loses_votes_unless_they_wait_for_a_replica(
        wait_replicas: int, cluster: Cluster, function_env: dict[str, str], db: Conn,
        tmp_path: Path) -> None:
    """The replica stops receiving, votes come in, the queue's primary is killed and the
    replica takes over. Without waiting, every vote acknowledged after the cut is lost;
    with VOTE_WAIT_REPLICAS=1 those votes got 503 (an indeterminate outcome: here lost
    with the primary) and not one acknowledged vote is lost."""
    primary, replica = cluster.shard_of(keys.QUEUE)
    env = {**function_env, "REDIS_URL": cluster.url_avoiding(primary, replica),
           "REDIS_CLUSTER": "true", "VOTE_WAIT_REPLICAS": str(wait_replicas)}
    history = History()
    with FunctionProcess("vote", env, tmp_path) as vote_fn, \
            httpx.Client(base_url=vote_fn.url, timeout=10, cookies=no_cookies()) as client:
        before = [vote(client, history, "cats") for _ in range(VOTES)]
        cut_replication(cluster, primary, replica)
        acked_before_cut = set(history.acknowledged)
        after = [vote(client, history, "dogs") for _ in range(VOTES)]
        primary.kill()
    assert replica.process is not None
    replica.process.send_signal(signal.SIGCONT)
    wait_until(lambda: cluster.promoted(replica), 30, "the replica promoted")
    wait_until(cluster.settled, 30, "the cluster serving every slot again")

    outcome = check(history, final_read(env))
    print(outcome.summary(f"queue primary killed after the replication was cut, "
                          f"VOTE_WAIT_REPLICAS={wait_replicas}"))
    assert before == [202] * VOTES
    if wait_replicas:
        assert after == [503] * VOTES
        assert_exact(outcome)
    else:
        assert after == [202] * VOTES
        assert outcome.lost == set(history.acknowledged) - acked_before_cut
        assert outcome.duplicated == outcome.unexpected == frozenset(), outcome.explain()


def test_a_vote_no_replica_confirms_is_a_503_and_may_still_be_counted(
        function_env: dict[str, str], redis_client: redis.Redis, db: Conn,
        tmp_path: Path) -> None:
    """A Valkey without a replica (the session's standalone one) and VOTE_WAIT_REPLICAS=1:
    each vote gets a 503 with Retry-After once WAIT gives up, and so does /healthz; the
    votes are queued all the same, and the drain counts them."""
    env = {**function_env, "VOTE_WAIT_REPLICAS": "1"}
    history = History()
    vote_fn = FunctionProcess("vote", env, tmp_path)
    # Its health is 503 from the start, rightly: wait for the page instead.
    wait_ready(vote_fn.spawn(), lambda: http_get(vote_fn.url)[0] == 200, "vote page",
               vote_fn.log_path)
    try:
        with httpx.Client(base_url=vote_fn.url, timeout=10, cookies=no_cookies()) as client:
            statuses = [vote(client, history, "cats") for _ in range(5)]
            health = client.get("/healthz")
    finally:
        vote_fn.stop()
    assert statuses == [503] * 5
    assert health.status_code == 503 and "replicas confirmed" in health.json()["redis"]
    assert redis_client.llen(keys.QUEUE) == 5

    outcome = check(history, final_read(env))
    assert outcome.indeterminate_counted == 5
    assert_exact(outcome)
