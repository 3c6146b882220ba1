"""Reading the results from PostgreSQL, for the live stream and the pages alike.

Until it has seen the schema, the reader first asks whether the worker has created it
(common/schema.py's ``require_schema``, which names no missing table): a fresh database
then answers "not ready" instead of putting an error into PostgreSQL's log on every read.
"""

from __future__ import annotations

from psycopg import AsyncConnection, errors
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from common.schema import PollTally, read_pipeline, read_poll_tally, require_schema
from result_fn.pipeline import PipelineStatus, assess
from result_fn.results import Results, build_results

READ_TIMEOUT_S = 1.0  # waiting for a pooled connection


class NoSuchPoll(LookupError):
    """No poll has that id (or, asked for the one shown, there is no poll yet)."""


class Reader:
    def __init__(self, pool: AsyncConnectionPool, stall_s: float) -> None:
        self.pool = pool
        self._stall_s = stall_s
        self._schema_seen = False

    async def read(self, poll_id: str | None = None) -> tuple[PollTally, PipelineStatus]:
        """A poll's counts (by default the poll shown) and the pipeline; raises
        NoSuchPoll, SchemaMissing or psycopg.Error."""
        async with self.pool.connection(timeout=READ_TIMEOUT_S) as conn:
            await self._require_schema(conn)
            found = await read_poll_tally(conn, poll_id)
            if found is None:
                raise NoSuchPoll(poll_id)
            return found, await self._pipeline(conn)

    async def results(self, poll_id: str | None = None) -> Results:
        return build(*await self.read(poll_id))

    async def pipeline(self) -> PipelineStatus:
        async with self.pool.connection(timeout=READ_TIMEOUT_S) as conn:
            await self._require_schema(conn)
            return await self._pipeline(conn)

    async def _pipeline(self, conn: AsyncConnection[TupleRow]) -> PipelineStatus:
        return assess(await read_pipeline(conn), self._stall_s)

    async def _require_schema(self, conn: AsyncConnection[TupleRow]) -> None:
        if not self._schema_seen:
            await require_schema(conn)
            self._schema_seen = True

    def forget_schema(self, error: Exception) -> None:
        """After a read failed: a table gone (a database restored or recreated) is asked
        for again before the next read."""
        if isinstance(error, errors.UndefinedTable):
            self._schema_seen = False


def build(found: PollTally, pipeline: PipelineStatus) -> Results:
    return build_results(found.poll, found.open, found.tally, pipeline)
