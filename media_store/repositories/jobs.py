"""Jobs: create, read, list, move one by hand, delete; and :class:`JobRepository`, the one
class callers use, composed of every part of the jobs table's repository. Same order as
sql/jobs.sql: the reads of :class:`JobReads` first, then the writes of :class:`JobRepository`.

The other parts, each beside its own .sql file: the work queue (:mod:`.queue`), idempotent and
bulk creation (:mod:`.enqueue`), operating the queue (:mod:`.admin`), and what a refused
write reads to say why (:mod:`.job_refusals`). Their public names are importable from here too.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

import asyncpg

from media_store.db.queries import Query, query
from media_store.errors import (
    Conflict,
    JobNotFound,
    JobNotPending,
    ValidationError,
)
from media_store.models import arguments
from media_store.models.fields import INT32_MAX, MAX_PRIORITY, MIN_PRIORITY, shown
from media_store.models.inputs import (
    JOB_KEY,
    StatusValues,
    checked_job_type,
    checked_job_types,
    checked_status,
    job_values,
    status_values,
)
from media_store.models.rows import from_row
from media_store.models.schemas import Job, JobCreate, JobStatus, JobType
from media_store.repositories.admin import (
    DEFAULT_BATCH,
    MAX_RETENTION,
    JobAdmin,
    JobAdminReads,
    Purged,
    QueueStats,
    Requeued,
)
from media_store.repositories.enqueue import (
    MAX_BATCH,
    MAX_KEY_TRIES,
    Enqueued,
    JobEnqueue,
    OnConflict,
)
from media_store.repositories.job_refusals import JobRefusals
from media_store.repositories.queue import (
    DEFAULT_LEASE,
    MAX_CLAIM,
    Completed,
    Heartbeat,
    JobQueue,
)
from media_store.repositories.trace_contexts import JobTraceContexts


class _Unset:
    """Marks an argument the caller did not pass (None is a value: it stores NULL)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()

MAX_PAGE = 10_000
MAX_OFFSET = INT32_MAX  # get_all_jobs takes OFFSET as an int

# Who holds a job started by the plan's start_processing / update_status, and for how long:
# nothing heartbeats those, so the lease is long.
MANUAL_HOLDER: Final = "media_store:manual"
MANUAL_LEASE: Final = timedelta(hours=1)
_MANUAL_LEASE_S: Final = arguments.lease(MANUAL_LEASE)  # checked once, as the SQL takes it
# Keyset start of a listing: after the newest job (migrations/0004 keeps every stored time
# within the readable range).
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)
_MAX_ID = uuid.UUID(int=(1 << 128) - 1)

# The queries of sql/jobs.sql, in that file's order, each named after its method.
_UUID = uuid.UUID
_GET_BY_ID = query("get_job_by_id", returns=Job, params=(_UUID,))
_GET_BY_STATUS = query("get_jobs_by_status", returns=Job, params=(str, int))
_GET_ALL = query("get_all_jobs", returns=Job, params=(int, int))
_LIST_OF_TYPE = query("list_jobs_of_type", returns=Job, params=(str | None, datetime, _UUID, int))
_LIST_IN_STATUS = query(
    "list_jobs_in_status", returns=Job, params=(str, str | None, datetime, _UUID, int)
)
_LIST_WITH_KEY = query(
    "list_jobs_with_key",
    returns=Job,
    params=(str, str | None, str | None, datetime, _UUID, int),
)
_COUNT = query("count_jobs_by_status", returns=[("status", str), ("count", int)], params=())
_CREATE = query(
    "create_job",
    returns=Job,
    params=(str, str, str | None, dict[str, Any], int, int, datetime | None),
)
_UPDATE_STATUS = query(
    "update_job_status",
    returns=Job,
    params=(
        _UUID,
        str,
        bool,
        str | None,
        bool,
        dict[str, Any] | None,
        bool,
        int | None,
        str,
        float,
    ),
)
_START = query("start_job_processing", returns=Job, params=(_UUID, str, float))
_SET_PRIORITY = query("set_job_priority", returns=Job, params=(_UUID, int))
_DELETE = query("delete_job", returns=[("id", _UUID)], params=(_UUID,))


