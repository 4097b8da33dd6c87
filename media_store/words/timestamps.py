"""Word-level timestamps: the model of one word, column-wise validation, and :class:`Words`.

A transcript has about 10,000 words an hour, so words are never handled one Python object
at a time on the bulk paths. Input (a list of dicts as parsed from an ASR's JSON, or
:class:`WordTimestamp` models) becomes five parallel columns, and every check runs on whole
columns (``min``/``max``/``all(map(...))``/``sum``, loops in C). Only when a column fails a
check does a per-word pass run, to name the index of the first bad word. Validation is never
skipped: a :class:`Words` passed back in is checked again.

The rules, for every word: ``word`` a string; ``start`` and ``end`` finite numbers with
``0 <= start <= end``; ``confidence`` absent/None or a finite number in [0, 1]; ``speaker``
absent/None or a string of at most 50 characters; no NUL character in any text. Within a
transcription, words are in non-decreasing ``start`` order. A number is any finite real:
``float``, ``int``, numpy's floats and ints, :class:`~decimal.Decimal`, ``Fraction`` (stored
as the nearest float); a bool is not a number.

Keys of an input dict other than these five are ignored (ASR output carries others, e.g.
``id``, ``tokens``), except where that would lose a value silently: a word with no
``confidence`` that carries ``probability``, ``score`` or ``conf`` (Whisper's, whisperX's,
Vosk's names for it), or with no ``word`` that carries ``text`` (whisper-timestamped,
AssemblyAI), is refused naming the key: rename it, or read the engine's output with
:func:`media_store.asr.words_from`, which knows what each engine's keys mean. They are not
mapped here: the same name means different things in different engines' output (``text`` is
a segment's text in some), and the five keys stay the one schema of this path.

``max_end`` (the write operations take it): the media's end, in seconds; a word ending after
it is refused. It catches times in another unit read as seconds (an AssemblyAI transcript in
milliseconds is a thousand times too long).

:class:`Words` is what the library returns: a read-only sequence of
:class:`WordTimestamp` built lazily from the columns (``words[i]`` makes one model; the
columns are ``.words``, ``.starts``, ``.ends``, ``.confidences``, ``.speakers``). It
compares equal to another :class:`Words` or to any sequence of dicts / models holding the
same values, in the same order (a missing ``confidence`` or ``speaker`` equals None).
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_left
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from functools import partial
from itertools import repeat
from operator import contains, is_not, itemgetter, le
from typing import Annotated, Any, TypeAlias, overload

import pydantic
from pydantic import Field, PlainSerializer, PlainValidator
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from media_store._compiled import compiled
from media_store.errors import ValidationError
from media_store.models.fields import Confidence, Input, Text, Text50

# The compiled readers of words (dicts, columns), or None.
_columns: Callable[[list[Any]], tuple[Any, ...] | None] | None = compiled("columns")
_check_columns: Callable[..., tuple[Any, ...] | None] | None = compiled("check_columns")

MAX_SPEAKER_LENGTH = 50


class WordTimestamp(Input):
    """One spoken word: seconds from the start of the media, 0 <= start <= end.

    The single-word model. Bulk paths validate the same rules column-wise (see the module
    docstring) and hand these out only when a :class:`Words` is indexed or iterated.
    """

    word: Text
    start: Annotated[float, Field(ge=0.0)]
    end: Annotated[float, Field(ge=0.0)]
    confidence: Confidence | None = None
    speaker: Text50 | None = None

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> WordTimestamp:
        if self.end < self.start:
            raise ValueError(f"word ends ({self.end}) before it starts ({self.start})")
        return self


# What the write operations accept: a sequence, an iterator or an async iterator of words,
# each a mapping or a WordTimestamp.
WordInput: TypeAlias = "Mapping[str, Any] | WordTimestamp"
WordSource: TypeAlias = (
    "Sequence[Mapping[str, Any] | WordTimestamp] | Iterable[Mapping[str, Any] | WordTimestamp]"
    " | AsyncIterable[Mapping[str, Any] | WordTimestamp]"
)


class WordDict(TypedDict):
    """One word as the library serialises it (:meth:`Words.to_dicts`, JSON responses)."""

    word: str
    start: float
    end: float
    confidence: float | None
    speaker: str | None


_STR = frozenset({str})
_NUMBER = frozenset({float, int})
_OPT_NUMBER = frozenset({float, int, type(None)})
# Real numbers of other types, converted to float (numpy's register as numbers.Real).
_REAL = (numbers.Real, Decimal)
# Other engines' names for a word's confidence, and for its text (see the module docstring).
CONFIDENCE_ALIASES = ("probability", "score", "conf")
TEXT_ALIASES = ("text",)
_NOT_NONE = partial(is_not, None)
_WORD, _START, _END = itemgetter("word"), itemgetter("start"), itemgetter("end")
_CONFIDENCE, _SPEAKER = itemgetter("confidence"), itemgetter("speaker")

Columns: TypeAlias = tuple[list[Any], list[Any], list[Any], list[Any], list[Any] | None]
# The distinct speakers sorted (None last) and each word's index among them, a byte a word.
SpeakerCodes: TypeAlias = tuple[list[str | None], bytes]
# Lengths, starts, ends and confidences as the segments store them, and the speaker codes.
Packed: TypeAlias = tuple[bytes, bytes, bytes, bytes, SpeakerCodes | None]


class Words(Sequence[WordTimestamp]):
    """Word timestamps as five parallel columns (see the module docstring).

    ``Words(items)`` validates ``items``; rows read back from the database are trusted
    (the library wrote them after the same checks). ``speakers`` is None when no word has a
    speaker. Treat the column lists as read-only.
    """

    __slots__ = ("confidences", "ends", "packed", "speakers", "starts", "words")

    words: list[str]
    starts: list[float]
    ends: list[float]
    confidences: list[float | None]
    speakers: list[str | None] | None
    # The columns as the segments store them (see Packed), when the compiled reader made
    # them along with the columns (segment_records takes them).
    packed: Packed | None

    def __init__(self, items: Iterable[WordInput] = ()) -> None:
        valid = validate_words(items if isinstance(items, Sequence) else list(items))
        self._set(valid.words, valid.starts, valid.ends, valid.confidences, valid.speakers)

    def _set(
        self,
        words: list[str],
        starts: list[float],
        ends: list[float],
        confidences: list[float | None],
        speakers: list[str | None] | None,
    ) -> None:
        self.words = words
        self.starts = starts
        self.ends = ends
        self.confidences = confidences
        self.speakers = speakers
        self.packed = None

    @classmethod
    def trusted(
        cls,
        words: list[str],
        starts: list[float],
        ends: list[float],
        confidences: list[float | None],
        speakers: list[str | None] | None,
    ) -> Words:
        """Columns that already passed validation (or were read from the database)."""
        new = cls.__new__(cls)
        new._set(words, starts, ends, confidences, speakers)
        return new

    def __len__(self) -> int:
        return len(self.words)

    @overload
    def __getitem__(self, index: int) -> WordTimestamp: ...

    @overload
    def __getitem__(self, index: slice) -> Words: ...

    def __getitem__(self, index: int | slice) -> WordTimestamp | Words:
        if isinstance(index, slice):
            speakers = self.speakers
            return Words.trusted(
                self.words[index],
                self.starts[index],
                self.ends[index],
                self.confidences[index],
                None if speakers is None else none_if_empty(speakers[index]),
            )
        speaker = None if self.speakers is None else self.speakers[index]
        return WordTimestamp.model_construct(
            word=self.words[index],
            start=self.starts[index],
            end=self.ends[index],
            confidence=self.confidences[index],
            speaker=speaker,
        )

    def __iter__(self) -> Iterator[WordTimestamp]:
        construct = WordTimestamp.model_construct
        speakers = repeat(None) if self.speakers is None else self.speakers
        for word, start, end, confidence, speaker in zip(
            self.words, self.starts, self.ends, self.confidences, speakers, strict=False
        ):
            yield construct(word=word, start=start, end=end, confidence=confidence, speaker=speaker)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Words):
            theirs: Columns = (
                other.words,
                other.starts,
                other.ends,
                other.confidences,
                other.speakers,
            )
        elif isinstance(other, Sequence) and not isinstance(other, str | bytes):
            if len(other) != len(self):
                return False
            try:
                theirs = _extract(other)
            except ValidationError:
                return False
        else:
            return NotImplemented
        n = len(self)
        ours_speakers = self.speakers if self.speakers is not None else [None] * n
        their_speakers = theirs[4] if theirs[4] is not None else [None] * len(theirs[0])
        return (
            self.words == theirs[0]
            and self.starts == theirs[1]
            and self.ends == theirs[2]
            and self.confidences == theirs[3]
            and ours_speakers == their_speakers
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self.words:
            return "Words([])"
        return (
            f"Words(<{len(self)} words, {self.starts[0]}s..{self.ends[-1]}s: "
            f"{' '.join(self.words[:8])}{' ...' if len(self) > 8 else ''}>)"
        )

    def window(self, t0: float, t1: float) -> Words:
        """The words with ``t0 <= start < t1`` (a word straddling ``t0`` is out, one
        straddling ``t1`` is in). Binary search on the sorted starts."""
        lo = bisect_left(self.starts, t0)
        hi = max(lo, bisect_left(self.starts, t1))
        return self[lo:hi]

    def to_dicts(self) -> list[WordDict]:
        """One dict per word, every key present (what the models serialise to), built from
        the columns (no model per word)."""
        speakers: Iterable[str | None] = repeat(None) if self.speakers is None else self.speakers
        return [
            {"word": w, "start": s, "end": e, "confidence": c, "speaker": p}
            for w, s, e, c, p in zip(
                self.words, self.starts, self.ends, self.confidences, speakers, strict=False
            )
        ]


def none_if_empty(speakers: list[str | None]) -> list[str | None] | None:
    """``speakers``, or None when no word has one (the first word mostly tells at once)."""
    if speakers and speakers[0] is not None:
        return speakers
    return speakers if speakers.count(None) != len(speakers) else None


def concat(parts: Iterable[Words]) -> Words:
    """The words of ``parts`` one after the other (no re-validation)."""
    words: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    confidences: list[float | None] = []
    speakers: list[str | None] = []
    any_speaker = False
    for part in parts:
        words += part.words
        starts += part.starts
        ends += part.ends
        confidences += part.confidences
        if part.speakers is None:
            speakers += repeat(None, len(part.words))
        else:
            speakers += part.speakers
            any_speaker = True
    return Words.trusted(words, starts, ends, confidences, speakers if any_speaker else None)


# --- column-wise validation -----------------------------------------------------------------


def _extract(items: Sequence[Any]) -> Columns:
    """Five columns from dicts (fast path) or from mappings / models (one by one)."""
    if isinstance(items, Words):
        return (
            list(items.words),
            list(items.starts),
            list(items.ends),
            list(items.confidences),
            None if items.speakers is None else list(items.speakers),
        )
    try:
        return (
            list(map(_WORD, items)),
            list(map(_START, items)),
            list(map(_END, items)),
            _optional(items, _CONFIDENCE, "confidence"),
            _optional(items, _SPEAKER, "speaker"),
        )
    except (KeyError, TypeError, IndexError):
        return _extract_slow(items)


def _optional(items: Sequence[Any], getter: itemgetter[Any], key: str) -> list[Any]:
    """The values of an optional key of word dicts (None where absent). An itemgetter's map
    costs half of ``dict.get``'s (no bound call with a default a word), so it is tried first;
    the first dict without the key sends the column to ``dict.get``."""
    try:
        return list(map(getter, items))
    except KeyError:
        return list(map(dict.get, items, repeat(key)))


def _extract_slow(items: Sequence[Any]) -> Columns:
    words: list[Any] = []
    starts: list[Any] = []
    ends: list[Any] = []
    confidences: list[Any] = []
    speakers: list[Any] = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            missing = [key for key in ("word", "start", "end") if key not in item]
            if missing:
                alias = [key for key in TEXT_ALIASES if key in item and missing[0] == "word"]
                if alias:
                    _refuse(index, alias[0], _alias_message(alias[0], "word"))
                _refuse(index, missing[0], "field required")
            values = (
                item["word"],
                item["start"],
                item["end"],
                item.get("confidence"),
                item.get("speaker"),
            )
        elif isinstance(item, WordTimestamp):
            values = (item.word, item.start, item.end, item.confidence, item.speaker)
        else:
            _refuse(
                index, None, f"expected a mapping or a WordTimestamp, got {type(item).__name__}"
            )
        words.append(values[0])
        starts.append(values[1])
        ends.append(values[2])
        confidences.append(values[3])
        speakers.append(values[4])
    return words, starts, ends, confidences, speakers


def _alias_message(key: str, name: str) -> str:
    return (
        f"has {key!r} but no {name!r}: rename {key!r} to {name!r} (or drop it), or read the "
        f"engine's output with media_store.asr.words_from(engine, payload); it is not "
        f"stored as {name!r} by guess, nor dropped"
    )


def _refuse_aliases(items: Sequence[Any], confidences: list[Any], offset: int) -> None:
    """Refuse the first word with no confidence that carries one under another engine's
    name: a scan in C per name, run only when some word has no confidence."""
    if isinstance(items, Words):
        return
    hits = []
    for key in CONFIDENCE_ALIASES:
        if any(map(contains, items, repeat(key))):
            pairs = enumerate(zip(items, confidences, strict=True))
            index = next((i for i, (item, c) in pairs if c is None and key in item), None)
            if index is not None:
                hits.append((index, key))
    if hits:
        index, key = min(hits)
        _refuse(offset + index, key, _alias_message(key, "confidence"))


def _as_float(value: Any) -> Any:
    """A real number of another type than float or int (numpy scalars, Decimal, Fraction)
    as the nearest float; anything else as it is (a bool, a string, a huge Fraction: refused
    later, naming its word)."""
    if type(value) in _OPT_NUMBER or isinstance(value, bool) or not isinstance(value, _REAL):
        return value
    try:
        return float(value)
    except (OverflowError, ValueError):  # too large; a signalling NaN Decimal
        return value


def check_max_end(words: Words, max_end: float, *, offset: int = 0) -> None:
    """Refuse the first word of ``words`` that ends after ``max_end`` seconds (the media's
    end): a transcript in another unit than seconds (see the module docstring)."""
    if words.ends and max(words.ends) > max_end:
        index = next(i for i, end in enumerate(words.ends) if end > max_end)
        _refuse(
            offset + index,
            "end",
            f"ends at {words.ends[index]} s, after max_end ({max_end} s, the media's end): are "
            f"the times in milliseconds or another unit? Convert them to seconds "
            f"(media_store.asr.words_from does, for each engine)",
        )


def _refuse(index: int, field: str | None, message: str) -> Any:
    loc: tuple[object, ...] = (index,) if field is None else (index, field)
    where = f"word {index}" + ("" if field is None else f" ({field})")
    raise ValidationError(
        f"invalid word timestamps: {where}: {message}", [{"loc": loc, "msg": message}]
    )


def _clean_text(text: str) -> bool:
    """No NUL (PostgreSQL text cannot hold it) and valid Unicode (no lone surrogate, which
    UTF-8 cannot encode)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite_sum(values: list[Any]) -> bool:
    try:
        return math.isfinite(sum(values))
    except OverflowError:  # an int too large for a float
        return False


