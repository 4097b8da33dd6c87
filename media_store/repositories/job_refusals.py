"""What every part of the jobs repository shares: why a job write was refused. Same order as
sql/job_refusals.sql.

A guarded write that changes nothing returns no row; these read the job afterwards, in a
statement of their own, to raise the error that says why (the job is gone, in another
status, held by another worker, cancelled, or its idempotency key taken).
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from media_store.db.queries import Query, query
from media_store.errors import (
    Conflict,
    DuplicateJob,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    LeaseLost,
)
from media_store.models.schemas import JobStatus
from media_store.repositories.base import Repository

_UUID = uuid.UUID
_GET_STATUS = query("get_job_status", returns=[("status", str)], params=(_UUID,))
_OTHER_KEY_HOLDER = query(
    "get_other_key_holder",
    returns=[("idempotency_key", str), ("id", _UUID), ("status", str)],
    params=(_UUID,),
)
# The unique index of held idempotency keys (migrations/0007): the conflict _key_taken explains.
KEY_INDEX = "jobs_idempotency_key_idx"


class JobRefusals(Repository):
    """The errors of refused job writes, read from the database. Holds no public method: the
    parts of :class:`~media_store.repositories.jobs.JobRepository` inherit it."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (_GET_STATUS, _OTHER_KEY_HOLDER)

    async def _refusal(self, job_id: uuid.UUID, target: JobStatus) -> Exception:
        """What to raise when moving ``job_id`` to ``target`` changed nothing:
        :class:`JobNotFound`, or :class:`InvalidTransition` from its current status."""
        current = await self._fetchval(_GET_STATUS, job_id)
        if current is None:
            return JobNotFound(job_id)
        return InvalidTransition(job_id, current, target.value)

    async def _lease_refusal(self, job_id: uuid.UUID, worker_id: str) -> Exception:
        """What to raise when a lease-guarded write of ``worker_id`` changed nothing:
        :class:`JobNotFound`, :class:`JobCancelled` (cancelled while held) or
        :class:`LeaseLost`."""
        current = await self._fetchval(_GET_STATUS, job_id)
        if current is None:
            return JobNotFound(job_id)
        if current == JobStatus.CANCELLED.value:
            return JobCancelled(job_id, worker_id)
        return LeaseLost(job_id, worker_id)

    async def _not_pending(self, job_id: uuid.UUID) -> str | None:
        """The status of ``job_id`` (None: no such job), read after a write on a pending job
        changed nothing."""
        status: str | None = await self._fetchval(_GET_STATUS, job_id)
        return status

    async def _key_taken(self, job_id: uuid.UUID, exc: Conflict) -> Exception:
        """What to raise when putting failed job ``job_id`` back to pending broke the
        idempotency key's index: :class:`DuplicateJob` naming the job that holds the key now
        (the statement changed nothing), or ``exc`` if it was another conflict."""
        if KEY_INDEX not in str(exc):
            return exc
        row = await self._fetchrow(_OTHER_KEY_HOLDER, job_id)
        if row is None:
            return exc
        return DuplicateJob(row["idempotency_key"], row["id"], row["status"])
