"""The only place a database row becomes a model."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from types import UnionType
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import asyncpg

from media_store.models.fields import (
    Row,
)

RowT = TypeVar("RowT", bound=Row)


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
