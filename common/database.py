"""One way to open the PostgreSQL pool: closed at creation, opened in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from psycopg_pool import AsyncConnectionPool

CONNECT_TIMEOUT_S = 3


@contextlib.asynccontextmanager
async def open_pool(url: str, *, max_size: int,
                    name: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool that starts even when PostgreSQL is down and reconnects by itself; its
    connections carry the function's ``name`` (``application_name``, which
    ``pg_stat_activity`` shows).

    Automatic preparation is off: psycopg would keep a plan made while the tables
    were nearly empty, which halved the drain's throughput in measurements.
    """
    pool = AsyncConnectionPool(
        url, min_size=1, max_size=max_size, open=False, timeout=5.0,
        kwargs={"prepare_threshold": None, "connect_timeout": CONNECT_TIMEOUT_S,
                "application_name": name},
        # A connection killed by a server restart is noticed before it is handed out.
        check=AsyncConnectionPool.check_connection,
        # Stop the background retries (1 s, 2 s, 4 s...) early; the pool then grows
        # again on demand, so it is back as soon as the server is, not minutes later.
        reconnect_timeout=10,
    )
    await pool.open(wait=False)
    try:
        yield pool
    finally:
        await pool.close()
