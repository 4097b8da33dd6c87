"""Pydantic v2 schemas: what callers send (``*Create``) and what the library returns.

Validation happens here, before any SQL runs, through the field types of
:mod:`media_store.models.fields` (and :mod:`media_store.words` for word timestamps). Caller input
becomes a model in :func:`validate_input`; rows become response models in :func:`from_row`,
and nowhere else.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import pydantic
from pydantic import Field

from media_store.models.fields import (
    INT32_MAX,
    INT64_MAX,
    MAX_PRIORITY,
    MIN_PRIORITY,
    Confidence,
    Input,
    JsonObject,
    Name50,
    Name200,
    NonEmptyText,
    ReadableTime,
    Row,
    Text,
    Text10,
    Text100,
    TextChoice,
    TokenCount,
)
from media_store.words.timestamps import WordsInput, WordsOutput


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # final: cancelled while pending or processing (migrations/0008)


# The statuses a job never leaves (failed only by an operator's requeue).
FINISHED_STATUSES: tuple[JobStatus, ...] = (
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)


class JobType(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


class KeyScope(StrEnum):
    """How long a job holds its idempotency key (migrations/0007)."""

    ACTIVE = "active"  # while it is pending or processing: once finished, the key is free
    FOREVER = "forever"  # as long as the job exists, whatever its status


class AssetType(StrEnum):
    ORIGINAL = "original"
    FRAME = "frame"
    CONTACT_SHEET = "contact_sheet"
    TRANSCRIPTION = "transcription"


# --- jobs -------------------------------------------------------------------------------


class JobCreate(Input):
    job_type: Annotated[JobType, TextChoice]
    media_url: NonEmptyText
    prompt: Text | None = None
    parameters: JsonObject = Field(default_factory=dict)
    # How many claims a failing job gets before it is failed for good (the column's default).
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 3
    # Claimed before jobs of lower priority; first in first out within one (jobs_priority_check).
    priority: Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)] = 0
    # Not claimed before this time (an aware datetime; None: at once).
    run_after: ReadableTime | None = None
    # A creation with a key another job holds creates nothing: see JobRepository.enqueue.
    idempotency_key: Name200 | None = None
    # How long the job holds its key; only with a key (default: active).
    idempotency_scope: Annotated[KeyScope, TextChoice] | None = None

    @pydantic.model_validator(mode="after")
    def _scope_needs_key(self) -> JobCreate:
        if self.idempotency_key is None and self.idempotency_scope is not None:
            raise ValueError("idempotency_scope is given without an idempotency_key")
        return self


class Job(Row):
    id: uuid.UUID
    job_type: JobType
    status: JobStatus
    media_url: str
    prompt: str | None
    parameters: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    processing_time_ms: int | None
    attempts: int
    max_attempts: int
    locked_by: str | None
    locked_until: datetime | None
    heartbeat_at: datetime | None
    run_after: datetime | None
    priority: int
    idempotency_key: str | None
    idempotency_scope: KeyScope | None


JobResponse = Job


class JobStats(Row):
    """The queue's figures for one job type (``job_type`` None: all types together), as of
    ``at`` (the database clock). Exact, except the ``*_estimate`` totals (see
    :meth:`~media_store.repositories.jobs.JobRepository.stats`)."""

    job_type: JobType | None
    pending: int
    # pending and due now: leaves out every job whose run_after is ahead (a start scheduled
    # for later, or a retry's backoff)
    claimable: int
    # how long the longest-waiting due job has been due, seconds: counted from its run_after
    # (scheduled start, end of a backoff), else its creation; None when no pending job is due
    oldest_pending_s: float | None
    processing: int
    expired_leases: int  # processing, lease run out: the next reclaim takes them back
    failed_last_hour: int
    cancelled_last_hour: int
    completed_last_minute: int
    completed_estimate: int | None  # all types only; None until jobs was analyzed
    failed_estimate: int | None
    cancelled_estimate: int | None
    at: datetime


class StatusUpdate(Input):
    """The optional values of ``update_status``, validated like every other input."""

    error: Text | None = None
    result: JsonObject | None = None
    processing_time_ms: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None


# --- media assets -------------------------------------------------------------------------


class MediaAssetCreate(Input):
    job_id: uuid.UUID
    asset_type: Annotated[AssetType, TextChoice]
    file_path: NonEmptyText
    file_size_bytes: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    mime_type: Text100 | None = None
    metadata: JsonObject = Field(default_factory=dict)


class MediaAsset(Row):
    id: uuid.UUID
    job_id: uuid.UUID
    asset_type: AssetType
    file_path: str
    file_size_bytes: int | None
    mime_type: str | None
    metadata: dict[str, Any]
    created_at: datetime


MediaAssetResponse = MediaAsset


# --- transcriptions -----------------------------------------------------------------------


class TranscriptionCreate(Input):
    job_id: uuid.UUID
    provider: Name50
    text_content: Text
    language: Text10 | None = None
    confidence_score: Confidence | None = None
    # Validated column-wise into media_store.words.Words: a list of dicts as
    # an ASR gives them, or of WordTimestamp models. None: no word timestamps.
    word_timestamps: WordsInput | None = None
    metadata: JsonObject = Field(default_factory=dict)


class Transcription(Row):
    id: uuid.UUID
    job_id: uuid.UUID
    provider: str
    text_content: str
    language: str | None
    confidence_score: float | None
    # A media_store.words.Words: a sequence of WordTimestamp held as columns; equal to a
    # list of the same words as dicts or models. None when created without word timestamps
    # and nothing was appended since.
    word_timestamps: WordsOutput | None
    metadata: dict[str, Any]
    created_at: datetime


TranscriptionResponse = Transcription


# --- analysis results -----------------------------------------------------------------------


class AnalysisResultCreate(Input):
    job_id: uuid.UUID
    analysis_type: Name50
    summary: Text | None = None
    detailed_analysis: JsonObject | None = None
    confidence_score: Confidence | None = None
    model_used: Text100 | None = None
    prompt_used: Text | None = None
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None


class AnalysisResult(Row):
    id: uuid.UUID
    job_id: uuid.UUID
    analysis_type: str
    summary: str | None
    detailed_analysis: dict[str, Any] | None
    confidence_score: float | None
    model_used: str | None
    prompt_used: str | None
    input_tokens: int | None
    output_tokens: int | None
    created_at: datetime


AnalysisResultResponse = AnalysisResult
