"""Read replicas: reads a caller marks as read-only, served by hot standbys.

``store.replica`` is a read-only view of the Store: its repositories offer only the read
methods (``store.replica.jobs.list_jobs()``, ``store.replica.transcriptions.words(...)``), so a
write through it does not type-check, and its replica connections run every session with
``default_transaction_read_only`` on, so a write sent on one anyway raises
:class:`~media_store.errors.ReadOnlyError`. Nothing is ever routed to a replica implicitly:
``store.jobs`` and the others, claims, ``store.transaction()``, and so a read that must see
the caller's own write, always run on the primary.

Where a read runs:

- round robin over the replicas (``Settings.replicas``), each call starting at the next one;
- a replica that cannot be reached (refused, or no connection within
  ``Settings.replica_connect_timeout``) or whose connection is lost mid-read, or found lost
  when ``store.replica.transaction()`` begins (before the block runs), raises
  :class:`~media_store.errors.DatabaseUnavailable` inside the view, is marked down for
  ``Settings.replica_retry_after`` seconds, and the read runs on the next one;
- with ``Settings.replica_max_lag``, a replica further behind than that is skipped;
- when no replica is left, the read runs on the primary. A Store opened without replicas runs
  every read of the view on the primary: code written for replicas runs on one server too.

The lag bound. ``now() - pg_last_xact_replay_timestamp()`` on the standby is not the lag: on
an idle primary it grows while the standby lacks nothing. WAL positions are compared instead:
the view samples the primary's write position (``pg_current_wal_lsn()``) and then the
replica's replay position (``pg_last_wal_replay_lsn()``); a replica that has replayed up to a
position the primary had written at time *t* holds everything committed before *t*. Its lag is
the time since the latest such *t* (client monotonic clock), a bound that never under-states
and needs no clock agreement between servers. Samples are taken while a read looks for a
replica, at most every ``max_lag / 4`` s, and only when a replica's bound has passed half of
``max_lag``: on a caught-up replica, two short statements every ``max_lag / 2`` s. Without a
reachable primary no new sample is taken and the bound only grows: the replicas are skipped
once it passes ``max_lag`` (a bound that cannot be shown is not met).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol, TypeAlias, TypeVar

from media_store.config import Dsn
from media_store.db.boundary import _acquire, transaction
from media_store.db.connections import Executor, Pool, PooledConnection
from media_store.errors import DRIVER_ERRORS, DatabaseUnavailable, MediaStoreError, PoolExhausted
from media_store.models.schemas import (
    AnalysisResult,
    Job,
    JobStatus,
    JobType,
    MediaAsset,
    Transcription,
)
from media_store.repositories import (
    AnalysisResultRepository,
    JobCursor,
    JobPage,
    JobRepository,
    MediaAssetRepository,
    ReplicationRepository,
    TranscriptionRepository,
)
from media_store.repositories.jobs import QueueStats
from media_store.words.timestamps import Words

log = logging.getLogger("media_store")

T = TypeVar("T")
Read: TypeAlias = Callable[[Executor], Awaitable[T]]


class Runner(Protocol):
    """Runs one read on the server (or connection) it chooses."""

    async def __call__(self, read: Read[T], /) -> T: ...


class _OnConnection:
    """Every read on one connection (inside :meth:`ReplicaView.transaction`)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def __call__(self, read: Read[T], /) -> T:
        return await read(self.conn)


_SAMPLES = 512  # primary positions kept: at one per max_lag / 4 s, 128 bounds' worth


class _Replica:
    __slots__ = ("caught_up_at", "checked_at", "down_until", "dsn", "pool")

    def __init__(self, dsn: Dsn, pool: Pool) -> None:
        self.dsn = dsn
        self.pool = pool
        self.down_until = -math.inf  # monotonic time before which it is not tried
        self.caught_up_at = -math.inf  # it holds everything the primary had then
        self.checked_at = -math.inf  # when its replay position was last read

    def lag(self, now: float) -> float:
        return now - self.caught_up_at


