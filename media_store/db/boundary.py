"""The one execution boundary: every statement, borrow, transaction, COPY and LISTEN of the
repositories, the worker and the replica view runs here, and here only do driver errors
become :mod:`media_store.errors`. A fix for how a dying connection is handled lands here.

- :func:`run`: one statement (``fetch``, ``fetchrow``, ``fetchval``, ``execute``) on a pool, a
  connection or a :class:`RoutedExecutor`; the repositories' hot path.
- :func:`borrowed`: a connection of a pool for a block. :func:`statement`: the connection to
  run one statement on, inside the boundary, for callers with their own driver calls.
- :func:`transaction`, :func:`copy_records`, :func:`listening`.

What a failure becomes is decided by three helpers that every entry point shares:
:func:`_failure` (a statement's driver error: the connection closed first when the driver
can no longer use it), :func:`_acquire_timed_out` and :func:`_acquire_failure` (a borrow's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

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

T = TypeVar("T")


class RoutedExecutor:
    """An executor that is no server: each statement (or COPY) given to it runs on the pool
    or connection :meth:`route` chooses for it. The read replicas' router is one
    (:class:`media_store.replicas.ReplicaRouter`): a repository built on it sends each call
    where the router says, and nothing in the repository knows.

    A subclass owns what it routes to; the boundary never opens or closes anything for it.
    """

    __slots__ = ()

    def route(self, call: Callable[[Executor], Awaitable[T]], /) -> Awaitable[T]:
        """The result of ``call(executor)`` on the executor this chooses (trying others on
        failure as it sees fit). Raises what the last attempt raised."""
        raise NotImplementedError


# What a repository runs on: a pool, a connection, or a router choosing between pools.
Target: TypeAlias = "Executor | RoutedExecutor"
# A notification callback (see listening): asyncpg calls it with (connection, pid, channel,
# payload).
Listener: TypeAlias = Callable[[Any, int, str, Any], None]

# --- statements ----------------------------------------------------------------------------------


async def run(target: Target, method: str, sql: str, args: Sequence[Any]) -> Any:
    """``<connection>.<method>(sql, *args)`` inside the boundary, returning what it returns.

    On a pool, on a connection borrowed for the statement within the acquire timeout and given
    back afterwards, also when it died (the borrow and release of :func:`borrowed`); on a
    connection, on it; on a :class:`RoutedExecutor`, on what it chooses.

    Raises :class:`PoolExhausted` or :class:`DatabaseUnavailable` when no connection can be
    borrowed, and the statement's driver error translated (``from`` it). A connection the
    driver can no longer use although its socket is open is closed first, so that it is not
    used again and the pool replaces it.

    This is :func:`statement` without its context managers: this is every repository call's
    path, and the three nested context managers cost a pooled call about 7 us of Python (of
    ~45 for the round trip), measured. So the borrow is inlined here rather than awaited from
    a helper coroutine, and the release is a ``try``, not ``contextlib.suppress``.
    """
    if isinstance(target, asyncpg.Pool):
        failure: MediaStoreError | None = None
        try:
            conn: PooledConnection = await target.acquire()
        except TimeoutError:
            failure = _acquire_timed_out(target)
        except DRIVER_ERRORS as exc:
            failure = _acquire_failure(target, exc)
        if failure is not None:
            # Raised outside the handler, unchained: see _acquire.
            raise failure
        try:
            return await getattr(conn, method)(sql, *args)
        except DRIVER_ERRORS as exc:
            raise _failure(conn, exc) from exc
        finally:
            # A connection broken mid-statement may fail its reset on release; the pool then
            # terminates it. The error that matters is the one already propagating.
            try:  # noqa: SIM105
                await target.release(conn)
            except DRIVER_ERRORS:
                pass
    if isinstance(target, RoutedExecutor):
        return await target.route(lambda chosen: run(chosen, method, sql, args))
    try:
        return await getattr(target, method)(sql, *args)
    except DRIVER_ERRORS as exc:
        raise _failure(target, exc) from exc


def _failure(conn: Connection | PooledConnection, exc: BaseException) -> MediaStoreError:
    """What a driver error raised by a statement on ``conn`` becomes: the library's error,
    the connection closed first when the driver can no longer use it although its socket is
    open (so that it is not used again and the pool replaces it)."""
    if connection_broken(exc) and not connection_lost(conn):
        conn.terminate()
    return translate(exc, conn)


# --- borrowing ----------------------------------------------------------------------------------


async def _acquire(pool: Pool) -> PooledConnection:
    """A connection of ``pool``, within its acquire timeout (a :class:`ManagedPool`'s).

    Failures are raised outside the handler, unchained: a failed acquire is usually a failed
    connect, whose driver frames hold the password. (:func:`run` inlines this.)
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
    """What a borrow that waited out the acquire timeout becomes."""
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


# --- statements on a connection of the caller's, transactions, COPY, LISTEN ----------------------


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
        raise _failure(conn, exc) from exc


@asynccontextmanager
async def transaction(
    executor: Target, *, isolation: IsolationLevel | None = None, readonly: bool = False
) -> AsyncIterator[Connection | PooledConnection]:
    """A connection inside a transaction for the block: committed when the block exits
    normally, rolled back when it raises.

    On a pool, a new transaction on a borrowed connection; on a connection, a new transaction,
    or a savepoint when the caller already opened one. A connection lost midway surfaces as
    :class:`DatabaseUnavailable` (the server has rolled back). Raises :class:`TypeError` on a
    :class:`RoutedExecutor` (see :func:`_unrouted`).
    """
    if isinstance(executor, asyncpg.Pool):
        async with borrowed(executor) as pooled, _in_transaction(pooled, isolation, readonly):
            yield pooled
    else:
        conn = _unrouted(executor, "a transaction")
        async with _in_transaction(conn, isolation, readonly):
            yield conn


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
    executor: Target, table: str, records: Iterable[Sequence[Any]], columns: Sequence[str]
) -> None:
    """Binary COPY of ``records`` into ``table``, abandoned as soon as the connection dies.

    asyncpg 0.32 can wait forever on a COPY whose server connection is killed while the
    socket's write buffer is full (its writing_allowed event is never set again). A
    termination listener ends the wait: the COPY is cancelled and the caller gets
    :class:`DatabaseUnavailable` (the server has rolled the transaction back). Driver errors
    are translated. Raises :class:`TypeError` on a :class:`RoutedExecutor`.
    """
    if isinstance(executor, asyncpg.Pool):
        async with borrowed(executor) as pooled:
            await copy_records(pooled, table, records, columns)
        return
    conn = _unrouted(executor, "a COPY")
    lost: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def on_lost(_: object) -> None:
        if not lost.done():
            lost.set_result(None)

    # A connection that died before the COPY (between the transaction's statements) has been
    # detached from its pool proxy already: adding the listener is then the call that fails.
    async with _boundary(conn):
        conn.add_termination_listener(on_lost)
    copy: asyncio.Future[object] = asyncio.ensure_future(
        conn.copy_records_to_table(table, records=records, columns=columns)
    )
    try:
        await asyncio.wait([copy, lost], return_when=asyncio.FIRST_COMPLETED)
        if not copy.done():
            copy.cancel()
            with contextlib.suppress(BaseException):
                await copy
            raise DatabaseUnavailable("database connection lost during the COPY")
        async with _boundary(conn):
            copy.result()
    except BaseException:
        # Cancelled meanwhile (the caller's timeout): the COPY goes too, not left running on
        # the connection that the rollback then needs.
        if not copy.done():
            copy.cancel()
            with contextlib.suppress(BaseException):
                await copy
        raise
    finally:
        lost.cancel()
        with contextlib.suppress(*DRIVER_ERRORS):
            conn.remove_termination_listener(on_lost)


