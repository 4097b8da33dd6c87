"""The typed decoders (media_store/asr/decode.py) against the general path: for every file
they read, the same engine and the same words, bit for bit, as ``detect`` and the adapter
give from ``orjson.loads``; for every file they do not read in full, None (never another
answer, never an exception)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_store.asr import detect, words_from
from media_store.asr.decode import DECODERS, columns
from tests.support.asr import FIXTURES, Row, bits, rows


def general(data: bytes, engine: str = "auto") -> tuple[str, list[Row]]:
    payload = orjson.loads(data)
    name = detect(payload) if engine == "auto" else engine
    return name, rows(words_from(name, payload))


def fast(data: bytes, engine: str = "auto") -> tuple[str, list[Row]] | None:
    found = columns(data, engine)
    if found is None:
        return None
    name, (words, starts, ends, confidences, speakers) = found
    labels = speakers if speakers is not None else [None] * len(words)
    return name, list(zip(words, starts, ends, confidences, labels, strict=True))


def same_as_general(data: bytes, engine: str = "auto") -> bool:
    """True when the fast path read ``data``; then its answer is the general path's."""
    got = fast(data, engine)
    if got is None:
        return False
    name, words = general(data, engine)
    assert got[0] == name
    assert bits(got[1]) == bits(words)
    return True


# The engines' usual files, read by the fast path (the others are left to the general path).
READ = [
    "assemblyai.json",
    "aws-transcribe.json",
    "azure-speech.json",
    "deepgram.json",
    "google-stt.json",
    "ibm-watson.json",
    "openai-whisper.json",
    "openai-whisper-backwards.json",  # read: the importer then sends it to the repairs
    "vosk.json",
    "whisper-cpp.json",
    "whisper-cpp-garbled.json",
    "whisper-cpp-oj.json",
    "whisper-timestamped.json",
    "whisper-timestamped-ar.json",
    "whisperx.json",
]
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir())


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_fixture_read_gives_the_general_paths_words(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    assert same_as_general(data) == (name in READ)


@pytest.mark.parametrize("name", READ)
def test_a_named_engine_reads_the_same(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    assert same_as_general(data, detect(orjson.loads(data)))


@pytest.mark.parametrize(
    "data",
    [b"", b"[", b"null", b"[1, 2]", b'{"transcription": 5}', b'{"results": {"items": 7}}'],
)
def test_a_file_it_cannot_read_is_none_not_an_error(data: bytes) -> None:
    assert columns(data) is None
    for engine in DECODERS:
        assert columns(data, engine) is None


def _cpp(entries: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"systeminfo": "x", "transcription": entries})


def _cpp_entry(text: str, start: int, end: int, tokens: list[Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"text": text, "offsets": {"from": start, "to": end}}
    if tokens is not None:
        entry["tokens"] = tokens
    return entry


def test_whisper_cpp_token_means_follow_the_adapter() -> None:
    entries = [
        _cpp_entry(" a", 0, 100, [{"text": " a", "p": -0.0}]),  # -0.0 becomes 0.0, as 0.0 + p
        _cpp_entry(" b", 100, 200, [{"text": "[_BEG_]", "p": 0.1}, {"text": " b", "p": 0.5}]),
        _cpp_entry(" c", 200, 300, [{"text": " c", "p": 0.3}, {"text": "d", "p": 0.6}]),
        _cpp_entry(" e", 300, 400, None),
        _cpp_entry(" f", 400, 500, []),
        _cpp_entry(" g", 500, 600, [{"text": " g", "p": None}, {"text": "[_TT_1]"}]),
        _cpp_entry(" h", 600, 700, [{"text": " h", "p": 1}]),
    ]
    assert same_as_general(_cpp(entries))


@pytest.mark.parametrize(
    "entry",
    [
        _cpp_entry(" two words", 0, 100, None),  # segment-level output
        _cpp_entry(" a", 0, 100, [{"text": " a", "p": 1.5}]),  # out of range
        {"text": " a", "timestamps": {"from": "00:00:00,000", "to": "00:00:00,100"}},
        _cpp_entry(" a", 0, 2**60, None),
        {"text": 5, "offsets": {"from": 0, "to": 1}},
        {"text": " a", "offsets": {"from": True, "to": 1}},
    ],
)
def test_whisper_cpp_entries_it_does_not_read_go_to_the_general_path(
    entry: dict[str, Any],
) -> None:
    assert columns(_cpp([_cpp_entry(" x", 0, 10, None), entry])) is None


def _aws(item_list: list[dict[str, Any]], **results: Any) -> bytes:
    return orjson.dumps({"jobName": "j", "results": {"items": item_list, **results}})


def _word(content: str, start: str, end: str, confidence: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "pronunciation",
        "alternatives": [{"confidence": confidence, "content": content}],
        "start_time": start,
        "end_time": end,
        **extra,
    }


def _mark(content: str) -> dict[str, Any]:
    return {"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": content}]}


