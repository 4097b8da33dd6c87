"""Pydantic v2 schemas: what callers send (``*Create``) and what the library returns.

Validation happens here, before any SQL runs: lengths within the column sizes, no NUL
characters in any text (PostgreSQL rejects them, mid-transaction), finite floats, ranges that
mirror the database's CHECK constraints, and JSON fields that are JSON (no NaN/Infinity, string
keys). Rows become response models in :func:`from_row`, and nowhere else.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import asyncpg
import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from media_store.errors import ValidationError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class JobType(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


class AssetType(StrEnum):
    ORIGINAL = "original"
    FRAME = "frame"
    CONTACT_SHEET = "contact_sheet"
    TRANSCRIPTION = "transcription"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\x00) characters")
    return value


def _check_json(value: Any, path: str = "$") -> None:
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str):
            _no_nul(value)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
            raise ValueError(f"{path}: integer out of the 64-bit range JSON can carry here")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: NaN and Infinity are not JSON")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object keys must be strings, got {type(key).__name__}")
            _no_nul(key)
            _check_json(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not JSON-serialisable")


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    _check_json(value)
    return value


_NoNul = AfterValidator(_no_nul)
Text = Annotated[str, _NoNul]
NonEmptyText = Annotated[str, StringConstraints(min_length=1), _NoNul]
Name50 = Annotated[str, StringConstraints(min_length=1, max_length=50), _NoNul]
Text50 = Annotated[str, StringConstraints(max_length=50), _NoNul]
Text100 = Annotated[str, StringConstraints(max_length=100), _NoNul]
Text10 = Annotated[str, StringConstraints(max_length=10), _NoNul]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
TokenCount = Annotated[int, Field(ge=0, le=INT32_MAX)]


class _Input(BaseModel):
    # Inputs are re-validated even when passed as model instances, so model_construct() or
    # attribute assignment cannot smuggle bad values past the checks.
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        revalidate_instances="always",
        validate_assignment=True,
    )


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- jobs -------------------------------------------------------------------------------


class JobCreate(_Input):
    job_type: JobType
    media_url: NonEmptyText
    prompt: Text | None = None
    parameters: JsonObject = Field(default_factory=dict)
    # How many claims a failing job gets before it is failed for good (the column's default).
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 3


class Job(_Row):
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


JobResponse = Job


class StatusUpdate(_Input):
    """The optional values of ``update_status``, validated like every other input."""

    error: Text | None = None
    result: JsonObject | None = None
    processing_time_ms: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None


# --- media assets -------------------------------------------------------------------------


class MediaAssetCreate(_Input):
    job_id: uuid.UUID
    asset_type: AssetType
    file_path: NonEmptyText
    file_size_bytes: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    mime_type: Text100 | None = None
    metadata: JsonObject = Field(default_factory=dict)


class MediaAsset(_Row):
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


class TranscriptionCreate(_Input):
    job_id: uuid.UUID
    provider: Name50
    text_content: Text
    language: Text10 | None = None
    confidence_score: Confidence | None = None
    # Validated column-wise into media_store.words.Words (see words.py): a list of dicts as
    # an ASR gives them, or of WordTimestamp models. None: no word timestamps.
    word_timestamps: WordsInput | None = None
    metadata: JsonObject = Field(default_factory=dict)


class Transcription(_Row):
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


class AnalysisResultCreate(_Input):
    job_id: uuid.UUID
    analysis_type: Name50
    summary: Text | None = None
    detailed_analysis: JsonObject | None = None
    confidence_score: Confidence | None = None
    model_used: Text100 | None = None
    prompt_used: Text | None = None
    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None


class AnalysisResult(_Row):
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


from media_store.words import WordsInput, WordsOutput, WordTimestamp  # noqa: E402, F401  (words.py builds on the types above)

TranscriptionCreate.model_rebuild()
Transcription.model_rebuild()

# --- the two crossings: input to validated model, row to response model ----------------------

InputT = TypeVar("InputT", bound=_Input)
RowT = TypeVar("RowT", bound=_Row)


def validate_input(model: type[InputT], data: InputT | Mapping[str, Any]) -> InputT:
    """Validate caller input; raises :class:`media_store.errors.ValidationError`."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors: list[Mapping[str, object]] = [
            {"loc": e["loc"], "msg": e["msg"]} for e in exc.errors(include_input=False)
        ]
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or model.__name__}: {e['msg']}"  # type: ignore[call-overload]
            for e in errors
        )
        raise ValidationError(f"invalid {model.__name__}: {detail}", errors) from exc


def validate_batch(
    model: type[InputT], items: Sequence[InputT | Mapping[str, Any]]
) -> list[InputT]:
    """Validate every item before anything is written; the error names the bad item's index."""
    valid: list[InputT] = []
    for index, item in enumerate(items):
        try:
            valid.append(validate_input(model, item))
        except ValidationError as exc:
            raise ValidationError(
                f"item {index}: {exc}",
                [{**e, "loc": (index, *e["loc"])} for e in exc.errors],  # type: ignore[misc]
            ) from exc
    return valid


def from_row(model: type[RowT], row: asyncpg.Record | Mapping[str, Any]) -> RowT:
    """The one place a database row becomes a model."""
    return model.model_validate(dict(row))
