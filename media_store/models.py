"""Pydantic v2 schemas: what callers send (``*Create``) and what the library returns.

Validation happens here, before any SQL runs, through the field types of
:mod:`media_store.fields` (and :mod:`media_store.words` for word timestamps). Caller input
becomes a model in :func:`validate_input`; rows become response models in :func:`from_row`,
and nowhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from types import UnionType
from typing import Annotated, Any, Final, TypeVar, Union, get_args, get_origin

import asyncpg
import pydantic
from pydantic import Field

from media_store.errors import ValidationError
from media_store.fields import (
    EARLIEST_TIME,
    INT32_MAX,
    INT64_MAX,
    LATEST_TIME,
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
    check_json,
    printable,
    storable,
)
from media_store.words import WordsInput, WordsOutput


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
    claimable: int  # pending and runnable now (not waiting out a retry's backoff)
    oldest_pending_s: float | None  # age of the oldest pending job, seconds
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


# --- the two crossings: input to validated model, row to response model ----------------------

InputT = TypeVar("InputT", bound=Input)
RowT = TypeVar("RowT", bound=Row)


def validate_input(model: type[InputT], data: InputT | Mapping[str, Any]) -> InputT:
    """Validate caller input; raises :class:`media_store.errors.ValidationError`."""
    try:
        return model.model_validate(data)
    except RecursionError as exc:
        # A value nested thousands deep where a scalar belongs (an enum's own error message
        # reprs it whole): refused like any other bad input, before any SQL.
        raise ValidationError(f"invalid {model.__name__}: a value is nested too deeply") from exc
    except pydantic.ValidationError as exc:
        errors: list[Mapping[str, object]] = [
            {"loc": e["loc"], "msg": e["msg"]} for e in exc.errors(include_input=False)
        ]
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or model.__name__}: {e['msg']}"  # type: ignore[call-overload]
            for e in errors
        )
        # A key of the input may hold a lone surrogate: the message must still print.
        raise ValidationError(f"invalid {model.__name__}: {printable(detail)}", errors) from exc


def validate_batch(
    model: type[InputT], items: Sequence[InputT | Mapping[str, Any]]
) -> list[InputT]:
    """Validate every item before anything is written; the error names the bad item's index."""
    return [validate_item(model, index, item) for index, item in enumerate(items)]


def validate_item(model: type[InputT], index: int, item: InputT | Mapping[str, Any]) -> InputT:
    """:func:`validate_input` for item ``index`` of a batch: the error names the index."""
    try:
        return validate_input(model, item)
    except ValidationError as exc:
        raise ValidationError(
            f"item {index}: {exc}",
            [{**e, "loc": (index, *e["loc"])} for e in exc.errors],  # type: ignore[misc]
        ) from exc


# A job to create as its columns: job_type, media_url, prompt, parameters, max_attempts,
# priority, run_after, idempotency_key, idempotency_scope (None exactly when there is no key).
JobValues = tuple[
    str, str, str | None, dict[str, Any], int, int, datetime | None, str | None, str | None
]
_JOB_KEYS = frozenset(JobCreate.model_fields)
_JOB_TYPES = frozenset(t.value for t in JobType)
_SCOPES = frozenset(s.value for s in KeyScope)


def job_values(index: int | None, item: JobCreate | Mapping[str, Any]) -> JobValues:
    """Item ``index`` of a batch of jobs to create (None: a job created alone), checked as
    :class:`JobCreate` checks it, as its columns. Raises :class:`ValidationError` naming the
    index.

    A plain dict whose values already have the exact types the columns take (str, int,
    dict, an aware datetime, None) is checked here, by the same rules, without building a
    model: 6 us of the ~8 a job's enqueue cost in Python went to building a JobCreate that
    was thrown away. Anything else (a model, a value Pydantic would convert, any value that
    breaks a rule) goes through :class:`JobCreate`, whose error is the one raised.
    """
    if type(item) is dict:
        values = _plain_job(item)
        if values is not None:
            return values
    job = (
        validate_input(JobCreate, item) if index is None else validate_item(JobCreate, index, item)
    )
    key = job.idempotency_key
    return (
        job.job_type.value,
        job.media_url,
        job.prompt,
        job.parameters,
        job.max_attempts,
        job.priority,
        job.run_after,
        key,
        None if key is None else (job.idempotency_scope or KeyScope.ACTIVE).value,
    )


