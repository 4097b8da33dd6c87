"""Running jobs: the loop every worker needs, so that no worker author rewrites it.

:func:`run_worker` claims a batch, runs the handler on each job, and completes or fails it
under the lease, while a background task heartbeats every job the worker holds and every
worker in turn reclaims leases that expired (their holder crashed or hung).

Why the heartbeat cannot be starved: the heartbeat is an asyncio task on the worker's own
event loop and connection pool, and a *plain function* handler runs in a thread
(``asyncio.to_thread``), so however long it computes, the loop stays free to beat (a thread
spinning in Python code hands the interpreter lock back every few milliseconds). An ``async
def`` handler runs on the loop itself and must therefore only await, never compute or block for
long: give CPU-heavy or blocking work as a plain function. A heartbeat thread with its own
loop would survive a misbehaving async handler too, but needs a connection outside the Store
(and the DSN, which a Store does not keep); it would not help against code that holds the
interpreter lock, which starves every Python thread alike.

On cancellation the worker stops at once: the job in hand is abandoned (a thread running a
plain-function handler finishes on its own, its result discarded) and every job it still holds
is released in one statement, pending again without counting the interrupted attempt. If the
release cannot run (connection gone, second cancellation), the leases simply expire and
another worker reclaims them. Setting ``stop`` instead is graceful: the job in hand finishes,
the rest of the batch is released, and the worker returns.

Why a failed outcome is retried, and claiming paused: a job's outcome (completion or failure)
that cannot be written leaves the job processing under a lease nobody will finish, so it runs
again once the lease expires. A connection lost in a server restart or a killed backend is
over in a second or two, far within a lease, so the write is retried on a new connection
(short growing pauses) for as long as the lease may still hold: every write after the claim is
guarded by the lease, so a retry can never finish a job someone else holds, and a retry after
an attempt that did commit (its answer lost with the connection) changes nothing. Only a
worker that could not write before its lease ran out gives the job up. A worker whose outcomes
keep failing (e.g. behind a pooler that breaks its statements while claims still get through)
must not go on claiming: every claim it cannot finish is a job run again. It pauses before
each claim, poll_interval doubling up to :data:`MAX_CLAIM_PAUSE`, and claims one job at a time,
until an outcome is written again.

Cancellation of a job (``jobs.cancel``, ``media-store jobs cancel``): a job cancelled while
the worker holds it is final in the database at once, and the worker learns it at its next
heartbeat. It then stops the handler: an ``async def`` handler's await is cancelled (the
worker's own task is cancelled and the cancellation taken back, as ``asyncio.timeout``
does, so no task is created per job); a plain function cannot be interrupted from outside its
thread, so it is told through :attr:`JobContext.cancel_requested` (a ``threading.Event``),
which a handler taking two arguments, ``(job, context)``, receives and may poll or wait on.
Whatever the handler then returns is discarded: the job is counted ``cancelled``, and its
late outcome would be refused anyway (:class:`~media_store.errors.JobCancelled`). A job whose
lease a heartbeat finds lost (reclaimed after it expired, or deleted) is stopped the same way,
since another worker may run it now: counted ``lost``, no outcome written.

Instrumentation (``instrument=``, an :class:`~media_store.worker.context.Instrument`): the
worker calls its hooks around each claim, around each handler run, and at each job's outcome,
where it counts :class:`WorkerStats`; metrics and traces implement them
(:mod:`media_store.metrics`, :mod:`media_store.tracing`). The worker calls the per-job hooks
(``running``, ``finished``) itself, and only those that do something: without an instrument it
calls none, and metrics with traces are two nested ``with`` blocks a job, not a manager
combining them. An instrument that wants the trace context jobs were created in has it read by
the claim's own statement (``claim_traced``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast

from media_store.db.boundary import listening
from media_store.errors import (
    JobCancelled,
    JobNotFound,
    LeaseLost,
    MediaStoreError,
    ValidationError,
)
from media_store.models.arguments import MAX_LEASE, bounded_int, duration
from media_store.models.schemas import Job, JobStatus, JobType
from media_store.repositories.jobs import (
    DEFAULT_LEASE,
    MAX_CLAIM,
    JobRepository,
    checked_job_types,
)
from media_store.store import Store
from media_store.worker.context import (
    NO_INSTRUMENT,
    Handler,
    Instrument,
    JobContext,
    JobResult,
    Outcome,
    PermanentFailure,
    WorkerStats,
    default_worker_id,
    per_job_hooks,
)

# Re-exported: what tests and callers import from here since before the split.
__all__ = [
    "Handler",
    "JobContext",
    "JobResult",
    "PermanentFailure",
    "WorkerStats",
    "default_worker_id",
    "run_worker",
]

log = logging.getLogger("media_store.worker")

# migrations/0002 notifies this channel (empty payload) after every INSERT into jobs.
NOTIFY_CHANNEL = "media_store_jobs"

# Pauses between retries of an outcome that could not be written: short, since a lost
# connection is usually replaced at once; bounded by what remains of the lease.
RETRY_FIRST = 0.05
RETRY_MAX = 1.0
# The longest pause before a claim while outcomes cannot be written (see the module doc).
MAX_CLAIM_PAUSE = 60.0
# Pauses between attempts to LISTEN again after its connection was lost: the first attempt
# is immediate (a killed backend or an idle_session_timeout is over at once), then these.
LISTEN_RETRY_FIRST = 0.1
LISTEN_RETRY_MAX = 30.0

T = TypeVar("T")


class _Interrupted(Exception):
    """The handler's await was cancelled because its job was."""


