"""Jobs: the plan's JobRepository, atomic and lifecycle-checked. Same order as sql/jobs.sql."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from media_store.errors import InvalidTransition, JobNotFound, ValidationError
from media_store.models import (
    Job,
    JobCreate,
    JobStatus,
    StatusUpdate,
    from_row,
    validate_input,
)
from media_store.queries import query
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

_UUID = uuid.UUID
_CREATE = query("create_job", returns=Job, params=(str, str, str | None, dict[str, Any]))
_GET = query("get_job", returns=Job, params=(_UUID,))
_GET_STATUS = query("get_job_status", returns=[("status", str)], params=(_UUID,))
_BY_STATUS = query("list_jobs_by_status", returns=Job, params=(str, int))
_LIST = query("list_jobs", returns=Job, params=(int, int))
_LIST_AFTER = query("list_jobs_after", returns=Job, params=(datetime, _UUID, int))
_UPDATE_STATUS = query(
    "update_job_status",
    returns=Job,
    params=(_UUID, str, bool, str | None, bool, dict[str, Any] | None, bool, int | None),
)
_START = query("start_job_processing", returns=Job, params=(_UUID,))
_DELETE = query("delete_job", returns=[("id", _UUID)], params=(_UUID,))
_COUNT = query("count_jobs_by_status", returns=[("status", str), ("count", int)], params=())


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
        try:
            created_at, job_id = base64.urlsafe_b64decode(token.encode()).decode().split("|")
            parsed = datetime.fromisoformat(created_at)
            if parsed.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(parsed, uuid.UUID(job_id))
        except ValueError as exc:
            raise ValidationError(f"invalid job cursor {token!r}") from exc


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next: JobCursor | None  # None on the last page


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    return limit


class JobRepository(Repository):
    """Create, read, move and delete jobs.

    Status changes follow the lifecycle enforced by the database
    (``media_store_job_transition_allowed``): pending -> processing -> completed | failed,
    processing -> pending, failed -> pending. Anything else raises :class:`InvalidTransition`
    and changes nothing.
    """

    __slots__ = ()

    async def create(self, data: JobCreate | Mapping[str, Any]) -> Job:
        """Insert a pending job. Raises :class:`ValidationError` before any SQL on bad input."""
        job = validate_input(JobCreate, data)
        row = await self._fetchrow(
            _CREATE, job.job_type.value, job.media_url, job.prompt, job.parameters
        )
        assert row is not None
        return from_row(Job, row)

    async def get_by_id(self, job_id: uuid.UUID) -> Job | None:
        row = await self._fetchrow(_GET, job_id)
        return None if row is None else from_row(Job, row)

    async def get_by_status(self, status: JobStatus | str, limit: int = 100) -> list[Job]:
        """Jobs in ``status``, newest first, at most ``limit``."""
        rows = await self._fetch(_BY_STATUS, _status(status).value, _limit(limit))
        return [from_row(Job, row) for row in rows]

    async def get_all(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """All jobs, newest first, by offset. Deep pages: use :meth:`list_jobs`."""
        if offset < 0:
            raise ValidationError(f"offset must be >= 0, got {offset}")
        rows = await self._fetch(_LIST, _limit(limit), offset)
        return [from_row(Job, row) for row in rows]

    async def list_jobs(self, after: JobCursor | str | None = None, limit: int = 100) -> JobPage:
        """One page of jobs, newest first, after ``after`` (a cursor or its string form)."""
        _limit(limit)
        if after is None:
            rows = await self._fetch(_LIST, limit, 0)
        else:
            cursor = JobCursor.decode(after) if isinstance(after, str) else after
            rows = await self._fetch(_LIST_AFTER, cursor.created_at, cursor.id, limit)
        jobs = [from_row(Job, row) for row in rows]
        last = jobs[-1] if len(jobs) == limit else None
        return JobPage(jobs, None if last is None else JobCursor(last.created_at, last.id))

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
        :class:`ValidationError` (before any SQL).
        """
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
        values = validate_input(StatusUpdate, given)
        row = await self._fetchrow(
            _UPDATE_STATUS,
            job_id,
            target.value,
            "error" in given,
            values.error,
            "result" in given,
            values.result,
            "processing_time_ms" in given,
            values.processing_time_ms,
        )
        if row is None:
            raise await self._refusal(job_id, target)
        return from_row(Job, row)

    async def start_processing(self, job_id: uuid.UUID) -> Job:
        """Atomically move a pending job to processing; of concurrent callers exactly one
        succeeds, the others get :class:`InvalidTransition`."""
        row = await self._fetchrow(_START, job_id)
        if row is None:
            raise await self._refusal(job_id, JobStatus.PROCESSING)
        return from_row(Job, row)

    async def delete(self, job_id: uuid.UUID) -> bool:
        """Delete a job and everything it produced. True if it existed."""
        return await self._fetchval(_DELETE, job_id) is not None

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


def _status(value: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError:
        raise ValidationError(
            f"unknown job status {value!r}; expected one of {[s.value for s in JobStatus]}"
        ) from None
