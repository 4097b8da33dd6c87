"""The models: public schemas (:mod:`.schemas`), the checks caller input goes through before
any SQL (:mod:`.inputs`, :mod:`.arguments`, with the field types of :mod:`.fields`), and the
only row -> model decoding (:mod:`.rows`)."""

from media_store.models.inputs import validate_batch, validate_input
from media_store.models.rows import from_row
from media_store.models.schemas import (
    FINISHED_STATUSES,
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
    StatusUpdate,
    Transcription,
    TranscriptionCreate,
)

__all__ = [
    "FINISHED_STATUSES",
    "AnalysisResult",
    "AnalysisResultCreate",
    "AssetType",
    "Job",
    "JobCreate",
    "JobStats",
    "JobStatus",
    "JobType",
    "KeyScope",
    "MediaAsset",
    "MediaAssetCreate",
    "StatusUpdate",
    "Transcription",
    "TranscriptionCreate",
    "from_row",
    "validate_batch",
    "validate_input",
]
