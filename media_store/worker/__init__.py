"""``run_worker``: the loop every worker needs (claim, run, heartbeat, complete or fail,
release); see :mod:`.runner`."""

from media_store.worker.runner import (
    Handler,
    JobContext,
    JobResult,
    PermanentFailure,
    WorkerStats,
    default_worker_id,
    run_worker,
)

__all__ = [
    "Handler",
    "JobContext",
    "JobResult",
    "PermanentFailure",
    "WorkerStats",
    "default_worker_id",
    "run_worker",
]