def _columns_pass(
    words: list[Any],
    starts: list[Any],
    ends: list[Any],
    confidences: list[Any],
    speakers: list[Any] | None,
    types: tuple[set[type], set[type], set[type]],
) -> bool:
    """Every rule on whole columns. False means: some word breaks one (find it one by one).

    ``types``: the sets of types in ``starts``, ``ends`` and ``confidences``."""
    start_types, end_types, confidence_types = types
    if not (
        start_types <= _NUMBER
        and end_types <= _NUMBER
        and set(map(type, words)) <= _STR
        and _clean_text("".join(words))
        # Finite sums: no NaN or infinity below, so the comparisons that follow are sound.
        and _finite_sum(starts)
        and _finite_sum(ends)
        # In order: sorting a sorted list finds one run (a comparison a word, in C) and gives
        # back the same objects, which the list comparison matches by identity.
        and sorted(starts) == starts
        and starts[0] >= 0  # the smallest start, as they are in order
        and all(map(le, starts, ends))
    ):
        return False
    if not confidence_types <= _OPT_NUMBER:
        return False
    given = (
        [c for c in confidences if c is not None] if type(None) in confidence_types else confidences
    )
    if given and not (_finite_sum(given) and min(given) >= 0 and max(given) <= 1):
        return False
    return speakers is None or _speakers_pass(speakers)