@dataclass(frozen=True, slots=True)
class JobCursor:
    """Position after the last job of a page (newest-first order). Opaque as a string."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode()

    @classmethod
    def decode(cls, token: str) -> JobCursor:
        """The cursor :meth:`encode` made. Raises :class:`ValidationError` for anything else."""
        if not isinstance(token, str):
            raise ValidationError(f"invalid job cursor {shown(token)}")
        try:
            created_at, job_id = base64.urlsafe_b64decode(token.encode()).decode().split("|")
            parsed = datetime.fromisoformat(created_at)
            if parsed.utcoffset() is None:
                raise ValueError("naive timestamp")
            return cls(parsed, uuid.UUID(job_id))
        except ValueError as exc:  # bad base64, UTF-8, separator, timestamp or UUID
            raise ValidationError(f"invalid job cursor {shown(token)}") from exc


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next: JobCursor | None  # None on the last page


class JobReads(JobAdminReads):
    """The reads of the jobs table, and only reads: by id, by status, all of them by offset
    or by keyset page, counts by status, and (inherited from
    :class:`~media_store.repositories.admin.JobAdminReads`) :meth:`stats`. The read-only view
    (``store.replica.jobs``) is built from this class; :class:`JobRepository` inherits it."""

    __slots__ = ()

    # stats' query (sql/admin.sql) first: the files in name order.
    queries: ClassVar[tuple[Query, ...]] = (
        *JobAdminReads.queries,
        _GET_BY_ID,
        _GET_BY_STATUS,
        _GET_ALL,
        _LIST_OF_TYPE,
        _LIST_IN_STATUS,
        _LIST_WITH_KEY,
        _COUNT,
    )

    async def get_by_id(self, job_id: uuid.UUID) -> Job | None:
        """One job, or None. Raises :class:`ValidationError` when ``job_id`` is no UUID."""
        row = await self._fetchrow(_GET_BY_ID, arguments.identifier("job_id", job_id))
        return None if row is None else from_row(Job, row)

    async def get_by_status(self, status: JobStatus | str, limit: int = 100) -> list[Job]:
        """Jobs in ``status``, newest first, at most ``limit``."""
        rows = await self._fetch(_GET_BY_STATUS, checked_status(status).value, _limit(limit))
        return [from_row(Job, row) for row in rows]

    async def get_all(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """All jobs, newest first, by offset (at most :data:`MAX_OFFSET`). Deep pages: use
        :meth:`list_jobs`."""
        rows = await self._fetch(
            _GET_ALL, _limit(limit), arguments.bounded_int("offset", offset, 0, MAX_OFFSET)
        )
        return [from_row(Job, row) for row in rows]

    async def list_jobs(
        self,
        after: JobCursor | str | None = None,
        limit: int = 100,
        *,
        status: JobStatus | str | None = None,
        job_type: JobType | str | None = None,
        key: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first, after ``after`` (a cursor or its string form),
        only those in ``status``, of ``job_type`` and created with idempotency key ``key``
        when given (an index range scan at any depth either way; by key, every job that
        ever had it, including the finished ones an ``active`` key had before)."""
        limit = _limit(limit)
        if key is not None:
            return await self._list_with_key(after, limit, status, job_type, key)
        if status is not None or job_type is not None:
            return await self._list_filtered(after, limit, status, job_type)
        if after is None:
            rows = await self._fetch(_GET_ALL, limit, 0)
        else:
            cursor = _cursor(after)
            rows = await self._fetch(_LIST_OF_TYPE, None, cursor.created_at, cursor.id, limit)
        return _page(rows, limit)

    async def _list_with_key(
        self,
        after: JobCursor | str | None,
        limit: int,
        status: JobStatus | str | None,
        job_type: JobType | str | None,
        key: str,
    ) -> JobPage:
        key = arguments.name("key", key, arguments.MAX_KEY)
        wanted = None if status is None else checked_status(status).value
        type_ = None if job_type is None else checked_job_type(job_type)
        cursor = JobCursor(_LATEST, _MAX_ID) if after is None else _cursor(after)
        rows = await self._fetch(
            _LIST_WITH_KEY, key, wanted, type_, cursor.created_at, cursor.id, limit
        )
        return _page(rows, limit)

    async def _list_filtered(
        self,
        after: JobCursor | str | None,
        limit: int,
        status: JobStatus | str | None,
        job_type: JobType | str | None,
    ) -> JobPage:
        wanted = None if status is None else checked_status(status).value
        type_ = None if job_type is None else checked_job_type(job_type)
        cursor = JobCursor(_LATEST, _MAX_ID) if after is None else _cursor(after)
        if wanted is None:
            rows = await self._fetch(_LIST_OF_TYPE, type_, cursor.created_at, cursor.id, limit)
        else:
            rows = await self._fetch(
                _LIST_IN_STATUS, wanted, type_, cursor.created_at, cursor.id, limit
            )
        return _page(rows, limit)

    async def count_by_status(self) -> dict[JobStatus, int]:
        """Number of jobs in every status, zero counts included."""
        counts = dict.fromkeys(JobStatus, 0)
        for row in await self._fetch(_COUNT):
            counts[JobStatus(row["status"])] = row["count"]
        return counts