def _plain_job(item: dict[str, Any]) -> JobValues | None:
    """The columns of a job given as a dict of exact types that JobCreate accepts unchanged,
    or None (then JobCreate decides)."""
    if not _JOB_KEYS.issuperset(item):
        return None
    get = item.get
    job_type = get("job_type")
    media_url = get("media_url")
    prompt = get("prompt")
    parameters = get("parameters", _NO_PARAMETERS)
    max_attempts = get("max_attempts", 3)
    priority = get("priority", 0)
    run_after = get("run_after")
    key = get("idempotency_key")
    scope = get("idempotency_scope")
    if not (
        type(job_type) is str
        and job_type in _JOB_TYPES
        and type(media_url) is str
        and media_url
        and ((media_url.isascii() and "\x00" not in media_url) or _plain_text(media_url))
        and (prompt is None or (type(prompt) is str and _plain_text(prompt)))
        and type(parameters) is dict
        and type(max_attempts) is int
        and 1 <= max_attempts <= 1000
        and type(priority) is int
        and MIN_PRIORITY <= priority <= MAX_PRIORITY
        and (run_after is None or _plain_time(run_after))
        and (
            key is None
            or (
                type(key) is str
                and 1 <= len(key) <= 200
                and ((key.isascii() and "\x00" not in key) or _plain_text(key))
            )
        )
        and (scope is None or (key is not None and type(scope) is str and scope in _SCOPES))
    ):
        return None
    if parameters is _NO_PARAMETERS:
        parameters = {}
    else:
        try:
            check_json(parameters)
        except ValueError:
            return None
    if key is not None and scope is None:
        scope = "active"
    return (job_type, media_url, prompt, parameters, max_attempts, priority, run_after, key, scope)


_NO_PARAMETERS: dict[str, Any] = {}

# The optional values of update_status, as its statement takes them: error, result,
# processing_time_ms.
StatusValues = tuple[str | None, dict[str, Any] | None, int | None]


def status_values(given: Mapping[str, Any]) -> StatusValues:
    """The values of ``given`` (a subset of :class:`StatusUpdate`'s fields), checked as
    StatusUpdate checks them. Values of the exact types the columns take (str, a dict, int,
    None) are checked here, by the same rules, without building a model (about 8 us of a
    completion's Python, measured); anything else goes through StatusUpdate, whose error is
    the one raised."""
    error = given.get("error")
    result = given.get("result")
    elapsed = given.get("processing_time_ms")
    if (
        _STATUS_KEYS.issuperset(given)
        and (error is None or (type(error) is str and _plain_text(error)))
        and (result is None or (type(result) is dict and _is_json(result)))
        and (elapsed is None or (type(elapsed) is int and 0 <= elapsed <= INT32_MAX))
    ):
        return (error, result, elapsed)
    update = validate_input(StatusUpdate, given)
    return (update.error, update.result, update.processing_time_ms)


_STATUS_KEYS = frozenset(StatusUpdate.model_fields)


def _is_json(value: dict[str, Any]) -> bool:
    try:
        check_json(value)
    except ValueError:
        return False
    return True


def _plain_text(text: str) -> bool:
    """What fields.storable accepts, without raising."""
    if text.isascii():
        return "\x00" not in text
    try:
        storable(text)
    except ValueError:
        return False
    return True


def _plain_time(value: object) -> bool:
    return (
        type(value) is datetime
        and value.tzinfo is not None
        and value.utcoffset() is not None
        and EARLIEST_TIME <= value < LATEST_TIME
    )


def from_row(model: type[RowT], row: asyncpg.Record | Mapping[str, Any]) -> RowT:
    """The one place a database row becomes a model.

    A row of a model whose every field is a plain column type (see :class:`_RowPlan`) is
    checked here, in Python, and becomes the model without a second pass through pydantic:
    the same columns, every value of the exact type validation would pass through unchanged
    (None only where the field allows it), each enum value a member (converted as
    validation converts it), each JSON object a dict. Any row failing a check, any other
    mapping, and any other model go through the model's validator, which raises exactly as
    before. Nothing validation checks is left unchecked: for a value of the exact type a
    plain field expects (a column's type: uuid, text, integer, real/float8, timestamptz;
    ``media-store check`` matches every query's columns to its model), validation returns the
    value itself; the enums (job_type, status, asset_type: text under a CHECK) are looked
    up; a JSON object arrives from the jsonb codec as a dict with string keys (jobs.result has
    no CHECK: a JSON array there is validated, and refused, as before).

    Why: between two round trips, where pydantic-core's code is no longer in the CPU's
    caches, validating the four Job rows of a create -> get -> start -> complete cycle took
    80-100 us (2-5 us a row in a tight loop), these checks 65-85 us; measured in the job
    cycle benchmark's process, a shared 2-core machine.
    """
    if type(row) is asyncpg.Record:
        if model in _ROW_PLANS:
            plan = _ROW_PLANS[model]
        else:
            plan = _ROW_PLANS[model] = _RowPlan.of(model)
        if plan is not None:
            built: RowT | None = plan.build(model, row)
            if built is not None:
                return built
    # A dict (a row the library assembled) is validated as it is: the validator does not
    # change its input, and create_many assembles 10,000 at once.
    validated: RowT = model.__pydantic_validator__.validate_python(
        row if type(row) is dict else dict(row)
    )
    return validated


