"""Read replicas: reads a caller marks as read-only, served by hot standbys.

``store.replica`` is a read-only view of the Store: its repositories offer only the read
methods (``store.replica.jobs.list_jobs()``, ``store.replica.transcriptions.words(...)``), so a
write through it does not type-check, and its replica connections run every session with
``default_transaction_read_only`` on, so a write sent on one anyway raises
:class:`~media_store.errors.ReadOnlyError`. Nothing is ever routed to a replica implicitly:
``store.jobs`` and the others, claims, ``store.transaction()``, and so a read that must see
the caller's own write, always run on the primary.

How the view is built: from the repositories' own read halves, the ``*Reads`` classes
(:class:`~media_store.repositories.MediaAssetReads`, ``TranscriptionReads``,
``AnalysisResultReads``; each repository inherits its ``*Reads`` and adds the writes). The
view's ``media_assets`` is a ``MediaAssetReads`` whose executor is the :class:`ReplicaRouter`
(a :class:`~media_store.db.boundary.RoutedExecutor`): a read method added to a ``*Reads``
class is on the view with nothing else to write, and a write is not there at all.

A read runs whole on one server: each public read method of the view (a coroutine method of
the ``*Reads`` class whose name has no leading underscore) is given to the router as one call,
on an instance of the ``*Reads`` class bound to the pool the router chose, so every statement
of the call (``transcriptions.get`` reads the row, then its words) runs on that server, and a
later one sees at least what an earlier one saw (a standby replays commits in order). When
the server turns out unreachable the whole call runs again on the next one: reads write
nothing, so running one again is harmless. (A statement run on the view outside a public
read method, through a private helper, is routed on its own by the boundary.)

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
import functools
import inspect
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

from media_store.config import Dsn
from media_store.db.boundary import RoutedExecutor, Target, transaction
from media_store.db.connections import Connection, Executor, Pool, PooledConnection
from media_store.errors import DatabaseUnavailable, MediaStoreError, PoolExhausted
from media_store.repositories import (
    AnalysisResultReads,
    JobReads,
    MediaAssetReads,
    ReplicationRepository,
    Repository,
    TranscriptionReads,
)

log = logging.getLogger("media_store")

T = TypeVar("T")
R = TypeVar("R", bound=Repository)
Read: TypeAlias = Callable[[Executor], Awaitable[T]]


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


class ReplicaRouter(RoutedExecutor):
    """Picks the server each read of the view runs on (see the module doc). One per Store;
    it neither opens nor closes pools. As a routed executor, it is what the view's ``*Reads``
    instances run on: :meth:`route` runs each of their calls."""

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

    async def route(self, read: Read[T], /) -> T:
        """``read(pool)`` on a replica, else on the primary. A replica found unreachable is
        marked down and ``read`` run again on the next one; any other error is the caller's.

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

    async def _begin_somewhere(
        self, stack: contextlib.AsyncExitStack
    ) -> Connection | PooledConnection:
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


async def _begin(pool: Pool, stack: contextlib.AsyncExitStack) -> Connection | PooledConnection:
    """A connection of ``pool`` in a read-only REPEATABLE READ transaction; ``stack`` ends the
    transaction and gives the connection back. When BEGIN fails the connection is given back
    at once (a lost one is closed by the error boundary first: the pool opens a new one)."""
    return await stack.enter_async_context(
        transaction(pool, isolation="repeatable_read", readonly=True)
    )


# --- the read-only repositories ----------------------------------------------------------------


class ReadOnlyRepositories:
    """The read halves of the four repositories on one target: on a connection or a pool,
    each of them as it is; on a :class:`~media_store.db.boundary.RoutedExecutor` (the
    view's router), each public read method run whole where the router chooses (see the
    module doc)."""

    __slots__ = ("analysis_results", "executor", "jobs", "media_assets", "transcriptions")

    def __init__(self, target: Target) -> None:
        # The connection (or pool) every call runs on; None on the routed view.
        self.executor: Executor | None = None if isinstance(target, RoutedExecutor) else target
        self.jobs = _reads(JobReads, target)
        self.media_assets = _reads(MediaAssetReads, target)
        self.transcriptions = _reads(TranscriptionReads, target)
        self.analysis_results = _reads(AnalysisResultReads, target)


class ReplicaView(ReadOnlyRepositories):
    """``store.replica``: reads routed to the replicas (see the module doc)."""

    __slots__ = ("router",)

    def __init__(self, router: ReplicaRouter) -> None:
        super().__init__(router)
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
            yield ReadOnlyRepositories(conn)


# --- the view's read methods, each call run whole on one server ---------------------------------


def _reads(reads: type[R], target: Target) -> R:
    """``reads`` on ``target``; on a routed executor, every public read method routed whole."""
    if isinstance(target, RoutedExecutor):
        return _routed_class(reads)(target)
    return reads(target)


_ROUTED: dict[type[Any], type[Any]] = {}


def _routed_class(reads: type[R]) -> type[R]:
    """A subclass of ``reads`` (made once) whose public coroutine methods each give the whole
    call to the instance's router, run on a plain ``reads`` bound to the executor it chose.

    Made from the class rather than written out per method, so that a read method added to a
    ``*Reads`` class is routed whole without another line here; and no cost falls on the
    repositories on the primary, which are plain ``*Reads`` subclasses."""
    routed = _ROUTED.get(reads)
    if routed is None:
        methods = {
            name: _whole_call(reads, name, method)
            for name, method in inspect.getmembers(reads, inspect.iscoroutinefunction)
            if not name.startswith("_")
        }
        routed = type(
            f"Routed{reads.__name__}",
            (reads,),
            {"__slots__": (), "__module__": __name__, "__doc__": reads.__doc__, **methods},
        )
        _ROUTED[reads] = routed
    return routed


def _whole_call(
    reads: type[Repository], name: str, method: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(self: Repository, /, *args: Any, **kwargs: Any) -> Any:
        router = self.executor
        assert isinstance(router, RoutedExecutor), f"{name} of a routed read off its router"
        return await router.route(lambda executor: method(reads(executor), *args, **kwargs))

    return call
