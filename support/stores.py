"""What the pipeline left in Valkey and PostgreSQL, read with plain commands and SQL,
never through the code under test."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
import redis

from common import keys

Conn = psycopg.Connection[tuple[object, ...]]
Store = redis.Redis | redis.RedisCluster


def store_client(env: Mapping[str, str]) -> Store:
    """A plain client of the Valkey a function's environment names: a cluster client
    with ``REDIS_CLUSTER``, verifying a TLS server with ``REDIS_CA_FILE``."""
    options = {"ssl_ca_certs": env["REDIS_CA_FILE"]} if env.get("REDIS_CA_FILE") else {}
    if env.get("REDIS_CLUSTER") == "true":
        return redis.RedisCluster.from_url(env["REDIS_URL"], socket_timeout=5, **options)
    return redis.Redis.from_url(env["REDIS_URL"], socket_timeout=5, **options)


def tally(conn: Conn) -> dict[str, int]:
    """The tallies table: each option with a non-zero count."""
    rows = conn.execute("SELECT option, votes FROM tallies WHERE votes <> 0").fetchall()
    return {str(option): int(str(votes)) for option, votes in rows}


def ballots_by_voter(conn: Conn) -> dict[str, str]:
    rows = conn.execute("SELECT voter, option FROM ballots").fetchall()
    return {str(voter): str(option) for voter, option in rows}


def version(conn: Conn) -> int:
    row = conn.execute("SELECT version FROM results_meta").fetchone()
    assert row is not None
    return int(str(row[0]))


def ballot_count(url: str) -> int:
    """Ballots committed so far (0 before the drain has created the schema)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
        if conn.execute("SELECT to_regclass('ballots')").fetchone() == (None,):
            return 0
        row = conn.execute("SELECT count(*)::int FROM ballots").fetchone()
    assert row is not None and isinstance(row[0], int)
    return row[0]


def drained(client: Store) -> bool:
    """The queue is empty and no drain holds a claim."""
    return client.llen(keys.QUEUE) == 0 and client.scard(keys.CLAIMS) == 0


def held_by_claims(client: redis.Redis) -> int:
    """Votes sitting in processing lists (claimed, not released)."""
    members: set[bytes] = client.smembers(keys.CLAIMS)  # type: ignore[assignment]
    lengths: list[int] = [client.llen(keys.processing(member.decode())) for member in members]
    return sum(lengths)


def leftover_claims(client: redis.Redis) -> list[bytes]:
    """Processing lists and leases still in Valkey."""
    return sorted(client.scan_iter(match="{votes}:processing:*")) + sorted(
        client.scan_iter(match="{votes}:lease:*"))
