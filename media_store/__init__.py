"""media_store: asyncpg + Pydantic v2 data layer for a media-analysis service."""

from types import ModuleType

from media_store.config import Dsn, Settings
from media_store.errors import (
    ConfigurationError,
    Conflict,
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
    DuplicateJob,
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    JobNotPending,
    LeaseLost,
    LockTimeout,
    MediaStoreError,
    NotFound,
    PoolExhausted,
    PreparedStatementConflict,
    ReadOnlyError,
    StatementTimeout,
    TranscriptionNotFound,
    ValidationError,
    WordOrderConflict,
)
from media_store.models.schemas import (
    AnalysisResult,
    AnalysisResultCreate,
    AssetType,
    Job,
    JobCreate,
    JobStats,
    JobStatus,
    JobType,
    KeyScope,
    MediaAsset,
    MediaAssetCreate,
    Transcription,
    TranscriptionCreate,
)
from media_store.replicas import ReadOnlyRepositories, ReplicaView
from media_store.repositories import Enqueued, JobCursor, JobPage
from media_store.repositories.transcriptions import Appended
from media_store.store import Repositories, Store
from media_store.words.captions import Turn
from media_store.words.search import SearchHit, SearchPage
from media_store.words.timestamps import Words, WordTimestamp

__all__ = [
    "AnalysisResult",
    "AnalysisResultCreate",
    "Appended",
    "AssetType",
    "ConfigurationError",
    "Conflict",
    "DatabaseError",
    "DatabaseTimeout",
    "DatabaseUnavailable",
    "Dsn",
    "DuplicateJob",
    "Enqueued",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobCreate",
    "JobCursor",
    "JobNotFound",
    "JobNotPending",
    "JobPage",
    "JobStats",
    "JobStatus",
    "JobType",
    "KeyScope",
    "LeaseLost",
    "LockTimeout",
    "MediaAsset",
    "MediaAssetCreate",
    "MediaStoreError",
    "NotFound",
    "PoolExhausted",
    "PreparedStatementConflict",
    "ReadOnlyError",
    "ReadOnlyRepositories",
    "ReplicaView",
    "Repositories",
    "SearchHit",
    "SearchPage",
    "Settings",
    "StatementTimeout",
    "Store",
    "Transcription",
    "TranscriptionCreate",
    "TranscriptionNotFound",
    "Turn",
    "ValidationError",
    "WordOrderConflict",
    "WordTimestamp",
    "Words",
]


def __getattr__(name: str) -> ModuleType:
    # `from media_store import migrate` (and `media_store.migrate.apply`) keep working: the
    # migrations live in media_store.ops, imported only when asked for (yoyo and psycopg are
    # not needed by a worker that only runs queries).
    if name == "migrate":
        import importlib

        return importlib.import_module("media_store.ops.migrations")
    raise AttributeError(f"module 'media_store' has no attribute {name!r}")