class ReplicaRouter:
    """Picks the server each read of the view runs on (see the module doc). One per Store;
    it neither opens nor closes pools."""

    def __init__(
        self,
        primary: Pool,
        replicas: Sequence[tuple[Dsn, Pool]],
        *,
        max_lag: float | None = None,
        retry_after: float = 5.0,
    ) -> None:
        self._primary = primary
        self._replicas = [_Replica(dsn, pool) for dsn, pool in replicas]
        self._max_lag = max_lag
        self._retry_after = retry_after
        self._turn = itertools.count()
        self._samples: deque[tuple[float, int]] = deque(maxlen=_SAMPLES)
        self._sampling = asyncio.Lock()
        self.fallbacks = 0  # reads the primary served because no replica could

    @property
    def replica_pools(self) -> list[Pool]:
        return [replica.pool for replica in self._replicas]

    async def run(self, read: Read[T]) -> T:
        """``read(pool)`` on a replica, else on the primary. A replica found unreachable is
        marked down and the next one tried; any other error is the caller's.

        Raises :class:`PoolExhausted` when the chosen pool stays full (not a sign the replica
        is down: it is not skipped) and whatever the read raises on the primary."""
        for replica in await self._candidates():
            try:
                return await read(replica.pool)
            except PoolExhausted:
                raise
            except DatabaseUnavailable as exc:
                self._mark_down(replica, exc)
        self.fallbacks += 1
        return await read(self._primary)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        """One connection of a replica (else of the primary) in a read-only REPEATABLE READ
        transaction: every read in the block sees the same snapshot of one server.

        The transaction is begun before the block runs: a pooled connection found lost then
        (the replica restarted, its backend terminated, and the driver not told yet) counts
        as a replica that cannot be reached, as in :meth:`run`."""
        async with contextlib.AsyncExitStack() as stack:
            yield await self._begin_somewhere(stack)

    async def _begin_somewhere(self, stack: contextlib.AsyncExitStack) -> PooledConnection:
        for replica in await self._candidates():
            try:
                return await _begin(replica.pool, stack)
            except PoolExhausted:
                raise
            except DatabaseUnavailable as exc:
                self._mark_down(replica, exc)
        self.fallbacks += 1
        return await _begin(self._primary, stack)

    async def _candidates(self) -> list[_Replica]:
        """The replicas to try, in this call's round-robin order: up, and within the lag
        bound if there is one."""
        count = len(self._replicas)
        if not count:
            return []
        first = next(self._turn) % count
        now = time.monotonic()
        ordered = self._replicas[first:] + self._replicas[:first]
        up = [replica for replica in ordered if replica.down_until <= now]
        if self._max_lag is None or not up:
            return up
        await self._sample(up)
        now = time.monotonic()
        return [replica for replica in up if replica.lag(now) <= self._max_lag]

    async def _sample(self, replicas: list[_Replica]) -> None:
        """New positions for the replicas whose bound passed half the maximum, at most every
        quarter of it; none while another call samples (the bounds it has are used)."""
        assert self._max_lag is not None
        now = time.monotonic()
        stale = [
            replica
            for replica in replicas
            if replica.lag(now) > self._max_lag / 2
            and now - replica.checked_at >= self._max_lag / 4
        ]
        if not stale or self._sampling.locked():
            return
        async with self._sampling:
            sampled_at = time.monotonic()
            try:
                position = await ReplicationRepository(self._primary).wal_position()
            except MediaStoreError as exc:
                # No primary, no proof of freshness: the bounds keep growing (module doc).
                log.info("media_store: primary WAL position unavailable (%s)", exc)
            else:
                self._samples.append((sampled_at, position))
            for replica in stale:
                await self._sample_replica(replica)

    async def _sample_replica(self, replica: _Replica) -> None:
        try:
            replay = await ReplicationRepository(replica.pool).replay_position()
        except PoolExhausted:
            return
        except DatabaseUnavailable as exc:
            self._mark_down(replica, exc)
            return
        except MediaStoreError as exc:
            log.info("media_store: replica %s replay position unavailable (%s)", replica.dsn, exc)
            return
        replica.checked_at = time.monotonic()
        if replay.position is None:
            # Not a standby: it holds everything it has (the primary as its own replica).
            replica.caught_up_at = replica.checked_at
            return
        for sampled_at, position in reversed(self._samples):
            if position <= replay.position:
                replica.caught_up_at = max(replica.caught_up_at, sampled_at)
                break

    def _mark_down(self, replica: _Replica, exc: BaseException) -> None:
        replica.down_until = time.monotonic() + self._retry_after
        log.warning(
            "media_store: replica %s unavailable, not tried for %s s (%s)",
            replica.dsn,
            self._retry_after,
            exc,
        )


async def _begin(pool: Pool, stack: contextlib.AsyncExitStack) -> PooledConnection:
    """A connection of ``pool`` in a read-only REPEATABLE READ transaction; ``stack`` ends the
    transaction and gives the connection back. When BEGIN fails the connection is given back
    at once (a lost one is closed by the error boundary first: the pool opens a new one)."""
    async with contextlib.AsyncExitStack() as attempt:
        conn = await _acquire(pool)
        attempt.push_async_callback(_give_back, pool, conn)
        await attempt.enter_async_context(
            transaction(conn, isolation="repeatable_read", readonly=True)
        )
        stack.push_async_exit(attempt.pop_all())
    return conn


async def _give_back(pool: Pool, conn: PooledConnection) -> None:
    # A connection broken mid-statement may fail its reset on release; the pool then
    # terminates it. The error that matters is the one already propagating.
    with contextlib.suppress(*DRIVER_ERRORS):
        await pool.release(conn)


# --- the read-only repositories ----------------------------------------------------------------


