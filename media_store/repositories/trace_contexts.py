"""The trace context jobs were created in (``job_trace_contexts``, migrations/0014): written
when a Store with a query tracer (:meth:`media_store.Store.trace_queries`) creates a job while a
span is current, read by a traced worker for the jobs it claimed, so that the worker's handler
span continues the trace of the request that enqueued the job. Same order as
sql/trace_contexts.sql. A part of :class:`~media_store.repositories.jobs.JobRepository`.

Nothing here runs for a Store without a tracer: ``_trace_carrier()`` is then None, and the
untraced statements are the ones that always ran.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, ClassVar, Final

from media_store.db.queries import Query, query
from media_store.models.inputs import JOB_KEY, JobValues
from media_store.models.rows import from_row
from media_store.models.schemas import Job
from media_store.repositories.base import Repository

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

_UUID = uuid.UUID


def carrier_of(traceparent: str, tracestate: str | None) -> dict[str, str]:
    """The W3C headers of a stored trace context (no ``tracestate`` when it has none)."""
    carrier = {TRACEPARENT: traceparent}
    if tracestate:
        carrier[TRACESTATE] = tracestate
    return carrier


_CREATE_TRACED = query(
    "create_traced_job",
    returns=Job,
    params=(str, str, str | None, dict[str, Any], int, int, datetime | None, str, str | None),
)
_SAVE = query("save_job_trace_contexts", returns=None, params=(list[_UUID], str, str | None))
_GET = query(
    "get_job_trace_contexts",
    returns=[("job_id", _UUID), ("traceparent", str), ("tracestate", str | None)],
    params=(list[_UUID],),
)


class JobTraceContexts(Repository):
    """Keeps and reads the W3C trace context (``traceparent``, ``tracestate``) of jobs."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (_CREATE_TRACED, _SAVE, _GET)

    async def _create_traced(self, values: JobValues, carrier: Mapping[str, str]) -> Job:
        """create_job's insert of ``values`` (checked, no key) with ``carrier``, at once."""
        row = await self._fetchrow(
            _CREATE_TRACED, *values[:JOB_KEY], carrier[TRACEPARENT], carrier.get(TRACESTATE)
        )
        assert row is not None
        return from_row(Job, row)

    async def _save_trace_context(
        self, job_ids: Collection[uuid.UUID], carrier: Mapping[str, str]
    ) -> None:
        """Keep ``carrier`` for the jobs ``job_ids`` just created."""
        if job_ids:
            await self._fetchval(
                _SAVE, list(job_ids), carrier[TRACEPARENT], carrier.get(TRACESTATE)
            )

    async def trace_contexts(
        self, job_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, str]]:
        """The trace context each of ``job_ids`` was created in, as W3C headers
        (``{"traceparent": …, "tracestate": …}``), for those that have one."""
        if not job_ids:
            return {}
        found: dict[uuid.UUID, dict[str, str]] = {}
        for row in await self._fetch(_GET, list(job_ids)):
            found[row["job_id"]] = carrier_of(row["traceparent"], row["tracestate"])
        return found
