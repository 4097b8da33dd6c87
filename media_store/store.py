"""The Store: one per process, owning the pool and handing out repositories."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType

from media_store.config import Dsn, Settings
from media_store.db import (
    Executor,
    IsolationLevel,
    Pool,
    borrowed,
    create_pool,
    statement,
    transaction,
)
from media_store.errors import MediaStoreError
from media_store.repositories import (
    AnalysisResultRepository,
    JobRepository,
    MediaAssetRepository,
    TranscriptionRepository,
)


class Repositories:
    """The four repositories bound to one executor (the pool, or one connection)."""

    __slots__ = ("analysis_results", "executor", "jobs", "media_assets", "transcriptions")

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.jobs = JobRepository(executor)
        self.media_assets = MediaAssetRepository(executor)
        self.transcriptions = TranscriptionRepository(executor)
        self.analysis_results = AnalysisResultRepository(executor)


class Store(Repositories):
    """Repositories on a pool, plus transactions.

    ``store.jobs`` etc. run each call on a connection borrowed from the pool for that call.
    ``async with store.transaction() as tx:`` gives the same repositories bound to one
    connection inside one transaction: committed when the block exits normally, rolled back
    when it raises.

    The Store owns its pool when it opened it (:meth:`open`) and closes it in :meth:`close`;
    a pool passed to the constructor stays the caller's to close.

    Every borrow (a repository call, :meth:`connection`, :meth:`transaction`) waits at most the
    pool's acquire timeout (``Settings.acquire_timeout``, for a pool of
    :func:`~media_store.db.create_pool`'s making; a plain asyncpg pool waits as it was told),
    then raises :class:`~media_store.errors.PoolExhausted`. A connection found broken is
    closed and replaced by the pool; the call that found it raises
    :class:`~media_store.errors.DatabaseUnavailable`, and the next one gets a new connection.
    """

    __slots__ = ("_owns_pool", "pool")

    def __init__(self, pool: Pool, *, owns_pool: bool = False) -> None:
        super().__init__(pool)
        self.pool = pool
        self._owns_pool = owns_pool

    @classmethod
    async def open(cls, dsn: str | Dsn | None = None, *, settings: Settings | None = None) -> Store:
        """Open a pool from ``settings``, else ``dsn``, else ``DATABASE_URL``.

        Raises :class:`ConfigurationError` when none is given, :class:`DatabaseUnavailable`
        when the server cannot be reached.
        """
        settings = settings or Settings.from_env(dsn)
        return cls(await create_pool(settings), owns_pool=True)

    async def close(self) -> None:
        """Close the pool if this Store opened it, waiting for borrowed connections."""
        if self._owns_pool:
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
            yield Repositories(conn)

    @asynccontextmanager
    async def transaction(
        self, *, isolation: IsolationLevel = "read_committed", readonly: bool = False
    ) -> AsyncIterator[Repositories]:
        """Repositories bound to one connection in one transaction (see the class doc).

        Raises :class:`~media_store.errors.PoolExhausted` when no connection is free in time."""
        async with transaction(self.pool, isolation=isolation, readonly=readonly) as conn:
            yield Repositories(conn)
