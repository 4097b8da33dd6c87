"""Thin repositories: choose a named query, pass parameters, turn rows into models."""

from media_store.db.queries import Query
from media_store.repositories.admin import JobAdmin, JobAdminReads
from media_store.repositories.analysis_results import AnalysisResultReads, AnalysisResultRepository
from media_store.repositories.base import Repository
from media_store.repositories.enqueue import JobEnqueue
from media_store.repositories.health import HealthReads
from media_store.repositories.jobs import (
    DEFAULT_BATCH,
    DEFAULT_LEASE,
    MANUAL_HOLDER,
    MANUAL_LEASE,
    MAX_BATCH,
    MAX_CLAIM,
    MAX_KEY_TRIES,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_RETENTION,
    UNSET,
    Completed,
    Enqueued,
    Heartbeat,
    JobCursor,
    JobPage,
    JobReads,
    JobRepository,
    OnConflict,
    Purged,
    QueueStats,
    Requeued,
    checked_job_types,
)
from media_store.repositories.media_assets import MediaAssetReads, MediaAssetRepository
from media_store.repositories.queue import JobQueue
from media_store.repositories.replication import ReplicationRepository
from media_store.repositories.transcriptions import TranscriptionReads, TranscriptionRepository

# Every repository, in the order the Store exposes them (replication last: the Store's read
# replicas use it, callers do not; health after it: the metrics use it).
REPOSITORIES: tuple[type[Repository], ...] = (
    JobRepository,
    MediaAssetRepository,
    TranscriptionRepository,
    AnalysisResultRepository,
    ReplicationRepository,
    HealthReads,
)


def declared_queries() -> dict[str, Query]:
    """Every named query some repository lists in its ``queries``, with its declarations."""
    return {q.name: q for repository in REPOSITORIES for q in repository.queries}


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
    "REPOSITORIES",
    "UNSET",
    "AnalysisResultReads",
    "AnalysisResultRepository",
    "Completed",
    "Enqueued",
    "HealthReads",
    "Heartbeat",
    "JobAdmin",
    "JobAdminReads",
    "JobCursor",
    "JobEnqueue",
    "JobPage",
    "JobQueue",
    "JobReads",
    "JobRepository",
    "MediaAssetReads",
    "MediaAssetRepository",
    "OnConflict",
    "Purged",
    "QueueStats",
    "ReplicationRepository",
    "Repository",
    "Requeued",
    "TranscriptionReads",
    "TranscriptionRepository",
    "checked_job_types",
    "declared_queries",
]
