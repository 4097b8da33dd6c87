"""The work queue: claim, heartbeat, complete, complete_many, fail, release, reclaim_expired.
Same order as sql/queue.sql."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Final

from media_store.db.queries import Query, query
from media_store.errors import ValidationError
from media_store.models import arguments
from media_store.models.inputs import checked_job_types, validate_input
from media_store.models.rows import columns, from_row, from_wider_row
from media_store.models.schemas import Job, JobType, StatusUpdate
from media_store.repositories.job_refusals import JobRefusals
from media_store.repositories.trace_contexts import carrier_of

DEFAULT_LEASE: Final = timedelta(seconds=30)
MAX_CLAIM = 1_000

# The queries of sql/queue.sql, in that file's order, each named after its method.
_UUID = uuid.UUID
_CLAIM = query("claim_jobs", returns=Job, params=(str, int, float, list[str] | None))
_JOB_COLUMNS = columns(Job)
_CLAIM_TRACED = query(
    "claim_traced_jobs",
    returns=[*_JOB_COLUMNS, ("traceparent", str | None), ("tracestate", str | None)],
    params=(str, int, float, list[str] | None),
)
_HEARTBEAT = query(
    "heartbeat_jobs",
    returns=[("id", _UUID), ("cancelled", bool)],
    params=(str, list[_UUID], float),
)
_ACKNOWLEDGE = query("acknowledge_cancels", returns=[("job_id", _UUID)], params=(str, list[_UUID]))
_COMPLETE = query("complete_job", returns=Job, params=(_UUID, str, dict[str, Any] | None))
_COMPLETE_MANY = query(
    "complete_many_jobs",
    returns=[("id", _UUID)],
    params=(str, list[_UUID], list[dict[str, Any] | None]),
)
_FAIL = query("fail_job", returns=Job, params=(_UUID, str, str, bool, float))
_RELEASE = query("release_jobs", returns=[("id", _UUID)], params=(str, list[_UUID]))
_RECLAIM = query("reclaim_expired_jobs", returns=Job, params=())


class JobQueue(JobRefusals):
    """A worker's side of the jobs table: claim jobs under a lease, keep the lease, finish
    or give back what it holds. Every write after the claim is guarded by the lease."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (
        _CLAIM,
        _CLAIM_TRACED,
        _HEARTBEAT,
        _ACKNOWLEDGE,
        _COMPLETE,
        _COMPLETE_MANY,
        _FAIL,
        _RELEASE,
        _RECLAIM,
    )

    async def claim(
        self,
        worker_id: str,
        job_types: Iterable[JobType | str] | None = None,
        *,
        limit: int = 1,
        lease: timedelta | float = DEFAULT_LEASE,
    ) -> list[Job]:
        """Claim up to ``limit`` runnable pending jobs for ``worker_id``: highest priority
        first, and within a priority first in first out by the time each became runnable (its
        creation, or the start it was scheduled for with ``run_after``; a job scheduled for
        later is not claimed before then).

        One statement (``FOR UPDATE SKIP LOCKED``): concurrent claimers never wait for each
        other and never get the same job. Each claimed job is processing, leased to
        ``worker_id`` until ``lease`` (a timedelta or seconds, at most
        :data:`~media_store.models.arguments.MAX_LEASE`) from now on the database clock, with
        one more attempt counted. ``job_types`` (None: any) restricts the types. Returns the
        claimed jobs by priority, oldest first within one, possibly none. Raises
        :class:`ValidationError` before any SQL on bad input.
        """
        rows = await self._fetch(_CLAIM, *claim_arguments(worker_id, job_types, limit, lease))
        return [from_row(Job, row) for row in rows]

    async def claim_traced(
        self,
        worker_id: str,
        job_types: Iterable[JobType | str] | None = None,
        *,
        limit: int = 1,
        lease: timedelta | float = DEFAULT_LEASE,
    ) -> tuple[list[Job], list[dict[str, str] | None]]:
        """:meth:`claim`, and the trace context each claimed job was created in (W3C headers,
        as :meth:`trace_contexts` gives them; None for a job that has none), in the order of
        the jobs, read by the claim's own statement: what a traced worker calls, one round
        trip a batch instead of two."""
        rows = await self._fetch(
            _CLAIM_TRACED, *claim_arguments(worker_id, job_types, limit, lease)
        )
        claimed: list[Job] = []
        contexts: list[dict[str, str] | None] = []
        for row in rows:
            claimed.append(from_wider_row(Job, row))
            traceparent = row["traceparent"]
            contexts.append(
                None if traceparent is None else carrier_of(traceparent, row["tracestate"])
            )
        return claimed, contexts

    async def heartbeat(
        self,
        worker_id: str,
        job_ids: Iterable[uuid.UUID],
        *,
        lease: timedelta | float = DEFAULT_LEASE,
    ) -> Heartbeat:
        """Extend to ``lease`` from now the leases ``worker_id`` still holds among ``job_ids``.

        Returns which were extended and which were lost (reclaimed, finished, cancelled or
        deleted): a worker should stop working on a lost job, whose completion would raise
        :class:`LeaseLost`. Of the lost, ``cancelled`` lists those cancelled (:meth:`cancel`)
        while ``worker_id`` held them; their completion raises :class:`JobCancelled`.
        ``job_ids`` is an iterable of ids (duplicates count once). A heartbeat that a cancel
        committed under tells of it at once; one the cancel waited for extends the lease, and
        the next beat tells.
        """
        holder = arguments.worker_id(worker_id)
        span = arguments.lease(lease)
        wanted = arguments.identifiers("job_ids", job_ids)
        if not wanted:
            return Heartbeat(extended=[], lost=[])
        rows = await self._fetch(_HEARTBEAT, holder, wanted, span)
        kept = {row["id"] for row in rows if not row["cancelled"]}
        cancelled = {row["id"] for row in rows if row["cancelled"]}
        unexplained = [job_id for job_id in wanted if job_id not in kept | cancelled]
        if unexplained:  # a cancel this beat waited for: its request is newer than the beat
            rows = await self._fetch(_ACKNOWLEDGE, holder, unexplained)
            cancelled.update(row["job_id"] for row in rows)
        return Heartbeat(
            extended=[job_id for job_id in wanted if job_id in kept],
            lost=[job_id for job_id in wanted if job_id not in kept],
            cancelled=[job_id for job_id in wanted if job_id in cancelled],
        )

    async def complete(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        result: Mapping[str, Any] | None = None,
    ) -> Job:
        """Complete a job ``worker_id`` holds, storing ``result`` and clearing any error left by
        an earlier attempt. ``processing_time_ms`` is measured on the database clock from the
        claim. Raises :class:`LeaseLost` (nothing changed) when ``worker_id`` no longer holds
        the job, :class:`JobCancelled` when it was cancelled meanwhile, :class:`JobNotFound`
        when it is gone, :class:`ValidationError` before any SQL.
        """
        job_id = arguments.identifier("job_id", job_id)
        holder = arguments.worker_id(worker_id)
        row = await self._fetchrow(_COMPLETE, job_id, holder, _result(result))
        if row is None:
            raise await self._lease_refusal(job_id, holder)
        return from_row(Job, row)

    async def complete_many(
        self, worker_id: str, results: Mapping[uuid.UUID, Mapping[str, Any] | None]
    ) -> Completed:
        """:meth:`complete` for many jobs in one statement: ``results`` maps each job id to
        its result. Returns which were completed and which ``worker_id`` no longer held
        (lost or deleted: those are left unchanged, no error is raised for them). Raises
        :class:`ValidationError` before any SQL if any id or result is invalid, or an id is
        given twice (e.g. as a UUID and as its string).
        """
        holder = arguments.worker_id(worker_id)
        given = arguments.mapping("results", results)
        ids = arguments.identifiers("results", given)
        if len(ids) != len(given):
            raise ValidationError("results: a job id is given twice")
        values = [_result(result) for result in given.values()]
        if not ids:
            return Completed(completed=[], lost=[])
        done = {row["id"] for row in await self._fetch(_COMPLETE_MANY, holder, ids, values)}
        return Completed(
            completed=[i for i in ids if i in done], lost=[i for i in ids if i not in done]
        )

    async def fail(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        error: str,
        *,
        retry: bool = True,
        retry_in: timedelta | float | None = None,
    ) -> Job:
        """Record ``error`` on a job ``worker_id`` holds.

        With ``retry`` and attempts left (``attempts < max_attempts``) the job returns to
        pending, claimable after ``retry_in`` (None: at once; at most
        :data:`~media_store.models.arguments.MAX_DURATION`); otherwise it is failed for good
        with this error. Raises :class:`LeaseLost` (nothing changed), :class:`JobCancelled`,
        :class:`JobNotFound`, or :class:`ValidationError` before any SQL.
        """
        job_id = arguments.identifier("job_id", job_id)
        holder = arguments.worker_id(worker_id)
        values = validate_input(StatusUpdate, {"error": error})
        if values.error is None:
            raise ValidationError("error must be a string")
        again = arguments.flag("retry", retry)
        delay = 0.0 if retry_in is None else arguments.duration("retry_in", retry_in)
        row = await self._fetchrow(_FAIL, job_id, holder, values.error, again, delay)
        if row is None:
            raise await self._lease_refusal(job_id, holder)
        return from_row(Job, row)

    async def release(self, worker_id: str, job_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Give back unfinished jobs ``worker_id`` still holds (e.g. on shutdown): they are
        pending again at once and the interrupted attempt is not counted. Returns the ids
        released; jobs it no longer held are left alone."""
        holder = arguments.worker_id(worker_id)
        wanted = arguments.identifiers("job_ids", job_ids)
        if not wanted:
            return []
        released = {row["id"] for row in await self._fetch(_RELEASE, holder, wanted)}
        return [job_id for job_id in wanted if job_id in released]

    async def reclaim_expired(self) -> list[Job]:
        """Take back every job whose lease has expired: pending again when it has attempts
        left, else failed for good; ``error`` names the holder that lost it. One statement,
        safe to run from every worker at once. Returns the jobs as they are now."""
        return [from_row(Job, row) for row in await self._fetch(_RECLAIM)]


@dataclass(frozen=True, slots=True)
class Completed:
    """What :meth:`JobQueue.complete_many` did: jobs completed, and leases lost."""

    completed: list[uuid.UUID]
    lost: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a heartbeat found: leases extended, and jobs the worker no longer holds; of
    those, the ones cancelled while it held them."""

    extended: list[uuid.UUID]
    lost: list[uuid.UUID]
    cancelled: list[uuid.UUID] = field(default_factory=list)


def claim_arguments(
    worker_id: str,
    job_types: Iterable[JobType | str] | None,
    limit: int,
    lease: timedelta | float,
) -> tuple[str, int, float, list[str] | None]:
    """A claim's statement arguments, checked (:class:`ValidationError` on bad input)."""
    return (
        arguments.worker_id(worker_id),
        arguments.bounded_int("limit", limit, 1, MAX_CLAIM),
        arguments.lease(lease),
        checked_job_types(job_types),
    )


def _result(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A job's result as stored: checked as :class:`StatusUpdate` checks it (a JSON object the
    database stores as given), or None. None is stored as it is without building a model: a
    worker's handlers mostly return nothing, and the drain completes every job this way."""
    if result is None:
        return None
    return validate_input(StatusUpdate, {"result": result}).result
