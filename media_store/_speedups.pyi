"""Compiled paths of the word writers, the row models and the enqueued ids
(media_store/_speedups.c; optional, see hatch_build.py)."""

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

def columns(
    items: list[Any], /
) -> (
    tuple[
        list[str],
        list[float],
        list[float],
        list[float | None],
        list[str | None] | None,
        bytes,
        bytes,
        bytes,
        bytes,
        tuple[list[str | None], bytes] | None,
    ]
    | None
):
    """The checked columns of word dicts and their packed forms, or None: the Python path
    decides (media_store.words.timestamps.validate_words)."""

def check_columns(
    words: list[Any],
    starts: list[Any],
    ends: list[Any],
    confidences: list[Any],
    speakers: list[Any] | None,
    /,
) -> tuple[Any, ...] | None:
    """:func:`columns` for words already in columns (a Words from an importer's decoder)."""

def segment_documents(
    words: list[str], segment_words: int, analyses: Mapping[str, Any], /
) -> list[str | None] | None:
    """media_store.words.documents.segment_documents, each lexeme once with its positions; None:
    the Python path decides."""

def unknown_words(words: list[str], known: dict[str, Any], /) -> list[str]:
    """The words not in ``known``, each once, in the order first seen."""

def plain_json(value: object, max_depth: int, /) -> bool:
    """Whether ``value`` is JSON the database stores as it is, of the exact builtin types only
    (``media_store.models.fields._is_plain_json(value, 0)`` with ``MAX_JSON_DEPTH`` given);
    False: the Python walk decides."""

def row_values(
    row: Any,
    order: tuple[str, ...],
    accepted: set[tuple[type, ...]],
    enums: tuple[tuple[int, str, dict[Any, Any]], ...],
    extra: int = 0,
    names: frozenset[str] = ...,
    /,
) -> dict[str, Any] | tuple[type, ...] | None:
    """media_store.models.rows._RowPlan.values of a record: the values by name, None when a
    check fails, or the values' types when ``accepted`` does not hold them yet. ``extra``:
    that many columns more follow the model's, none named as one of them (``names``:
    ``order`` as a frozenset, for a lookup instead of a walk)."""

def leading_spaces(texts: list[Any], /) -> int | None:
    """How many of ``texts`` after the first begin with whitespace; None: not all str."""

def split_words(text: str, lengths: bytes, lo: int, hi: int, /) -> list[str] | None:
    """Words ``lo`` to ``hi`` (exclusive) of media_store.words.segments.split_words; None:
    lengths that do not fit the text (the Python path decides)."""

def marked_words(words: list[str], matched: set[str], /) -> list[int] | None:
    """The indexes of ``words`` that are in ``matched``; None: not a list and a set."""

def struct_columns(
    words: list[Any],
    text: str | list[Any],
    confidence: str,
    speaker: str | None,
    unset: Any,
    times: tuple[str, str, int, bool, int] | None,
    /,
) -> tuple[list[str], list[float], list[float], list[float | None], list[str | None] | None] | None:
    """media_store.asr.decode._word_columns of decoded word structs in one pass, or None: the
    Python original decides."""

def sound_times(starts: list[Any], ends: list[Any], /) -> bool | None:
    """media_store.asr.repair.sound of two lists of floats, or None: the Python original
    decides."""

def make_model(model: type[T], values: dict[str, Any], fields_set: AbstractSet[str], /) -> T:
    """media_store.models.rows._RowPlan.make after the plan's first model: ``model`` holding
    ``values`` as its instance dict, every field set, no extra or private values."""

def time_ordered_ids(
    count: int, milliseconds: int, start: int, noise: bytes, uuid_type: type[U], is_safe: Any, /
) -> list[U]:
    """media_store.repositories.enqueue.time_ordered_ids' ids from its chosen millisecond,
    counter start and random bytes (8 an id)."""
