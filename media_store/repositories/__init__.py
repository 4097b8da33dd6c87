"""Thin repositories: choose a named query, pass parameters, turn rows into models."""

from media_store.db.queries import Query
from media_store.repositories.analysis_results import AnalysisResultReads, AnalysisResultRepository
from media_store.repositories.base import Repository
from media_store.repositories.jobs import Enqueued, JobCursor, JobPage, JobRepository
from media_store.repositories.media_assets import MediaAssetReads, MediaAssetRepository
from media_store.repositories.replication import ReplicationRepository
from media_store.repositories.transcriptions import TranscriptionReads, TranscriptionRepository

# Every repository, in the order the Store exposes them (replication last: the Store's read
# replicas use it, callers do not).
REPOSITORIES: tuple[type[Repository], ...] = (
    JobRepository,
    MediaAssetRepository,
    TranscriptionRepository,
    AnalysisResultRepository,
    ReplicationRepository,
)


def declared_queries() -> dict[str, Query]:
    """Every named query some repository lists in its ``queries``, with its declarations."""
    return {q.name: q for repository in REPOSITORIES for q in repository.queries}


__all__ = [
    "REPOSITORIES",
    "AnalysisResultReads",
    "AnalysisResultRepository",
    "Enqueued",
    "JobCursor",
    "JobPage",
    "JobRepository",
    "MediaAssetReads",
    "MediaAssetRepository",
    "ReplicationRepository",
    "Repository",
    "TranscriptionReads",
    "TranscriptionRepository",
    "declared_queries",
]