# Exact types of what a column's value arrives as, per field annotation (asyncpg's codecs:
# uuid -> a uuid.UUID subclass, text/varchar -> str, integer/bigint -> int, real/float8 ->
# float, timestamptz -> an aware datetime; jsonb -> dict through media_store.db's codec).
# For each, pydantic's validation of a value of that type returns the value itself.
_PLAIN: Final[dict[Any, tuple[type, ...]]] = {
    uuid.UUID: (uuid.UUID, asyncpg.pgproto.pgproto.UUID),
    str: (str,),
    int: (int,),
    float: (float,),
    datetime: (datetime,),
}
_ROW_PLANS: dict[type[Row], _RowPlan | None] = {}
_ENUM, _OBJECT, _PLAIN_KIND = 0, 1, 2
# Combinations of value types remembered per model (a bound: rows are not counted on).
_MAX_ACCEPTED = 256
_set = object.__setattr__


class _RowPlan:
    """How :func:`from_row` checks a row of one model without pydantic: the columns, in the
    model's order, and for each field whether None is allowed and what the value must be
    (an enum's value, a JSON object, or one of the exact types of :data:`_PLAIN`).

    Which types a row's values have is checked once per combination (a query returns few:
    which optional columns are NULL), remembered in ``accepted``; the enum values of every
    row are looked up."""

    __slots__ = ("accepted", "enums", "fields", "order")

    def __init__(self, order: tuple[str, ...], fields: tuple[tuple[bool, int, Any], ...]):
        self.order = order
        self.fields = fields
        self.enums = tuple(
            (name, rule)
            for name, (_, kind, rule) in zip(order, fields, strict=True)
            if kind == _ENUM
        )
        self.accepted: set[tuple[type, ...]] = set()

    @classmethod
    def of(cls, model: type[Row]) -> _RowPlan | None:
        """The plan for ``model``, or None when a field is not a plain column type (a
        constraint, a custom type such as the words): such rows are always validated."""
        names: list[str] = []
        fields: list[tuple[bool, int, Any]] = []
        for name, field in model.model_fields.items():
            annotation, optional = field.annotation, False
            args = get_args(annotation)
            if get_origin(annotation) in (Union, UnionType) and type(None) in args:
                rest = [a for a in args if a is not type(None)]
                if len(rest) != 1:
                    return None
                annotation, optional = rest[0], True
            if field.metadata or field.alias is not None:
                return None
            names.append(name)
            if isinstance(annotation, type) and issubclass(annotation, StrEnum):
                fields.append((optional, _ENUM, {m.value: m for m in annotation}))
            elif annotation == dict[str, Any]:
                fields.append((optional, _OBJECT, (dict,)))
            elif annotation in _PLAIN:
                fields.append((optional, _PLAIN_KIND, _PLAIN[annotation]))
            else:
                return None
        return cls(tuple(names), tuple(fields))

    def _accepts(self, types: tuple[type, ...]) -> bool:
        """Whether values of ``types`` (one per field, in order) are what the fields take."""
        for (optional, kind, rule), got in zip(self.fields, types, strict=True):
            if got is type(None):
                if not optional:
                    return False
            elif kind == _ENUM:
                if got is not str:
                    return False
            elif got not in rule:  # a JSON object (decoded: its keys are strings), a plain type
                return False
        if len(self.accepted) < _MAX_ACCEPTED:
            self.accepted.add(types)
        return True

    def build(self, model: type[RowT], row: asyncpg.Record) -> RowT | None:
        """The model holding ``row``'s values, or None when any check fails. Sets what
        ``model_construct`` sets: the fields, the fields set, no extra and no private values
        (Row models have neither)."""
        if tuple(row.keys()) != self.order:
            return None
        types = tuple(map(type, row))
        if types not in self.accepted and not self._accepts(types):
            return None
        values = dict(zip(self.order, row, strict=True))
        for name, members in self.enums:
            value = values[name]
            if value is not None:
                member = members.get(value)
                if member is None:
                    return None
                values[name] = member
        instance = model.__new__(model)
        _set(instance, "__dict__", values)
        _set(instance, "__pydantic_fields_set__", set(self.order))
        _set(instance, "__pydantic_extra__", None)
        _set(instance, "__pydantic_private__", None)
        return instance