class JobRepository(JobReads, JobEnqueue, JobQueue, JobAdmin):
    """Create, read, move and delete jobs: the one class callers use (``store.jobs``,
    ``JobRepository(conn)``), composed of the parts of the jobs table's repository over the
    shared :class:`~media_store.repositories.base.Repository` (one executor, no state of its
    own): :class:`JobReads` (reads, and :meth:`stats`),
    :class:`~media_store.repositories.enqueue.JobEnqueue` (:meth:`enqueue`,
    :meth:`create_many`), :class:`~media_store.repositories.queue.JobQueue` (claim, heartbeat,
    complete, fail, release, reclaim) and :class:`~media_store.repositories.admin.JobAdmin`
    (cancel, requeue, purge); the writes of sql/jobs.sql are its own.

    Status changes follow the lifecycle enforced by the database
    (``media_store_job_transition_allowed``): pending -> processing -> completed | failed,
    processing -> pending, failed -> pending. Anything else raises :class:`InvalidTransition`
    and changes nothing.
    """

    __slots__ = ()

    # Every query of every part, the files in name order (what media-store check verifies).
    queries: ClassVar[tuple[Query, ...]] = (
        *JobAdmin.queries,
        *JobAdminReads.queries,
        *JobEnqueue.queries,
        *JobRefusals.queries,
        *JobReads.queries[len(JobAdminReads.queries) :],
        _CREATE,
        _UPDATE_STATUS,
        _START,
        _SET_PRIORITY,
        _DELETE,
        *JobQueue.queries,
        *JobTraceContexts.queries,
    )

    async def create(self, data: JobCreate | Mapping[str, Any]) -> Job:
        """Insert a pending job. Raises :class:`ValidationError` before any SQL on bad input,
        and :class:`DuplicateJob` (nothing written) when it has an ``idempotency_key`` another
        job holds: :meth:`enqueue` returns that job instead."""
        values = job_values(None, data)
        if values[JOB_KEY] is not None:
            return (await self._enqueue(values, "raise")).job
        if (carrier := self._trace_carrier()) is not None:
            return await self._create_traced(values, carrier)
        row = await self._fetchrow(_CREATE, *values[:JOB_KEY])
        assert row is not None
        return from_row(Job, row)

    async def update_status(
        self,
        job_id: uuid.UUID,
        status: JobStatus | str,
        *,
        error: str | _Unset | None = UNSET,
        result: Mapping[str, Any] | _Unset | None = UNSET,
        processing_time_ms: int | _Unset | None = UNSET,
    ) -> Job:
        """Move a job to ``status``, storing exactly the optional values passed.

        Explicit ``error=""``, ``processing_time_ms=0`` and ``result={}`` are stored; an
        omitted one is left as it is; ``None`` stores NULL. On completion or failure
        ``completed_at`` and (unless passed) ``processing_time_ms`` come from the database
        clock. Raises :class:`JobNotFound`, :class:`InvalidTransition` (nothing changed) or
        :class:`ValidationError` (before any SQL). Back to pending from failed, when another
        job holds the job's idempotency key now: :class:`DuplicateJob` naming it.

        ``status="cancelled"`` is :meth:`cancel` (a processing job's holder is told, its late
        outcome refused); it takes none of the optional values (:class:`ValidationError`).
        """
        job_id = arguments.identifier("job_id", job_id)
        target = checked_status(status)
        given = {
            name: value
            for name, value in (
                ("error", error),
                ("result", result),
                ("processing_time_ms", processing_time_ms),
            )
            if value is not UNSET
        }
        if target is JobStatus.CANCELLED:
            if given:
                raise ValidationError(
                    f"update_status(..., 'cancelled') takes no {', '.join(given)}: "
                    "it is jobs.cancel(job_id)"
                )
            return await self.cancel(job_id)
        values = status_values(given)
        try:
            row = await self._update_status(job_id, target, given, values)
        except Conflict as exc:
            raise await self._key_taken(job_id, exc) from None
        if row is None:
            raise await self._refusal(job_id, target)
        return from_row(Job, row)

    async def _update_status(
        self, job_id: uuid.UUID, target: JobStatus, given: Mapping[str, Any], values: StatusValues
    ) -> asyncpg.Record | None:
        return await self._fetchrow(
            _UPDATE_STATUS,
            job_id,
            target.value,
            "error" in given,
            values[0],
            "result" in given,
            values[1],
            "processing_time_ms" in given,
            values[2],
            MANUAL_HOLDER,
            _MANUAL_LEASE_S,
        )

    async def start_processing(
        self,
        job_id: uuid.UUID,
        *,
        worker_id: str = "",
        lease: timedelta | float | None = None,
    ) -> Job:
        """Atomically move a pending job to processing; of concurrent callers exactly one
        succeeds, the others get :class:`InvalidTransition`.

        The job is leased to ``worker_id`` (default :data:`MANUAL_HOLDER`) for ``lease``
        (default :data:`MANUAL_LEASE`, long because nothing heartbeats it; at most
        :data:`~media_store.models.arguments.MAX_LEASE`). Workers should use :meth:`claim` and
        :meth:`heartbeat` instead. Raises :class:`JobNotFound`, or :class:`ValidationError`
        before any SQL.
        """
        job_id = arguments.identifier("job_id", job_id)
        default = isinstance(worker_id, str) and worker_id == ""
        holder = MANUAL_HOLDER if default else arguments.worker_id(worker_id)
        span = _MANUAL_LEASE_S if lease is None else arguments.lease(lease)
        row = await self._fetchrow(_START, job_id, holder, span)
        if row is None:
            raise await self._refusal(job_id, JobStatus.PROCESSING)
        return from_row(Job, row)

    async def set_priority(self, job_id: uuid.UUID, priority: int) -> Job:
        """Give a pending job another priority (from :data:`MIN_PRIORITY` to
        :data:`MAX_PRIORITY`; higher is claimed first): the next claims take it in its new
        place. Raises :class:`JobNotPending` (nothing changed) when it is claimed or finished,
        :class:`JobNotFound`, or :class:`ValidationError` before any SQL."""
        job_id = arguments.identifier("job_id", job_id)
        value = arguments.bounded_int("priority", priority, MIN_PRIORITY, MAX_PRIORITY)
        row = await self._fetchrow(_SET_PRIORITY, job_id, value)
        if row is None:
            current = await self._not_pending(job_id)
            if current is None:
                raise JobNotFound(job_id)
            raise JobNotPending(job_id, current)
        return from_row(Job, row)

    async def delete(self, job_id: uuid.UUID) -> bool:
        """Delete a job and everything it produced. True if it existed."""
        return await self._fetchval(_DELETE, arguments.identifier("job_id", job_id)) is not None


