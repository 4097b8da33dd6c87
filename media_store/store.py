"""The Store: one per process, owning the pool and handing out repositories."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType

from media_store.config import Dsn, Settings
from media_store.db.boundary import borrowed, statement, transaction
from media_store.db.connections import Executor, IsolationLevel, Pool, create_pool
from media_store.errors import ConfigurationError, MediaStoreError
from media_store.replicas import ReplicaRouter, ReplicaView
from media_store.repositories import (
    AnalysisResultRepository,
    JobRepository,
    MediaAssetRepository,
    TranscriptionRepository,
)
from media_store.repositories.base import QueryTracer


class Repositories:
    """The four repositories bound to one executor (the pool, or one connection), their
    queries traced by ``tracer`` when one is given (see :meth:`Store.trace_queries`)."""

    __slots__ = ("analysis_results", "executor", "jobs", "media_assets", "transcriptions")

    def __init__(self, executor: Executor, tracer: QueryTracer | None = None) -> None:
        self.executor = executor
        self.jobs = JobRepository(executor, tracer)
        self.media_assets = MediaAssetRepository(executor, tracer)
        self.transcriptions = TranscriptionRepository(executor, tracer)
        self.analysis_results = AnalysisResultRepository(executor, tracer)


class Store(Repositories):
    """Repositories on a pool, plus transactions.

    ``store.jobs`` etc. run each call on a connection borrowed from the pool for that call.
    ``async with store.transaction() as tx:`` gives the same repositories bound to one
    connection inside one transaction: committed when the block exits normally, rolled back
    when it raises. All of these run on the primary.

    ``store.replica`` is the read-only view: reads a caller chooses to send to the read
    replicas (``Settings.replicas``), balanced over them, falling back to the primary (see
    :mod:`media_store.replicas`). Without replicas it reads from the primary.

    The Store owns its pool when it opened it (:meth:`open`) and closes it in :meth:`close`;
    a pool passed to the constructor stays the caller's to close.

    Every borrow (a repository call, :meth:`connection`, :meth:`transaction`) waits at most the
    pool's acquire timeout (``Settings.acquire_timeout``, for a pool of
    :func:`~media_store.db.create_pool`'s making; a plain asyncpg pool waits as it was told),
    then raises :class:`~media_store.errors.PoolExhausted`. A connection found broken is
    closed and replaced by the pool; the call that found it raises
    :class:`~media_store.errors.DatabaseUnavailable`, and the next one gets a new connection.
    """

    __slots__ = ("_owns_pool", "_tracer", "pool", "replica")

    def __init__(
        self,
        pool: Pool,
        *,
        owns_pool: bool = False,
        replicas: Sequence[tuple[Dsn, Pool]] = (),
        replica_max_lag: float | None = None,
        replica_retry_after: float = 5.0,
    ) -> None:
        """``replicas``: the pools of the read replicas with their URLs; the Store closes them
        in :meth:`close` when it owns its pool."""
        super().__init__(pool)
        self.pool = pool
        self._owns_pool = owns_pool
        self._tracer: QueryTracer | None = None
        self.replica = ReplicaView(
            ReplicaRouter(pool, replicas, max_lag=replica_max_lag, retry_after=replica_retry_after)
        )

    @classmethod
    async def open(cls, dsn: str | Dsn | None = None, *, settings: Settings | None = None) -> Store:
        """Open a pool from ``settings``, else ``dsn``, else ``DATABASE_URL``.

        With ``settings.replicas``, a pool is made for each read replica too, without
        connecting: a replica that is down does not stop the Store from opening.

        Raises :class:`ConfigurationError` when none is given, :class:`DatabaseUnavailable`
        when the primary cannot be reached.
        """
        if isinstance(dsn, str):
            # From here on the URL is held only as a Dsn, which never shows its password: an
            # error reporter that records frame variables (Sentry does) must find no raw URL
            # in this frame, neither after a failed connect nor after a refused URL.
            try:
                dsn = Dsn(dsn)
            except ConfigurationError:
                dsn = None
                raise
        settings = settings or Settings.from_env(dsn)
        dsn = None
        pool = await create_pool(settings)
        replicas: list[tuple[Dsn, Pool]] = []
        try:
            for replica in settings.replicas:
                replicas.append((replica, await create_pool(settings.for_replica(replica))))
        except BaseException:
            for _, opened in replicas:
                await opened.close()
            await pool.close()
            raise
        return cls(
            pool,
            owns_pool=True,
            replicas=replicas,
            replica_max_lag=settings.replica_max_lag,
            replica_retry_after=settings.replica_retry_after,
        )

    async def close(self) -> None:
        """Close the pools if this Store opened them, waiting for borrowed connections."""
        if self._owns_pool:
            for replica in self.replica.router.replica_pools:
                await replica.close()
            await self.pool.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def trace_queries(self, tracer: QueryTracer | None) -> None:
        """Run every named query of this Store's repositories (``store.jobs``…, and those of
        :meth:`connection` and :meth:`transaction` from now on) through ``tracer``, which
        makes a span of each, and let jobs created through them keep the trace context they
        were created in; None turns it off. :func:`media_store.tracing.trace_store` calls
        this with OpenTelemetry's tracer. The read-only view (``store.replica``) is not
        traced. Repositories handed out before the call keep what they had."""
        self._tracer = tracer
        Repositories.__init__(self, self.pool, tracer)

    async def ping(self, timeout: float = 5.0) -> bool:
        """True when a connection can be borrowed and answers ``SELECT 1`` in time.

        A broken connection found on the way is dropped (see the class doc)."""
        try:
            async with asyncio.timeout(timeout), statement(self.pool) as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
        except (MediaStoreError, TimeoutError):
            return False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Repositories]:
        """Repositories bound to one borrowed connection, outside any transaction.

        Raises :class:`~media_store.errors.PoolExhausted` when none is free in time."""
        async with borrowed(self.pool) as conn:
            yield Repositories(conn, self._tracer)

    @asynccontextmanager
    async def transaction(
        self, *, isolation: IsolationLevel = "read_committed", readonly: bool = False
    ) -> AsyncIterator[Repositories]:
        """Repositories bound to one connection in one transaction (see the class doc).

        Raises :class:`~media_store.errors.PoolExhausted` when no connection is free in time."""
        async with transaction(self.pool, isolation=isolation, readonly=readonly) as conn:
            yield Repositories(conn, self._tracer)
