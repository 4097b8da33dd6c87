"""Checks of plain call arguments (durations, counts, worker ids), shared by the repositories
and the worker so that one argument is held to one rule everywhere.

Each returns the value in the form the SQL takes and raises
:class:`media_store.errors.ValidationError` naming the argument before any SQL runs.
"""

from __future__ import annotations

import math
from datetime import timedelta

from media_store.errors import ValidationError

MAX_WORKER_ID = 200  # jobs.locked_by is varchar(200)


def duration(name: str, value: timedelta | float, *, positive: bool = False) -> float:
    """Seconds from a timedelta or a number; finite, never negative, > 0 when ``positive``."""
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise ValidationError(f"{name} must be a timedelta or seconds, got {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise ValidationError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return seconds


def bounded_int(name: str, value: int, low: int, high: int) -> int:
    """An int (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{name} must be an integer between {low} and {high}, got {value!r}")
    return value


def worker_id(value: str) -> str:
    """A lease holder's name: 1 to :data:`MAX_WORKER_ID` characters, no NUL."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_WORKER_ID or "\x00" in value:
        raise ValidationError(
            f"worker_id must be a string of 1 to {MAX_WORKER_ID} characters without NUL"
        )
    return value
