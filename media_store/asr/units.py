"""Reading one value of an engine's output: times in seconds, confidences, speakers, text.

Every time becomes a plain ``float`` of seconds, and the same decimal always becomes the same
float whatever unit it came in: a whole count of milliseconds, 100-ns ticks or nanoseconds is
divided as an integer (Python's ``int / int`` is correctly rounded), so ``8110`` ms,
``"8.110s"``, ``{"seconds": "8", "nanos": 110000000}`` and ``"00:00:08,110"`` are all exactly
``float("8.11")``. Numeric strings are parsed by ``float()``, also correctly rounded.

Numbers are anything real and finite: ``int``, ``float``, numpy scalars (``np.float64``
subclasses ``float``; ``np.float32`` and the numpy ints register as :class:`numbers.Real`)
and :class:`~decimal.Decimal`; bools are not numbers. The result is always a builtin
``float``, which is what the store's validation takes.

Integer speakers become their decimal string (``0`` -> ``"0"``): nothing invented, and
``int(speaker)`` gives the engine's value back.

Every refusal is a :class:`~media_store.errors.ValidationError` whose message names the
engine, the path of the value in the payload, what is wrong and what to change.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, NoReturn, TypedDict, TypeGuard, cast

from media_store.errors import ValidationError


class StoreWord(TypedDict):
    """One word as the store takes it. ``start`` / ``end`` are None only for a word the
    engine gave no time (whisperX numerals): the untimed repair policy must deal with it
    before the word can be stored."""

    word: str
    start: float | None
    end: float | None
    confidence: float | None
    speaker: str | None


def plain(word: object, start: object, end: object, confidence: object) -> TypeGuard[str]:
    """True when a word's values need no conversion and break no rule: the text a ``str``,
    ``start`` and ``end`` finite builtin floats, the confidence None or a builtin float in
    [0, 1]. The adapters' fast path (what parsed JSON nearly always holds): such a word is
    yielded as it is, anything else goes through the converters below, which name the path
    of a bad value. Same result either way; this only skips the calls and the paths."""
    return (
        type(word) is str
        and type(start) is float
        and type(end) is float
        and start - start == 0.0  # NaN and infinities give NaN
        and end - end == 0.0
        and (confidence is None or (type(confidence) is float and 0.0 <= confidence <= 1.0))
    )


def fast_word(
    word: object, start: object, end: object, confidence: object, label: object = None
) -> StoreWord | None:
    """The adapters' fast path for one word: the word as the store takes it when its values
    pass :func:`plain` and the speaker is None, a ``str`` or a builtin ``int`` (stored as its
    decimal string, as :func:`speaker` does); else None, and the adapter takes the checked
    path, which names the path of a bad value."""
    if not plain(word, start, end, confidence):
        return None
    if type(label) is int:
        label = str(label)
    elif not (label is None or type(label) is str):
        return None
    # plain() checked the types the casts name.
    return {
        "word": word,
        "start": cast(float, start),
        "end": cast(float, end),
        "confidence": cast("float | None", confidence),
        "speaker": label,
    }


def refuse(engine: str, path: str, problem: str, fix: str) -> NoReturn:
    """Raise the adapters' one error: engine, where, what is wrong, what to change."""
    raise ValidationError(
        f"{engine}: {path}: {problem}; {fix}",
        [{"loc": (engine, path), "msg": problem}],
    )


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real | Decimal) and not isinstance(value, bool)


def number(value: object, engine: str, path: str, what: str = "a number") -> float:
    """A finite real ``value`` as a builtin float (see the module docstring)."""
    if type(value) is float and math.isfinite(value):  # the common case, no conversion
        return value
    if not _is_real(value):
        refuse(engine, path, f"expected {what}, got {value!r}", "give a finite number")
    try:
        result = float(value)  # type: ignore[arg-type]  # a Real or a Decimal
    except (OverflowError, ValueError):
        result = math.nan
    if not math.isfinite(result):
        refuse(engine, path, f"expected {what}, got {value!r}", "give a finite number")
    return result