class _Running:
    """The job whose handler runs now, and how to stop it."""

    __slots__ = ("context", "interrupted", "job", "task")

    def __init__(
        self, job: Job, context: JobContext | None, task: asyncio.Task[Any] | None
    ) -> None:
        self.job = job
        self.context = context  # None for a handler that takes no context: nothing to set
        self.task = task  # the worker's task, when the handler is awaited on it
        self.interrupted = False

    def cancel(self) -> None:
        if self.context is not None:
            self.context.cancel_requested.set()
        if self.task is not None and not self.interrupted:
            self.interrupted = True
            self.task.cancel()


async def run_worker(
    store: Store,
    handler: Handler,
    *,
    worker_id: str | None = None,
    job_types: Iterable[JobType | str] | None = None,
    batch: int = 10,
    lease: timedelta | float = DEFAULT_LEASE,
    heartbeat_every: timedelta | float | None = None,
    poll_interval: timedelta | float = 1.0,
    reclaim_every: timedelta | float | None = None,
    retry_in: timedelta | float | None = None,
    complete_within: timedelta | float = 0.05,
    listen: bool = False,
    burst: bool = False,
    stop: asyncio.Event | None = None,
    instrument: Instrument | None = None,
) -> WorkerStats:
    """Process jobs until ``stop`` is set (or, with ``burst``, until none is left to claim).

    ``handler(job)`` returns the job's result (a JSON object, or None) and is either an
    ``async def`` (I/O only: it runs on the event loop) or a plain function (run in a thread:
    use this for CPU-heavy or blocking work; see the module doc). A handler that requires two
    arguments is called ``handler(job, context)`` with a :class:`JobContext`, which tells a
    plain function that its job was cancelled (an ``async def`` is cancelled outright). A
    handler that raises fails the job with ``"ExceptionType: message"`` as its error: retried
    (after ``retry_in``, default at once) while attempts remain, failed for good after that,
    or at once if it raised :class:`PermanentFailure`. A result that is not a JSON object
    fails the job for good.

    Each round claims up to ``batch`` jobs (of ``job_types``; None: any) under a ``lease``
    (timedelta or seconds), then runs them one after another. Every job held is heartbeaten
    every ``heartbeat_every`` (default a third of the lease); a job whose lease was lost
    anyway (e.g. the loop was blocked) is counted as lost, not completed. Expired leases are
    reclaimed every ``reclaim_every`` (default: the lease) by every worker (safe at once).
    When there is nothing to claim the worker sleeps ``poll_interval``.

    Completions are written together, in one statement per batch, as long as the jobs are
    quick: a finished job waits at most ``complete_within`` (or until the batch is done) for
    its completion to be written, holding its lease meanwhile. Slower jobs are completed one
    by one as they finish. Failures are always written at once. An outcome the database
    fails to write is retried on a new connection while the lease may still hold (at most one
    lease long); one that could not be written by then is counted ``unwritten`` and the job
    runs again after its lease expires. While outcomes cannot be written the worker pauses
    before each claim (``poll_interval``, doubling up to :data:`MAX_CLAIM_PAUSE`, logged with
    the reason) and claims one job at a time, rather than claim work it cannot finish.

    ``listen=True`` also wakes the worker as soon as a job is created, through LISTEN on one
    connection of the store's pool held for the worker's lifetime; polling continues, so a
    lost notification only costs latency. A LISTEN whose connection closes (a terminated
    backend, ``idle_session_timeout``) is re-established on a new one, in the background. It
    is off by default and does not work through PgBouncer in transaction pooling mode (LISTEN
    needs a session of its own): there, leave it off and shorten ``poll_interval``.

    The store is the caller's: the worker holds one connection of its pool for claims and
    completions, borrows a second for heartbeats (and holds a third with ``listen``), so the
    pool must allow that many per worker; it closes nothing.

    ``instrument`` is told of each claim, handler run and outcome (metrics, traces: see the
    module doc); None: nothing is.

    Raises :class:`ValidationError` on bad arguments (a bad worker id at the first claim,
    before any job is touched), :class:`~media_store.errors.PoolExhausted` or
    :class:`~media_store.errors.DatabaseUnavailable` when ``listen`` cannot get its first
    connection. Database errors are logged, not raised: a failed claim,
    heartbeat or reclaim is tried again on the next round (on a new connection), a failed
    outcome as said above.
    """
    lease_s = duration("lease", lease, positive=True, maximum=MAX_LEASE)
    beat_s = (
        lease_s / 3
        if heartbeat_every is None
        else duration("heartbeat_every", heartbeat_every, positive=True)
    )
    if beat_s >= lease_s:
        raise ValidationError(
            f"heartbeat_every ({beat_s}s) must be shorter than the lease ({lease_s}s)"
        )
    needed = 3 if listen else 2
    if store.pool.get_max_size() < needed:
        raise ValidationError(
            f"a worker needs a pool of at least {needed} connections (claims, heartbeats"
            f"{', LISTEN' if listen else ''}); this store's pool has {store.pool.get_max_size()}"
        )
    bounded_int("batch", batch, 1, MAX_CLAIM)
    worker = _Worker(
        store,
        handler,
        worker_id=worker_id or default_worker_id(),
        job_types=checked_job_types(job_types),
        batch=batch,
        lease_s=lease_s,
        beat_s=beat_s,
        poll_s=duration("poll_interval", poll_interval, positive=True),
        reclaim_s=lease_s
        if reclaim_every is None
        else duration("reclaim_every", reclaim_every, positive=True),
        retry_in=None if retry_in is None else duration("retry_in", retry_in),
        complete_s=duration("complete_within", complete_within),
        stop=stop or asyncio.Event(),
        instrument=instrument or NO_INSTRUMENT,
    )
    # A bad worker_id or job type is refused by the first claim, before any job is touched.
    return await worker.run(listen=listen, burst=burst)


