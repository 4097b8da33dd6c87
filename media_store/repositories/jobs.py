"""Jobs: the plan's JobRepository, atomic and lifecycle-checked. Same order as sql/jobs.sql."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

import asyncpg

from media_store.db.queries import Query, query
from media_store.errors import (
    Conflict,
    DatabaseError,
    DuplicateJob,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    JobNotPending,
    LeaseLost,
    ValidationError,
)
from media_store.models import arguments
from media_store.models.fields import INT32_MAX, MAX_PRIORITY, MIN_PRIORITY, shown
from media_store.models.inputs import (
    JobValues,
    StatusValues,
    job_values,
    status_values,
    validate_input,
)
from media_store.models.rows import from_row
from media_store.models.schemas import (
    FINISHED_STATUSES,
    Job,
    JobCreate,
    JobStats,
    JobStatus,
    JobType,
    KeyScope,
    StatusUpdate,
)
from media_store.repositories.base import Repository


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
DEFAULT_LEASE: Final = timedelta(seconds=30)
MAX_CLAIM = 1_000
# Jobs a create_many takes; jobs deleted (or requeued) per statement at most.
MAX_BATCH = 10_000
# How often an idempotent creation runs its statement again when the key's holder committed
# after the statement's snapshot was taken (see enqueue_job in sql/jobs.sql). Each retry needs
# another transaction to take or let go of the key within one statement's run: two are rare.
MAX_KEY_TRIES = 16
OnConflict = Literal["return", "raise"]
# Jobs deleted (or requeued) per statement by default, each its own short transaction.
DEFAULT_BATCH = 1_000
# How far back a purge may reach: any age a finished job can have (the readable time range).
MAX_RETENTION: Final = timedelta(days=3_660_000)
# Keyset bounds: before the first finished job and after the newest job (migrations/0004
# keeps every stored time within them).
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)
_MIN_ID = uuid.UUID(int=0)
_MAX_ID = uuid.UUID(int=(1 << 128) - 1)
_KEY: Final = 7  # the idempotency key's place in JobValues
_STATUSES = tuple(s.value for s in JobStatus)
_TYPES = tuple(t.value for t in JobType)

# The queries of sql/jobs.sql, in that file's order, each named after its method.
_UUID = uuid.UUID
_JOB_COLUMNS = [(name, field.annotation) for name, field in Job.model_fields.items()]
_JOB_FIELDS = tuple(Job.model_fields)
_CREATE = query(
    "create_job",
    returns=Job,
    params=(str, str, str | None, dict[str, Any], int, int, datetime | None),
)
_ENQUEUE = query(
    "enqueue_job",
    returns=[("created", bool), *_JOB_COLUMNS],
    params=(str, str, str | None, dict[str, Any], int, int, datetime | None, str, str),
)
_BATCH_PARAMS = (
    list[str],
    list[str],
    list[str | None],
    list[dict[str, Any]],
    list[int],
    list[int],
    list[datetime | None],
    list[str | None],
    list[str | None],
)
_CLOCK = query("get_clock", returns=[("now", datetime)], params=())
_CREATE_KEYED = query(
    "create_keyed_jobs",
    returns=[("id", _UUID), ("created_at", datetime), ("updated_at", datetime)],
    params=_BATCH_PARAMS,
)
_KEY_HOLDERS = query("get_key_holders", returns=Job, params=(list[str],))
_GET_BY_ID = query("get_job_by_id", returns=Job, params=(_UUID,))
_GET_STATUS = query("get_job_status", returns=[("status", str)], params=(_UUID,))
_GET_BY_STATUS = query("get_jobs_by_status", returns=Job, params=(str, int))
_GET_ALL = query("get_all_jobs", returns=Job, params=(int, int))
_LIST_AFTER = query("list_jobs_after", returns=Job, params=(datetime, _UUID, int))
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
_COUNT = query("count_jobs_by_status", returns=[("status", str), ("count", int)], params=())
_CLAIM = query("claim_jobs", returns=Job, params=(str, int, float, list[str] | None))
_CLAIM_OF_TYPE = query("claim_jobs_of_type", returns=Job, params=(str, int, float, str))
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
_CANCEL = query("cancel_job", returns=Job, params=(_UUID,))
_REQUEUE = query("requeue_job", returns=Job, params=(_UUID,))
_REQUEUE_FAILED = query("requeue_failed_jobs", returns=[("id", _UUID)], params=(str | None, int))
_REQUEUE_BLOCKED = query("count_requeue_blocked", returns=[("count", int)], params=(str | None,))
_LIST_OF_TYPE = query("list_jobs_of_type", returns=Job, params=(str | None, datetime, _UUID, int))
_LIST_IN_STATUS = query(
    "list_jobs_in_status", returns=Job, params=(str, str | None, datetime, _UUID, int)
)
_LIST_WITH_KEY = query(
    "list_jobs_with_key",
    returns=Job,
    params=(str, str | None, str | None, datetime, _UUID, int),
)
_PURGE_CUTOFF = query("get_purge_cutoff", returns=[("cutoff", datetime)], params=(float,))
_PURGE_COLUMNS = [
    ("jobs", int),
    ("media_assets", int),
    ("transcriptions", int),
    ("word_segments", int),
    ("words", int),
    ("analysis_results", int),
    ("last_completed_at", datetime | None),
    ("last_id", _UUID | None),
]
_PURGE_PARAMS = (str, datetime, datetime, _UUID, int)
_PURGE = query("purge_finished_jobs", returns=_PURGE_COLUMNS, params=_PURGE_PARAMS)
_COUNT_PURGEABLE = query("count_purgeable_jobs", returns=_PURGE_COLUMNS, params=_PURGE_PARAMS)
_STATS = query("get_job_stats", returns=JobStats, params=(list[str],))


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


def _limit(limit: int) -> int:
    return arguments.bounded_int("limit", limit, 1, MAX_PAGE)


def _cursor(after: JobCursor | str) -> JobCursor:
    """``after`` of :meth:`JobRepository.list_jobs` as a cursor whose fields the SQL takes."""
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


class JobRepository(Repository):
    """Create, read, move and delete jobs.

    Status changes follow the lifecycle enforced by the database
    (``media_store_job_transition_allowed``): pending -> processing -> completed | failed,
    processing -> pending, failed -> pending. Anything else raises :class:`InvalidTransition`
    and changes nothing.
    """

    __slots__ = ()

    queries = (
        _CREATE,
        _ENQUEUE,
        _CLOCK,
        _CREATE_KEYED,
        _KEY_HOLDERS,
        _GET_BY_ID,
        _GET_STATUS,
        _GET_BY_STATUS,
        _GET_ALL,
        _LIST_AFTER,
        _UPDATE_STATUS,
        _START,
        _SET_PRIORITY,
        _DELETE,
        _COUNT,
        _CLAIM,
        _CLAIM_OF_TYPE,
        _HEARTBEAT,
        _ACKNOWLEDGE,
        _COMPLETE,
        _COMPLETE_MANY,
        _FAIL,
        _RELEASE,
        _RECLAIM,
        _CANCEL,
        _REQUEUE,
        _REQUEUE_FAILED,
        _REQUEUE_BLOCKED,
        _LIST_OF_TYPE,
        _LIST_IN_STATUS,
        _LIST_WITH_KEY,
        _PURGE_CUTOFF,
        _PURGE,
        _COUNT_PURGEABLE,
        _STATS,
    )

    async def create(self, data: JobCreate | Mapping[str, Any]) -> Job:
        """Insert a pending job. Raises :class:`ValidationError` before any SQL on bad input,
        and :class:`DuplicateJob` (nothing written) when it has an ``idempotency_key`` another
        job holds: :meth:`enqueue` returns that job instead."""
        values = job_values(None, data)
        if values[_KEY] is not None:
            return (await self._enqueue(values, "raise")).job
        row = await self._fetchrow(_CREATE, *values[:_KEY])
        assert row is not None
        return from_row(Job, row)

    async def enqueue(
        self, data: JobCreate | Mapping[str, Any], *, on_conflict: OnConflict = "return"
    ) -> Enqueued:
        """Insert a pending job unless another job holds its ``idempotency_key``.

        A key is held by one job at a time: by a job of scope ``active`` (the default) while
        it is pending or processing, by a job of scope ``forever`` as long as it exists. When
        the key is held, nothing is written and the holder is returned with ``created=False``
        (``on_conflict="return"``) or :class:`DuplicateJob` is raised (``"raise"``). Of
        concurrent calls with one key exactly one creates the job: a unique index decides,
        not this process. Without a key, as :meth:`create`. Raises :class:`ValidationError`
        before any SQL on bad input.
        """
        mode = _on_conflict(on_conflict)
        values = job_values(None, data)
        if values[_KEY] is None:
            row = await self._fetchrow(_CREATE, *values[:_KEY])
            assert row is not None
            return Enqueued(from_row(Job, row), True)
        return await self._enqueue(values, mode)

    async def _enqueue(self, values: JobValues, mode: OnConflict) -> Enqueued:
        key = values[_KEY]
        assert key is not None
        for _ in range(MAX_KEY_TRIES):
            # No row: the holder committed after this statement's snapshot (see enqueue_job).
            row = await self._fetchrow(_ENQUEUE, *values)
            if row is not None:
                break
        else:
            raise DatabaseError(f"the idempotency key {shown(key)} kept changing holders")
        result = Enqueued(_job(row), row["created"])
        if not result.created and mode == "raise":
            raise DuplicateJob(key, result.job.id, result.job.status.value)
        return result

    async def create_many(
        self,
        items: Sequence[JobCreate | Mapping[str, Any]],
        *,
        on_conflict: OnConflict = "return",
    ) -> list[Enqueued]:
        """Insert many pending jobs in one statement, all or nothing; returns one
        :class:`Enqueued` per item, in input order.

        Every item is validated first: one bad item raises :class:`ValidationError` naming
        its index, and nothing is written. Items with an ``idempotency_key`` another job holds
        are handled as by :meth:`enqueue`: returned with ``created=False``, or with
        ``on_conflict="raise"`` :class:`DuplicateJob` naming the item's index, and nothing of
        the batch is written. Two items with one key: the first is enqueued, the later one
        returns the same job with ``created=False`` (with ``"raise"``: a
        :class:`ValidationError` before any SQL). The jobs of a batch are first in first out
        in input order (within a priority). At most :data:`MAX_BATCH` items.
        """
        mode = _on_conflict(on_conflict)
        arguments.sequence("items", items, MAX_BATCH)
        valid = [job_values(index, item) for index, item in enumerate(items)]
        first: dict[str, int] = {}  # key -> index of the first item with it
        copies: dict[int, int] = {}  # index of a later item -> index of the first, same key
        for index, values in enumerate(valid):
            key = values[_KEY]
            if key is not None and first.setdefault(key, index) != index:
                if mode == "raise":
                    raise ValidationError(
                        f"items {first[key]} and {index} have the same idempotency_key {shown(key)}"
                    )
                copies[index] = first[key]
        if not valid:
            return []
        if not first:  # no keys: one COPY inserts every item
            return await self._copy_new(valid, None)
        todo = [index for index in range(len(valid)) if index not in copies]
        batch = [valid[index] for index in todo]
        keys = [values[_KEY] for values in batch]
        copied: list[Enqueued] | None = None
        held = await self._fetch(_KEY_HOLDERS, [key for key in keys if key is not None])
        if held and mode == "raise":
            # Refused before anything is written: the holder of the first item whose key is
            # taken.
            index_of = {key: index for index, key in zip(todo, keys, strict=True) if key}
            holder = from_row(Job, min(held, key=lambda row: index_of[row["idempotency_key"]]))
            assert holder.idempotency_key is not None
            raise DuplicateJob(
                holder.idempotency_key,
                holder.id,
                holder.status.value,
                index_of[holder.idempotency_key],
            )
        if not held:
            # Every key is free: one COPY, in key order (bytewise: str order is code point
            # order, UTF-8's byte order), so that concurrent batches sharing keys wait for
            # each other's keys in one order and cannot deadlock. A key taken after the probe
            # makes the COPY fail on the unique index, and write nothing: then the statement
            # that handles taken keys runs.
            order = sorted(range(len(batch)), key=lambda position: keys[position] or "")
            try:
                async with self._transaction() as tx:
                    copied = await tx._copy_new(batch, order)
            except Conflict:
                copied = None
        results: dict[int, Enqueued]
        if copied is not None:
            results = dict(zip(todo, copied, strict=True))
        else:
            results = {}
            # A retry (a holder the snapshot missed) runs in the same transaction as the first
            # statement, so that the batch stays all or nothing.
            async with self._transaction() as tx:
                for _ in range(MAX_KEY_TRIES):
                    todo = await tx._insert_keyed(valid, todo, mode, results)
                    if not todo:
                        break
                else:
                    raise DatabaseError("idempotency keys of the batch kept changing holders")
        for index, source in copies.items():
            results[index] = Enqueued(results[source].job, False)
        return [results[index] for index in range(len(valid))]

    async def _copy_new(self, batch: list[JobValues], order: list[int] | None) -> list[Enqueued]:
        """Insert the jobs of ``batch`` (checked, with keys nobody holds) by one binary COPY,
        in ``order`` (positions in ``batch``; None: as they come), and return them as created,
        in batch order.

        Why a COPY: the rows stream to the server while the driver encodes the next ones and
        this builds each job, so the Python work overlaps the database's, and the server
        inserts without a statement's per-row executor work (10,000 jobs: 130-175 ms against
        170-220 for INSERT ... SELECT FROM unnest, measured). A COPY returns nothing, so this
        side chooses what the database otherwise would: ids are random version-4 UUIDs, as
        gen_random_uuid() makes them; created_at is the database's clock, read just before,
        less one microsecond per later item, so that the batch is first in first out in batch
        order whatever the clock's resolution and no job is created in the future; updated_at
        is that clock. All or nothing: one statement."""
        clock: datetime = await self._fetchval(_CLOCK)
        count = len(batch)
        raw = bytearray(os.urandom(16 * count))
        raw[6::16] = raw[6::16].translate(_UUID_VERSION_4)
        raw[8::16] = raw[8::16].translate(_UUID_VARIANT)
        done: list[Enqueued | None] = [None] * count
        last = count - 1

        def records() -> Iterator[tuple[Any, ...]]:
            for position in range(count) if order is None else order:
                values = batch[position]
                job_id = uuid.UUID(bytes=bytes(raw[16 * position : 16 * position + 16]))
                created_at = clock - _MICROSECOND * (last - position)
                done[position] = Enqueued(_unsaved_job(values, job_id, created_at, clock), True)
                yield (job_id, *values, created_at, clock)

        await self._copy("jobs", records(), _COPY_COLUMNS)
        return [enqueued for enqueued in done if enqueued is not None]

    async def _insert_keyed(
        self,
        valid: list[JobValues],
        todo: list[int],
        mode: OnConflict,
        results: dict[int, Enqueued],
    ) -> list[int]:
        """Run create_keyed_jobs for the items at ``todo``, filling ``results``; returns the
        items left without a row (keyed items whose holder the statement's snapshot missed)."""
        rows, built = await self._fetch_building(_CREATE_KEYED, [valid[index] for index in todo])
        for position in _dated(rows, built):
            results[todo[position]] = built[position]
        if len(rows) == len(todo):
            return []
        # Some keys were taken: their holders, by a statement of its own (its snapshot sees a
        # holder that committed after the insert's); an item whose holder is gone again (it
        # finished meanwhile) is left for the caller to run again.
        left = [index for index in todo if index not in results]
        by_key = {valid[index][_KEY]: index for index in left}
        for row in await self._fetch(_KEY_HOLDERS, list(by_key)):
            job = from_row(Job, row)
            index = by_key[job.idempotency_key]
            if mode == "raise":
                assert job.idempotency_key is not None
                raise DuplicateJob(job.idempotency_key, job.id, job.status.value, index)
            results[index] = Enqueued(job, False)
        return [index for index in left if index not in results]

    async def _fetch_building(
        self, query: Query, batch: list[JobValues]
    ) -> tuple[list[asyncpg.Record], list[Enqueued]]:
        """Run create_keyed_jobs (``query``) for ``batch`` and, while the server executes it,
        build each item's job as created (everything but what the database chooses, which
        :func:`_dated` fills in from its row). The statement and the Python work overlap: the
        build (~3 us a job, measured) costs the caller no time of its own when the server
        takes longer to insert the batch (~10 us a job). The build yields to the event loop
        between slices, so the statement goes out (and, if the connection has not prepared
        it yet, its preparation's answer comes in) before most of the work."""
        statement = asyncio.ensure_future(self._fetch(query, *_columns(batch)))
        try:
            built: list[Enqueued] = []
            for start in range(0, len(batch), _BUILD_SLICE):
                await asyncio.sleep(0)
                built.extend(
                    [
                        Enqueued(_unsaved_job(values), True)
                        for values in batch[start : start + _BUILD_SLICE]
                    ]
                )
            return await statement, built
        except BaseException:
            # Cancelled (or the build failed): the statement goes too, and is waited for, so
            # that its connection is back in its pool (or its transaction) before this returns.
            statement.cancel()
            await asyncio.wait([statement])
            if not statement.cancelled():
                statement.exception()  # retrieved: its error is not the one that matters
            raise

    async def get_by_id(self, job_id: uuid.UUID) -> Job | None:
        """One job, or None. Raises :class:`ValidationError` when ``job_id`` is no UUID."""
        row = await self._fetchrow(_GET_BY_ID, arguments.identifier("job_id", job_id))
        return None if row is None else from_row(Job, row)

    async def get_by_status(self, status: JobStatus | str, limit: int = 100) -> list[Job]:
        """Jobs in ``status``, newest first, at most ``limit``."""
        rows = await self._fetch(_GET_BY_STATUS, _status(status).value, _limit(limit))
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
            rows = await self._fetch(_LIST_AFTER, cursor.created_at, cursor.id, limit)
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
        wanted = None if status is None else _status(status).value
        type_ = None if job_type is None else _job_type(job_type)
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
        wanted = None if status is None else _status(status).value
        type_ = None if job_type is None else _job_type(job_type)
        cursor = JobCursor(_LATEST, _MAX_ID) if after is None else _cursor(after)
        if wanted is None:
            rows = await self._fetch(_LIST_OF_TYPE, type_, cursor.created_at, cursor.id, limit)
        else:
            rows = await self._fetch(
                _LIST_IN_STATUS, wanted, type_, cursor.created_at, cursor.id, limit
            )
        return _page(rows, limit)

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
        target = _status(status)
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
            current = await self._fetchval(_GET_STATUS, job_id)
            if current is None:
                raise JobNotFound(job_id)
            raise JobNotPending(job_id, current)
        return from_row(Job, row)

    async def delete(self, job_id: uuid.UUID) -> bool:
        """Delete a job and everything it produced. True if it existed."""
        return await self._fetchval(_DELETE, arguments.identifier("job_id", job_id)) is not None

    async def count_by_status(self) -> dict[JobStatus, int]:
        """Number of jobs in every status, zero counts included."""
        counts = dict.fromkeys(JobStatus, 0)
        for row in await self._fetch(_COUNT):
            counts[JobStatus(row["status"])] = row["count"]
        return counts

    async def _refusal(self, job_id: uuid.UUID, target: JobStatus) -> Exception:
        current = await self._fetchval(_GET_STATUS, job_id)
        if current is None:
            return JobNotFound(job_id)
        return InvalidTransition(job_id, current, target.value)

    # --- the work queue (sql/jobs.sql, same order) -----------------------------------------

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
        :data:`~media_store.models.arguments.MAX_LEASE`) from now on the database clock, with one
        more
        attempt counted. ``job_types`` (None: any) restricts the types. Returns the claimed
        jobs by priority, oldest first within one, possibly none. Raises
        :class:`ValidationError` before any SQL on bad input.
        """
        holder = arguments.worker_id(worker_id)
        count = arguments.bounded_int("limit", limit, 1, MAX_CLAIM)
        span = arguments.lease(lease)
        types = checked_job_types(job_types)
        if types is not None and len(types) == 1:
            rows = await self._fetch(_CLAIM_OF_TYPE, holder, count, span, types[0])
        else:
            rows = await self._fetch(_CLAIM, holder, count, span, types)
        return [from_row(Job, row) for row in rows]

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
        the job, :class:`JobNotFound` when it is gone, :class:`ValidationError` before any SQL.
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
        :data:`~media_store.models.arguments.MAX_DURATION`); otherwise it is failed for good with
        this
        error. Raises :class:`LeaseLost` (nothing changed), :class:`JobNotFound`, or
        :class:`ValidationError` before any SQL.
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

    async def _lease_refusal(self, job_id: uuid.UUID, worker_id: str) -> Exception:
        current = await self._fetchval(_GET_STATUS, job_id)
        if current is None:
            return JobNotFound(job_id)
        if current == JobStatus.CANCELLED.value:
            return JobCancelled(job_id, worker_id)
        return LeaseLost(job_id, worker_id)

    # --- operating the queue (sql/jobs.sql, same order) ------------------------------------

    async def cancel(self, job_id: uuid.UUID) -> Job:
        """Cancel a pending or processing job; returns it, cancelled (a final status).

        A pending job is never claimed. A processing job is cancelled at once too (its
        ``started_at`` and ``locked_by`` say it was running, and who ran it): its holder
        learns it at its next :meth:`heartbeat` (``Heartbeat.cancelled``; ``run_worker``
        then stops the handler), and its late :meth:`complete` or :meth:`fail` raises
        :class:`JobCancelled`, changing nothing. A cancel and a concurrent claim or
        completion are serialised on the job's row: whichever commits first wins.

        Raises :class:`InvalidTransition` (nothing changed) when the job is finished
        (completed, failed or already cancelled), :class:`JobNotFound`, or
        :class:`ValidationError` before any SQL.
        """
        job_id = arguments.identifier("job_id", job_id)
        row = await self._fetchrow(_CANCEL, job_id)
        if row is None:
            raise await self._refusal(job_id, JobStatus.CANCELLED)
        return from_row(Job, row)

    async def requeue(self, job_id: uuid.UUID) -> Job:
        """Put a failed job back to pending with a fresh set of attempts (``attempts`` 0; its
        last error is kept until its next outcome). Raises :class:`InvalidTransition` when
        it is not failed, :class:`JobNotFound`, or :class:`ValidationError` before any SQL."""
        job_id = arguments.identifier("job_id", job_id)
        try:
            row = await self._fetchrow(_REQUEUE, job_id)
        except Conflict as exc:
            raise await self._key_taken(job_id, exc) from None
        if row is None:
            raise await self._refusal(job_id, JobStatus.PENDING)
        return from_row(Job, row)

    async def _key_taken(self, job_id: uuid.UUID, exc: Conflict) -> Exception:
        """What to raise when putting failed job ``job_id`` back to pending broke the
        idempotency key's index: :class:`DuplicateJob` naming the job that holds the key now
        (the statement changed nothing), or ``exc`` if it was another conflict."""
        if "jobs_idempotency_key_idx" not in str(exc):
            return exc
        job = await self.get_by_id(job_id)
        key = None if job is None else job.idempotency_key
        if key is None:
            return exc
        rows = await self._fetch(_LIST_WITH_KEY, key, None, None, _LATEST, _MAX_ID, 100)
        for row in rows:
            other = from_row(Job, row)
            if other.id != job_id and (
                other.idempotency_scope == "forever"
                or other.status in (JobStatus.PENDING, JobStatus.PROCESSING)
            ):
                return DuplicateJob(key, other.id, other.status.value)
        return exc

    async def requeue_failed(
        self, job_type: JobType | str | None = None, *, batch: int = DEFAULT_BATCH
    ) -> Requeued:
        """:meth:`requeue` every failed job (of ``job_type``; None: any), ``batch`` jobs a
        statement, each its own transaction (on a pool, or a connection outside one), so
        row locks are held briefly. Returns how many were requeued: a :class:`Requeued`, an
        ``int`` whose ``skipped`` says how many failed jobs were left failed because another
        job holds their idempotency key now (pending or processing, or a ``forever`` key):
        :meth:`requeue` of one of them raises :class:`DuplicateJob`."""
        type_ = None if job_type is None else _job_type(job_type)
        size = arguments.bounded_int("batch", batch, 1, MAX_BATCH)
        total = 0
        while True:
            done = len(await self._fetch(_REQUEUE_FAILED, type_, size))
            total += done
            if done < size:
                skipped = await self._fetchval(_REQUEUE_BLOCKED, type_)
                return Requeued(total, skipped=skipped)

    async def purge(
        self,
        older_than: timedelta | float,
        statuses: Iterable[JobStatus | str] | None = None,
        *,
        dry_run: bool = False,
        batch: int = DEFAULT_BATCH,
    ) -> Purged:
        """Delete finished jobs that finished (``completed_at``) more than ``older_than``
        (a timedelta or seconds) ago, with their media assets, transcriptions and word
        segments, analysis results and cancellation records; returns what was deleted.

        ``statuses`` (default: all three) may name only finished statuses: completed,
        failed, cancelled. Pending and processing jobs are never deleted: naming their
        status raises :class:`ValidationError`, before any SQL, as does any other bad
        argument. Jobs go ``batch`` at a time (1 to :data:`MAX_BATCH`), oldest first, one
        statement each, so on a pool (or a connection outside a transaction) every batch is
        its own short transaction and locks only its own rows (``SKIP LOCKED``: a job an
        operator is requeueing meanwhile is left alone). The cut-off is fixed once, on the
        database clock, when the purge starts. With ``dry_run`` nothing is deleted or locked:
        the same walk counts what would go.
        """
        age = arguments.duration("older_than", older_than, maximum=MAX_RETENTION)
        wanted = _finished(statuses)
        size = arguments.bounded_int("batch", batch, 1, MAX_BATCH)
        dry = arguments.flag("dry_run", dry_run)
        cutoff = await self._fetchval(_PURGE_CUTOFF, age)
        purged = Purged(dry_run=dry, cutoff=cutoff)
        step = _COUNT_PURGEABLE if dry else _PURGE
        for status in wanted:
            after: tuple[datetime, uuid.UUID] = (_EARLIEST, _MIN_ID)
            while True:
                row = await self._fetchrow(step, status.value, cutoff, *after, size)
                assert row is not None
                purged.add(status, row)
                # LIMIT counts after SKIP LOCKED: a short batch is the end of the range.
                if row["last_id"] is None or row["jobs"] < size:
                    break
                after = (row["last_completed_at"], row["last_id"])
        return purged

    async def stats(self) -> QueueStats:
        """The queue at a glance, in one statement that reads only small indexes however
        many finished jobs the table holds: per job type, pending (and how many are
        claimable now, not waiting out a retry's backoff), the age of the oldest pending
        job, processing and expired leases, failed and cancelled in the last hour, completed
        in the last minute. Exact, on the database clock.

        The all-time totals of finished jobs are estimates (``*_estimate`` of ``total``,
        None until autovacuum or ANALYZE has analyzed the jobs table): counting them
        exactly would read every finished job (a million rows take ~100 ms), and keeping
        exact counters would add a write to every claim and completion (measured in
        ``benchmarks/bench_stats.py``)."""
        rows = [from_row(JobStats, row) for row in await self._fetch(_STATS, list(_TYPES))]
        return QueueStats(types=rows[:-1], total=rows[-1])


class Requeued(int):
    """What :meth:`JobRepository.requeue_failed` did: the number of jobs requeued (an
    ``int``, as before), and ``skipped``, failed jobs left failed because another job holds
    their idempotency key."""

    skipped: int

    def __new__(cls, requeued: int, *, skipped: int = 0) -> Requeued:
        value = super().__new__(cls, requeued)
        value.skipped = skipped
        return value

    @property
    def requeued(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"Requeued(requeued={int(self)}, skipped={self.skipped})"


class Enqueued(NamedTuple):
    """What an idempotent creation did: the job, and whether this call created it (False: the
    job is the one that held the idempotency key). A named tuple rather than a frozen
    dataclass: create_many makes one an item, and a frozen dataclass's __init__ cost 10,000 of
    them 40 ms, a tenth of the whole call (measured)."""

    job: Job
    created: bool


def _on_conflict(value: OnConflict) -> OnConflict:
    if isinstance(value, str) and value in ("return", "raise"):
        return "raise" if value == "raise" else "return"
    raise ValidationError(f"on_conflict must be 'return' or 'raise', got {shown(value)}")


def _columns(batch: list[JobValues]) -> list[list[Any]]:
    """The parallel arrays create_keyed_jobs takes: one list a column, an empty one for a column of
    NULLs only (unnest pads a shorter array with NULLs: the driver then need not inspect
    10,000 Nones one by one: 4-5 ms a column of 10,000, measured). The parameters' list goes
    as one JSON array (the statement's $4 is jsonb)."""
    return [
        list(column) if any(value is not None for value in column) else []
        for column in zip(*batch, strict=True)
    ]


_MICROSECOND: Final = timedelta(microseconds=1)
_BUILD_SLICE: Final = 500  # jobs built between two yields to the event loop
# UUID version 4 (random) and RFC 4122 variant bits, set bytewise (bytes 6 and 8 of each id).
_UUID_VERSION_4: Final = bytes((b & 0x0F) | 0x40 for b in range(256))
_UUID_VARIANT: Final = bytes((b & 0x3F) | 0x80 for b in range(256))
_COPY_COLUMNS: Final = (
    "id",
    "job_type",
    "media_url",
    "prompt",
    "parameters",
    "max_attempts",
    "priority",
    "run_after",
    "idempotency_key",
    "idempotency_scope",
    "created_at",
    "updated_at",
)


def _dated(rows: list[asyncpg.Record], built: list[Enqueued]) -> list[int]:
    """Fill in what the database chose (id, created_at, updated_at) for the jobs of
    create_keyed_jobs' rows, built by :func:`_unsaved_job` in the order the items
    were sent; returns the positions filled. The statement dates item i (from 0) one
    microsecond per later item before its clock, which it stores in updated_at: a row tells
    its item whatever order rows come back in. One loop, no call a row: this part of the
    Python cannot overlap the statement."""
    last = len(built) - 1
    positions = []
    for job_id, created_at, updated_at in rows:
        position = last - (updated_at - created_at) // _MICROSECOND
        fields = built[position].job.__dict__
        fields["id"] = job_id
        fields["created_at"] = created_at
        fields["updated_at"] = updated_at
        positions.append(position)
    return positions


_JOB_TYPE_OF: Final = {t.value: t for t in JobType}
_SCOPE_OF: Final[dict[str | None, KeyScope | None]] = {None: None, **{s.value: s for s in KeyScope}}
_ALL_FIELDS: Final = frozenset(Job.model_fields)
_new_object = object.__new__
_set = object.__setattr__


def _unsaved_job(
    values: JobValues,
    job_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> Job:
    """The job create_many inserts for ``values``, with the id and times given (for
    create_keyed_jobs, None until :func:`_dated` sets what the database chose): the rest as it
    was sent, with
    the column defaults of a new job (status pending, no attempt, no lease, no result); times
    in UTC, as the database returns them.

    Built without running Job's validator again (3 of the ~19 us a job of create_many cost
    in Python, measured), as ``Job.model_construct`` builds a model (its own Python code
    cost 7 us, more than validating) but directly. Safe: every field already has the exact
    type Job declares. The sent values are :func:`job_values`'s output, checked by the same
    rules as JobCreate (tests/repositories/test_enqueue.py holds that equal to JobCreate) and as
    Job's own
    types (str, int, an aware datetime, a dict; the enums are looked up by value); id,
    created_at and updated_at are what asyncpg decodes from the uuid and timestamptz columns
    (a UUID and aware datetimes); the rest are constants of a new job. parameters is copied
    (shallowly, as Job's validator copies a dict), so the caller's dict stays its own.
    tests/repositories/test_enqueue.py checks that these jobs equal the validated rows read back.
    """
    job_type, media_url, prompt, parameters, max_attempts, priority, run_after, key, scope = values
    job: Job = _new_object(Job)
    _set(
        job,
        "__dict__",
        {
            "id": job_id,
            "job_type": _JOB_TYPE_OF[job_type],
            "status": JobStatus.PENDING,
            "media_url": media_url,
            "prompt": prompt,
            "parameters": dict(parameters),
            "result": None,
            "error": None,
            "created_at": created_at,
            "updated_at": updated_at,
            "started_at": None,
            "completed_at": None,
            "processing_time_ms": None,
            "attempts": 0,
            "max_attempts": max_attempts,
            "locked_by": None,
            "locked_until": None,
            "heartbeat_at": None,
            "run_after": None if run_after is None else run_after.astimezone(UTC),
            "priority": priority,
            "idempotency_key": key,
            "idempotency_scope": _SCOPE_OF[scope],
        },
    )
    _set(job, "__pydantic_fields_set__", _ALL_FIELDS)
    _set(job, "__pydantic_extra__", None)
    _set(job, "__pydantic_private__", None)
    return job


def _job(row: asyncpg.Record) -> Job:
    """The job of an enqueue_job row, which carries ``created`` besides the job's columns."""
    return from_row(Job, {name: row[name] for name in _JOB_FIELDS})


def _status(value: JobStatus | str) -> JobStatus:
    # Only strings reach the enum: its own error message reprs the value whole, which for a
    # deeply nested one exhausts the stack.
    if isinstance(value, str) and value in _STATUSES:
        return JobStatus(value)
    raise ValidationError(f"unknown job status {shown(value)}; expected one of {list(_STATUSES)}")


@dataclass(frozen=True, slots=True)
class Completed:
    """What :meth:`JobRepository.complete_many` did: jobs completed, and leases lost."""

    completed: list[uuid.UUID]
    lost: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a heartbeat found: leases extended, and jobs the worker no longer holds; of
    those, the ones cancelled while it held them."""

    extended: list[uuid.UUID]
    lost: list[uuid.UUID]
    cancelled: list[uuid.UUID] = field(default_factory=list)


@dataclass(slots=True)
class Purged:
    """What :meth:`JobRepository.purge` deleted (or, with ``dry_run``, would delete): rows
    per table, and jobs per status. ``cutoff``: jobs finished before it went."""

    dry_run: bool
    cutoff: datetime
    jobs: int = 0
    media_assets: int = 0
    transcriptions: int = 0
    word_segments: int = 0
    words: int = 0
    analysis_results: int = 0
    by_status: dict[JobStatus, int] = field(default_factory=dict)
    batches: int = 0

    def add(self, status: JobStatus, row: asyncpg.Record) -> None:
        self.jobs += row["jobs"]
        self.media_assets += row["media_assets"]
        self.transcriptions += row["transcriptions"]
        self.word_segments += row["word_segments"]
        self.words += row["words"]
        self.analysis_results += row["analysis_results"]
        self.by_status[status] = self.by_status.get(status, 0) + row["jobs"]
        self.batches += 1


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What :meth:`JobRepository.stats` found: one :class:`JobStats` per job type, and
    ``total`` for all of them (with the estimated finished totals)."""

    types: list[JobStats]
    total: JobStats


def _page(rows: list[asyncpg.Record], limit: int) -> JobPage:
    """A keyset page of job rows: a cursor after the last one when the page is full."""
    jobs = [from_row(Job, row) for row in rows]
    last = jobs[-1] if len(jobs) == limit else None
    return JobPage(jobs, None if last is None else JobCursor(last.created_at, last.id))


def _result(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A job's result as stored: checked as :class:`StatusUpdate` checks it (a JSON object the
    database stores as given), or None. None is stored as it is without building a model: a
    worker's handlers mostly return nothing, and the drain completes every job this way."""
    if result is None:
        return None
    return validate_input(StatusUpdate, {"result": result}).result


def _job_type(value: JobType | str) -> str:
    if isinstance(value, str) and value in _TYPES:
        return JobType(value).value
    raise ValidationError(f"unknown job type {shown(value)}; expected one of {list(_TYPES)}")


def _finished(values: Iterable[JobStatus | str] | None) -> list[JobStatus]:
    """The finished statuses a purge may delete; pending and processing are refused."""
    if values is None:
        return list(FINISHED_STATUSES)
    if isinstance(values, str):
        values = [values]
    if isinstance(values, bytes) or not isinstance(values, Iterable):
        raise ValidationError(f"statuses must be job statuses, got {shown(values)}")
    wanted: list[JobStatus] = []
    for value in values:
        status = _status(value)
        if status not in FINISHED_STATUSES:
            raise ValidationError(
                f"statuses: {status.value} jobs are never purged; only finished ones "
                f"({', '.join(s.value for s in FINISHED_STATUSES)})"
            )
        if status not in wanted:
            wanted.append(status)
    if not wanted:
        raise ValidationError("statuses must name at least one finished status (or be None)")
    return wanted


def checked_job_types(values: Iterable[JobType | str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):  # one type given bare: accept it rather than its letters
        values = [values]
    if isinstance(values, bytes) or not isinstance(values, Iterable):
        raise ValidationError(
            f"job_types must be job types (or one, or None for any), got {shown(values)}"
        )
    types: list[str] = []
    for value in values:
        if not (isinstance(value, str) and value in _TYPES):
            raise ValidationError(
                f"job_types: unknown job type {shown(value)}; expected one of {list(_TYPES)}"
            )
        types.append(JobType(value).value)
    if not types:
        raise ValidationError("job_types must name at least one type (or be None for any)")
    return sorted(set(types))
