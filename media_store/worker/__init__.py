"""``run_worker``: the loop every worker needs (claim, run, heartbeat, complete or fail,
release); see :mod:`.runner`. What a handler sees, and the :class:`Instrument` hooks that
metrics and traces implement, are in :mod:`.context`."""

from media_store.worker.context import (
    Handler,
    Instrument,
    Instruments,
    JobContext,
    JobResult,
    Outcome,
    PermanentFailure,
    WorkerStats,
    default_worker_id,
)
from media_store.worker.runner import run_worker

__all__ = [
    "Handler",
    "Instrument",
    "Instruments",
    "JobContext",
    "JobResult",
    "Outcome",
    "PermanentFailure",
    "WorkerStats",
    "default_worker_id",
    "run_worker",
]
