"""Checks of plain call arguments (ids, durations, counts, worker ids, flags, numbers), shared
by the repositories and the worker so that one argument is held to one rule everywhere.

Each returns the value in the form the SQL takes and raises
:class:`media_store.errors.ValidationError` naming the argument before any SQL runs, whatever
the value: a wrong type, NaN, an int too large for any column, a lone surrogate. Messages
show the value through :func:`media_store.models.fields.shown` (short, always printable).

Durations are bounded, so that a time computed from one (the database clock plus a lease or
a delay) is always one Python can read back (migrations/0004 makes the database refuse the
rest; Python's datetime ends in the year 9999):

- a lease (``claim``, ``heartbeat``, ``start_processing``, ``run_worker``): more than 0, at
  most :data:`MAX_LEASE` (7 days). Leases are kept alive by heartbeats every few seconds; a
  week covers even a job started by hand that nothing heartbeats.
- any other duration (``fail(retry_in=...)``, the worker's intervals): 0 or more, at most
  :data:`MAX_DURATION` (366 days): a retry delayed by more than a year is a job to fail.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from media_store.errors import ValidationError
from media_store.models.fields import shown, storable

MAX_WORKER_ID = 200  # jobs.locked_by is varchar(200)
MAX_KEY = 200  # jobs.idempotency_key is varchar(200)
MAX_LEASE: Final = timedelta(days=7)
MAX_DURATION: Final = timedelta(days=366)


def duration(
    name: str,
    value: timedelta | float,
    *,
    positive: bool = False,
    maximum: timedelta = MAX_DURATION,
) -> float:
    """Seconds from a timedelta or a number (int or float, not bool): finite, at most
    ``maximum``, never negative, and > 0 when ``positive``."""
    low = "> 0" if positive else ">= 0"
    rule = f"{name} must be a timedelta or seconds {low} and at most {maximum}"
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # Both ends compared before any float conversion: an int beyond a double's range,
        # 10**400 or -(10**400) seconds, must not raise OverflowError here.
        if isinstance(value, int) and not 0 <= value <= maximum.total_seconds():
            raise ValidationError(f"{rule}, got {shown(value)}")
        seconds = float(value)
    else:
        raise ValidationError(f"{rule}, got {shown(value)}")
    if (
        not math.isfinite(seconds)
        or seconds < 0
        or (positive and seconds == 0)
        or seconds > maximum.total_seconds()
    ):
        raise ValidationError(f"{rule}, got {shown(value)}")
    return seconds


def lease(value: timedelta | float, name: str = "lease") -> float:
    """A lease's seconds: > 0 and at most :data:`MAX_LEASE`."""
    return duration(name, value, positive=True, maximum=MAX_LEASE)


def bounded_int(name: str, value: int, low: int, high: int) -> int:
    """An int (not a bool, not a float however whole) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"{name} must be an integer between {low} and {high}, got {shown(value)}"
        )
    return value


def number(name: str, value: float) -> float:
    """A finite number (int or float, not bool) that a double can hold, as a float."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            as_float = float(value)
        except OverflowError:  # an int beyond a double's range
            as_float = math.inf
        if math.isfinite(as_float):
            return as_float
    raise ValidationError(f"{name} must be a finite number, got {shown(value)}")


def flag(name: str, value: bool) -> bool:
    """A bool, not merely something truthy (``retry="no"`` would retry)."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be True or False, got {shown(value)}")
    return value


def name(argument: str, value: str, max_length: int) -> str:
    """A name held in a varchar column: 1 to ``max_length`` characters, storable text."""
    if isinstance(value, str) and 1 <= len(value) <= max_length:
        try:
            return storable(value)
        except ValueError:
            pass
    raise ValidationError(
        f"{argument} must be a string of 1 to {max_length} characters without NUL or lone "
        f"surrogates, got {shown(value)}"
    )


def worker_id(value: str) -> str:
    """A lease holder's name: 1 to :data:`MAX_WORKER_ID` characters, storable text."""
    return name("worker_id", value, MAX_WORKER_ID)


def identifier(name: str, value: uuid.UUID | str) -> uuid.UUID:
    """A row id: a :class:`uuid.UUID`, or a string holding one."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError(f"{name} must be a UUID, got {shown(value)}")


def identifiers(name: str, values: Iterable[uuid.UUID | str]) -> list[uuid.UUID]:
    """Row ids from an iterable of ids (not a string, not a single id), each once, in order."""
    if isinstance(values, str | bytes | uuid.UUID) or not isinstance(values, Iterable):
        raise ValidationError(f"{name} must be an iterable of UUIDs, got {shown(values)}")
    return list(dict.fromkeys(identifier(f"{name}[{i}]", value) for i, value in enumerate(values)))


def sequence(name: str, value: Sequence[Any], max_length: int) -> Sequence[Any]:
    """A list or other sequence (not a string) of at most ``max_length`` items."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValidationError(f"{name} must be a list, got {shown(value)}")
    if len(value) > max_length:
        raise ValidationError(f"{name}: at most {max_length} items, got {len(value)}")
    return value


def mapping(name: str, value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A mapping (a dict)."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} must be a mapping, got {shown(value)}")
    return value
