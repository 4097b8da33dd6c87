"""What every repository shares: its executor and the error boundary around each call.

Each call runs one statement: on a connection, on it; on a pool, on a connection borrowed for
the statement within the pool's acquire timeout. Driver errors raised by the statement become
:mod:`media_store.errors` exactly as in :func:`media_store.db.statement`, whose work this
does without its three nested context managers: measured, they cost a pooled call about 7 us
of Python (of ~45 for the whole round trip), a tenth of a repository call's cost and the
largest part of what the library added to a job's create -> get -> start -> complete cycle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Self

import asyncpg

from media_store.db.boundary import _acquire_failure, _acquire_timed_out, copy_records, transaction
from media_store.db.connections import Connection, Executor, PooledConnection
from media_store.db.queries import Query
from media_store.errors import (
    DRIVER_ERRORS,
    MediaStoreError,
    connection_broken,
    connection_lost,
    translate,
)


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

    # Plain methods returning _run's coroutine (awaited by the caller): one coroutine frame
    # per call instead of two.
    def _fetch(self, query: Query, *args: Any) -> Coroutine[Any, Any, list[asyncpg.Record]]:
        return _run(self._db, "fetch", query.sql, args)

    def _fetchrow(self, query: Query, *args: Any) -> Coroutine[Any, Any, asyncpg.Record | None]:
        return _run(self._db, "fetchrow", query.sql, args)

    def _fetchval(self, query: Query, *args: Any) -> Coroutine[Any, Any, Any]:
        return _run(self._db, "fetchval", query.sql, args)

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


async def _run(executor: Executor, method: str, sql: str, args: tuple[Any, ...]) -> Any:
    """``executor.<method>(sql, *args)`` inside the library's error boundary; on a pool, on a
    connection borrowed for it (see :func:`media_store.db.borrowed`: the same borrow and the
    same release) and given back afterwards, also when it died."""
    if isinstance(executor, asyncpg.Pool):
        # _acquire's work without its coroutine frame: a borrow, failures as it raises them.
        failure: MediaStoreError | None = None
        try:
            conn: PooledConnection = await executor.acquire()
        except TimeoutError:
            failure = _acquire_timed_out(executor)
        except DRIVER_ERRORS as exc:
            failure = _acquire_failure(executor, exc)
        if failure is not None:
            raise failure
        try:
            return await getattr(conn, method)(sql, *args)
        except DRIVER_ERRORS as exc:
            raise _failure(conn, exc) from exc
        finally:
            # A connection broken mid-statement may fail its reset on release; the pool then
            # terminates it. The error that matters is the one already propagating. (A try
            # rather than contextlib.suppress: no context manager on every call.)
            try:  # noqa: SIM105
                await executor.release(conn)
            except DRIVER_ERRORS:
                pass
    try:
        return await getattr(executor, method)(sql, *args)
    except DRIVER_ERRORS as exc:
        raise _failure(executor, exc) from exc


def _failure(conn: Connection | PooledConnection, exc: BaseException) -> MediaStoreError:
    """What :func:`media_store.db.statement` makes of a driver error: the library's error, the
    connection closed first when the driver can no longer use it although its socket is open
    (so that it is not used again and the pool replaces it)."""
    if connection_broken(exc) and not connection_lost(conn):
        conn.terminate()
    return translate(exc, conn)
