"""Field types and model bases that the schemas (models.py) and the words (words.py) share.

Validation happens in these types, before any SQL runs: lengths within the column sizes, no
NUL characters in any text (PostgreSQL rejects them, mid-transaction), finite floats, ranges
that mirror the database's CHECK constraints, and JSON fields that are JSON (no NaN/Infinity,
string keys). Neither models.py nor words.py is imported here, so both can build on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\x00) characters")
    return value


def check_json(value: Any, path: str = "$") -> None:
    """Raise ValueError when ``value`` is not JSON the database can store as it is."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str):
            no_nul(value)
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
            no_nul(key)
            check_json(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]")
        return
    raise ValueError(f"{path}: {type(value).__name__} is not JSON-serialisable")


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    check_json(value)
    return value


_NoNul = AfterValidator(no_nul)
Text = Annotated[str, _NoNul]
NonEmptyText = Annotated[str, StringConstraints(min_length=1), _NoNul]
Name50 = Annotated[str, StringConstraints(min_length=1, max_length=50), _NoNul]
Text50 = Annotated[str, StringConstraints(max_length=50), _NoNul]
Text100 = Annotated[str, StringConstraints(max_length=100), _NoNul]
Text10 = Annotated[str, StringConstraints(max_length=10), _NoNul]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
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
