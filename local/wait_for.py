"""``python -m local.wait_for --needs REDIS_URL --needs DATABASE_URL -- COMMAND...``

Starts COMMAND only once the data stores it needs answer, as compose's
``depends_on: condition: service_healthy`` does, so that a function's first log lines are
not connection errors from the seconds the stores take to start (PostgreSQL's first run
creates its cluster).

- The URLs are read from the environment, the one COMMAND gets: it waits for the very
  servers COMMAND will use, and no password shows in the process list.
- Valkey/Redis answers when PING succeeds (not while it loads its append-only file);
  PostgreSQL when a query does. Until then it waits quietly.
- Then it *replaces itself* with COMMAND (``exec``), so the Procfile runner's signals reach
  the server itself.
- A store that does not answer within ``--timeout`` seconds stops it with one line naming
  the variable; the Procfile runner then stops everything.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import psycopg
import redis

PROBE_TIMEOUT_S = 2  # libpq's shortest connect timeout
POLL_INTERVAL_S = 0.1


def redis_answers(url: str) -> None:
    with redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_S,
                              socket_timeout=PROBE_TIMEOUT_S) as client:
        client.ping()


def postgres_answers(url: str) -> None:
    with psycopg.connect(url, connect_timeout=PROBE_TIMEOUT_S) as conn:
        conn.execute("SELECT 1")


# What each URL variable names, and how to tell that it answers.
PROBES: dict[str, tuple[str, Callable[[str], None]]] = {
    "REDIS_URL": ("Valkey/Redis", redis_answers),
    "DATABASE_URL": ("PostgreSQL", postgres_answers),
}
# The errors of a server that is not up yet (refused, starting up, loading its data).
NOT_YET = (redis.ConnectionError, redis.TimeoutError, psycopg.OperationalError)


def wait(variables: list[str], timeout_s: float) -> None:
    """Return once every store named by ``variables`` answers; exit naming one that does not."""
    deadline = time.monotonic() + timeout_s
    for variable in variables:
        name, answers = PROBES[variable]
        url = os.environ.get(variable)
        if not url:
            sys.exit(f"wait_for: {variable} is not set")
        while True:
            try:
                answers(url)
                break
            except NOT_YET as error:
                if time.monotonic() >= deadline:
                    sys.exit(f"wait_for: {name} at {variable} did not answer within "
                             f"{timeout_s:g}s: {' '.join(str(error).split())}")
                time.sleep(POLL_INTERVAL_S)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.wait_for", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--needs", action="append", choices=sorted(PROBES), default=[],
                        help="a store COMMAND needs, by the variable holding its URL")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for all of them (default: %(default)s)")
    parser.add_argument("command", nargs="+", help="what to run once they answer")
    args = parser.parse_args(argv)
    wait(args.needs, args.timeout)
    sys.stdout.flush()
    os.execvp(args.command[0], args.command)


if __name__ == "__main__":
    main()
