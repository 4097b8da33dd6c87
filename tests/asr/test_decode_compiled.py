"""The compiled column makers of the typed decoders (``struct_columns`` and ``sound_times``
in media_store/_speedups.c) against their Python originals.

Every file here is decoded twice, with the compiled functions and without them: both must
give the same engine and the same columns, value for value and type for type, or both None
(the general path's turn). Files are generated per engine around each rule's edge: times as
floats, whole milliseconds and 100-ns ticks (at and past 2**52, where the compiled path hands
over), Duration texts (short, long, non-ASCII digits, no unit), confidences at and past
[0, 1], speakers as strings, ints, bools and absent.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_store.asr import decode
from media_store.asr.decode import UNSET, columns

# The module (media_store.asr's own ``repair`` is the function of that name).
repair: Any = importlib.import_module("media_store.asr.repair")

pytestmark = pytest.mark.skipif(
    decode._struct_columns is None, reason="media_store._speedups is not compiled in this install"
)


@contextmanager
def python_only() -> Iterator[None]:
    compiled = decode._struct_columns, repair._sound_times
    decode._struct_columns = repair._sound_times = None
    try:
        yield
    finally:
        decode._struct_columns, repair._sound_times = compiled


def typed(found: tuple[str, Any] | None) -> Any:
    """The engine and each column's values with their types and reprs (0.5 and 1 differ, and
    0.0 and -0.0)."""
    if found is None:
        return None
    name, made = found
    return name, [None if c is None else [(type(v), repr(v)) for v in c] for c in made]


def both_ways(data: bytes, engine: str) -> Any:
    compiled = columns(data, engine)
    with python_only():
        original = columns(data, engine)
    assert typed(compiled) == typed(original)
    return compiled


_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=5)
_SECONDS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**6), max_value=10**6),
    # past 1e300 the compiled pass hands over (the sum's test differs from Python 3.12 on)
    st.sampled_from([0.0, -0.0, 1e300, 1.0000000000000001e300, -1e301, 1e308, 5e-324]),
)
_UNIT = st.floats(min_value=0.0, max_value=1.0)
_CONFIDENCE = st.one_of(
    st.none(),
    _UNIT,
    _UNIT,
    _UNIT,
    st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
    st.sampled_from([0, 1, 0.0, 1.0, 1.0000000000000002, -5e-324]),
)
_SPEAKER = st.one_of(
    st.none(), st.sampled_from(["A", "SPEAKER_01", ""]), st.integers(-3, 3), st.booleans()
)
_COUNT = st.one_of(
    st.integers(min_value=-(10**9), max_value=10**12),
    st.sampled_from([2**52, 2**52 + 1, -(2**52), 2**53, 2**53 + 1, 2**62]),
)


def _maybe(word: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if value is not UNSET:
        word[key] = value
    return word


@st.composite
def float_words(draw: st.DrawFn, confidence: str, speaker: str | None) -> list[dict[str, Any]]:
    words = []
    for _ in range(draw(st.integers(0, 6))):
        word = {"start": draw(_SECONDS), "end": draw(_SECONDS)}
        _maybe(word, confidence, draw(st.one_of(st.just(UNSET), _CONFIDENCE)))
        if speaker is not None:
            _maybe(word, speaker, draw(st.one_of(st.just(UNSET), _SPEAKER)))
        words.append(word)
    return words


def _texts(draw: Callable[..., Any], words: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    for word in words:
        word[key] = draw(st.one_of(_TEXT, _TEXT, _TEXT, _TEXT, st.just(None), st.integers(0, 2)))
    return words


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from(["openai-whisper", "whisper-timestamped", "whisperx"]))
def test_whisper_family_columns_are_the_pythons(data: st.DataObject, engine: str) -> None:
    text, confidence, speaker = {
        "openai-whisper": ("word", "probability", None),
        "whisper-timestamped": ("text", "confidence", None),
        "whisperx": ("word", "score", "speaker"),
    }[engine]
    words = _texts(data.draw, data.draw(float_words(confidence, speaker)), text)
    segments = [{"start": 0.0, "end": 1.0, "text": "t", "words": words}]
    both_ways(orjson.dumps({"segments": segments, "language": "en"}), engine)
    if engine == "whisperx":  # the flat copy alone, read when there are no segments
        both_ways(orjson.dumps({"segments": None, "word_segments": words}), engine)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_vosk_and_deepgram_columns_are_the_pythons(data: st.DataObject) -> None:
    vosk = _texts(data.draw, data.draw(float_words("conf", None)), "word")
    both_ways(orjson.dumps([{"result": vosk, "text": "t"}]), "vosk")
    deepgram = _texts(data.draw, data.draw(float_words("confidence", "speaker")), "word")
    for word in deepgram:
        _maybe(word, "punctuated_word", data.draw(st.one_of(st.just(UNSET), _TEXT)))
    channel = {"alternatives": [{"words": deepgram}]}
    both_ways(orjson.dumps({"results": {"channels": [channel]}}), "deepgram")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_whole_units_are_divided_as_python_divides(data: st.DataObject) -> None:
    assembly = []
    azure = []
    for _ in range(data.draw(st.integers(0, 5))):
        text, confidence = data.draw(_TEXT), data.draw(_CONFIDENCE)
        word = {"text": text, "start": data.draw(_COUNT), "end": data.draw(_COUNT)}
        assembly.append(_maybe(word, "confidence", confidence))
        assembly[-1]["speaker"] = data.draw(_SPEAKER)
        tick = {"Word": text, "Offset": data.draw(_COUNT), "Duration": data.draw(_COUNT)}
        azure.append(_maybe(tick, "Confidence", confidence))
    found = both_ways(orjson.dumps({"words": assembly}), "assemblyai")
    assert found is None or len(found[1][0]) == len(assembly)
    both_ways(
        orjson.dumps([{"RecognitionStatus": "Success", "NBest": [{"Words": azure}]}]),
        "azure-speech",
    )


_DURATION = st.one_of(
    st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,9})?s\Z"),
    st.sampled_from(
        [
            "0s",
            "1.s",
            ".5s",
            "1.5",
            "1.0000000000s",
            "١٢.٥s",  # Arabic-Indic digits: the expression's \d takes them, float() too
            "9" * 70 + "s",
            "9" * 400 + "s",  # infinite as a float
            "1_0s",
            " 1s",
            "12.300s",
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_duration_texts_read_as_float_reads_them(data: st.DataObject) -> None:
    words = []
    for _ in range(data.draw(st.integers(0, 5))):
        word = {"word": data.draw(_TEXT), "startTime": data.draw(_DURATION)}
        word["endTime"] = data.draw(_DURATION)
        _maybe(word, "confidence", data.draw(st.one_of(st.just(UNSET), _CONFIDENCE)))
        _maybe(word, "speakerTag", data.draw(st.one_of(st.just(UNSET), st.integers(0, 3))))
        if data.draw(st.booleans()):
            word["speakerLabel"] = data.draw(st.sampled_from(["", "spk_1"]))
        words.append(word)
    result = {"alternatives": [{"words": words}], "languageCode": "en-us"}
    both_ways(orjson.dumps({"results": [result]}), "google-stt")


def test_the_engines_usual_files_take_the_compiled_path() -> None:
    """Each rewritten decoder's common file is made by the compiled function, not handed
    back to Python: a count of its calls."""
    calls = []
    made = decode._struct_columns
    assert made is not None

    def counted(*args: Any) -> Any:
        answer = made(*args)
        calls.append(answer is not None)
        return answer

    word = {"start": 0.0, "end": 0.5}
    files = {
        "openai-whisper": {"segments": [{"words": [{"word": " a", "probability": 1.0, **word}]}]},
        "whisper-timestamped": {"segments": [{"words": [{"text": "a", **word}]}]},
        "whisperx": {"segments": [{"words": [{"word": "a", "speaker": "S", **word}]}]},
        "deepgram": {
            "results": {"channels": [{"alternatives": [{"words": [{"word": "a", **word}]}]}]}
        },
        "vosk": [{"result": [{"word": "a", "start": 0.0, "end": 0.5, "conf": 0.5}]}],
        "assemblyai": {"words": [{"text": "a", "start": 0, "end": 500, "speaker": "A"}]},
        "azure-speech": [{"NBest": [{"Words": [{"Word": "a", "Offset": 0, "Duration": 10}]}]}],
        "google-stt": {
            "results": [
                {
                    "alternatives": [
                        {
                            "words": [
                                {"word": "a", "startTime": "0s", "endTime": "1.5s", "speakerTag": 1}
                            ]
                        }
                    ]
                }
            ]
        },
    }
    decode._struct_columns = counted
    try:
        for engine, payload in files.items():
            assert columns(orjson.dumps(payload), engine) is not None, engine
    finally:
        decode._struct_columns = made
    assert calls == [True] * len(files)


class _Word:
    """A word whose attribute runs Python code that empties the list being read."""

    def __init__(self, words: list[Any]) -> None:
        self.words = words
        self.start = 0.0
        self.end = 1.0
        self.confidence = 0.5

    @property
    def text(self) -> str:
        self.words.clear()
        return "a"


def test_a_list_changed_under_the_pass_is_left_to_python() -> None:
    made = decode._struct_columns
    assert made is not None
    words: list[Any] = []
    words.extend([_Word(words), _Word(words)])
    assert made(words, "text", "confidence", None, UNSET, None) is None
    assert words == []


@pytest.mark.parametrize(
    "args",
    [
        ((), "text", "confidence", None, UNSET, None),  # not a list
        ([], ["a"], "confidence", None, UNSET, None),  # texts not as long as the words
        ([], "text", 3, None, UNSET, None),
        ([], "text", "confidence", None, UNSET, ("start", "end", 1000, False)),
        ([], "text", "confidence", None, UNSET, ("start", "end", 1000, False, 2**53)),
        ([], "text", "confidence", None, UNSET, ("start", "end", -1, False, 10)),
    ],
)
def test_arguments_off_its_shape_give_none(args: tuple[Any, ...]) -> None:
    made = decode._struct_columns
    assert made is not None
    assert made(*args) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(), st.integers(-5, 5), st.none()),
            st.one_of(st.floats(), st.integers(-5, 5)),
        ),
        max_size=8,
    )
)
def test_sound_is_the_pythons(pairs: list[tuple[Any, Any]]) -> None:
    starts = [a for a, _ in pairs]
    ends = [b for _, b in pairs]
    compiled = repair.sound(starts, ends)
    with python_only():
        assert repair.sound(starts, ends) is compiled
    floats = [float(a) if a is not None else 0.0 for a in starts]
    compiled = repair.sound(floats, [float(b) for b in ends])
    with python_only():
        assert repair.sound(floats, [float(b) for b in ends]) is compiled


def test_sound_answers_for_lists_of_floats_only() -> None:
    sound_times = repair._sound_times
    assert sound_times is not None
    assert sound_times([0.0, 1.0], [0.5, 2.0]) is True
    assert sound_times([1.0, 0.0], [1.5, 2.0]) is False  # out of order
    assert sound_times([0.0], [math.nan]) is False
    assert sound_times([], []) is True
    for starts, ends in (([0.0], []), ([0], [1.0]), ((0.0,), (1.0,)), ([0.0], [None])):
        assert sound_times(starts, ends) is None  # the Python original decides


def test_whisperx_flat_copy_is_read_only_without_segments() -> None:
    words = [{"word": "a", "start": 0.0, "end": 0.5, "score": 0.5, "speaker": "S"}]
    segments = [{"start": 0.0, "end": 0.5, "text": "a", "words": words}]
    # A malformed copy beside the segments: the adapter reads the segments and so does this.
    for copy in (5, [{"word": "a", "start": "x"}], None):
        data = orjson.dumps({"segments": segments, "word_segments": copy})
        found = both_ways(data, "whisperx")
        assert found is not None and found[1][0] == ["a"]
        assert both_ways(data, "auto") == found
    flat = both_ways(orjson.dumps({"word_segments": words}), "whisperx")
    assert flat is not None and flat[1][4] == ["S"]
    assert both_ways(orjson.dumps({"segments": None, "word_segments": None}), "whisperx") is None
    assert both_ways(orjson.dumps({"word_segments": [{"word": 3}]}), "whisperx") is None
