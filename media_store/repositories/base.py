"""What every repository shares: its executor and the error boundary around each call
(:func:`media_store.db.statement`: on a pool, a connection borrowed within the acquire timeout)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Self

import asyncpg

from media_store.db import Executor, copy_records, statement, transaction
from media_store.queries import Query


class Repository:
    """Base of the four repositories. It never opens or closes its executor."""

    __slots__ = ("_db",)

    # Every named query the repository runs, in the order of its .sql file(s): what
    # ``media-store check`` verifies against a database.
    queries: ClassVar[tuple[Query, ...]] = ()

    def __init__(self, executor: Executor) -> None:
        self._db = executor

    @property
    def executor(self) -> Executor:
        return self._db

    async def _fetch(self, query: Query, *args: Any) -> list[asyncpg.Record]:
        async with statement(self._db) as conn:
            return await conn.fetch(query.sql, *args)

    async def _fetchrow(self, query: Query, *args: Any) -> asyncpg.Record | None:
        async with statement(self._db) as conn:
            return await conn.fetchrow(query.sql, *args)

    async def _fetchval(self, query: Query, *args: Any) -> Any:
        async with statement(self._db) as conn:
            return await conn.fetchval(query.sql, *args)

    async def _copy(
        self, table: str, records: Iterable[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        await copy_records(self._db, table, records, columns)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Self]:
        """This repository on one connection inside a transaction (a savepoint when the
        executor is a connection already in one); see :func:`media_store.db.transaction`."""
        async with transaction(self._db) as conn:
            yield type(self)(conn)
