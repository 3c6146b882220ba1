"""The checker itself: it must be able to fail, on each kind of anomaly it names."""

from __future__ import annotations

import pytest

from support.checker import Counted, History, assert_exact, check

A, B, C, D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)


def counted(*ballots: tuple[str, str], tallies: dict[str, int] | None = None) -> Counted:
    by_option: dict[str, int] = {}
    for _, option in ballots:
        by_option[option] = by_option.get(option, 0) + 1
    return Counted(list(ballots), by_option if tallies is None else tallies, by_option)


def test_an_exact_run_passes() -> None:
    """Acknowledged votes counted once each, an indeterminate one counted: exact."""
    history = History(acknowledged={A: "cats", B: "dogs"}, indeterminate={C: "cats"})
    outcome = check(history, counted((A, "cats"), (B, "dogs"), (C, "cats")))
    assert_exact(outcome)
    assert outcome.indeterminate_counted == 1


def test_each_anomaly_is_reported() -> None:
    """Lost, duplicated, unexpected (never sent, or refused at the door) and wrong tallies."""
    history = History(acknowledged={A: "cats", B: "dogs"}, failed={D: "cats"})
    outcome = check(history, counted((B, "dogs"), (B, "dogs"), (C, "cats"), (D, "cats"),
                                     tallies={"dogs": 3, "cats": 2}))
    assert outcome.lost == {A}
    assert outcome.duplicated == {B}
    assert outcome.unexpected == {C, D}
    assert outcome.excess == 1 and not outcome.tallies_exact
    with pytest.raises(AssertionError):
        assert_exact(outcome)


def test_a_vote_counted_under_another_option_makes_the_tallies_wrong() -> None:
    """The ids all match, but one ballot holds an option the client did not send."""
    outcome = check(History(acknowledged={A: "cats"}), counted((A, "dogs")))
    assert not outcome.lost and not outcome.duplicated and not outcome.unexpected
    assert not outcome.tallies_exact
    with pytest.raises(AssertionError):
        assert_exact(outcome)