class ReadOnlyJobs:
    """The read methods of :class:`~media_store.repositories.JobRepository`."""

    __slots__ = ("_run",)

    def __init__(self, run: Runner) -> None:
        self._run = run

    async def get_by_id(self, job_id: uuid.UUID) -> Job | None:
        return await self._run(lambda ex: JobRepository(ex).get_by_id(job_id))

    async def get_by_status(self, status: JobStatus | str, limit: int = 100) -> list[Job]:
        return await self._run(lambda ex: JobRepository(ex).get_by_status(status, limit))

    async def get_all(self, limit: int = 100, offset: int = 0) -> list[Job]:
        return await self._run(lambda ex: JobRepository(ex).get_all(limit, offset))

    async def list_jobs(
        self,
        after: JobCursor | str | None = None,
        limit: int = 100,
        *,
        status: JobStatus | str | None = None,
        job_type: JobType | str | None = None,
        key: str | None = None,
    ) -> JobPage:
        return await self._run(
            lambda ex: JobRepository(ex).list_jobs(
                after, limit, status=status, job_type=job_type, key=key
            )
        )

    async def count_by_status(self) -> dict[JobStatus, int]:
        return await self._run(lambda ex: JobRepository(ex).count_by_status())

    async def stats(self) -> QueueStats:
        """The queue's figures as the replica has replayed them (a dashboard's read)."""
        return await self._run(lambda ex: JobRepository(ex).stats())


class ReadOnlyMediaAssets:
    """The read methods of :class:`~media_store.repositories.MediaAssetRepository`."""

    __slots__ = ("_run",)

    def __init__(self, run: Runner) -> None:
        self._run = run

    async def get(self, row_id: uuid.UUID) -> MediaAsset | None:
        return await self._run(lambda ex: MediaAssetRepository(ex).get(row_id))

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]:
        return await self._run(lambda ex: MediaAssetRepository(ex).list_for_job(job_id))


class ReadOnlyTranscriptions:
    """The read methods of :class:`~media_store.repositories.TranscriptionRepository`."""

    __slots__ = ("_run",)

    def __init__(self, run: Runner) -> None:
        self._run = run

    async def get(self, row_id: uuid.UUID) -> Transcription | None:
        return await self._run(lambda ex: TranscriptionRepository(ex).get(row_id))

    async def list_for_job(self, job_id: uuid.UUID) -> list[Transcription]:
        return await self._run(lambda ex: TranscriptionRepository(ex).list_for_job(job_id))

    async def words(self, transcription_id: uuid.UUID) -> Words:
        return await self._run(lambda ex: TranscriptionRepository(ex).words(transcription_id))

    async def words_between(self, transcription_id: uuid.UUID, t0: float, t1: float) -> Words:
        return await self._run(
            lambda ex: TranscriptionRepository(ex).words_between(transcription_id, t0, t1)
        )

    async def count_words(self, transcription_id: uuid.UUID) -> int:
        return await self._run(lambda ex: TranscriptionRepository(ex).count_words(transcription_id))


class ReadOnlyAnalysisResults:
    """The read methods of :class:`~media_store.repositories.AnalysisResultRepository`."""

    __slots__ = ("_run",)

    def __init__(self, run: Runner) -> None:
        self._run = run

    async def get(self, row_id: uuid.UUID) -> AnalysisResult | None:
        return await self._run(lambda ex: AnalysisResultRepository(ex).get(row_id))

    async def list_for_job(self, job_id: uuid.UUID) -> list[AnalysisResult]:
        return await self._run(lambda ex: AnalysisResultRepository(ex).list_for_job(job_id))


class ReadOnlyRepositories:
    """The four read-only repositories, each call run by ``run`` (the router's choice of
    server, or one connection's)."""

    __slots__ = ("analysis_results", "executor", "jobs", "media_assets", "transcriptions")

    def __init__(self, run: Runner, executor: Executor | None = None) -> None:
        # The connection every call runs on, inside ReplicaView.transaction(); None on the view.
        self.executor = executor
        self.jobs = ReadOnlyJobs(run)
        self.media_assets = ReadOnlyMediaAssets(run)
        self.transcriptions = ReadOnlyTranscriptions(run)
        self.analysis_results = ReadOnlyAnalysisResults(run)


class ReplicaView(ReadOnlyRepositories):
    """``store.replica``: reads routed to the replicas (see the module doc)."""

    __slots__ = ("router",)

    def __init__(self, router: ReplicaRouter) -> None:
        super().__init__(router.run)
        self.router = router

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ReadOnlyRepositories]:
        """The read-only repositories on one connection of one replica (else the primary), in
        a read-only REPEATABLE READ transaction: a consistent snapshot across several reads
        (a job, its transcriptions and their words). ``.executor`` is that connection.

        A replica whose pooled connection is found lost as the transaction begins is marked
        down and the next one (else the primary) is tried: the block runs once, on the first
        server that begins the transaction. Raises :class:`DatabaseUnavailable` when no server
        can be reached, or the connection is lost in the block (the block is not run again)."""
        async with self.router.transaction() as conn:
            yield ReadOnlyRepositories(_OnConnection(conn), conn)
