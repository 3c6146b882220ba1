"""Read path: ``GET /api/results`` latency with few counted voters vs very many.

Two databases in one PostgreSQL server, each with the schema of common/schema.py: one
holds a small poll, the other a huge one. The ballots are generated inside PostgreSQL
(generate_series) with the tallies set to match, so the read is measured against a
realistic table without driving millions of votes through the pipeline. One result_fn
(2 uvicorn workers) serves each database; wrk with one connection measures them in
alternating rounds, so a busy moment of a shared machine does not fall on one side
only, and the median of the rounds' percentiles is reported.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

import psycopg

from bench.harness import WRK_HINT, BenchError, Processes, create_schema, require, wrk
from bench.report import Figure
from local import profile
from support.http import http_get

TARGET = 1.5

# Voters 1..n: even numbers vote cats, odd ones dogs.
_INSERT = """
INSERT INTO ballots (poll, voter, option, vote_id, accepted_ms)
SELECT 'first', 'voter-' || lpad(n::text, 16, '0'),
       CASE WHEN n %% 2 = 0 THEN 'cats' ELSE 'dogs' END, md5(n::text), 1700000000000 + n
FROM generate_series(1, %s::bigint) AS n
"""
_TALLY = ("UPDATE tallies SET votes = CASE option WHEN 'cats' THEN %s::bigint ELSE %s::bigint "
          "END WHERE poll = 'first'")
_BUMP = "UPDATE results_meta SET version = version + 1, updated_at = now()"


@dataclass(frozen=True)
class Sizes:
    small: int
    large: int
    rounds: int
    seconds: int  # per round and poll
    warmup_s: int = 1


FULL = Sizes(small=1_000, large=10_000_000, rounds=5, seconds=3)
QUICK = Sizes(small=1_000, large=100_000, rounds=2, seconds=1)


def run(quick: bool) -> list[Figure]:
    require("wrk", WRK_HINT)
    sizes = QUICK if quick else FULL
    with Processes("voting-bench-read-") as procs:
        server = procs.postgres()
        apps: dict[int, str] = {}
        for voters in (sizes.small, sizes.large):
            url = _fill_database(server, f"poll_{voters}", voters)
            apps[voters] = procs.function(profile.by_name("result"), {"DATABASE_URL": url},
                                          workers=2).url
            _check_total(apps[voters], voters)
            wrk(apps[voters] + "/api/results", seconds=sizes.warmup_s, connections=1,
                threads=1)
        p50: dict[int, list[float]] = {voters: [] for voters in apps}
        p99: dict[int, list[float]] = {voters: [] for voters in apps}
        requests = dict.fromkeys(apps, 0)
        for _ in range(sizes.rounds):
            for voters, base in apps.items():
                measured = wrk(base + "/api/results", seconds=sizes.seconds, connections=1,
                               threads=1)
                p50[voters].append(measured.p50_ms)
                p99[voters].append(measured.p99_ms)
                requests[voters] += measured.requests
    small, large = (statistics.median(p50[n]) for n in (sizes.small, sizes.large))
    small_p99, large_p99 = (statistics.median(p99[n]) for n in (sizes.small, sizes.large))
    return [Figure(
        "read", f"p50 with {sizes.large:,} voters", large, "ms", TARGET, at_least=False,
        ceiling=small, ceiling_name=f"p50 with {sizes.small:,}",
        note=f"p99 {large_p99:.2f} ms vs {small_p99:.2f} ms = {large_p99 / small_p99:.2f}x",
        details={"p50_ms_rounds": p50, "p99_ms_rounds": p99, "p99_ms": large_p99,
                 "p99_ms_small": small_p99, "p99_ratio": large_p99 / small_p99,
                 "requests": requests, "connections": 1, "uvicorn_workers": 2})]


def _fill_database(server_url: str, name: str, voters: int) -> str:
    """A new database with the schema and ``voters`` ballots; its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a fixed name of ours, not input
    url = server_url.rpartition("/")[0] + "/" + name
    create_schema(url)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            # The primary key is built once after the load rather than row by row.
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            conn.execute("ALTER TABLE ballots DROP CONSTRAINT ballots_pkey")
            conn.execute(_INSERT, (voters,))
            conn.execute("ALTER TABLE ballots ADD PRIMARY KEY (voter)")
            conn.execute(_TALLY, (voters // 2, voters - voters // 2))
            conn.execute(_BUMP)
        conn.execute("VACUUM (ANALYZE) ballots")  # now, rather than autovacuum while measured
    return url



def _check_total(base_url: str, voters: int) -> None:
    status, body = http_get(base_url + "/api/results")
    total = json.loads(body).get("total") if status == 200 else None
    if total != voters:
        raise BenchError(f"/api/results answered {status} with total {total}, not {voters}")
