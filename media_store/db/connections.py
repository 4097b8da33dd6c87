"""The asyncpg plumbing, in one place: opening pools and connections with their codecs (and
the statement cache that works where the server is), borrowing a connection within the acquire
timeout, the error boundary around each statement, transactions, and the COPY that never hangs
on a dead connection.

Repositories and the Store use these; nothing else opens a transaction or runs a COPY.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import asyncpg
import orjson

from media_store.config import DEFAULT_STATEMENT_CACHE_SIZE, Settings
from media_store.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    MediaStoreError,
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

# TargetServerAttributeNotMatched: a multi-host URL's target_session_attrs matched no host (as
# during a failover, before the standby is promoted): an outage like a refused connection.
_CONNECT_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
    TimeoutError,
    ValueError,
)


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
    """The keyword arguments every media_store connection is opened with (the statement
    cache size is decided per pool, see :class:`_Connector`)."""
    kwargs: dict[str, Any] = (
        {} if settings.connect_timeout is None else {"timeout": settings.connect_timeout}
    )
    return {
        **kwargs,
        "dsn": settings.dsn.reveal(),
        "command_timeout": settings.command_timeout,
        # Sessions run in UTC so that text casts of timestamps agree with what the driver
        # returns (asyncpg already returns timezone-aware UTC datetimes for timestamptz).
        "server_settings": {
            "application_name": settings.application_name,
            "timezone": "UTC",
            **settings.server_settings,
        },
    }


def connect_failure(settings: Settings, exc: BaseException) -> MediaStoreError:
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


async def _backend_pid(conn: Connection) -> int:
    # COPY ... TO STDOUT runs as a simple query: no statement is prepared (and left behind on
    # a pooler's server connection), whatever the connection's statement cache.
    out = bytearray()

    async def collect(chunk: bytes) -> None:
        out.extend(chunk)

    await conn.copy_from_query("SELECT pg_backend_pid()", output=collect)
    return int(out)


class _Connector:
    """Opens the connections of one pool (asyncpg's ``connect=`` hook) or one connection,
    with the statement cache size ``settings`` ask for, or, when they leave it to the library
    (``None``), the one that works where the server is.

    PostgreSQL reports its backend's process id at login (BackendKeyData); a pooler such as
    PgBouncer reports one of its own making instead, because it may pass each transaction to
    another server connection. So the first connection compares the login's id with
    ``pg_backend_pid()``: equal means PostgreSQL itself, and the cache stays on (100); unequal
    means a pooler, and every connection of the pool runs without it (0), which transaction
    pooling requires. The first connection is then replaced by one without a cache.

    Why detect rather than ask: a user who forgets the setting gets jobs claimed and then
    completions failing (the issue this fixes); the probe costs one round trip per pool and
    needs no privilege and no pooler-specific command. A session-mode pooler, or PgBouncer
    >= 1.21 with ``max_prepared_statements``, would keep a cache working: there the cache is
    off needlessly (one more round trip per statement) unless the settings give a number.
    """

    __slots__ = ("_cache_size", "_deciding", "_dsn")

    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.dsn
        self._cache_size = settings.statement_cache_size
        self._deciding = asyncio.Lock()

    @property
    def statement_cache_size(self) -> int | None:
        """The cache size connections are opened with; ``None`` until the first is open."""
        return self._cache_size

    async def __call__(self, *args: Any, **kwargs: Any) -> Connection:
        if self._cache_size is None:
            async with self._deciding:
                if self._cache_size is None:
                    conn = await self._open(args, kwargs, DEFAULT_STATEMENT_CACHE_SIZE)
                    try:
                        behind_pooler = conn.get_server_pid() != await _backend_pid(conn)
                    except BaseException:
                        conn.terminate()
                        raise
                    if not behind_pooler:
                        self._cache_size = DEFAULT_STATEMENT_CACHE_SIZE
                        return conn
                    self._cache_size = 0
                    await conn.close()
                    log.info(
                        "media_store: a connection pooler answers on %s (the backend id at "
                        "login is not the server's): prepared statements are not cached",
                        self._dsn,
                    )
        return await self._open(args, kwargs, self._cache_size)

    @staticmethod
    async def _open(args: tuple[Any, ...], kwargs: dict[str, Any], cache_size: int) -> Connection:
        conn: Connection = await asyncpg.connect(
            *args, **{**kwargs, "statement_cache_size": cache_size}
        )
        return conn


if TYPE_CHECKING:
    _AsyncpgPool = asyncpg.Pool[asyncpg.Record]
else:
    _AsyncpgPool = asyncpg.Pool


class ManagedPool(_AsyncpgPool):
    """The pool :func:`create_pool` opens: asyncpg's, with the library's acquire timeout as
    the default of every borrow (``acquire()``, and so ``fetch()`` and the like too) and the
    settings it was opened with, for error messages."""

    __slots__ = ("_connector", "acquire_timeout", "settings")

    def __init__(self, settings: Settings, connector: _Connector, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.acquire_timeout = settings.acquire_timeout
        self._connector = connector

    @property
    def statement_cache_size(self) -> int | None:
        """The statement cache size of its connections (decided with the first one when the
        settings leave it to the library; ``None`` until then)."""
        return self._connector.statement_cache_size

    def acquire(
        self, *, timeout: float | None = None
    ) -> asyncpg.pool.PoolAcquireContext[asyncpg.Record]:
        if timeout is None and not self._free_now():
            timeout = self.acquire_timeout
        return super().acquire(timeout=timeout)

    def release(
        self, connection: PooledConnection, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, None]:
        if _quiet(connection):
            in_place = self._release_in_place(connection, timeout)
            if in_place is not None:
                return in_place
        elif timeout is None:
            # asyncpg bounds a release (the reset it runs) by the timeout of the borrow, none
            # after _free_now: bounded here by the acquire timeout whenever the reset may wait.
            timeout = self.acquire_timeout
        return super().release(connection, timeout=timeout)

    def _release_in_place(
        self, connection: PooledConnection, timeout: float | None
    ) -> Coroutine[Any, Any, None] | None:
        """asyncpg's ``Pool.release`` of a quiet connection (:func:`_quiet`) without its
        ``asyncio.shield``, or None when anything asks for the full path.

        Why: ``Pool.release`` runs the holder's release in a task of its own under
        ``asyncio.shield``, so that a cancelled caller cannot leave a connection half
        returned. The task costs every statement on a pool a task and two turns of the event
        loop before the caller goes on (py-spy, the job cycle at concurrency 1: the shield and
        its task about 14% of the cycle's CPU). A quiet connection's release never waits: no
        transaction to roll back (neither on the server nor in asyncpg's book), no
        cancellation to wait for, the pool's reset is the library's (_rollback_only_reset,
        which does nothing then), and the connection is kept (not past max_queries,
        not of an expired generation, where asyncpg closes it, which waits): there is no
        await at which a cancellation could land, so the shield guards nothing
        (tests/db/test_pool.py steps such a release once and sees it finish). The same
        steps as ``Pool.release``, in order (the pool's checks, the connection's
        housekeeping, the holder's release), awaited by the caller. Anything else, and any
        asyncpg whose internals differ (0.29-0.32 checked), takes asyncpg's own path."""
        try:
            if self._reset is not _rollback_only_reset:  # type: ignore[attr-defined]
                return None  # asyncpg's own reset runs statements: it may wait
            holder: Any = connection._holder
            con: Any = connection._con  # type: ignore[attr-defined]
            if (
                type(connection) is not asyncpg.pool.PoolConnectionProxy
                or holder._pool is not self
                or con is None
                or con.is_closed()
                # A transaction asyncpg still counts as open (one whose BEGIN failed, or one
                # ended by a statement of the caller's): its reset sends a ROLLBACK.
                or con._top_xact is not None
                or con._protocol.queries_count >= holder._max_queries
                or holder._generation != self._generation
            ):
                return None
            release = holder.release
            budget = holder._timeout if timeout is None else timeout
            housekeeping = con._on_release
        except AttributeError:
            return None
        self._check_init()
        housekeeping()
        done: Coroutine[Any, Any, None] = release(budget)
        return done

    def _free_now(self) -> bool:
        """Whether acquire() hands over an open connection without waiting: then there is
        nothing to time, and asyncpg's timer is skipped. That is when the holder asyncpg takes
        next, the last of its LIFO queue of free holders, has an open connection of the pool's
        current generation. asyncpg has no public accessor for this (0.29-0.32): should its
        internals change, the answer is no and every borrow is timed as before.

        Why: the timers of a borrow (asyncio.timeout around the acquire, and around the reset
        on release) cost ~35 us of a job's create -> get -> start -> complete cycle (4
        borrows) on a 2-core machine, a third of what the library added to raw asyncpg."""
        try:
            holder = self._queue._queue[-1]  # type: ignore[attr-defined]
            con = holder._con
            current = holder._generation == self._generation  # type: ignore[attr-defined]
            closing = self._closing  # type: ignore[attr-defined]
        except (AttributeError, IndexError, TypeError):
            return False
        return con is not None and not con.is_closed() and current and not closing


def _quiet(connection: PooledConnection) -> bool:
    """Whether releasing ``connection`` cannot wait on the server: it is outside a transaction
    (nothing to roll back) and none of its statements is being cancelled (asyncpg waits for
    the cancellation; no public test for it, 0.29-0.32: if that changes, the answer is no)."""
    try:
        cancelling = connection._con._protocol._is_cancelling()  # type: ignore[attr-defined]
        return not cancelling and not connection.is_in_transaction()
    except Exception:
        return False


async def create_pool(settings: Settings) -> ManagedPool:
    """Open a pool for ``settings``. The caller owns it and must close it.

    Raises :class:`DatabaseUnavailable` when the server cannot be reached and
    :class:`ConfigurationError` when the URL cannot be used; the driver's message is repeated
    with the password scrubbed, and the driver's exception is not chained (neither
    ``__cause__`` nor ``__context__``) because its text and its frames' variables may hold the
    URL and the password.
    """
    failure: MediaStoreError
    connector = _Connector(settings)
    try:
        pool = ManagedPool(
            settings,
            connector,
            connect=connector,
            min_size=settings.min_size,
            max_size=settings.max_size,
            # asyncpg's defaults (asyncpg.create_pool's), spelled out for the constructor
            max_queries=50000,
            max_inactive_connection_lifetime=300.0,
            init=init_connection,
            reset=None if settings.full_reset else _rollback_only_reset,
            loop=None,
            connection_class=asyncpg.Connection,
            record_class=asyncpg.Record,
            **connect_kwargs(settings),
        )
        await pool
    except _CONNECT_ERRORS as exc:
        failure = connect_failure(settings, exc)
    else:
        log.info(
            "media_store pool opened on %s (max_size=%d, acquire_timeout=%s)",
            settings.dsn,
            settings.max_size,
            settings.acquire_timeout,
        )
        return pool
    raise failure


async def connect(settings: Settings) -> Connection:
    """Open one connection with the same codecs and settings as the pool's.

    The caller owns it and must close it. Raises as :func:`create_pool` does.
    """
    failure: MediaStoreError
    try:
        conn: Connection = await _Connector(settings)(**connect_kwargs(settings))
    except _CONNECT_ERRORS as exc:
        failure = connect_failure(settings, exc)
    else:
        try:
            await init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn
    raise failure
