"""Field types and model bases that the schemas (models.py) and the words (words.py) share.

Validation happens in these types, before any SQL runs: lengths within the column sizes, text
PostgreSQL can store (no NUL character, no lone surrogate), finite floats, ranges that mirror
the database's CHECK constraints, and JSON fields that are JSON the database stores as given
(no NaN/Infinity, string keys, 64-bit integers, at most :data:`MAX_JSON_DEPTH` levels deep).
Neither models.py nor words.py is imported here, so both can build on it.
"""

from __future__ import annotations

import math
import reprlib
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from media_store._compiled import compiled

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# A job's priority (jobs_priority_check, migrations/0007).
MIN_PRIORITY = -100
MAX_PRIORITY = 100

# The times the database accepts (media_store_time_readable, migrations/0004): a day's margin
# inside Python's datetime range at each end.
EARLIEST_TIME = datetime(1, 1, 2, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 31, tzinfo=UTC)

# How deep JSON values (parameters, results, metadata, detailed_analysis) may nest: an object
# or array counts one level, so {"a": [1]} is 2 deep. Deep enough for any real document, and
# far below the nesting where the JSON encoder (orjson: 255) or the Python stack gives up.
MAX_JSON_DEPTH = 64

# The compiled _is_plain_json (media_store/_speedups.c), or None.
_plain_json: Any = compiled("plain_json")

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = 60
_SHOWN.maxother = 60


