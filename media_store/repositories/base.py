"""What every repository shares: its executor, and the boundary every call goes through.

Each call runs one statement through :func:`media_store.db.boundary.run`: on a connection, on
it; on a pool, on a connection borrowed for the statement within the pool's acquire timeout;
on a routed executor (the replica view's router), where the router chooses. Driver errors
become :mod:`media_store.errors` there. Transactions and COPY go through the same boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Self

import asyncpg

from media_store.db.boundary import Target, copy_records, run, transaction
from media_store.db.queries import Query


class Repository:
    """Base of the repositories and of their read halves (the ``*Reads`` classes). It never
    opens or closes its executor."""

    __slots__ = ("_db",)

    # Every named query the repository runs, in the order of its .sql file(s): what
    # ``media-store check`` verifies against a database.
    queries: ClassVar[tuple[Query, ...]] = ()

    def __init__(self, executor: Target) -> None:
        self._db = executor

    @property
    def executor(self) -> Target:
        return self._db

    # Plain methods returning run's coroutine (awaited by the caller): one coroutine frame
    # per call instead of two.
    def _fetch(self, query: Query, *args: Any) -> Coroutine[Any, Any, list[asyncpg.Record]]:
        return run(self._db, "fetch", query.sql, args)

    def _fetchrow(self, query: Query, *args: Any) -> Coroutine[Any, Any, asyncpg.Record | None]:
        return run(self._db, "fetchrow", query.sql, args)

    def _fetchval(self, query: Query, *args: Any) -> Coroutine[Any, Any, Any]:
        return run(self._db, "fetchval", query.sql, args)

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