def test_aws_punctuation_and_speakers_follow_the_adapter() -> None:
    item_list = [
        _word("Hello", "0.0", "0.41", "0.998", speaker_label="spk_0"),
        _mark(","),
        _mark("!"),
        _word("there", "0.5", "0.9", "1.0", speaker_label="spk_1"),
        _word("-zero", "1", "1.2", "-0.0", speaker_label="spk_1"),
        _mark("."),
    ]
    assert same_as_general(_aws(item_list))
    unlabelled = [{k: v for k, v in item.items() if k != "speaker_label"} for item in item_list]
    assert same_as_general(_aws(unlabelled))


@pytest.mark.parametrize(
    "item_list",
    [
        [_mark("¿"), _word("Hola", "0.1", "0.2", "0.9")],  # punctuation before any word
        [_word("a", "0.1", "0.2", "null")],
        [_word("a", "0.1", "0.2", "1.5")],
        [_word("a", "1_0", "20", "0.5")],
        [_word("a", "nan", "0.2", "0.5")],
        [{**_word("a", "0.1", "0.2", "0.5"), "type": "other"}],
        [{**_word("a", "0.1", "0.2", "0.5"), "alternatives": []}],
    ],
)
def test_aws_items_it_does_not_read_go_to_the_general_path(item_list: list[Any]) -> None:
    assert columns(_aws(item_list)) is None


def _watson(stamps: list[Any], confidences: list[Any] | None, labels: list[Any]) -> bytes:
    alternative: dict[str, Any] = {"transcript": "t", "timestamps": stamps}
    if confidences is not None:
        alternative["word_confidence"] = confidences
    return orjson.dumps(
        {
            "result_index": 0,
            "results": [{"final": True, "alternatives": [alternative]}, {"alternatives": []}],
            "speaker_labels": labels,
        }
    )


def test_watson_speakers_by_start_follow_the_adapter() -> None:
    stamps = [["Chapter ", 0, 0.5], ["one", 0.5, 1.0], ["two", 1.25, 2]]
    confidences = [["Chapter ", 0.9], ["one", 1], ["two", 0.5]]
    labels = [
        {"from": 0, "to": 0.5, "speaker": 2, "confidence": 0.5, "final": False},
        {"from": 0.5, "to": 1.0, "speaker": "S", "confidence": 0.5, "final": False},
        {"from": 0.0, "to": 0.5, "speaker": 3, "confidence": 0.5, "final": True},  # revises
    ]
    assert same_as_general(_watson(stamps, confidences, labels))
    assert same_as_general(_watson(stamps, confidences, []))


@pytest.mark.parametrize(
    ("stamps", "confidences"),
    [
        ([["a", 0.0, 1.0]], None),  # no word confidence
        ([["a", 0.0, 1.0]], [["b", 0.5]]),  # not parallel
        ([["a", 0.0, 1.0]], [["a", 1.5]]),
        ([["a", 0.0, 1.0, 3]], [["a", 0.5]]),
    ],
)
def test_watson_results_it_does_not_read_go_to_the_general_path(
    stamps: list[Any], confidences: list[Any] | None
) -> None:
    assert columns(_watson(stamps, confidences, [])) is None


_TIMES = st.integers(min_value=0, max_value=10**7)
_WORDS = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6)
_PROBABILITY = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(_WORDS, _TIMES, _TIMES, _PROBABILITY, st.sampled_from(["A", "B"]))),
)
def test_any_file_it_reads_agrees_with_the_general_path(
    words: list[tuple[str, int, int, float | None, str]],
) -> None:
    entries = [
        _cpp_entry(w, a, b, None if p is None else [{"text": w, "p": p}]) for w, a, b, p, _ in words
    ]
    item_list = [
        _word(
            w or "x", repr(a / 100), repr(b / 100), repr(0.5 if p is None else p), speaker_label=s
        )
        for w, a, b, p, s in words
    ]
    stamps = [[w, a / 1000, b / 1000] for w, a, b, _, _ in words]
    pairs = [[w, 0.25 if p is None else p] for w, _, _, p, _ in words]
    for data in (_cpp(entries), _aws(item_list), _watson(stamps, pairs, [])):
        if fast(data) is not None:
            assert same_as_general(data)


