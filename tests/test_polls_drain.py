"""A presenter's polls reach PostgreSQL through the queue, in order with the votes: the
drain applies a poll before the votes cast in it, the latest action wins whatever order a
replay brings them in, each action is audited once, and result_fn shows the poll."""

from __future__ import annotations

import psycopg
import redis
from starlette.testclient import TestClient

from common.event import PollEvent, VoteEvent
from common.polls import Poll, parse_options
from result_fn.app import create_app
from result_fn.settings import ResultSettings
from support.functions import drain
from support.votes import push

Conn = psycopg.Connection[tuple[object, ...]]
QUIZ = Poll("p-quiz", "Which is the largest?", parse_options("sun:Sun,moon:Moon,earth:Earth"),
            "after_close")


def define(at_us: int, poll: Poll = QUIZ) -> PollEvent:
    return PollEvent("poll", poll.id, at_us, "tester", poll)


def test_a_poll_defined_and_opened_in_the_queue_counts_the_votes_cast_in_it(
        redis_client: redis.Redis, db: Conn, function_env: dict[str, str]) -> None:
    """Definition, opening and votes in one drain: the votes land in the new poll's tally,
    the first poll's stays as it was, and the new poll is the one shown."""
    votes = [VoteEvent(f"{n:032x}", f"voter-{n:012d}", option, 5_000 + n, QUIZ.id)
             for n, option in enumerate(["sun", "sun", "earth"])]
    push(redis_client, [define(1_000), PollEvent("open", QUIZ.id, 2_000, "tester"), *votes])
    drain(function_env)
    rows = db.execute("SELECT poll, option, votes FROM tallies WHERE votes <> 0 "
                      "ORDER BY poll, option").fetchall()
    assert rows == [("p-quiz", "earth", 1), ("p-quiz", "sun", 2)]
    assert db.execute("SELECT current, last FROM poll_state").fetchone() == ("p-quiz", "p-quiz")
    assert db.execute("SELECT question, results FROM polls WHERE id = 'p-quiz'").fetchone() == (
        QUIZ.question, "after_close")


def test_the_latest_action_wins_and_each_is_audited_once_however_often_replayed(
        redis_client: redis.Redis, db: Conn, function_env: dict[str, str]) -> None:
    """An opening replayed after a later closing (a claim handed back behind newer
    entries) does not reopen the poll; the audit log has each action once."""
    opened, closed = PollEvent("open", QUIZ.id, 2_000, "tester"), \
        PollEvent("close", QUIZ.id, 3_000, "tester")
    push(redis_client, [define(1_000), opened, closed])
    drain(function_env)
    push(redis_client, [define(1_000), opened])  # the same entries again, out of order
    drain(function_env)
    assert db.execute("SELECT current, last FROM poll_state").fetchone() == (None, "p-quiz")
    audited = db.execute("SELECT action, count(*) FROM audit_log WHERE actor = 'tester' "
                         "GROUP BY action ORDER BY action").fetchall()
    assert audited == [("close poll", 1), ("define poll", 1), ("open poll", 1)]


def test_a_vote_for_an_unknown_poll_or_option_is_dead_lettered(
        redis_client: redis.Redis, db: Conn, function_env: dict[str, str]) -> None:
    push(redis_client, [VoteEvent("a" * 32, "voter-000000000001", "sun", 5_000, "p-none"),
                        VoteEvent("b" * 32, "voter-000000000002", "pluto", 5_000, "first")])
    drain(function_env)
    reasons = sorted(str(entry) for entry in redis_client.lrange("{votes}:dead", 0, -1))
    assert len(reasons) == 2 and "unknown poll" in reasons[1] and "unknown option" in reasons[0]
    assert db.execute("SELECT count(*) FROM ballots").fetchone() == (0,)


def test_result_fn_hides_the_figures_of_an_open_after_close_poll_until_it_closes(
        redis_client: redis.Redis, db: Conn, function_env: dict[str, str],
        environ: dict[str, str]) -> None:
    """While open: the total, and null for each option; once closed: every figure, also as
    CSV; any poll by its id."""
    votes = [VoteEvent(f"{n:032x}", f"voter-{n:012d}", "moon", 5_000 + n, QUIZ.id)
             for n in range(3)]
    push(redis_client, [define(1_000), PollEvent("open", QUIZ.id, 2_000, "tester"), *votes])
    drain(function_env)
    with TestClient(create_app(ResultSettings.from_env(environ))) as client:
        shown = client.get("/api/results").json()
        assert shown["poll"] == "p-quiz" and shown["question"] == QUIZ.question
        assert shown["open"] is True and shown["total"] == 3
        assert [o["votes"] for o in shown["options"]] == [None, None, None]
        assert client.get("/api/polls/first/results").json()["poll"] == "first"
        assert client.get("/api/polls/p-nope/results").status_code == 404
        push(redis_client, [PollEvent("close", QUIZ.id, 9_000, "tester")])
        drain(function_env)
        closed = client.get("/api/results").json()
        assert closed["open"] is False and [o["votes"] for o in closed["options"]] == [0, 3, 0]
        csv_text = client.get("/api/polls/p-quiz/results.csv").text
    assert csv_text.splitlines() == ["option_id,label,votes,percent", "sun,Sun,0,0.0",
                                     "moon,Moon,3,100.0", "earth,Earth,0,0.0",
                                     "total,,3,100.0"]
