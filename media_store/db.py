"""The asyncpg plumbing, in one place: opening pools and connections with their codecs,
borrowing a connection, transactions, and the COPY that never hangs on a dead connection.

Repositories and the Store use these; nothing else opens a transaction or runs a COPY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeAlias

import asyncpg
import orjson

from media_store.config import Settings
from media_store.errors import (
    DRIVER_ERRORS,
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailable,
    MediaStoreError,
    connection_lost,
    translate,
)

log = logging.getLogger("media_store")

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
PooledConnection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
# A pool and a single connection offer the same calls (fetch, fetchrow, fetchval, execute,
# copy_records_to_table). With a pool each call takes a connection for just that statement;
# with a connection every call runs on it (inside the caller's transaction, if any).
Executor: TypeAlias = "Pool | Connection | PooledConnection"
IsolationLevel = Literal["read_committed", "repeatable_read", "serializable"]

_CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, ValueError)


def _jsonb_encode(value: Any) -> bytes:
    # jsonb's binary wire format is a version byte (1) followed by the JSON text. Binary
    # codecs keep copy_records_to_table working on jsonb columns (COPY uses binary format).
    return b"\x01" + orjson.dumps(value)


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _json_decode(data: bytes) -> Any:
    return orjson.loads(data)


async def init_connection(conn: Connection) -> None:
    """Register the JSON codecs once per connection (the pool's ``init=``).

    JSON is encoded and decoded here and nowhere else.
    """
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=orjson.dumps,
        decoder=_json_decode,
        format="binary",
    )


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every media_store connection is opened with."""
    return {
        "dsn": settings.dsn.reveal(),
        "command_timeout": settings.command_timeout,
        "statement_cache_size": settings.statement_cache_size,
        # Sessions run in UTC so that text casts of timestamps agree with what the driver
        # returns (asyncpg already returns timezone-aware UTC datetimes for timestamptz).
        "server_settings": {
            "application_name": settings.application_name,
            "timezone": "UTC",
            **settings.server_settings,
        },
    }


def _connect_failure(settings: Settings, exc: BaseException) -> MediaStoreError:
    """The library error for a failed connect, its message scrubbed of the password."""
    message = settings.dsn.scrub(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        # e.g. an unknown sslmode: retrying will not help, the URL must change
        return ConfigurationError(f"unusable database URL {settings.dsn}: {message}")
    return DatabaseUnavailable(f"cannot connect to {settings.dsn}: {message}")


async def _rollback_only_reset(conn: Connection) -> None:
    # Before calling a custom reset, asyncpg has already rolled back any open transaction and
    # dropped the connection's listeners; nothing else is needed (see Settings.full_reset).
    return None


async def create_pool(settings: Settings) -> Pool:
    """Open a pool for ``settings``. The caller owns it and must close it.

    Raises :class:`DatabaseUnavailable` when the server cannot be reached and
    :class:`ConfigurationError` when the URL cannot be used; the driver's message is repeated
    with the password scrubbed, and the driver's exception is not chained (neither
    ``__cause__`` nor ``__context__``) because its text may quote the URL.
    """
    failure: MediaStoreError
    try:
        pool: Pool = await asyncpg.create_pool(
            min_size=settings.min_size,
            max_size=settings.max_size,
            init=init_connection,
            reset=None if settings.full_reset else _rollback_only_reset,
            **connect_kwargs(settings),
        )
    except _CONNECT_ERRORS as exc:
        failure = _connect_failure(settings, exc)
    else:
        log.info("media_store pool opened on %s (max_size=%d)", settings.dsn, settings.max_size)
        return pool
    raise failure


async def connect(settings: Settings) -> Connection:
    """Open one connection with the same codecs and settings as the pool's.

    The caller owns it and must close it. Raises as :func:`create_pool` does.
    """
    failure: MediaStoreError
    try:
        conn: Connection = await asyncpg.connect(**connect_kwargs(settings))
    except _CONNECT_ERRORS as exc:
        failure = _connect_failure(settings, exc)
    else:
        await init_connection(conn)
        return conn
    raise failure


# --- borrowing, transactions, COPY -------------------------------------------------------------


@asynccontextmanager
async def borrowed(pool: Pool) -> AsyncIterator[PooledConnection]:
    """One connection of ``pool`` for the block, given back afterwards (also when it died:
    asyncpg has then detached it and the pool opens a new one)."""
    try:
        conn = await pool.acquire()
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc
    try:
        yield conn
    finally:
        # A connection broken mid-statement may fail its reset on release; the pool then
        # terminates it. The error that matters is the one already propagating.
        with contextlib.suppress(*DRIVER_ERRORS):
            await pool.release(conn)


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
    try:
        await tx.start()
    except DRIVER_ERRORS as exc:
        raise translate(exc, conn) from exc
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
    try:
        await tx.commit()
    except DRIVER_ERRORS as exc:
        raise translate(exc, conn) from exc


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
        try:
            copy.result()
        except DRIVER_ERRORS as exc:
            raise translate(exc, executor) from exc
    finally:
        lost.cancel()
        with contextlib.suppress(*DRIVER_ERRORS):
            executor.remove_termination_listener(on_lost)
