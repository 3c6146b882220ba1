"""A first ``make up`` (the local profile on a fresh data folder) starts cleanly: nothing it logs
before "Ready" is an error, and "Ready" means every page answers. Each function starts once its
data stores answer (``local.wait_for``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from local import servers
from support import REPO
from support.local_stack import LocalStack

# The worker's port is the profile's own choice; its uvicorn names it.
WORKER_URL = re.compile(r"^\S+ worker +\| .*Uvicorn running on (http://\S+)", re.MULTILINE)


def trouble(line: str) -> bool:
    """An error logged by a server or a function, a traceback, or a client that found a
    store not listening yet."""
    return "ERROR" in line or "Traceback" in line or "connection refused" in line.lower()


@pytest.fixture
def first_run() -> Iterator[LocalStack]:
    # Not below pytest's own temporary folder: any pytest session that starts on the machine
    # makes that folder private again, and PostgreSQL runs as another user.
    with tempfile.TemporaryDirectory(prefix="voting-first-run-") as folder:
        stack = LocalStack.create(Path(folder) / "data")
        assert not stack.data_dir.exists()
        stack.start()
        yield stack
        assert stack.stop() == []


@pytest.mark.slow
def test_the_first_run_logs_no_error_before_ready(first_run: LocalStack) -> None:
    """No line before "Ready" holds ERROR, a traceback, or connection refused."""
    log = first_run.log_path.read_text()
    before_ready = log[:log.index("Ready in ")]
    assert "postgres" in before_ready and "valkey" in before_ready
    assert [line for line in before_ready.splitlines() if trouble(line)] == []


@pytest.mark.slow
def test_once_ready_every_page_answers(first_run: LocalStack) -> None:
    """The vote page, the results page and its API, and the worker's /readyz answer 200."""
    match = WORKER_URL.search(first_run.log_path.read_text())
    assert match is not None, "the worker's address is not in the log"
    for url in (f"{first_run.vote_url}/", f"{first_run.result_url}/",
                f"{first_run.result_url}/api/results", f"{match[1]}/readyz"):
        assert httpx.get(url, timeout=5).status_code == 200, url


def wait_for(environ: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "local.wait_for", *args], cwd=REPO,
                            env={**os.environ, **environ}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_wait_for_becomes_the_command_once_the_stores_answer(redis_url: str,
                                                             database_url: str) -> None:
    """With Valkey and PostgreSQL up, it execs the command: same process, same environment."""
    process = wait_for({"REDIS_URL": redis_url, "DATABASE_URL": database_url},
                       "--needs", "REDIS_URL", "--needs", "DATABASE_URL", "--", sys.executable,
                       "-c", "import os; print(os.getpid(), os.environ['DATABASE_URL'])")
    stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stderr) == (0, "")
    assert stdout.split() == [str(process.pid), database_url]


def test_wait_for_gives_up_naming_the_store_that_never_answers() -> None:
    """Nothing listening at REDIS_URL: after --timeout, one line naming it; no command run."""
    nobody = servers.redis_url(servers.free_port())
    process = wait_for({"REDIS_URL": nobody}, "--needs", "REDIS_URL", "--timeout", "0.5", "--",
                       sys.executable, "-c", "print('ran')")
    stdout, stderr = process.communicate(timeout=30)
    assert (process.returncode, stdout) == (1, "")
    assert stderr.startswith("wait_for: Valkey/Redis at REDIS_URL did not answer within 0.5s: ")
    assert stderr.count("\n") == 1
