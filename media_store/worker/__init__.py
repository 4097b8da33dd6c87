"""``run_worker``: the loop every worker needs (claim, run, heartbeat, complete or fail,
release); see :mod:`.runner`. What a handler sees is in :mod:`.context`."""

from media_store.worker.context import (
    Handler,
    JobContext,
    JobResult,
    PermanentFailure,
    WorkerStats,
    default_worker_id,
)
from media_store.worker.runner import run_worker

__all__ = [
    "Handler",
    "JobContext",
    "JobResult",
    "PermanentFailure",
    "WorkerStats",
    "default_worker_id",
    "run_worker",
]
