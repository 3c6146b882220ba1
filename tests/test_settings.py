"""Settings are validated once at start-up; a bad value names its variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.settings import SettingsError, parse_options
from result_fn.settings import ResultSettings
from support import REPO
from vote_fn.settings import VoteSettings
from worker_fn.settings import WorkerSettings

VALID = {"REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
         "VOTE_SECRET": "x" * 32}


def test_the_first_poll_is_cats_or_dogs_by_default() -> None:
    first = VoteSettings.from_env(VALID).first_poll
    assert first.question == "Cats or dogs?"
    assert [(o.id, o.label) for o in first.options.items] == [("cats", "Cats"), ("dogs", "Dogs")]


def test_the_first_poll_takes_its_question_and_options_as_json_with_commas() -> None:
    """POLL_QUESTION asks it; VOTE_OPTIONS as JSON lets a label hold a comma."""
    first = WorkerSettings.from_env({
        **VALID, "POLL_QUESTION": "Ship it?",
        "VOTE_OPTIONS": '[{"id": "yes", "label": "Yes, definitely"}, {"id": "no", "label": "No"}]'})
    assert first.first_poll.question == "Ship it?"
    assert [o.label for o in first.first_poll.options.items] == ["Yes, definitely", "No"]


def test_options_keep_their_order_and_labels() -> None:
    options = parse_options(" tabs:Tabs , spaces:Spaces (4) ,emacs:Emacs ")
    assert [(o.id, o.label) for o in options.items] == [
        ("tabs", "Tabs"), ("spaces", "Spaces (4)"), ("emacs", "Emacs")]


@pytest.mark.parametrize(("environ", "named"), [
    ({"VOTE_OPTIONS": "cats:Cats"}, "VOTE_OPTIONS"),
    ({"VOTE_OPTIONS": ",".join(f"o{n}:O{n}" for n in range(11))}, "VOTE_OPTIONS"),
    ({"VOTE_OPTIONS": "cats:Cats,cats:Kittens"}, "VOTE_OPTIONS"),
    ({"VOTE_OPTIONS": "cats,dogs"}, "VOTE_OPTIONS"),
    ({"VOTE_OPTIONS": "Cats:Cats,dogs:Dogs"}, "VOTE_OPTIONS"),
    ({"VOTE_OPTIONS": '[{"id": "yes", "label": "Yes"}]'}, "VOTE_OPTIONS"),
    ({"VOTE_OPTIONS": '[{"id": "yes"}, {"id": "no", "label": "No"}]'}, "VOTE_OPTIONS"),
    ({"VOTE_OPTIONS": '[{"id": "yes", "label": "Yes"'}, "VOTE_OPTIONS"),
    ({"POLL_QUESTION": "?" * 201}, "POLL_QUESTION"),
    ({"REDIS_URL": "http://127.0.0.1"}, "REDIS_URL"),
    ({"REDIS_URL": ""}, "REDIS_URL"),
    ({"VOTE_SECRET": "short"}, "VOTE_SECRET"),
    ({"REDIS_TIMEOUT_SECONDS": "soon"}, "REDIS_TIMEOUT_SECONDS"),
    ({"REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER"),
])
def test_bad_vote_settings_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        VoteSettings.from_env({**VALID, **environ})


@pytest.mark.parametrize(("environ", "named"), [
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"WORKER_BUDGET_SECONDS": "-1"}, "WORKER_BUDGET_SECONDS"),
    ({"WORKER_BATCH_MAX": "0"}, "WORKER_BATCH_MAX"),
    ({"WORKER_FAILPOINT": "sometimes"}, "WORKER_FAILPOINT"),
])
def test_bad_worker_settings_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        WorkerSettings.from_env({**VALID, **environ})


def test_bad_result_settings_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="STREAM_LIFETIME_SECONDS"):
        ResultSettings.from_env({**VALID, "STREAM_LIFETIME_SECONDS": "0"})


def test_a_function_with_bad_settings_exits_with_one_line() -> None:
    """Starting vote_fn under uvicorn with a bad VOTE_OPTIONS prints one line and exits 2."""
    env = {**VALID, "VOTE_OPTIONS": "cats:Cats", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "uvicorn", "vote_fn.app:create_app", "--factory",
                          "--port", "0"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "configuration error: VOTE_OPTIONS='cats:Cats' is invalid: expected 2 to 10 options, got 1"]