def _seg(words: list[dict[str, Any]], **keys: Any) -> dict[str, Any]:
    return {
        "id": 0,
        "start": 0.0,
        "end": 9.0,
        "text": "t",
        "tokens": [1, 2],
        **keys,
        "words": words,
    }


SMALL = {
    "openai-whisper": {
        "segments": [_seg([{"word": " Hi", "start": 0, "end": 0.5, "probability": 1}])],
        "language": "en",
    },
    "whisper-timestamped": {
        "segments": [_seg([{"text": "Hi", "start": 0.0, "end": 0.5, "confidence": 0.25}])]
    },
    "whisperx": {
        "segments": [
            _seg(
                [
                    {"word": "Hi", "start": 0.0, "end": 0.5, "score": 0.5, "speaker": 3},
                    {"word": "yo", "start": 0.5, "end": 0.7, "score": 0.5},
                    {"word": "ok", "start": 0.7, "end": 0.9, "speaker": "SPEAKER_01"},
                ],
                speaker="SPEAKER_00",
            )
        ],
        "word_segments": [],
    },
    "vosk": {"result": [{"word": "hi", "start": 0, "end": 1, "conf": 1.0}], "text": "hi"},
    "deepgram": {
        "metadata": {"channels": 1},
        "results": {
            "channels": [
                {
                    "alternatives": [
                        {
                            "words": [
                                {"word": "hi", "punctuated_word": "Hi,", "start": 0, "end": 1},
                                {"word": "yo", "start": 1.5, "end": 2, "speaker": 0},
                            ]
                        }
                    ]
                }
            ]
        },
    },
    "assemblyai": {
        "words": [
            {"text": "Hi", "start": 0, "end": 500, "confidence": 0.5, "speaker": "A"},
            {"text": "yo", "start": 500, "end": 900, "confidence": 1, "speaker": None},
        ],
        "utterances": [],
    },
    "google-stt": {
        "results": [
            {
                "alternatives": [{"words": [{"word": "a", "startTime": "0s", "endTime": "1.5s"}]}],
                "languageCode": "en-us",
            },
            {"alternatives": []},
            {
                "alternatives": [
                    {
                        "words": [
                            {"word": "a", "startTime": "0s", "endTime": "1.5s", "speakerTag": 0},
                            {
                                "word": "b",
                                "startTime": "1.500s",
                                "endTime": "2.123456789s",
                                "confidence": 0.5,
                                "speakerLabel": "",
                                "speakerTag": 2,
                            },
                        ]
                    }
                ]
            },
        ]
    },
    "azure-speech": [
        {"RecognitionStatus": "InitialSilenceTimeout"},
        {
            "RecognitionStatus": "Success",
            "NBest": [{"Words": [{"Word": "hi", "Offset": 100, "Duration": 5_000_000}]}],
        },
    ],
}


@pytest.mark.parametrize("engine", sorted(SMALL))
def test_each_engines_small_file_gives_the_general_paths_words(engine: str) -> None:
    data = orjson.dumps(SMALL[engine])
    assert same_as_general(data, engine)
    assert fast(data) is None or same_as_general(data)  # detected as the general path does


UNREAD = {
    "openai-whisper": {"segments": [_seg([{"word": " Hi", "start": None, "end": 0.5}])]},
    "whisperx": {"segments": [_seg([{"word": "12", "speaker": "S"}])]},  # untimed numeral
    "vosk": {"result": [{"word": "hi", "start": 0, "end": True}]},
    "deepgram": {"results": {"channels": [{"alternatives": []}, {"alternatives": []}]}},
    "assemblyai": {"words": [{"text": "a", "start": 0.5, "end": 1, "channel": "1"}]},
    "azure-speech": {"recognizedPhrases": [], "NBest": []},
    "google-stt": {
        "results": [
            {"alternatives": [{"words": [{"word": "a", "startTime": ".5s", "endTime": "1s"}]}]}
        ]
    },
}


@pytest.mark.parametrize("engine", sorted(UNREAD))
def test_shapes_the_adapters_check_one_by_one_are_left_to_them(engine: str) -> None:
    assert columns(orjson.dumps(UNREAD[engine]), engine) is None
