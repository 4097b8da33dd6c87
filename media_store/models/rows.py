"""The only place a database row becomes a model."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from types import UnionType
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import asyncpg

from media_store._compiled import compiled
from media_store.models.fields import Row
from media_store.models.inputs import JobValues
from media_store.models.schemas import Job, JobStatus, JobType, KeyScope

RowT = TypeVar("RowT", bound=Row)

# The compiled _RowPlan.values and _RowPlan.make (after the first model), or None.
_row_values: Callable[..., dict[str, Any] | tuple[type, ...] | None] | None = compiled("row_values")
_make_model: Callable[..., Any] | None = compiled("make_model")


def from_row(model: type[RowT], row: asyncpg.Record | Mapping[str, Any]) -> RowT:
    """The one place a database row becomes a model.

    A row of a model whose every field is a plain column type (see :class:`_RowPlan`) is
    checked here, in Python, and becomes the model without a second pass through pydantic:
    the same columns, every value of the exact type validation would pass through unchanged
    (None only where the field allows it), each enum value a member (converted as
    validation converts it), each JSON object a dict. Any row failing a check, any other
    mapping, and any other model go through ``model.model_validate``, which raises
    ``pydantic.ValidationError`` exactly as before. Nothing validation checks is left
    unchecked: for a value of the exact type a plain field expects (a column's type: uuid,
    text, integer, real/float8, timestamptz; ``media-store check`` matches every query's
    columns to its model), validation returns the value itself; the enums (job_type, status,
    asset_type: text under a CHECK) are looked up; a JSON object arrives from the jsonb codec
    as a dict with string keys (jobs.result has no CHECK: a JSON array there is validated,
    and refused, as before).

    Why: between two round trips, where pydantic-core's code is no longer in the CPU's
    caches, validating the four Job rows of a create -> get -> start -> complete cycle took
    80-100 us (2-5 us a row in a tight loop), these checks 65-85 us; measured in the job
    cycle benchmark's process, a shared 2-core machine.
    """
    if type(row) is asyncpg.Record:
        plan = _plan_of(model)
        if plan is not None:
            values = plan.values(row)
            if values is not None:
                return plan.make(model, values)
    # A dict (a row the library assembled) is validated as it is: validation does not
    # change its input, and create_many assembles 10,000 at once.
    return model.model_validate(row if type(row) is dict else dict(row))


def columns(model: type[Row]) -> list[tuple[str, Any]]:
    """``model``'s fields as the (name, type) columns a query declares it returns: a wider
    row's (:func:`from_wider_row`) lists them among its own."""
    return [(name, field.annotation) for name, field in model.model_fields.items()]


def from_wider_row(model: type[RowT], row: asyncpg.Record) -> RowT:
    """The model of a row that carries other columns besides the model's (enqueue_job's
    ``created``, claim_traced_jobs' ``traceparent`` and ``tracestate``), checked as
    :func:`from_row` checks a row of the model's own columns when they are one run in the
    model's order, each name once (the queries list them so: a claim's rows cost no pass
    through pydantic), else the model's columns validated as a mapping."""
    plan = _plan_of(model) if type(row) is asyncpg.Record else None
    if plan is not None:
        values = plan.wider_values(row)
        if values is not None:
            return plan.make(model, values)
    return from_row(model, {name: row[name] for name in model.model_fields})


def _plan_of(model: type[Row]) -> _RowPlan | None:
    """``model``'s row plan (None: its rows are always validated), made once."""
    if model in _ROW_PLANS:
        return _ROW_PLANS[model]
    plan = _ROW_PLANS[model] = _RowPlan.of(model)
    return plan


def _run_at(keys: tuple[str, ...], order: tuple[str, ...]) -> int | None:
    """Where ``order`` starts in ``keys`` as one contiguous run, or None; None too when a
    name of ``order`` is in ``keys`` more than once (a record read by that name gives its
    last column: the run would not be what a mapping of the row holds)."""
    if not order or order[0] not in keys or any(keys.count(name) != 1 for name in order):
        return None
    offset = keys.index(order[0])
    return offset if keys[offset : offset + len(order)] == order else None


