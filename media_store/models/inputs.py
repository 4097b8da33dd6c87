"""Caller input to validated models and column values: the checks every write goes through
before any SQL runs, and their fast paths for plain dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

import pydantic

from media_store.errors import ValidationError
from media_store.models.fields import (
    EARLIEST_TIME,
    INT32_MAX,
    LATEST_TIME,
    MAX_PRIORITY,
    MIN_PRIORITY,
    Input,
    check_json,
    printable,
    shown,
    storable,
)
from media_store.models.schemas import (
    JobCreate,
    JobStatus,
    JobType,
    KeyScope,
    StatusUpdate,
)

# --- the two crossings: input to validated model, row to response model ----------------------

InputT = TypeVar("InputT", bound=Input)


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
JOB_KEY: Final = 7  # the idempotency key's place in JobValues
_JOB_KEYS = frozenset(JobCreate.model_fields)
_JOB_TYPES = frozenset(t.value for t in JobType)
_SCOPES = frozenset(s.value for s in KeyScope)


def job_values(
    index: int | None, item: JobCreate | Mapping[str, Any], key_scope: str = "active"
) -> JobValues:
    """Item ``index`` of a batch of jobs to create (None: a job created alone), checked as
    :class:`JobCreate` checks it, as its columns. Raises :class:`ValidationError` naming the
    index. ``key_scope`` (a :class:`KeyScope` value, checked by the caller) is the scope of
    an item with an idempotency key and no ``idempotency_scope`` of its own.

    A plain dict whose values already have the exact types the columns take (str, int,
    dict, an aware datetime, None) is checked here, by the same rules, without building a
    model: 6 us of the ~8 a job's enqueue cost in Python went to building a JobCreate that
    was thrown away. Anything else (a model, a value Pydantic would convert, any value that
    breaks a rule) goes through :class:`JobCreate`, whose error is the one raised.
    """
    if type(item) is dict:
        values = _plain_job(item, key_scope)
        if values is not None:
            return values
    job = (
        validate_input(JobCreate, item) if index is None else validate_item(JobCreate, index, item)
    )
    key = job.idempotency_key
    scope = job.idempotency_scope
    return (
        job.job_type.value,
        job.media_url,
        job.prompt,
        job.parameters,
        job.max_attempts,
        job.priority,
        job.run_after,
        key,
        None if key is None else (key_scope if scope is None else scope.value),
    )


def _plain_job(item: dict[str, Any], key_scope: str = "active") -> JobValues | None:
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
        scope = key_scope
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


# --- job statuses and types as the SQL takes them ----------------------------------------------

_STATUSES = tuple(s.value for s in JobStatus)
_TYPES = tuple(t.value for t in JobType)


def checked_status(value: JobStatus | str) -> JobStatus:
    """A job status given as a member or its value. Raises :class:`ValidationError`."""
    # Only strings reach the enum: its own error message reprs the value whole, which for a
    # deeply nested one exhausts the stack.
    if isinstance(value, str) and value in _STATUSES:
        return JobStatus(value)
    raise ValidationError(f"unknown job status {shown(value)}; expected one of {list(_STATUSES)}")


def checked_job_type(value: JobType | str) -> str:
    """A job type's value, given as a member or its value. Raises :class:`ValidationError`."""
    if isinstance(value, str) and value in _TYPES:
        return JobType(value).value
    raise ValidationError(f"unknown job type {shown(value)}; expected one of {list(_TYPES)}")


def checked_job_types(values: Iterable[JobType | str] | None) -> list[str] | None:
    """Job types to claim (None: any; one type may be given bare), as their sorted distinct
    values. Raises :class:`ValidationError`."""
    if values is None:
        return None
    if isinstance(values, str):  # one type given bare: accept it rather than its letters
        values = [values]
    if isinstance(values, bytes) or not isinstance(values, Iterable):
        raise ValidationError(
            f"job_types must be job types (or one, or None for any), got {shown(values)}"
        )
    types: list[str] = []
    for value in values:
        if not (isinstance(value, str) and value in _TYPES):
            raise ValidationError(
                f"job_types: unknown job type {shown(value)}; expected one of {list(_TYPES)}"
            )
        types.append(JobType(value).value)
    if not types:
        raise ValidationError("job_types must name at least one type (or be None for any)")
    return sorted(set(types))
