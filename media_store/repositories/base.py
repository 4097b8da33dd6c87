"""What every repository shares: its executor and the error boundary around each call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import asyncpg

from media_store.errors import translate
from media_store.queries import Query

# A pool and a single connection offer the same calls (fetch, fetchrow, fetchval, execute,
# copy_records_to_table). With a pool each call takes a connection for just that statement;
# with a connection every call runs on it (inside the caller's transaction, if any).
Executor: TypeAlias = (
    "asyncpg.Pool[asyncpg.Record] | asyncpg.Connection[asyncpg.Record]"
    " | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)

DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class Repository:
    """Base of the four repositories. It never opens or closes its executor."""

    __slots__ = ("_db",)

    def __init__(self, executor: Executor) -> None:
        self._db = executor

    @property
    def executor(self) -> Executor:
        return self._db

    async def _fetch(self, query: Query, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._db.fetch(query.sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, self._db) from exc

    async def _fetchrow(self, query: Query, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._db.fetchrow(query.sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, self._db) from exc

    async def _fetchval(self, query: Query, *args: Any) -> Any:
        try:
            return await self._db.fetchval(query.sql, *args)
        except DRIVER_ERRORS as exc:
            raise translate(exc, self._db) from exc

    async def _copy(
        self, table: str, records: Iterable[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        try:
            await self._db.copy_records_to_table(table, records=records, columns=columns)
        except DRIVER_ERRORS as exc:
            raise translate(exc, self._db) from exc