def shown(value: object) -> str:
    """``value`` as an error message shows it: a short repr that any stream can print.

    Long values are elided, huge ints are described rather than converted, and a lone
    surrogate appears as its escape: a message must never fail to build or to be logged.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<an int of {value.bit_length()} bits>"
    try:
        text = _SHOWN.repr(value)
    except Exception:  # a repr that raises is still a value to name
        text = f"<{type(value).__name__} object>"
    return printable(text)


def printable(text: str) -> str:
    """``text`` with any lone surrogate escaped (``\\ud800``), so that it can be encoded."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable(value: str) -> str:
    """Text PostgreSQL can store: no NUL (it rejects it, mid-transaction) and valid Unicode
    (a lone surrogate has no UTF-8 encoding). Raises ValueError otherwise."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\x00) characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must not contain lone surrogates (not valid Unicode)") from None
    return value


def check_json(value: Any) -> None:
    """Raise ValueError when ``value`` is not JSON the database can store as it is.

    JSON is ``None``, ``bool``, ``int`` (64-bit), finite ``float``, :func:`storable` ``str``,
    ``dict`` with such string keys, ``list`` or ``tuple``, nested at most
    :data:`MAX_JSON_DEPTH` deep. Walked with an explicit stack, so no input, however deep,
    exhausts the Python stack; the message names the path of the first problem found.
    """
    if _is_plain_json(value, 0) if _plain_json is None else _plain_json(value, MAX_JSON_DEPTH):
        return
    # Something is wrong, or a value is of a subclass (of str, dict, ...) the fast check
    # leaves to this walk: find the first problem and say where it is.
    # (value, depth of the container holding it, the entry of that container, key in it)
    stack: list[tuple[Any, int, tuple[Any, ...] | None, object]] = [(value, 0, None, None)]
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[1]
        if item is None or isinstance(item, bool):
            continue
        problem: str | None = None
        if isinstance(item, str):
            problem = _text_problem(item)
        elif isinstance(item, int):
            if abs(item) > INT64_MAX:
                problem = "integer out of the 64-bit range JSON can carry here"
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = "NaN and Infinity are not JSON"
        elif isinstance(item, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                problem = f"nested deeper than {MAX_JSON_DEPTH} levels"
            elif isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        problem = f"object keys must be strings, got {type(key).__name__}"
                    elif (key_problem := _text_problem(key)) is not None:
                        problem = f"object key {shown(key)}: {key_problem}"
                    if problem is not None:
                        break
                    stack.append((child, depth + 1, entry, key))
            else:
                stack.extend((child, depth + 1, entry, i) for i, child in enumerate(item))
        else:
            problem = f"{type(item).__name__} is not JSON"
        if problem is not None:
            raise ValueError(f"{_json_path(entry)}: {problem}")


def _is_plain_json(value: Any, depth: int) -> bool:
    """Whether ``value`` passes :func:`check_json` built of the exact builtin types only (no
    subclass): the common case, checked without building a path for each value. False says
    only "let the walk decide". Recursive, but never deeper than :data:`MAX_JSON_DEPTH`."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or _encodable(value))
    if kind is int:
        return bool(-INT64_MAX <= value <= INT64_MAX)
    if kind is float:
        return math.isfinite(value)
    if value is None or kind is bool:
        return True
    if kind is dict:
        if depth >= MAX_JSON_DEPTH:
            return False
        for key, child in value.items():
            if not (type(key) is str and "\x00" not in key and (key.isascii() or _encodable(key))):
                return False
            # The common scalars inline: a call per value cost a flat object of three values
            # about half of its check (0.3 of 0.7 us, measured).
            kind = type(child)
            if kind is str:
                if "\x00" in child or not (child.isascii() or _encodable(child)):
                    return False
            elif kind is bool or child is None:
                continue
            elif not _is_plain_json(child, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= MAX_JSON_DEPTH:
            return False
        # A loop rather than all(): no generator per container on this hot path.
        for child in value:  # noqa: SIM110
            if not _is_plain_json(child, depth + 1):
                return False
        return True
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_problem(text: str) -> str | None:
    try:
        storable(text)
    except ValueError as exc:
        return str(exc)
    return None


def _json_path(entry: tuple[Any, ...]) -> str:
    """``$["a"][0]``: where ``entry`` sits in the checked value (keys shown safely)."""
    parts: list[str] = []
    while entry[2] is not None:
        key = entry[3]
        parts.append(f"[{key}]" if isinstance(key, int) else f"[{shown(key)}]")
        entry = entry[2]
    return "$" + "".join(reversed(parts))


def _text_only(value: object) -> object:
    # An enum field given something that is not text is refused here, before pydantic falls
    # back to calling the enum class, whose error repr()s the value: a deeply nested list
    # there raised RecursionError instead of a ValidationError (found by tests/models/test_fuzz.py).
    if isinstance(value, str):
        return value
    raise ValueError(f"must be text, not {type(value).__name__}")


# Put on every enum field of an input: Annotated[JobType, TextChoice].
TextChoice = BeforeValidator(_text_only)


def _datetime_only(value: object) -> object:
    # Pydantic reads a number, or a string of one, as seconds since 1970: run_after=3600 (an
    # hour, as every other duration of the library is given) became 1970-01-01T01:00Z and the
    # job was claimable at once. A number here is ambiguous, so only a datetime is taken, and
    # no string either: one rule for every caller (the fast path takes the same).
    if isinstance(value, datetime):
        return value
    raise ValueError(
        f"must be an aware datetime, not {type(value).__name__} (for a delay: "
        f"datetime.now(UTC) + timedelta(...))"
    )


def _readable(value: datetime) -> datetime:
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise ValueError(f"time must be from {EARLIEST_TIME} to before {LATEST_TIME}")
    return value


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    check_json(value)
    return value


_Storable = AfterValidator(storable)
Text = Annotated[str, _Storable]
NonEmptyText = Annotated[str, StringConstraints(min_length=1), _Storable]
Name50 = Annotated[str, StringConstraints(min_length=1, max_length=50), _Storable]
Name200 = Annotated[str, StringConstraints(min_length=1, max_length=200), _Storable]
Text50 = Annotated[str, StringConstraints(max_length=50), _Storable]
Text100 = Annotated[str, StringConstraints(max_length=100), _Storable]
Text10 = Annotated[str, StringConstraints(max_length=10), _Storable]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
# An aware datetime the database stores and Python reads back (naive ones are refused: the
# database would read them in its session's time zone), given as a datetime, never as a number
# or a string.
ReadableTime = Annotated[AwareDatetime, BeforeValidator(_datetime_only), AfterValidator(_readable)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
TokenCount = Annotated[int, Field(ge=0, le=INT32_MAX)]


class Input(BaseModel):
    """Base of what callers send."""

    # Inputs are re-validated even when passed as model instances, so model_construct() or
    # attribute assignment cannot smuggle bad values past the checks.
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        revalidate_instances="always",
        validate_assignment=True,
    )


class Row(BaseModel):
    """Base of what the library returns: read-only."""

    model_config = ConfigDict(frozen=True, extra="forbid")