def _limit(limit: int) -> int:
    return arguments.bounded_int("limit", limit, 1, MAX_PAGE)


def _cursor(after: JobCursor | str) -> JobCursor:
    """``after`` of :meth:`JobReads.list_jobs` as a cursor whose fields the SQL takes."""
    if isinstance(after, str):
        return JobCursor.decode(after)
    if (
        isinstance(after, JobCursor)
        and isinstance(after.created_at, datetime)
        and after.created_at.utcoffset() is not None
        and isinstance(after.id, uuid.UUID)
    ):
        return after
    raise ValidationError(
        f"after must be a JobCursor (an aware created_at and a UUID) or its string form, "
        f"got {shown(after)}"
    )


def _page(rows: list[asyncpg.Record], limit: int) -> JobPage:
    """A keyset page of job rows: a cursor after the last one when the page is full."""
    jobs = [from_row(Job, row) for row in rows]
    last = jobs[-1] if len(jobs) == limit else None
    return JobPage(jobs, None if last is None else JobCursor(last.created_at, last.id))


__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_LEASE",
    "MANUAL_HOLDER",
    "MANUAL_LEASE",
    "MAX_BATCH",
    "MAX_CLAIM",
    "MAX_KEY_TRIES",
    "MAX_OFFSET",
    "MAX_PAGE",
    "MAX_RETENTION",
    "UNSET",
    "Completed",
    "Enqueued",
    "Heartbeat",
    "JobCursor",
    "JobPage",
    "JobReads",
    "JobRepository",
    "OnConflict",
    "Purged",
    "QueueStats",
    "Requeued",
    "checked_job_types",
]