@dataclass(frozen=True, slots=True)
class _Written(Generic[T]):
    """What an outcome write returned, and whether it had failed before: then an earlier
    attempt may have committed although its answer was lost."""

    value: T
    retried: bool


class _Worker:
    def __init__(
        self,
        store: Store,
        handler: Handler,
        *,
        worker_id: str,
        job_types: list[str] | None,
        batch: int,
        lease_s: float,
        beat_s: float,
        poll_s: float,
        reclaim_s: float,
        retry_in: float | None,
        complete_s: float,
        stop: asyncio.Event,
        instrument: Instrument,
    ) -> None:
        self.store = store
        self.handler = handler
        self.worker_id = worker_id
        self.job_types = job_types
        self.batch = batch
        self.lease_s = lease_s
        self.beat_s = beat_s
        self.poll_s = poll_s
        self.reclaim_s = reclaim_s
        self.retry_in = retry_in
        self.stop = stop
        self.instrument = instrument
        # Its hooks of each job, called directly (see per_job_hooks).
        self.running_hooks, self.finished_hooks = per_job_hooks(instrument)
        # The trace context of each job of the batch claimed last (None: it has none), in
        # the batch's order; empty unless the instrument wants them.
        self.trace_contexts: list[dict[str, str] | None] = []
        # What the instrument's claiming gave for the last batch: its settling takes it back.
        self.claimed_as: object = None
        self.stats = WorkerStats(worker_id)
        # Claimed, not yet finished or released: each job id with the monotonic time until
        # which its lease surely holds (the lease was taken or extended by a statement sent
        # after ``that time - lease``, and the database counts it from when it ran).
        self.held: dict[uuid.UUID, float] = {}
        self.complete_s = complete_s
        # Finished jobs whose completion is not written yet, and when the first one finished.
        self.finished: list[tuple[Job, JobResult]] = []
        self.finished_since = 0.0
        # Outcomes given up in a row (not written while their lease held): claims wait.
        self.write_failures = 0
        # The held connection failed a write: the rest of the round uses the pool, then the
        # worker takes a new connection.
        self.reconnect = False
        # False once cancelled: what is left gets one attempt, no retries.
        self.patient = True
        # Held jobs a heartbeat found cancelled, until the worker has dropped them.
        self.cancelled: set[uuid.UUID] = set()
        # Held jobs a heartbeat found lost (not cancelled), until the worker has dropped them.
        self.gone: set[uuid.UUID] = set()
        # The job whose handler runs now (None between handlers).
        self.running: _Running | None = None
        self.wake = asyncio.Event()
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - a callable object's method
        )
        # The handler as the coroutine function it is, if it is one (None: run in a thread).
        self.async_handler = (
            cast(Callable[..., Awaitable[JobResult]], handler) if is_async else None
        )
        self.takes_context = _requires_two_arguments(handler)

    async def run(self, *, listen: bool, burst: bool) -> WorkerStats:
        if not listen:
            await self._run(burst)
            return self.stats
        established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        listener = asyncio.create_task(self._listen(established), name=f"LISTEN {self.worker_id}")
        try:
            # The first LISTEN's failure is the caller's (run_worker's documented errors);
            # once it was established, the listener never ends on its own.
            await established
            await self._run(burst)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        return self.stats

    async def _run(self, burst: bool) -> None:
        beats = asyncio.create_task(self._heartbeats(), name=f"heartbeat {self.worker_id}")
        try:
            while not self.stop.is_set():
                # Claims and completions run on one connection held across rounds: a pooled
                # call per statement would cost a second round trip (the pool's reset).
                try:
                    async with self.store.connection() as repos:
                        self.reconnect = False
                        if await self._serve(repos.jobs, burst):
                            break
                    if self.reconnect:
                        continue  # the connection broke, but a new one answered: no pause
                except ValidationError:
                    raise
                except MediaStoreError:
                    log.exception("worker %s: no database connection", self.worker_id)
                await self._idle()  # the database failed: pause, then a new connection
        except asyncio.CancelledError:
            self.patient = False
            raise
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
            # Also on cancellation: record what finished, and give back the rest rather than
            # let its leases run out.
            # On the pool: the held connection may be the one that failed.
            await self._flush(self.store.jobs)
            await self._release(self.store.jobs)

    async def _serve(self, jobs: JobRepository, burst: bool) -> bool:
        """Claim and process until stopped (True), out of work in burst mode (True), or the
        database fails (False; with ``reconnect`` set when only the held connection did)."""
        next_reclaim = 0.0
        while not self.stop.is_set():
            if time.monotonic() >= next_reclaim:
                await self._reclaim(jobs)
                next_reclaim = time.monotonic() + self.reclaim_s
            if self.write_failures:
                await self._pause_claims()
                if self.stop.is_set():
                    break
            claimed = await self._claim(jobs)
            if claimed is None:
                return False
            if not claimed:
                if burst and not await self._reclaim(jobs):
                    return True
                if not burst:
                    await self._idle()
                continue
            contexts = self.trace_contexts
            for index, job in enumerate(claimed):
                if self.stop.is_set():
                    break
                await self._process(jobs, job, contexts[index] if contexts else None)
            await self._flush(jobs)
            # What stop left unstarted; on the pool if the held connection broke.
            await self._release(self.store.jobs if self.reconnect else jobs)
            if self.reconnect:
                return False
        return True

    async def _claim(self, jobs: JobRepository) -> list[Job] | None:
        # One job at a time while outcomes cannot be written: each claim risks a rerun.
        limit = 1 if self.write_failures else self.batch
        sent = time.monotonic()
        try:
            with self.instrument.claiming(self.worker_id) as self.claimed_as:
                if self.instrument.wants_trace_context:
                    claimed, self.trace_contexts = await jobs.claim_traced(
                        self.worker_id, self.job_types, limit=limit, lease=self.lease_s
                    )
                else:
                    claimed = await jobs.claim(
                        self.worker_id, self.job_types, limit=limit, lease=self.lease_s
                    )
                self.instrument.claimed(claimed, time.monotonic() - sent)
        except ValidationError:
            raise
        except MediaStoreError:
            log.exception("worker %s: claim failed", self.worker_id)
            return None
        self.held.update((job.id, sent + self.lease_s) for job in claimed)
        self.stats.claimed += len(claimed)
        return claimed

    async def _pause_claims(self) -> None:
        """Wait before claiming while outcomes cannot be written (woken only by stop)."""
        pause = min(self.poll_s * 2 ** min(self.write_failures - 1, 30), MAX_CLAIM_PAUSE)
        log.warning(
            "worker %s: %d job outcome(s) in a row could not be written before their leases "
            "ran out; not claiming new work for %.2fs, then one job at a time until an outcome "
            "is written again",
            self.worker_id,
            self.write_failures,
            pause,
        )
        self.stats.paused += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=pause)

    async def _process(
        self, jobs: JobRepository, job: Job, trace_context: dict[str, str] | None
    ) -> None:
        if self._stopped(job):  # cancelled before its turn came
            return
        hooks = self.running_hooks
        try:
            # The instrument's hooks as nested with-blocks, none when it has none: a layer a
            # job less than a manager combining them (metrics and traces: two hooks). As
            # Instruments.running does, every hook is called before the first is entered.
            if not hooks:
                result = await self._call(job)
            elif len(hooks) == 1:
                with hooks[0](job, trace_context):
                    result = await self._call(job)
            elif len(hooks) == 2:
                first, second = hooks[0](job, trace_context), hooks[1](job, trace_context)
                with first, second:
                    result = await self._call(job)
            else:
                managers = [hook(job, trace_context) for hook in hooks]
                with contextlib.ExitStack() as stack:
                    for manager in managers:
                        stack.enter_context(manager)
                    result = await self._call(job)
        except _Interrupted:
            self._stopped(job)
            return
        except PermanentFailure as exc:
            if self._stopped(job):
                return
            await self._fail(jobs, job, exc, retry=False)
        except Exception as exc:  # the handler's failure is the job's failure, not ours
            if self._stopped(job):
                return
            await self._fail(jobs, job, exc, retry=True)
        else:
            if self._stopped(job):  # told while it ran: what it returned is moot
                return
            if not self.finished:
                self.finished_since = time.monotonic()
            self.finished.append((job, result))
            if time.monotonic() - self.finished_since >= self.complete_s:
                await self._flush(jobs)
            # Still held until its completion is written.

    async def _flush(self, jobs: JobRepository) -> None:
        """Write the buffered completions in one statement."""
        if not self.finished:
            return
        # They stay buffered until written, so that a worker cancelled meanwhile still tries
        # to write them (run()) instead of releasing finished jobs to run again.
        finished = list(self.finished)
        if len(finished) == 1:
            await self._complete(jobs, *finished[0])
            self.finished = []
            return
        results = {job.id: result for job, result in finished}
        try:
            written = await self._write(
                f"completing {len(finished)} jobs",
                results.keys(),
                jobs,
                lambda repo: repo.complete_many(self.worker_id, results),
            )
        except ValidationError:  # some result is no JSON object: sort them out one by one
            for job, result in finished:
                await self._complete(jobs, job, result)
            self.finished = []
            return
        self.finished = []
        for job, _ in finished:
            self.held.pop(job.id, None)
        if written is None:
            return
        lost = set(written.value.lost)
        for job, _ in finished:
            if job.id not in lost or (written.retried and await self._completed_by_us(job)):
                self._completed(job)
            elif job.id in self.cancelled:
                self._dropped(job)
            else:
                self._lost(job)

    async def _complete(self, jobs: JobRepository, job: Job, result: JobResult) -> None:
        async def complete(repo: JobRepository) -> bool:
            try:
                await repo.complete(job.id, self.worker_id, result)
            except JobCancelled:
                self.cancelled.add(job.id)
                return False
            except (LeaseLost, JobNotFound):
                return False
            return True

        try:
            written = await self._write(f"completing job {job.id}", [job.id], jobs, complete)
        except ValidationError as exc:  # a result that is no JSON object
            await self._fail(jobs, job, exc, retry=False)
            return
        self.held.pop(job.id, None)
        if written is None:
            return
        if written.value or (written.retried and await self._completed_by_us(job)):
            self._completed(job)
        elif job.id in self.cancelled:
            self._dropped(job)
        else:
            self._lost(job)

    async def _call(self, job: Job) -> JobResult:
        # A context only for a handler that takes one: its threading.Event costs a few us,
        # and an async handler that takes none is stopped by cancelling its task alone.
        context = JobContext(job, self.worker_id, threading.Event()) if self.takes_context else None
        args = (job, context) if context is not None else (job,)
        if self.async_handler is None:
            self.running = _Running(job, context, None)
            try:
                result = await asyncio.to_thread(self.handler, *args)
                if inspect.isawaitable(result):  # e.g. a lambda returning a coroutine
                    return await result
                return result
            finally:
                self.running = None
        task = asyncio.current_task()
        running = self.running = _Running(job, context, task)
        # No await between here and the handler's, nor between its end and the finally: a
        # heartbeat that finds this job running finds the worker's task inside the handler.
        try:
            return await self.async_handler(*args)
        except asyncio.CancelledError:
            # Ours (the job was cancelled), unless the worker itself is being cancelled too:
            # then its own cancellation goes on.
            if running.interrupted and task is not None:
                running.interrupted = False
                if task.uncancel() == 0:
                    raise _Interrupted from None
            raise
        finally:
            self.running = None
            if running.interrupted and task is not None:
                running.interrupted = False
                task.uncancel()  # the handler swallowed the cancellation and returned

    async def _fail(
        self, jobs: JobRepository, job: Job, exc: BaseException, *, retry: bool
    ) -> None:
        error = _describe(exc)

        async def fail(repo: JobRepository) -> Job | None:
            try:
                return await repo.fail(
                    job.id, self.worker_id, error, retry=retry, retry_in=self.retry_in
                )
            except JobCancelled:
                self.cancelled.add(job.id)
                return None
            except (LeaseLost, JobNotFound):
                return None

        try:
            written = await self._write(f"failing job {job.id}", [job.id], jobs, fail)
        except ValidationError:  # not expected: the error text and retry_in are checked
            log.exception("worker %s: failing job %s was refused", self.worker_id, job.id)
            written = None
        # Not in a finally: a job cancelled meanwhile stays held, so that run() releases it.
        self.held.pop(job.id, None)
        if written is None:
            return
        failed = written.value
        if failed is None and written.retried:
            failed = await self._failed_by_us(job, error)
        if failed is None and job.id in self.cancelled:
            self._dropped(job)
        elif failed is None:
            self._lost(job)
        elif failed.status is JobStatus.PENDING:
            self.stats.retried += 1
            self._finished(job, Outcome.RETRIED)
        else:
            self.stats.failed += 1
            self._finished(job, Outcome.FAILED)

    async def _write(
        self,
        what: str,
        job_ids: Collection[uuid.UUID],
        jobs: JobRepository,
        write: Callable[[JobRepository], Awaitable[T]],
    ) -> _Written[T] | None:
        """Run ``write``, the outcome of the held jobs ``job_ids``, on ``jobs``; when the
        database fails, again on a new connection of the pool after a growing pause, for as
        long as their leases may hold, and at most one lease from the first failure (however
        long heartbeats extend the lease: a write that keeps failing gives the job up rather
        than hold it forever). None when it gave up. Raises :class:`ValidationError` (input
        refused before any SQL: retrying cannot help)."""
        first_failure: float | None = None
        pause = RETRY_FIRST
        if self.reconnect:
            jobs = self.store.jobs
        while True:
            try:
                with self.instrument.settling(self.claimed_as):
                    value = await write(jobs)
            except ValidationError:
                raise
            except MediaStoreError as exc:
                now = time.monotonic()
                if first_failure is None:
                    first_failure = now
                until = min(
                    max((self.held.get(job_id, 0.0) for job_id in job_ids), default=0.0),
                    first_failure + self.lease_s,
                )
                if not self.patient or now >= until:
                    log.error(
                        "worker %s: %s failed (%s: %s) and its lease may have run out: "
                        "given up; the job(s) will run again once the lease expires",
                        self.worker_id,
                        what,
                        type(exc).__name__,
                        exc,
                    )
                    self.write_failures += 1
                    self.stats.unwritten += len(job_ids)
                    return None
                wait = min(pause, until - now)
                log.warning(
                    "worker %s: %s failed (%s: %s); retrying in %.2fs on a new connection",
                    self.worker_id,
                    what,
                    type(exc).__name__,
                    exc,
                    wait,
                )
                await asyncio.sleep(wait)
                pause = min(pause * 2, RETRY_MAX)
                jobs = self.store.jobs
                self.reconnect = True
            else:
                self.write_failures = 0
                # After a cancellation an attempt may have been cut off after its commit.
                return _Written(value, first_failure is not None or not self.patient)

    async def _completed_by_us(self, job: Job) -> bool:
        """After a retried completion found the lease gone: whether an earlier attempt of it
        committed (the job completed by this worker in this attempt)."""
        try:
            now = await self.store.jobs.get_by_id(job.id)
        except MediaStoreError:
            return False
        return (
            now is not None
            and now.status is JobStatus.COMPLETED
            and now.locked_by == self.worker_id
            and now.attempts == job.attempts
        )

    async def _failed_by_us(self, job: Job, error: str) -> Job | None:
        """After a retried failure found the lease gone: the job as an earlier attempt of it
        left it (this attempt's error, pending again or failed), if that attempt committed."""
        try:
            now = await self.store.jobs.get_by_id(job.id)
        except MediaStoreError:
            return None
        if (
            now is not None
            and now.status in (JobStatus.PENDING, JobStatus.FAILED)
            and now.error == error
            and now.attempts == job.attempts
        ):
            return now
        return None

    def _finished(self, job: Job, outcome: Outcome) -> None:
        for hook in self.finished_hooks:
            hook(job, outcome)

    def _completed(self, job: Job) -> None:
        self.stats.completed += 1
        self._finished(job, Outcome.COMPLETED)

    def _lost(self, job: Job) -> None:
        self.gone.discard(job.id)
        self.stats.lost += 1
        self._finished(job, Outcome.LOST)
        log.warning("worker %s lost the lease on job %s", self.worker_id, job.id)

    def _stopped(self, job: Job) -> bool:
        """Whether a heartbeat found ``job`` cancelled or lost: if so it is dropped (counted
        ``cancelled`` or ``lost``), with no outcome to write."""
        if job.id in self.gone:
            self.gone.discard(job.id)
            self.held.pop(job.id, None)
            self._lost(job)
            return True
        if job.id in self.cancelled:
            self._dropped(job)
            return True
        return False

    def _dropped(self, job: Job) -> None:
        """A job cancelled while held: no outcome to write, nothing to give back."""
        self.cancelled.discard(job.id)
        self.held.pop(job.id, None)
        self.stats.cancelled += 1
        self._finished(job, Outcome.CANCELLED)
        log.info("worker %s: job %s was cancelled; its handler was stopped", self.worker_id, job.id)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.beat_s)
            if not self.held:
                continue
            sent = time.monotonic()
            try:
                beat = await self.store.jobs.heartbeat(
                    self.worker_id, list(self.held), lease=self.lease_s
                )
            except MediaStoreError:
                log.exception("worker %s: heartbeat failed", self.worker_id)
                continue
            for job_id in beat.extended:
                if job_id in self.held:
                    self.held[job_id] = sent + self.lease_s
            for job_id in beat.cancelled:
                if self.held.pop(job_id, None) is not None:
                    self.cancelled.add(job_id)
                running = self.running
                if running is not None and running.job.id == job_id:
                    running.cancel()
            for job_id in beat.lost:
                if job_id in self.held and job_id not in self.cancelled:
                    # Another worker may run it now (reclaimed, or deleted): stop the handler
                    # as for a cancellation, and write no outcome.
                    log.warning("worker %s: lease on job %s lost", self.worker_id, job_id)
                    self.held.pop(job_id, None)
                    self.gone.add(job_id)
                    running = self.running
                    if running is not None and running.job.id == job_id:
                        running.cancel()

    async def _reclaim(self, jobs: JobRepository) -> int:
        try:
            reclaimed = await jobs.reclaim_expired()
        except MediaStoreError:
            log.exception("worker %s: reclaiming expired leases failed", self.worker_id)
            return 0
        for job in reclaimed:
            log.warning("worker %s reclaimed job %s: %s", self.worker_id, job.id, job.error)
        self.stats.reclaimed += len(reclaimed)
        return len(reclaimed)

    async def _release(self, jobs: JobRepository) -> None:
        if not self.held:
            return
        held, self.held = list(self.held), {}
        try:
            released = await jobs.release(self.worker_id, held)
        except MediaStoreError:
            log.exception(
                "worker %s: releasing jobs failed; their leases will expire", self.worker_id
            )
            return
        self.stats.released += len(released)

    async def _idle(self) -> None:
        """Sleep until the poll interval ends, a job is announced, or stop is set."""
        waits = [
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(self.stop.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
            self.wake.clear()

    async def _listen(self, established: asyncio.Future[None]) -> None:
        """LISTEN on a connection of the pool for the worker's lifetime (until cancelled),
        borrowed as every other connection is. The first LISTEN's outcome is set on
        ``established`` (its failure, :class:`~media_store.errors.PoolExhausted` or
        :class:`~media_store.errors.DatabaseUnavailable`, ends this at once).

        A LISTEN dies with its session (a terminated backend, a server restart,
        ``idle_session_timeout``) and nothing else tells, so a lost connection is replaced at
        once and then after pauses growing up to :data:`LISTEN_RETRY_MAX`, logged once per
        outage. Polling goes on meanwhile: LISTEN only lowers latency, so nothing here may
        stop the worker.
        """
        pause = LISTEN_RETRY_FIRST
        lost_since: float | None = None
        while True:
            lost = asyncio.Event()
            try:
                async with listening(
                    self.store.pool, NOTIFY_CHANNEL, self._notified, on_lost=lost.set
                ):
                    if not established.done():
                        established.set_result(None)
                    elif lost_since is not None:
                        log.info(
                            "worker %s: LISTEN re-established after %.1fs",
                            self.worker_id,
                            time.monotonic() - lost_since,
                        )
                        # A job created while nothing listened was announced to no one.
                        self.wake.set()
                    lost_since = None
                    pause = LISTEN_RETRY_FIRST
                    await lost.wait()
                reason = "its connection was closed"
            # Not only MediaStoreError: whatever failed, the worker goes on polling, and
            # listening again is tried on.
            except Exception as exc:
                if not established.done():
                    established.set_exception(exc)
                    return
                reason = f"{type(exc).__name__}: {exc}"
            if lost_since is None:
                lost_since = time.monotonic()
                log.warning(
                    "worker %s: LISTEN lost (%s); listening again on a new connection, "
                    "polling every %.2fs meanwhile",
                    self.worker_id,
                    reason,
                    self.poll_s,
                )
            else:
                log.debug("worker %s: LISTEN not re-established (%s)", self.worker_id, reason)
                await asyncio.sleep(pause)
                pause = min(pause * 2, LISTEN_RETRY_MAX)

    def _notified(self, *_: object) -> None:
        self.wake.set()


def _requires_two_arguments(handler: Handler) -> bool:
    """Whether ``handler`` must be called with ``(job, context)``: it cannot be called with
    the job alone but can with two arguments (``def h(job)``, ``def h(job, retries=3)`` and
    ``def h(*args)`` keep getting the job only)."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # no signature to read (some builtins): the job only
        return False
    try:
        signature.bind(None)
    except TypeError:
        pass
    else:
        return False
    try:
        signature.bind(None, None)
    except TypeError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    """``"ExceptionType: message"`` as a job's error, storable whatever the message holds (a
    NUL or a lone surrogate would be refused, leaving the job to its lease)."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not keep the failure from being recorded
        message = "<unprintable message>"
    text = f"{type(exc).__name__}: {message}".replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