def new_job_fields(
    values: JobValues,
    job_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> dict[str, Any]:
    """The fields of the job create_many inserts for ``values`` (:func:`job_values`'s
    output), with the id and times given (None: to be filled in with what the database
    chose, before :func:`new_job`), the column defaults of a new job (status pending, no
    attempt, no lease, no result), times in UTC as the database returns them. ``parameters``
    is copied (shallowly, as Job's validator copies a dict): the caller's dict stays its own.
    """
    job_type, media_url, prompt, parameters, max_attempts, priority, run_after, key, scope = values
    return {
        "id": job_id,
        "job_type": _JOB_TYPE_OF[job_type],
        "status": JobStatus.PENDING,
        "media_url": media_url,
        "prompt": prompt,
        "parameters": dict(parameters),
        "result": None,
        "error": None,
        "created_at": created_at,
        "updated_at": updated_at,
        "started_at": None,
        "completed_at": None,
        "processing_time_ms": None,
        "attempts": 0,
        "max_attempts": max_attempts,
        "locked_by": None,
        "locked_until": None,
        "heartbeat_at": None,
        "run_after": None if run_after is None else run_after.astimezone(UTC),
        "priority": priority,
        "idempotency_key": key,
        "idempotency_scope": _SCOPE_OF[scope],
    }


def new_job(fields: dict[str, Any]) -> Job:
    """The Job holding ``fields`` (:func:`new_job_fields`, its id and times filled in), as
    validation would build it, without validating it again: every value already has the
    exact type Job declares (:func:`job_values` checks what the caller sent by JobCreate's
    rules, tests/repositories/test_enqueue.py holds that equal to JobCreate; the enums are
    members; id and the times are what asyncpg decodes from uuid and timestamptz columns, or
    a :func:`uuid.uuid4` and the database's clock), and tests/models/test_fast_paths.py holds
    the result equal to the validated one. Takes ``fields`` as its own."""
    return _JOB_PLAN.make(Job, fields)


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
_set_attribute: Final = object.__setattr__
_ENUM, _OBJECT, _PLAIN_KIND = 0, 1, 2
# Combinations of value types remembered per model (a bound: rows are not counted on).
_MAX_ACCEPTED = 256


class _RowPlan:
    """How :func:`from_row` checks a row of one model without pydantic: the columns, in the
    model's order, and for each field whether None is allowed and what the value must be
    (an enum's value, a JSON object, or one of the exact types of :data:`_PLAIN`).

    Which types a row's values have is checked once per combination (a query returns few:
    which optional columns are NULL), remembered in ``accepted``; the enum values of every
    row are looked up."""

    __slots__ = ("accepted", "enum_columns", "fields", "fields_set", "names", "offsets", "order")

    def __init__(self, order: tuple[str, ...], fields: tuple[tuple[bool, int, Any], ...]):
        self.order = order
        self.names = frozenset(order)
        self.fields = fields
        # Each enum column: its index, name and members (the compiled row_values takes them).
        self.enum_columns = tuple(
            (index, name, rule)
            for index, (name, (_, kind, rule)) in enumerate(zip(order, fields, strict=True))
            if kind == _ENUM
        )
        self.accepted: set[tuple[type, ...]] = set()
        # Where the model's columns start in a wider row, per the row's columns (None: they
        # are not there as one run in order); bounded as ``accepted`` is.
        self.offsets: dict[tuple[str, ...], int | None] = {}
        # Every field's name, once the first model made was checked (see make).
        self.fields_set: frozenset[str] | None = None

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

    def values(self, row: asyncpg.Record) -> dict[str, Any] | None:
        """``row``'s values by field name, each enum value its member, or None when any
        check fails. The compiled row_values (media_store/_speedups.c), where built, makes
        the same checks with less code between two round trips, where this code is cold
        (tests/models/test_fast_paths.py holds both to validation)."""
        if _row_values is not None:
            found = _row_values(row, self.order, self.accepted, self.enum_columns)
            if not isinstance(found, tuple):
                return found
            # The columns are the model's; their values' types are a combination not seen
            # yet: checked here, and remembered.
        elif tuple(row.keys()) != self.order:
            return None
        return self._checked(row)

    def wider_values(self, row: asyncpg.Record) -> dict[str, Any] | None:
        """:meth:`values` of a row that holds the model's columns, in the model's order, next
        to columns of its own before or after them (a query's ``created``, a claim's trace
        context); None when it does not, or when any check fails. Columns of its own after
        the model's (a claim's) are checked by the compiled row_values, where built."""
        extra = len(row) - len(self.order)
        if _row_values is not None and extra > 0:
            found = _row_values(
                row, self.order, self.accepted, self.enum_columns, extra, self.names
            )
            if isinstance(found, tuple):  # a combination of types not seen yet
                return self._checked(tuple(row)[: len(self.order)])
            if found is not None:
                return found
            # Not the model's columns first, or a check failed: the same checks below.
        keys = tuple(row.keys())
        if keys in self.offsets:
            offset = self.offsets[keys]
        else:
            offset = _run_at(keys, self.order)
            if len(self.offsets) < _MAX_ACCEPTED:
                self.offsets[keys] = offset
        if offset is None:
            return None
        return self._checked(tuple(row)[offset : offset + len(self.order)])

    def _checked(self, found: Sequence[Any] | asyncpg.Record) -> dict[str, Any] | None:
        """The values ``found`` (one per field, in order) by field name, each enum value its
        member, or None when any check fails."""
        types = tuple(map(type, found))
        if types not in self.accepted and not self._accepts(types):
            return None
        values = dict(zip(self.order, found, strict=True))
        for _, name, members in self.enum_columns:
            value = values[name]
            if value is not None:
                member = members.get(value)
                if member is None:
                    return None
                values[name] = member
        return values

    def make(self, model: type[RowT], values: dict[str, Any]) -> RowT:
        """The model holding ``values`` (one per field, each of the exact type its field
        takes: :meth:`values` checked them), as validation would build it.

        The first model of a plan is validated (``model.model_validate``), and its state
        checked to be what this sets; the others get that state directly: the model's
        instance dict is ``values``, every field is in the fields set, and there are no extra
        and no private values (Row models forbid extras and have no private attributes).
        These are the four attributes pydantic's BaseModel documents as an instance's state
        (``__dict__``, ``__pydantic_fields_set__``, ``__pydantic_extra__``,
        ``__pydantic_private__``), the ones its own ``__copy__`` sets; the tests hold the
        result equal to the validated model's, fields set included, for any values. Measured
        on this machine, a Job of 22 fields: about 0.6 us, against 1.5-3 us for
        ``model_copy(update=values)`` of a prototype (which copies through the copy module
        three times), 4-5 us for ``model_validate`` and 35-50 us for ``model_construct``
        (which looks up each field's alias and default): create_many builds 10,000."""
        fields_set = self.fields_set
        if fields_set is None:
            made = model.model_validate(values)
            if (
                made.__pydantic_extra__ is not None
                or made.__pydantic_private__ is not None
                or made.__pydantic_fields_set__ != set(self.order)
            ):
                raise TypeError(f"{model.__name__} holds state this plan does not make")
            self.fields_set = frozenset(self.order)
            return made
        if _make_model is not None:  # the same four attributes, set in compiled code
            made_here: RowT = _make_model(model, values, fields_set)
            return made_here
        made = model.__new__(model)
        _set_attribute(made, "__dict__", values)
        _set_attribute(made, "__pydantic_fields_set__", set(fields_set))
        _set_attribute(made, "__pydantic_extra__", None)
        _set_attribute(made, "__pydantic_private__", None)
        return made

    def build(self, model: type[RowT], row: asyncpg.Record) -> RowT | None:
        """The model holding ``row``'s values, or None when any check fails."""
        values = self.values(row)
        return None if values is None else self.make(model, values)


_JOB_TYPE_OF: Final = {t.value: t for t in JobType}
_SCOPE_OF: Final[dict[str | None, KeyScope | None]] = {None: None, **{s.value: s for s in KeyScope}}


def _job_plan() -> _RowPlan:
    plan = _RowPlan.of(Job)
    assert plan is not None  # every field of Job is a plain column type
    _ROW_PLANS[Job] = plan
    return plan


_JOB_PLAN: Final = _job_plan()
