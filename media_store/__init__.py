"""media_store: asyncpg + Pydantic v2 data layer for a media-analysis service."""

from media_store.config import Dsn, Settings
from media_store.errors import (
    ConfigurationError,
    Conflict,
    DatabaseError,
    DatabaseUnavailable,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    MediaStoreError,
    NotFound,
    PoolExhausted,
    PreparedStatementConflict,
    ReadOnlyError,
    TranscriptionNotFound,
    ValidationError,
    WordOrderConflict,
)
from media_store.models import (
    AnalysisResult,
    AnalysisResultCreate,
    AssetType,
    Job,
    JobCreate,
    JobStatus,
    JobType,
    MediaAsset,
    MediaAssetCreate,
    Transcription,
    TranscriptionCreate,
)
from media_store.replicas import ReadOnlyRepositories, ReplicaView
from media_store.repositories import JobCursor, JobPage
from media_store.repositories.transcriptions import Appended
from media_store.store import Repositories, Store
from media_store.words import Words, WordTimestamp

__all__ = [
    "AnalysisResult",
    "AnalysisResultCreate",
    "Appended",
    "AssetType",
    "ConfigurationError",
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "Dsn",
    "InvalidTransition",
    "Job",
    "JobCreate",
    "JobCursor",
    "JobNotFound",
    "JobPage",
    "JobStatus",
    "JobType",
    "LeaseLost",
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
    "Settings",
    "Store",
    "Transcription",
    "TranscriptionCreate",
    "TranscriptionNotFound",
    "ValidationError",
    "WordOrderConflict",
    "WordTimestamp",
    "Words",
]
