"""Operating the queue: cancel, requeue, requeue_failed, purge, and (a read) stats. Same order
as sql/admin.sql."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final

import asyncpg

from media_store.db.queries import Query, query
from media_store.errors import Conflict, InvalidTransition, ValidationError
from media_store.models import arguments
from media_store.models.fields import shown
from media_store.models.inputs import checked_job_type, checked_status
from media_store.models.rows import from_row
from media_store.models.schemas import FINISHED_STATUSES, Job, JobStats, JobStatus, JobType
from media_store.repositories.base import Repository
from media_store.repositories.job_refusals import JobRefusals

# Jobs deleted (or requeued) per statement: at most, and by default (each its own short
# transaction).
MAX_BATCH = 10_000
DEFAULT_BATCH = 1_000
# The longest older_than of a purge: short enough that the database clock less it is a time
# Python reads (3,660,000 days made a cut-off before year 1, and the purge raised
# OverflowError reading it back: found by tests/models/test_fuzz.py, issue 20 item 8). Nothing
# is out of reach: a job finished before year 110 (the earliest readable time is in year 1) is
# purged by this age too.
MAX_RETENTION: Final = timedelta(days=700_000)
# Keyset start of a purge: before the first finished job (migrations/0004 keeps every stored
# time within the readable range).
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
_MIN_ID = uuid.UUID(int=0)
_TYPES = tuple(t.value for t in JobType)

# The queries of sql/admin.sql, in that file's order, each named after its method.
_UUID = uuid.UUID
_CANCEL = query("cancel_job", returns=Job, params=(_UUID,))
_REQUEUE = query("requeue_job", returns=Job, params=(_UUID,))
_REQUEUE_FAILED = query("requeue_failed_jobs", returns=[("id", _UUID)], params=(str | None, int))
_REQUEUE_BLOCKED = query("count_requeue_blocked", returns=[("count", int)], params=(str | None,))
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


class JobAdmin(JobRefusals):
    """An operator's writes on the queue: cancel, requeue, requeue in bulk, purge."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (
        _CANCEL,
        _REQUEUE,
        _REQUEUE_FAILED,
        _REQUEUE_BLOCKED,
        _PURGE_CUTOFF,
        _PURGE,
        _COUNT_PURGEABLE,
    )

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
            refusal = await self._refusal(job_id, JobStatus.CANCELLED)
            raise _worded(refusal, "only pending or processing jobs can be cancelled")
        return from_row(Job, row)

    async def requeue(self, job_id: uuid.UUID) -> Job:
        """Put a failed job back to pending with a fresh set of attempts (``attempts`` 0; its
        last error is kept until its next outcome). Raises :class:`InvalidTransition` when
        it is not failed, :class:`DuplicateJob` (nothing changed) when another job holds its
        idempotency key now, :class:`JobNotFound`, or :class:`ValidationError` before any
        SQL."""
        job_id = arguments.identifier("job_id", job_id)
        try:
            row = await self._fetchrow(_REQUEUE, job_id)
        except Conflict as exc:
            raise await self._key_taken(job_id, exc) from None
        if row is None:
            refusal = await self._refusal(job_id, JobStatus.PENDING)
            raise _worded(refusal, "only failed jobs can be requeued")
        return from_row(Job, row)

    async def requeue_failed(
        self, job_type: JobType | str | None = None, *, batch: int = DEFAULT_BATCH
    ) -> Requeued:
        """:meth:`requeue` every failed job (of ``job_type``; None: any), ``batch`` jobs a
        statement, each its own transaction (on a pool, or a connection outside one), so
        row locks are held briefly. Returns how many were requeued: a :class:`Requeued`, an
        ``int`` whose ``skipped`` says how many failed jobs were left failed because another
        job holds their idempotency key now (pending or processing, or a ``forever`` key):
        :meth:`requeue` of one of them raises :class:`DuplicateJob`."""
        type_ = None if job_type is None else checked_job_type(job_type)
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


class JobAdminReads(Repository):
    """The operator's read: :meth:`stats`. Only reads: the read-only view's
    :class:`~media_store.repositories.jobs.JobReads` inherits it."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (_STATS,)

    async def stats(self) -> QueueStats:
        """The queue at a glance, in one statement that reads only small indexes however
        many finished jobs the table holds: per job type, pending (and how many are
        claimable now: due, their run_after, a scheduled start or a retry's backoff, not
        ahead), how long the longest-waiting due job has been due (from its run_after, else
        its creation), processing and expired leases, failed and cancelled in the last
        hour, completed in the last minute. Exact, on the database clock.

        The all-time totals of finished jobs are estimates (``*_estimate`` of ``total``,
        None until autovacuum or ANALYZE has analyzed the jobs table): counting them
        exactly would read every finished job (a million rows take ~100 ms), and keeping
        exact counters would add a write to every claim and completion (measured in
        ``benchmarks/bench_stats.py``)."""
        rows = [from_row(JobStats, row) for row in await self._fetch(_STATS, list(_TYPES))]
        return QueueStats(types=rows[:-1], total=rows[-1])


class Requeued(int):
    """What :meth:`JobAdmin.requeue_failed` did: the number of jobs requeued (an ``int``, as
    before), and ``skipped``, failed jobs left failed because another job holds their
    idempotency key."""

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


@dataclass(slots=True)
class Purged:
    """What :meth:`JobAdmin.purge` deleted (or, with ``dry_run``, would delete): rows per
    table, and jobs per status. ``cutoff``: jobs finished before it went."""

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
    """What :meth:`JobAdminReads.stats` found: one :class:`JobStats` per job type, and
    ``total`` for all of them (with the estimated finished totals)."""

    types: list[JobStats]
    total: JobStats


def _worded(refusal: Exception, rule: str) -> Exception:
    """``refusal``, an :class:`InvalidTransition` of an operator's call, with its message in
    the operator's words: the rule and the job's status ("only failed jobs can be requeued
    (job … is pending)"), where the lifecycle's "cannot move from pending to pending" left
    them to work out what was asked. Same class and attributes (``job_id``, ``current``,
    ``target``); any other error (:class:`JobNotFound`) as it is."""
    if isinstance(refusal, InvalidTransition):
        refusal.args = (f"{rule} (job {refusal.job_id} is {refusal.current})",)
    return refusal


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
        status = checked_status(value)
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
