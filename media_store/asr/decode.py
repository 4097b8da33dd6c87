"""Engines' JSON straight to the store's word columns: typed decoders that read only the
fields the words need.

``orjson.loads`` builds every object of a file, and recognisers write far more than the
words: whisper.cpp ``-ojf`` a dict of six fields a token and two timestamp objects a word
(270 bytes of JSON a word), AWS a dict, a list and a dict an item with times and
confidences as strings, Watson lists a word twice over. A msgspec decoder typed to the few
fields the words need skips the rest while scanning (no object is made for it), checks the
types as it goes, and the columns are then made by maps in C (``float`` of AWS's strings,
``attrgetter`` of the structs), not a Python step a word.

This is only a fast path, for the shapes the engines write. :func:`columns` returns None
whenever a file is anything else: another engine, a value of another type or out of range,
a multichannel or session file, punctuation or tokens it does not know. The caller then
takes the general path (``orjson.loads``, :func:`~media_store.asr.detect`,
:func:`~media_store.asr.words_from`), which gives the same words, and the same refusals
naming the path of a bad value (tests/asr/test_asr_decode.py holds the two paths equal).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import compress, repeat
from operator import attrgetter, eq, itemgetter, ne
from typing import Any, TypeAlias

import msgspec

from media_store.asr.units import MAX_FAST_MS

# word, start, end, confidence, speakers (None: no word has a speaker field)
Columns: TypeAlias = tuple[
    list[str], list[float], list[float], list[float | None], list[str | None] | None
]


class _NotPlain(Exception):
    """The file is not in the shape the fast path reads: take the general path."""


# --- which engine (only what tells these engines apart, as detect() decides) -------------------


def _raw() -> msgspec.Raw:
    return msgspec.Raw()


class _Top(msgspec.Struct):
    """The keys detect() looks at first, each value left unparsed (empty: absent)."""

    type: msgspec.Raw = msgspec.field(default_factory=_raw)
    results: msgspec.Raw = msgspec.field(default_factory=_raw)
    result_index: msgspec.Raw = msgspec.field(default_factory=_raw)
    speaker_labels: msgspec.Raw = msgspec.field(default_factory=_raw)
    transcription: msgspec.Raw = msgspec.field(default_factory=_raw)
    NBest: msgspec.Raw = msgspec.field(default_factory=_raw)
    RecognitionStatus: msgspec.Raw = msgspec.field(default_factory=_raw)
    recognizedPhrases: msgspec.Raw = msgspec.field(default_factory=_raw)


class _ResultsKeys(msgspec.Struct):
    channels: msgspec.Raw = msgspec.field(default_factory=_raw)
    items: msgspec.Raw = msgspec.field(default_factory=_raw)
    transcripts: msgspec.Raw = msgspec.field(default_factory=_raw)
    channel_labels: msgspec.Raw = msgspec.field(default_factory=_raw)


_TOP = msgspec.json.Decoder(_Top)
_RESULTS_KEYS = msgspec.json.Decoder(_ResultsKeys)


def _kind(raw: msgspec.Raw) -> str:
    """``{`` an object, ``[`` an array, ``n`` null, another letter or digit another JSON
    value, ``""`` absent."""
    text = bytes(raw).lstrip()
    return chr(text[0]) if text else ""


def _engine(data: bytes) -> str | None:
    """The engine detect() would name for this file, when it is one of the engines read
    here and the top-level keys settle it; else None (the general path decides)."""
    top = _TOP.decode(data)
    if any(map(len, (top.type, top.NBest, top.RecognitionStatus, top.recognizedPhrases))):
        return None  # a Deepgram live message, Azure: not read here
    results = _kind(top.results)
    if results == "{":
        keys = _RESULTS_KEYS.decode(top.results)
        if len(keys.channels):
            return None  # Deepgram
        if len(keys.items) or len(keys.transcripts) or len(keys.channel_labels):
            return "aws-transcribe"
        return None
    if results == "[":
        if len(top.result_index) or _kind(top.speaker_labels) == "[":
            return "ibm-watson"
        return None  # Google, or Watson told by its results' keys: the general path
    if results in ("", "n") and _kind(top.transcription) == "[":
        return "whisper.cpp"
    return None


# --- whisper.cpp ------------------------------------------------------------------------------


class _CppOffsets(msgspec.Struct, gc=False):
    start: int = msgspec.field(name="from")
    end: int = msgspec.field(name="to")


class _CppToken(msgspec.Struct, gc=False):
    text: str | None = None
    p: float | None = None


class _CppEntry(msgspec.Struct, gc=False):
    text: str
    offsets: _CppOffsets
    tokens: list[_CppToken] | None = None


class _Cpp(msgspec.Struct):
    transcription: list[_CppEntry]


_CPP = msgspec.json.Decoder(_Cpp)
_TEXT, _OFFSETS, _TOKENS = attrgetter("text"), attrgetter("offsets"), attrgetter("tokens")
_FROM, _TO, _P = attrgetter("start"), attrgetter("end"), attrgetter("p")
_FIRST = itemgetter(0)


def _whisper_cpp(data: bytes) -> Columns:
    entries = _CPP.decode(data).transcription
    words = list(map(_TEXT, entries))
    offsets = list(map(_OFFSETS, entries))
    starts_ms = list(map(_FROM, offsets))
    ends_ms = list(map(_TO, offsets))
    if starts_ms and max(map(abs, starts_ms + ends_ms)) > MAX_FAST_MS:
        raise _NotPlain
    # One word an entry (-ml 1): whitespace inside a word means segment-level output.
    if words and max(map(len, map(str.split, words))) > 1:
        raise _NotPlain
    tokens = list(map(_TOKENS, entries))
    return (
        words,
        [ms / 1000 for ms in starts_ms],
        [ms / 1000 for ms in ends_ms],
        _token_means(tokens),
        None,
    )


def _token_means(tokens: list[list[_CppToken] | None]) -> list[float | None]:
    """Each word's mean ``p`` over its text tokens, as the adapter computes it."""
    if tokens and None not in tokens and set(map(len, tokens)) == {1}:  # type: ignore[arg-type]
        # The usual -ojf word: one token. Its p is the mean unless it is a timing marker.
        only = list(map(_FIRST, tokens))  # type: ignore[arg-type]
        texts = list(map(_TEXT, only))
        if not any(isinstance(t, str) and t.startswith("[_") for t in set(texts)):
            # 0.0 + p: the adapter's running total starts at 0.0 (a p of -0.0 gives 0.0).
            means: list[float | None] = [None if p is None else 0.0 + p for p in map(_P, only)]
            _check_confidences(means)
            return means
    means = []
    for word_tokens in tokens:
        if word_tokens is None:
            means.append(None)
            continue
        ps = [
            t.p
            for t in word_tokens
            if t.p is not None and not (isinstance(t.text, str) and t.text.startswith("[_"))
        ]
        _check_confidences(ps)  # type: ignore[arg-type]
        total = 0.0
        for p in ps:  # added in order, as the adapter does
            total += p
        means.append(total / len(ps) if ps else None)
    return means


def _check_confidences(values: list[float | None]) -> None:
    given: list[float] = [v for v in values if v is not None]
    if given and not (min(given) >= 0.0 and max(given) <= 1.0):
        raise _NotPlain  # NaN compares False too


# --- AWS Transcribe -----------------------------------------------------------------------------


class _AwsAlternative(msgspec.Struct, gc=False):
    content: str
    confidence: float | None = None  # a numeric string, read by the lax decoder


class _AwsItem(msgspec.Struct, gc=False):
    type: str
    alternatives: list[_AwsAlternative]
    start_time: float | None = None  # numeric strings likewise
    end_time: float | None = None
    speaker_label: str | None = None


class _AwsResults(msgspec.Struct):
    items: list[_AwsItem]
    channel_labels: msgspec.Raw = msgspec.field(default_factory=_raw)
    speaker_labels: msgspec.Raw = msgspec.field(default_factory=_raw)


class _Aws(msgspec.Struct):
    results: _AwsResults


# Not strict: AWS writes its numbers as strings ("1.15"), which msgspec then parses as
# float() does (both correctly rounded; the equality is tested). What it reads otherwise
# than float() (a "null" string, "1_000", " 1.5") is None or refused: the general path.
_AWS = msgspec.json.Decoder(_Aws, strict=False)
_TYPE, _ALTERNATIVES = attrgetter("type"), attrgetter("alternatives")
_CONTENT, _CONFIDENCE = attrgetter("content"), attrgetter("confidence")
_START_TIME, _END_TIME = attrgetter("start_time"), attrgetter("end_time")
_LABEL = attrgetter("speaker_label")
_AWS_KINDS = frozenset({"pronunciation", "punctuation"})


def _aws_transcribe(data: bytes) -> Columns:
    results = _AWS.decode(data).results
    if _kind(results.channel_labels) not in ("", "n"):
        raise _NotPlain  # channels to merge
    item_list = results.items
    kinds = list(map(_TYPE, item_list))
    if not kinds or kinds[0] != "pronunciation" or not set(kinds) <= _AWS_KINDS:
        raise _NotPlain  # leading punctuation, other item types: the general path
    alternatives = list(map(_ALTERNATIVES, item_list))
    if not all(alternatives):
        raise _NotPlain
    best = list(map(_FIRST, alternatives))
    contents = list(map(_CONTENT, best))
    punctuation = list(compress(range(len(kinds)), map(eq, kinds, repeat("punctuation"))))
    if punctuation:
        # Each punctuation item is appended to the word before it (from the last: a run
        # of them gathers onto its word).
        for i in reversed(punctuation):
            contents[i - 1] += contents[i]
        pick = itemgetter(*compress(range(len(kinds)), map(ne, kinds, repeat("punctuation"))))
        item_list, best, contents = (
            _picked(pick, item_list),
            _picked(pick, best),
            _picked(pick, contents),
        )
    starts = list(map(_START_TIME, item_list))
    ends = list(map(_END_TIME, item_list))
    confidences: list[float | None] = list(map(_CONFIDENCE, best))
    if None in starts or None in ends or None in confidences:
        raise _NotPlain  # a missing value: the general path names it
    if not (math.isfinite(sum(starts)) and math.isfinite(sum(ends))):
        raise _NotPlain
    _check_confidences(confidences)
    labels: list[str | None] = list(map(_LABEL, item_list))
    if None in labels and _kind(results.speaker_labels) not in ("", "n"):
        raise _NotPlain  # a word's speaker to look up by its start time (older output)
    speakers = None if labels.count(None) == len(labels) else labels
    return contents, starts, ends, confidences, speakers


def _picked(pick: itemgetter[Any], values: list[Any]) -> list[Any]:
    picked = pick(values)
    return list(picked) if isinstance(picked, tuple) else [picked]


# --- IBM Watson ---------------------------------------------------------------------------------


class _WatsonAlternative(msgspec.Struct, gc=False):
    timestamps: list[tuple[str, float, float]]
    word_confidence: list[tuple[str, float]] | None = None


class _WatsonResult(msgspec.Struct, gc=False):
    alternatives: list[_WatsonAlternative] | None = None


class _WatsonLabel(msgspec.Struct, gc=False):
    start: float = msgspec.field(name="from")
    speaker: int | str | None = None


class _Watson(msgspec.Struct):
    results: list[_WatsonResult]
    speaker_labels: list[_WatsonLabel] | None = None


_WATSON = msgspec.json.Decoder(_Watson)
_SECOND, _THIRD = itemgetter(1), itemgetter(2)
_SPEAKER, _LABEL_START = attrgetter("speaker"), attrgetter("start")


def _ibm_watson(data: bytes) -> Columns:
    response = _WATSON.decode(data)
    speakers: dict[float, str | None] = {}
    for label in response.speaker_labels or ():
        own = label.speaker
        if own is None or type(own) is bool:
            raise _NotPlain
        speakers[label.start] = own if type(own) is str else str(own)
    stamps: list[tuple[str, float, float]] = []
    pairs: list[tuple[str, float]] = []
    for result in response.results:
        if not result.alternatives:
            continue
        best = result.alternatives[0]
        if best.word_confidence is None or len(best.word_confidence) != len(best.timestamps):
            raise _NotPlain
        stamps += best.timestamps
        pairs += best.word_confidence
    words = list(map(_FIRST, stamps))
    if list(map(_FIRST, pairs)) != words:
        raise _NotPlain  # word_confidence not parallel to timestamps
    starts = list(map(_SECOND, stamps))
    ends = list(map(_THIRD, stamps))
    confidences: list[float | None] = list(map(_SECOND, pairs))
    if not (math.isfinite(sum(starts)) and math.isfinite(sum(ends))):
        raise _NotPlain
    _check_confidences(confidences)
    if speakers:
        labels: list[str | None] | None = list(map(speakers.get, starts))
    else:
        labels = None
    return words, starts, ends, confidences, labels


# --- the entry point ----------------------------------------------------------------------------

DECODERS: dict[str, Callable[[bytes], Columns]] = {
    "whisper.cpp": _whisper_cpp,
    "aws-transcribe": _aws_transcribe,
    "ibm-watson": _ibm_watson,
}


def columns(data: bytes, engine: str = "auto") -> tuple[str, Columns] | None:
    """The engine and the word columns of the JSON file ``data`` when the fast path reads it
    (see the module docstring), else None. ``engine``: the engine's name, or ``"auto"``
    (the engine detect() would name). Never raises for a bad file: None."""
    try:
        name = _engine(data) if engine == "auto" else engine
        decoder = DECODERS.get(name) if name is not None else None
        if name is None or decoder is None:
            return None
        return name, decoder(data)
    except (msgspec.DecodeError, _NotPlain, RecursionError):
        return None
