"""Reading the results from PostgreSQL, for the live stream and the pages alike.

Until it has seen the schema, the reader first asks whether the worker has created it
(common/schema.py's ``require_schema``, which names no missing table): a fresh database
then answers "not ready" instead of putting an error into PostgreSQL's log on every read.
"""

from __future__ import annotations

from psycopg import AsyncConnection, errors
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from common.schema import Tally, read_pipeline, read_tally, require_schema
from common.settings import Options
from result_fn.pipeline import PipelineStatus, assess
from result_fn.results import Results, build_results

READ_TIMEOUT_S = 1.0  # waiting for a pooled connection


class Reader:
    def __init__(self, pool: AsyncConnectionPool, options: Options, stall_s: float) -> None:
        self.pool = pool
        self._options = options
        self._stall_s = stall_s
        self._schema_seen = False

    async def read(self) -> tuple[Tally, PipelineStatus]:
        """The tallies and the pipeline; raises SchemaMissing or psycopg.Error."""
        async with self.pool.connection(timeout=READ_TIMEOUT_S) as conn:
            await self._require_schema(conn)
            return await read_tally(conn), await self._pipeline(conn)

    async def results(self) -> Results:
        return self.build(*await self.read())

    def build(self, tally: Tally, pipeline: PipelineStatus) -> Results:
        return build_results(tally, self._options, pipeline)

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
