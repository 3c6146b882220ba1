"""A Jepsen "set" checker for votes: what the clients were told against what PostgreSQL counts.

The history records every vote id a client sent, with its option and what the client
saw: *acknowledged* (a 2xx: the vote must be counted exactly once), *indeterminate*
(an error, a timeout or a 5xx: it may be counted, at most once) or *failed* (never
reached the server: it must not be counted). After the faults heal, the final read
drains the queue with the real drain command and reads the ballots. With one vote
per distinct voter, the ids counted are ``SELECT vote_id FROM ballots``.

- lost: acknowledged, not counted;
- duplicated: counted by more than one ballot;
- unexpected: counted, but never sent, or sent and known to have failed;
- the tallies must equal ``GROUP BY option`` over the ballots, and both must equal
  the options the clients sent for the ids that are counted (a positive ``excess``
  means the tallies count some vote twice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg

from common.event import VoteEvent
from support.functions import drain
from support.stores import drained, store_client, tally
from support.waits import wait_until


@dataclass
class History:
    """What the clients saw, vote id -> option for each outcome."""

    acknowledged: dict[str, str] = field(default_factory=dict)
    indeterminate: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, votes: Iterable[VoteEvent]) -> History:
        """Votes pushed straight onto the queue: Redis accepted each one."""
        return cls(acknowledged={vote.vote_id: vote.option for vote in votes})

    @property
    def sent(self) -> int:
        return len(self.acknowledged) + len(self.indeterminate) + len(self.failed)


@dataclass(frozen=True)
class Counted:
    """The final read of PostgreSQL."""

    ballots: list[tuple[str, str]]  # (vote id, option) of every ballot row
    tallies: dict[str, int]  # the tallies table, options with a non-zero count
    by_option: dict[str, int]  # SELECT option, count(*) FROM ballots GROUP BY option


def read_counted(conn: psycopg.Connection[tuple[object, ...]]) -> Counted:
    ballots = conn.execute("SELECT vote_id, option FROM ballots").fetchall()
    tallies = tally(conn)
    groups = conn.execute("SELECT option, count(*) FROM ballots GROUP BY option").fetchall()
    return Counted(
        ballots=[(str(vote_id), str(option)) for vote_id, option in ballots],
        tallies=tallies,
        by_option={str(option): int(str(n)) for option, n in groups},
    )


@dataclass(frozen=True)
class Outcome:
    acknowledged: int
    counted: int
    lost: frozenset[str]
    duplicated: frozenset[str]
    unexpected: frozenset[str]
    indeterminate: int  # votes whose outcome the client did not learn
    indeterminate_counted: int  # of those, counted (allowed, at most once each)
    excess: int  # sum of the tallies minus the number of ballots
    tallies: dict[str, int]
    by_option: dict[str, int]
    expected: dict[str, int]  # the options sent for the counted ids

    @property
    def tallies_exact(self) -> bool:
        return self.tallies == self.by_option == self.expected

    @property
    def exact(self) -> bool:
        return (not self.lost and not self.duplicated and not self.unexpected
                and self.tallies_exact)

    def summary(self, scenario: str) -> str:
        """One line for the run log (``pytest -rP`` shows it) and RELIABILITY.md."""
        return (f"checker {scenario}: acknowledged={self.acknowledged} counted={self.counted} "
                f"lost={len(self.lost)} duplicated={len(self.duplicated) + max(self.excess, 0)} "
                f"unexpected={len(self.unexpected)} indeterminate={self.indeterminate} "
                f"(counted {self.indeterminate_counted}) "
                f"tallies={'exact' if self.tallies_exact else 'WRONG'}")

    def explain(self) -> str:
        def some(ids: frozenset[str]) -> list[str]:
            return sorted(ids)[:5]
        return (f"lost {len(self.lost)} {some(self.lost)}; duplicated {len(self.duplicated)} "
                f"{some(self.duplicated)}, tally excess {self.excess}; unexpected "
                f"{len(self.unexpected)} {some(self.unexpected)}; tallies {self.tallies}, "
                f"ballots by option {self.by_option}, expected {self.expected}")


def check(history: History, counted: Counted) -> Outcome:
    ids = Counter(vote_id for vote_id, _ in counted.ballots)
    sent: Mapping[str, str] = {**history.indeterminate, **history.acknowledged}
    expected = Counter(sent[vote_id] for vote_id in ids if vote_id in sent)
    return Outcome(
        acknowledged=len(history.acknowledged),
        counted=len(ids),
        lost=frozenset(history.acknowledged.keys() - ids.keys()),
        duplicated=frozenset(vote_id for vote_id, n in ids.items() if n > 1),
        unexpected=frozenset(ids.keys() - sent.keys()),
        indeterminate=len(history.indeterminate.keys() - history.acknowledged.keys()),
        indeterminate_counted=len(
            (ids.keys() & history.indeterminate.keys()) - history.acknowledged.keys()),
        excess=sum(counted.tallies.values()) - len(counted.ballots),
        tallies=counted.tallies,
        by_option=counted.by_option,
        expected={option: n for option, n in expected.items() if n},
    )


def assert_exact(outcome: Outcome) -> None:
    """Every acknowledged vote counted once, nothing else counted, the tallies exact."""
    assert outcome.lost == outcome.duplicated == outcome.unexpected == frozenset(), \
        outcome.explain()
    assert outcome.excess == 0 and outcome.tallies_exact, outcome.explain()


def final_read(env: Mapping[str, str], timeout_s: float = 90) -> Counted:
    """Heal: run the real drain command until the queue is empty and no claim is left
    (a claim of a killed drain comes back once its lease expires); then read."""
    client = store_client(env)

    def drain_all() -> bool:
        drain(env, budget_s=30)
        return drained(client)

    try:
        wait_until(drain_all, timeout_s, "the queue drained with no claim left", interval_s=0.1)
    finally:
        client.close()
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        return read_counted(conn)