def _speakers_pass(speakers: list[Any]) -> bool:
    """The speaker rules, checked on the distinct values: diarized output has a handful of
    speakers, so this costs one pass to build the set (in C) whatever the number of words."""
    try:
        named = set(speakers)
    except TypeError:  # an unhashable value: no string
        return False
    some_none = None in named
    named.discard(None)
    if not named:
        return True
    return (
        set(map(type, named)) <= _STR
        and _clean_text("".join(named))
        and max(map(len, named)) <= MAX_SPEAKER_LENGTH
        # Every value besides None is a str (join refuses anything else), so each equals one
        # of the strings just checked: none can hide behind an equal value of another type.
        and _joins(filter(_NOT_NONE, speakers) if some_none else speakers)
    )


def _joins(values: Iterable[Any]) -> bool:
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a finite number."""
    if type(value) not in _NUMBER:
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _find_problem(
    words: list[Any],
    starts: list[Any],
    ends: list[Any],
    confidences: list[Any],
    speakers: list[Any] | None,
    offset: int,
) -> None:
    """Raise for the first word that breaks a rule (the slow path, run only on failure)."""
    previous: float | None = None
    for i, word in enumerate(words):
        index = offset + i
        if type(word) is not str:
            _refuse(index, "word", f"must be a string, got {type(word).__name__}")
        if not _clean_text(word):
            _refuse(index, "word", "must not contain NUL (\\x00) characters or lone surrogates")
        start = _number(starts[i])
        if start is None:
            _refuse(index, "start", f"must be a finite number, got {starts[i]!r}")
        end = _number(ends[i])
        if end is None:
            _refuse(index, "end", f"must be a finite number, got {ends[i]!r}")
        assert start is not None and end is not None
        if start < 0:
            _refuse(index, "start", f"must be >= 0, got {start}")
        if end < start:
            _refuse(index, "end", f"the word ends ({end}) before it starts ({start})")
        if previous is not None and start < previous:
            _refuse(index, "start", f"starts ({start}) before the previous word ({previous})")
        previous = start
        confidence = confidences[i]
        if confidence is not None:
            value = _number(confidence)
            if value is None or not 0 <= value <= 1:
                _refuse(index, "confidence", f"must be a number in [0, 1], got {confidence!r}")
        if speakers is not None and speakers[i] is not None:
            speaker = speakers[i]
            if type(speaker) is not str:
                _refuse(index, "speaker", f"must be a string, got {type(speaker).__name__}")
            if not _clean_text(speaker) or len(speaker) > MAX_SPEAKER_LENGTH:
                _refuse(
                    index,
                    "speaker",
                    f"must have at most {MAX_SPEAKER_LENGTH} characters and no NUL",
                )


def validate_words(
    items: Sequence[WordInput],
    *,
    after: float | None = None,
    offset: int = 0,
    max_end: float | None = None,
) -> Words:
    """Check ``items`` column-wise and return them as :class:`Words`.

    ``after``: the start of the word just before ``items`` in the same call (the first
    word must not start before it). ``offset``: the index of ``items[0]`` in that call, for
    messages. ``max_end``: no word may end after it (:func:`check_max_end`). Raises
    :class:`ValidationError` naming the first bad word.
    """
    fast = None
    if _columns is not None and type(items) is list:
        fast = _columns(items)
    elif _check_columns is not None and type(items) is Words:
        fast = _check_columns(
            items.words, items.starts, items.ends, items.confidences, items.speakers
        )
    if fast is not None:
        return _checked_fast(fast, after, offset, max_end)
    words, starts, ends, confidences, speakers = _extract(items)
    if not words:
        return Words.trusted([], [], [], [], None)
    if speakers is not None:
        speakers = none_if_empty(speakers)
    types = (set(map(type, starts)), set(map(type, ends)), set(map(type, confidences)))
    if type(None) in types[2]:  # some word has no confidence: does it have another name?
        _refuse_aliases(items, confidences, offset)
    if not (types[0] <= _NUMBER and types[1] <= _NUMBER and types[2] <= _OPT_NUMBER):
        # numpy scalars, Decimals: converted here, off the path plain floats take.
        starts, ends, confidences = (list(map(_as_float, c)) for c in (starts, ends, confidences))
        types = (set(map(type, starts)), set(map(type, ends)), set(map(type, confidences)))
    if not _columns_pass(words, starts, ends, confidences, speakers, types):
        _find_problem(words, starts, ends, confidences, speakers, offset)
    if after is not None and starts[0] < after:
        _refuse(offset, "start", f"starts ({starts[0]}) before the previous word ({after})")
    # Whole numbers become floats, as they come back from the database.
    if int in types[0]:
        starts = list(map(float, starts))
    if int in types[1]:
        ends = list(map(float, ends))
    if int in types[2]:
        confidences = [None if c is None else float(c) for c in confidences]
    valid = Words.trusted(words, starts, ends, confidences, speakers)
    if max_end is not None:
        check_max_end(valid, max_end, offset=offset)
    return valid


def _checked_fast(
    fast: tuple[Any, ...], after: float | None, offset: int, max_end: float | None
) -> Words:
    """:func:`validate_words`'s result from the compiled reader's columns (every per-word rule
    already checked): the checks against the words around them remain."""
    words, starts, ends, confidences, speakers, *packed = fast
    if not words:
        return Words.trusted([], [], [], [], None)
    if after is not None and starts[0] < after:
        _refuse(offset, "start", f"starts ({starts[0]}) before the previous word ({after})")
    valid = Words.trusted(words, starts, ends, confidences, speakers)
    valid.packed = (packed[0], packed[1], packed[2], packed[3], packed[4])
    if max_end is not None:
        check_max_end(valid, max_end, offset=offset)
    return valid


# --- the pydantic fields -----------------------------------------------------------------------


def _validate_input(value: Any) -> Words:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"expected a list of words, got {type(value).__name__}")
    return validate_words(value if isinstance(value, Sequence) else list(value))


def _validate_row(value: Any) -> Words:
    # Rows read back by the repository arrive as Words already; anything else is checked.
    return value if isinstance(value, Words) else _validate_input(value)


def _serialize(value: Sequence[WordTimestamp]) -> list[WordDict]:
    if isinstance(value, Words):
        return value.to_dicts()
    return [
        {
            "word": w.word,
            "start": w.start,
            "end": w.end,
            "confidence": w.confidence,
            "speaker": w.speaker,
        }
        for w in value
    ]


# The JSON schema says what goes in (a list of WordTimestamp objects) and what comes out (a
# list of the five keys), as FastAPI's OpenAPI document shows them.
_SERIALIZER = PlainSerializer(_serialize, return_type=list[WordDict])

# TranscriptionCreate.word_timestamps: any sequence of word dicts / models, validated
# column-wise into Words (always, even when given a Words).
WordsInput = Annotated[
    Sequence[WordTimestamp],
    PlainValidator(_validate_input, json_schema_input_type=list[WordTimestamp]),
    _SERIALIZER,
]
# Transcription.word_timestamps: the Words the repository read or wrote.
WordsOutput = Annotated[
    Sequence[WordTimestamp],
    PlainValidator(_validate_row, json_schema_input_type=list[WordTimestamp]),
    _SERIALIZER,
]
