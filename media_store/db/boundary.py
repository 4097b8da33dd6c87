"""The one execution boundary: borrowing a connection within the acquire timeout, running a
statement, transactions and COPY, with driver errors translated into :mod:`media_store.errors`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from media_store.db.connections import (
    Connection,
    Executor,
    IsolationLevel,
    ManagedPool,
    Pool,
    PooledConnection,
    connect_failure,
)
from media_store.errors import (
    DRIVER_ERRORS,
    DatabaseError,
    DatabaseUnavailable,
    MediaStoreError,
    PoolExhausted,
    connection_broken,
    connection_lost,
    translate,
)

# --- borrowing, statements, transactions, COPY -------------------------------------------------


async def _acquire(pool: Pool) -> PooledConnection:
    """A connection of ``pool``, within its acquire timeout (a :class:`ManagedPool`'s).

    Failures are raised outside the handler, unchained: a failed acquire is usually a failed
    connect, whose driver frames hold the password.
    """
    failure: MediaStoreError
    try:
        return await pool.acquire()
    except TimeoutError:
        failure = _acquire_timed_out(pool)
    except DRIVER_ERRORS as exc:
        failure = _acquire_failure(pool, exc)
    raise failure


def _acquire_failure(pool: Pool, exc: BaseException) -> MediaStoreError:
    """What a driver error raised by a borrow becomes (see :func:`_acquire`)."""
    if isinstance(pool, ManagedPool) and not pool.is_closing():
        return connect_failure(pool.settings, exc)
    return translate(exc)


def _acquire_timed_out(pool: Pool) -> MediaStoreError:
    timeout = getattr(pool, "acquire_timeout", None)
    max_size = pool.get_max_size()
    if pool.get_size() >= max_size and pool.get_idle_size() == 0:
        return PoolExhausted(max_size, timeout)
    # Not every connection was open and busy: the wait was for a new one the server did not
    # accept in time.
    where = f" to {pool.settings.dsn}" if isinstance(pool, ManagedPool) else ""
    return DatabaseUnavailable(f"cannot connect{where}: no connection within {timeout} s")


@asynccontextmanager
async def borrowed(pool: Pool) -> AsyncIterator[PooledConnection]:
    """One connection of ``pool`` for the block, given back afterwards (also when it died:
    asyncpg has then detached it and the pool opens a new one).

    Raises :class:`PoolExhausted` when every connection stays in use for the pool's acquire
    timeout (``Settings.acquire_timeout``), :class:`DatabaseUnavailable` when no connection
    can be opened.
    """
    conn = await _acquire(pool)
    try:
        yield conn
    finally:
        # A connection broken mid-statement may fail its reset on release; the pool then
        # terminates it. The error that matters is the one already propagating.
        with contextlib.suppress(*DRIVER_ERRORS):
            await pool.release(conn)


@asynccontextmanager
async def statement(executor: Executor) -> AsyncIterator[Connection | PooledConnection]:
    """The connection to run one statement on, inside the library's error boundary:
    ``executor`` itself when it is a connection, else one borrowed from the pool for the
    statement (see :func:`borrowed`).

    Driver errors raised in the block become :mod:`media_store.errors` (``from`` the driver's
    exception). A connection the driver can no longer use although its socket is open is
    closed here, so that it is not used again and the pool replaces it.
    """
    if isinstance(executor, asyncpg.Pool):
        async with borrowed(executor) as conn, _boundary(conn):
            yield conn
    else:
        async with _boundary(executor):
            yield executor


@asynccontextmanager
async def _boundary(conn: Connection | PooledConnection) -> AsyncIterator[None]:
    try:
        yield
    except DRIVER_ERRORS as exc:
        if connection_broken(exc) and not connection_lost(conn):
            conn.terminate()
        raise translate(exc, conn) from exc


@asynccontextmanager
async def transaction(
    executor: Executor, *, isolation: IsolationLevel | None = None, readonly: bool = False
) -> AsyncIterator[Connection | PooledConnection]:
    """A connection inside a transaction for the block: committed when the block exits
    normally, rolled back when it raises.

    On a pool, a new transaction on a borrowed connection; on a connection, a new transaction,
    or a savepoint when the caller already opened one. A connection lost midway surfaces as
    :class:`DatabaseUnavailable` (the server has rolled back).
    """
    if isinstance(executor, asyncpg.Pool):
        async with borrowed(executor) as conn, _in_transaction(conn, isolation, readonly):
            yield conn
    else:
        async with _in_transaction(executor, isolation, readonly):
            yield executor


@asynccontextmanager
async def _in_transaction(
    conn: Connection | PooledConnection, isolation: IsolationLevel | None, readonly: bool
) -> AsyncIterator[None]:
    tx = conn.transaction(isolation=isolation, readonly=readonly)
    async with _boundary(conn):
        await tx.start()
    try:
        yield
    except BaseException as exc:
        # If the connection is gone the server has already rolled back.
        broken = connection_lost(conn)
        if not broken:
            try:
                await tx.rollback()
            except DRIVER_ERRORS:
                broken = True
        if broken and type(exc) is DatabaseError:
            # A connection killed between two statements can surface as a protocol-state
            # error on the next one; the failed rollback shows the connection is lost.
            raise DatabaseUnavailable("database connection lost during the transaction") from exc
        raise
    async with _boundary(conn):
        await tx.commit()


async def copy_records(
    executor: Executor, table: str, records: Iterable[Sequence[Any]], columns: Sequence[str]
) -> None:
    """Binary COPY of ``records`` into ``table``, abandoned as soon as the connection dies.

    asyncpg 0.32 can wait forever on a COPY whose server connection is killed while the
    socket's write buffer is full (its writing_allowed event is never set again). A
    termination listener ends the wait: the COPY is cancelled and the caller gets
    :class:`DatabaseUnavailable` (the server has rolled the transaction back). Driver errors
    are translated.
    """
    if isinstance(executor, asyncpg.Pool):
        async with borrowed(executor) as conn:
            await copy_records(conn, table, records, columns)
        return
    lost: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def on_lost(_: object) -> None:
        if not lost.done():
            lost.set_result(None)

    # A connection that died before the COPY (between the transaction's statements) has been
    # detached from its pool proxy already: adding the listener is then the call that fails.
    async with _boundary(executor):
        executor.add_termination_listener(on_lost)
    copy: asyncio.Future[object] = asyncio.ensure_future(
        executor.copy_records_to_table(table, records=records, columns=columns)
    )
    try:
        await asyncio.wait([copy, lost], return_when=asyncio.FIRST_COMPLETED)
        if not copy.done():
            copy.cancel()
            with contextlib.suppress(BaseException):
                await copy
            raise DatabaseUnavailable("database connection lost during the COPY")
        async with _boundary(executor):
            copy.result()
    finally:
        lost.cancel()
        with contextlib.suppress(*DRIVER_ERRORS):
            executor.remove_termination_listener(on_lost)