@asynccontextmanager
async def listening(
    pool: Pool,
    channel: str,
    callback: Listener,
    *,
    on_lost: Callable[[], None] | None = None,
) -> AsyncIterator[PooledConnection]:
    """A connection of ``pool`` that LISTENs on ``channel`` for the block, ``callback`` called
    with asyncpg's ``(connection, pid, channel, payload)`` on each notification; UNLISTEN and
    given back afterwards. Borrowed as in :func:`borrowed` (same errors); a failed LISTEN is
    translated. The caller must not run statements on the connection (it belongs to the
    listener): it is yielded for tests and logs.

    A LISTEN lasts only as long as its server session: when the connection closes under the
    block (its backend terminated, the server restarted, ``idle_session_timeout``), no
    notification arrives any more and nothing else says so, since no statement runs on it.
    ``on_lost`` is then called once, from the event loop, so that the caller can end the
    block and LISTEN again on a new connection.
    """
    async with borrowed(pool) as conn:

        def lost(_: object) -> None:
            if on_lost is not None:
                on_lost()

        # Watched before the LISTEN, so that no loss falls between the two. A connection that
        # died before this (detached from its proxy) fails the call, translated.
        async with _boundary(conn):
            conn.add_termination_listener(lost)
        try:
            async with _boundary(conn):
                await conn.add_listener(channel, callback)
            try:
                yield conn
            finally:
                # The connection goes back to the pool right after: a dead one is replaced
                # there, so a failure to UNLISTEN on it is no error of the caller's.
                with contextlib.suppress(*DRIVER_ERRORS):
                    await conn.remove_listener(channel, callback)
        finally:
            # Not left on a connection the pool hands to someone else.
            with contextlib.suppress(*DRIVER_ERRORS):
                conn.remove_termination_listener(lost)


def _unrouted(
    target: Connection | PooledConnection | RoutedExecutor, what: str
) -> Connection | PooledConnection:
    """``target`` when it is a connection. A :class:`RoutedExecutor` routes single statements:
    a transaction or a COPY must stay on one connection, so it is refused (:class:`TypeError`,
    a caller's mistake: the replica view has ``store.replica.transaction()`` for reads that
    need one snapshot, and no writes)."""
    if isinstance(target, RoutedExecutor):
        raise TypeError(f"{what} needs one connection, not a router ({type(target).__name__})")
    return target