def integer(value: object, engine: str, path: str, what: str) -> int:
    """A whole number (an int, or a float / Decimal with no fraction: JSON writers differ)."""
    if type(value) is int:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if _is_real(value):
        as_float = number(value, engine, path, what)
        if as_float.is_integer():
            return int(as_float)
    refuse(engine, path, f"expected {what} (a whole number), got {value!r}", "give a whole number")


def seconds(value: object, engine: str, path: str) -> float | None:
    """Seconds given as a number; None (absent) stays None (an untimed word)."""
    if value is None:
        return None
    return number(value, engine, path, "seconds as a number")


def seconds_text(value: object, engine: str, path: str) -> float | None:
    """Seconds as a numeric string (AWS writes ``"1.15"``), or as a number."""
    if value is None:
        return None
    if isinstance(value, str):
        return _decimal_text(value, engine, path, "seconds")
    return seconds(value, engine, path)


def milliseconds(value: object, engine: str, path: str) -> float | None:
    """Milliseconds (a number) to seconds."""
    if value is None:
        return None
    if type(value) is int:
        return ratio(value, 1000, engine, path)
    return number(value, engine, path, "milliseconds as a number") / 1000


# Whole milliseconds the adapters' fast paths divide (a float holds these exactly; larger
# counts go through milliseconds(), which refuses those too large for a float).
MAX_FAST_MS = 2**53


def ratio(count: int, per_second: int, engine: str, path: str) -> float:
    """``count / per_second`` (a whole count of a unit to seconds), refusing a count too
    large for a float rather than letting ``OverflowError`` out."""
    try:
        return count / per_second
    except OverflowError:
        refuse(engine, path, f"{count} is too large to be a time", "give the time in range")


# Azure's ticks are 64-bit integers; in that range any sum of two divides into a float.
MAX_TICKS = 2**63


def ticks(value: object, engine: str, path: str) -> int:
    """A count of 100-nanosecond ticks (Azure), as an int: add ticks, then divide once."""
    count = integer(value, engine, path, "100-ns ticks")
    if not -MAX_TICKS < count < MAX_TICKS:
        refuse(engine, path, f"{count} ticks is out of range", "give a 64-bit tick count")
    return count


def from_ticks(count: int) -> float:
    return count / 10_000_000


_CLOCK = re.compile(r"^(\d+):(\d{2}):(\d{2})[,.](\d{3})$")


def duration(value: object, engine: str, path: str) -> float | None:
    """A protobuf Duration: ``"12.300s"`` (its JSON form) or ``{"seconds": "12", "nanos":
    300000000}`` (the REST / JS object form; either key may be absent, meaning 0)."""
    if value is None:
        return None
    if isinstance(value, str):
        result = duration_text(value)
        if result is None:
            refuse(
                engine, path, f"expected a duration like '12.300s', got {value!r}", "fix the value"
            )
        return result
    if isinstance(value, Mapping):
        raw_seconds = value.get("seconds", 0)
        whole = (
            int(_decimal_text(raw_seconds, engine, f"{path}.seconds", "whole seconds"))
            if isinstance(raw_seconds, str)
            else integer(raw_seconds, engine, f"{path}.seconds", "whole seconds")
        )
        nanos = integer(value.get("nanos", 0), engine, f"{path}.nanos", "nanoseconds")
        if not 0 <= nanos < 1_000_000_000 or whole < 0:
            refuse(
                engine, path, f"expected seconds >= 0 and nanos in [0, 1e9), got {value!r}", "fix"
            )
        return ratio(whole * 1_000_000_000 + nanos, 1_000_000_000, engine, path)
    return seconds(value, engine, path)


def duration_text(value: str) -> float | None:
    """A Duration's JSON form (``"12.300s"``: digits, optionally a point and 1 to 9 digits,
    then ``s``) in seconds; None when ``value`` is not one (or is too large for a float)."""
    # str methods rather than a regular expression: twice as fast, and a Google transcript
    # holds two of these a word.
    whole, point, fraction = value[:-1].partition(".")
    if not (
        value.endswith("s")
        and whole.isdecimal()
        and (not point or (fraction.isdecimal() and len(fraction) <= 9))
    ):
        return None
    # float() of the decimal is correctly rounded, as the integer division of its nanoseconds
    # is: the same float as the {seconds, nanos} form gives.
    result = float(value[:-1])
    return result if result != math.inf else None


