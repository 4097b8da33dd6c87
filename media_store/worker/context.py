"""What a handler of :func:`~media_store.worker.run_worker` sees: the job's result type, the
:class:`JobContext` it may take, :class:`PermanentFailure` it may raise; and what the worker
reports back (:class:`WorkerStats`). No database access here."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from media_store.models.schemas import Job

JobResult: TypeAlias = Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler taking two arguments, ``handler(job, context)``, receives besides the
    job: the worker's id, and ``cancel_requested``, set when the job was cancelled while the
    handler ran (see :mod:`media_store.worker.runner`). A plain-function handler, which
    nothing can interrupt, should poll it (``context.cancelled``) or sleep on it
    (``cancel_requested.wait(s)``) and return early when it is set."""

    job: Job
    worker_id: str
    cancel_requested: threading.Event

    @property
    def cancelled(self) -> bool:
        return self.cancel_requested.is_set()


Handler: TypeAlias = (
    Callable[[Job], Awaitable[JobResult]]
    | Callable[[Job], JobResult]
    | Callable[[Job, JobContext], Awaitable[JobResult]]
    | Callable[[Job, JobContext], JobResult]
)


class PermanentFailure(Exception):
    """Raised by a handler to fail the job for good, without using its remaining attempts."""


@dataclass
class WorkerStats:
    """What one :func:`run_worker` call did."""

    worker_id: str
    claimed: int = 0
    completed: int = 0
    retried: int = 0  # failed, back to pending for another attempt
    failed: int = 0  # failed for good
    lost: int = 0  # the lease was lost before the job could be finished
    released: int = 0  # given back unfinished on stop or cancellation
    reclaimed: int = 0  # expired leases of other workers this worker took back
    unwritten: int = 0  # finished, but the outcome could not be written while the lease held
    paused: int = 0  # claims put off because outcomes could not be written
    cancelled: int = 0  # cancelled while held: the handler was stopped, no outcome written


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker, and says where to look when a lease is lost."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