def clock(value: object, engine: str, path: str) -> float | None:
    """``"HH:MM:SS,mmm"`` (whisper.cpp's ``timestamps``) to seconds."""
    if value is None:
        return None
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        refuse(engine, path, f"expected a time like '00:00:08,110', got {value!r}", "fix it")
    hours, minutes, secs, millis = map(int, match.groups())
    return ratio(((hours * 60 + minutes) * 60 + secs) * 1000 + millis, 1000, engine, path)


def confidence(value: object, engine: str, path: str) -> float | None:
    """A probability in [0, 1] (a number or, for AWS, a numeric string); None stays None."""
    if value is None:
        return None
    result = (
        _decimal_text(value, engine, path, "a confidence")
        if isinstance(value, str)
        else number(value, engine, path, "a confidence")
    )
    if not 0.0 <= result <= 1.0:
        refuse(engine, path, f"confidence {result} is outside [0, 1]", "give a probability")
    return result


def speaker(value: object, engine: str, path: str) -> str | None:
    """A speaker label: a string as given, an integer as its decimal string, None as None."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    refuse(engine, path, f"expected a speaker label or number, got {value!r}", "give a string")


def text(value: object, engine: str, path: str) -> str:
    """A word's text, exactly as given (leading and trailing spaces are kept)."""
    if type(value) is str:
        return value
    refuse(engine, path, f"expected the word's text as a string, got {value!r}", "give a string")


def _decimal_text(value: object, engine: str, path: str, what: str) -> float:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        result = math.nan
    if not math.isfinite(result) or not isinstance(value, str):
        refuse(engine, path, f"expected {what} as a number, got {value!r}", "give a number")
    return result


# --- reading the payload's structure ---------------------------------------------------------


def field(container: object, key: str) -> Any:
    """``container[key]`` for a mapping, ``container.key`` for an object (faster-whisper's
    dataclasses); None when absent."""
    if isinstance(container, Mapping):
        return container.get(key)
    return getattr(container, key, None)


def mapping(value: object, engine: str, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        if path == "$" and isinstance(value, list | tuple):
            # A response saved inside a list (a batch of one, a client's envelope): say so,
            # or the user looks for a wrong option instead of the extra brackets.
            refuse(
                engine,
                path,
                f"expected one object, got a list of {len(value)} (is the output wrapped?)",
                "pass the object itself (payload[0]), or each element on its own",
            )
        refuse(engine, path, f"expected an object, got {type(value).__name__}", "check the file")
    return value


def items(value: object, engine: str, path: str) -> Sequence[Any]:
    """A JSON array (a list or tuple); anything else is refused naming ``path``."""
    if not isinstance(value, list | tuple):
        refuse(
            engine,
            path,
            f"expected an array, got {type(value).__name__}",
            "check that the file is this engine's output",
        )
    return value


def required(container: Mapping[str, Any], key: str, engine: str, path: str) -> Any:
    if key not in container or container[key] is None:
        where = f"{path}.{key}" if path else key
        wrapper = _wrapper(container, key) if not path else None
        if wrapper is not None:
            # The response inside an envelope ({"response": {...}}): no option is missing.
            refuse(
                engine,
                where,
                f"missing at the top, but found under {wrapper!r} (the output is wrapped)",
                f"pass payload[{wrapper!r}]",
            )
        refuse(engine, where, "missing", "check the engine's options")
    return container[key]


def _wrapper(container: Mapping[str, Any], key: str) -> str | None:
    """The top-level key whose object holds ``key``, when the payload is an envelope."""
    for name, value in container.items():
        if isinstance(value, Mapping) and value.get(key) is not None and isinstance(name, str):
            return name
    return None
