"""ASR adapters: each engine's output, as emitted, becomes exactly the words it held, and
those words come back from a real Store bit for bit; detect(); unit conversions; refusals
that name where and what to change."""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_store import Store, ValidationError
from media_store.asr import (
    ENGINES,
    AmbiguousEngine,
    UnknownEngine,
    assemblyai,
    deepgram,
    detect,
    faster_whisper,
    openai_whisper,
    repair,
    units,
    words_from,
)
from tests.support.asr import FIXTURES, Row, bits, load, new_job, rows, store_and_read

# What each fixture holds, written out by hand from the file: (word, start s, end s,
# confidence, speaker). The adapters must produce exactly these floats.
EXPECTED: dict[str, list[Row]] = {
    "openai-whisper.json": [
        (" Jane?", 0.0, 0.42, 0.8512247204780579, None),
        (" Are", 0.66, 0.66, 0.3377249836921692, None),  # zero-length, as whisper emits
        (" you", 0.66, 0.86, 0.9971168041229248, None),
        (" there?", 0.86, 1.6, 0.9938371181488037, None),
        (" Yes.", 2.1, 2.48, 0.9, None),
    ],
    "whisper-timestamped.json": [
        ("こんにちは", 0.5, 1.2, 0.912, None),
        (" ", 1.2, 1.24, 0.118, None),  # whitespace-only word, kept
        ("世界", 1.24, 2.0, 0.876, None),
    ],
    "whisperx.json": [
        ("Hello", 0.031, 0.412, 0.912, "SPEAKER_00"),
        ("there,", 0.452, 0.793, 0.874, "SPEAKER_00"),
        ("how", 0.773, 0.934, 0.701, "SPEAKER_01"),  # starts 20 ms before the previous end
        ("are", 0.954, 1.055, 0.999, None),  # no speaker on this word
        ("you?", 1.075, 1.595, 0.843, "SPEAKER_01"),
    ],
    "whisper-cpp.json": [
        (" And", 0.0, 0.32, 0.607483, None),  # [_BEG_] left out of the mean
        (" so", 0.32, 0.65, 0.934071, None),
        (" my", 0.65, 8.11, 0.999168, None),
        (" fellow", 8.11, 8.44, (0.5 + 0.9) / 2, None),  # mean p of " fel", "low"
    ],
    "whisper-cpp-oj.json": [
        (" ask", 10.0, 10.27, None, None),
        (" not", 10.27, 10.5, None, None),
        (" what", 10.5, 10.73, None, None),
        (" your", 3610.73, 3611.015, None, None),
    ],
    "vosk.json": [
        ("one", 0.63, 1.02, 1.0, None),
        ("zero", 1.02, 1.5, 0.934312, None),
        ("zero", 1.5, 1.89, 0.891845, None),
        ("zero", 1.89, 2.28, 1.0, None),
        ("one", 2.31, 2.67, 0.577719, None),
    ],
    "deepgram.json": [
        ("Hello,", 0.08, 0.48, 0.9921875, "0"),
        ("this", 0.48, 0.64, 0.9980469, "0"),
        ("is", 0.64, 0.8, 0.99902344, "0"),
        ("Anna.", 0.8, 1.3, 0.96875, "0"),
        ("Hi", 1.9, 2.14, 0.98828125, "1"),
        ("Anna.", 2.14, 2.62, 0.9589844, "1"),
    ],
    "deepgram-multichannel.json": [
        ("Thanks", 0.0, 0.4, 0.99, "ch0"),
        ("for", 0.4, 0.56, 0.98, "ch0"),
        ("calling.", 0.56, 1.0, 0.97, "ch0"),
        ("Hi,", 1.2, 1.4, 0.95, "ch1"),
        ("I", 1.4, 1.5, 0.99, "ch1"),
        ("need", 1.5, 1.8, 0.97, "ch1"),
        ("Okay.", 2.1, 2.5, 0.91, "ch0"),  # same start as "help.": the lower channel first
        ("help.", 2.1, 2.6, 0.96, "ch1"),
    ],
    "assemblyai.json": [
        ("Smoke", 0.25, 0.65, 0.97465, "A"),
        ("from", 0.73, 1.022, 0.99999, "A"),
        ("hundreds", 1.076, 1.466, 0.99844, "A"),
        ("of", 1.498, 1.646, 1.0, "A"),
        ("wildfires.", 1.678, 2.318, 0.89582, "A"),
        ("Yes.", 1743.21, 1743.56, 0.6, "B"),
    ],
    "assemblyai-multichannel.json": [
        ("Hello?", 0.12, 0.54, 0.98, "ch1"),
        ("Hi,", 0.9, 1.1, 0.95, "ch2"),
        ("it's", 1.1, 1.3, 0.93, "ch2"),
        ("Sam.", 1.3, 1.7, 0.99, "ch2"),
        ("Hey", 1.7, 1.9, 0.9, "ch1"),
        ("Sam.", 1.9, 2.3, 0.97, "ch1"),
    ],
    "aws-transcribe.json": [
        ("Hello,", 0.04, 0.47, 0.998, "spk_0"),  # the "," item attached
        ("this", 0.5, 0.71, 0.999, "spk_0"),
        ("is", 0.71, 0.83, 1.0, "spk_0"),
        ("Anna.", 0.83, 1.59, 0.875, "spk_0"),
        ("How", 2.1, 2.35, 0.99, "spk_1"),
        ("can", 2.35, 2.52, 0.97, "spk_1"),
        ("I", 2.52, 2.6, 0.99, "spk_1"),
        ("help?", 2.6, 3.3, 0.9, "spk_1"),
    ],
    "aws-transcribe-legacy.json": [
        ("Well,", 0.44, 0.71, 0.9474, "spk_0"),  # speakers from speaker_labels.segments
        ("yes.", 0.71, 1.09, 1.0, "spk_0"),
        ("No.", 1.5, 1.8, 0.8021, "spk_1"),
    ],
    "aws-transcribe-channels.json": [
        ("Support,", 0.1, 0.6, 0.99, "ch0"),
        ("hi.", 0.6, 0.8, 0.97, "ch0"),
        ("Hello.", 0.6, 1.1, 0.93, "ch1"),
    ],
    "google-stt.json": [
        ("how", 0.0, 0.3, None, None),
        ("old", 0.3, 0.6, None, None),
        ("is", 0.6, 0.8, None, None),
        ("the", 0.8, 0.9, None, None),
        ("Brooklyn", 0.9, 1.1, None, None),
        ("Bridge", 1.1, 1.5, None, None),
        ("it", 12.3, 12.5, None, None),
        ("opened", 12.5, 12.9, None, None),
        ("in", 12.9, 13.0, None, None),
        ("1883", 13.0, 14.000000001, None, None),
    ],
    "google-stt-diarized.json": [  # only the last result, which repeats every word
        ("hi", 0.1, 0.5, 0.9, "1"),
        ("I'd", 0.5, 1.0, 0.94, "1"),
        ("certainly", 2.0, 2.7, 0.97, "2"),
    ],
    "azure-speech.json": [
        ("what's", 0.04, 0.35, 0.9812, None),
        ("the", 0.36, 0.47, 0.9934, None),
        ("weather", 0.48, 0.91, 0.9701, None),
        ("like", 0.92, 2.37, 0.9588, None),
    ],
    "azure-speech-batch.json": [
        ("hello", 0.07, 0.47, 0.91, "ch0:1"),
        ("everyone", 0.5, 1.66, 0.87, "ch0:1"),
        ("hi", 0.5, 0.8, 0.93, "ch1:2"),
    ],
    "deepgram-live.json": [  # the final results only, in order; the interim one is not kept
        ("Hello,", 0.08, 0.48, 0.9921875, "0"),
        ("this", 0.48, 0.64, 0.9980469, "0"),
        ("is", 0.64, 0.8, 0.99902344, "0"),
        ("Anna.", 0.8, 1.3, 0.96875, "0"),
        ("Hi", 1.9, 2.14, 0.98828125, "1"),
        ("Anna.", 2.14, 2.62, 0.9589844, "1"),
    ],
    "deepgram-live-message.json": [
        ("hi", 1.9, 2.14, 0.98828125, None),
        ("anna", 2.14, 2.62, 0.9589844, None),
    ],
    "ibm-watson-websocket.json": [  # final results; the later speaker_labels message wins
        ("Chapter ", 0.0, 0.51, 0.93, "0"),
        ("one", 0.51, 0.86, 0.99, "0"),
        ("it", 1.2, 1.31, 0.95, "1"),
        ("was", 1.31, 1.5, 1.0, "1"),
        ("a", 1.5, 1.56, 0.87, "1"),
        ("bright", 1.56, 1.9, 0.79, "1"),
        ("cold", 1.9, 2.25, 0.91, "1"),
        ("day", 2.25, 2.71, 0.99, "1"),
    ],
    "ibm-watson.json": [
        ("Chapter ", 0.0, 0.51, 0.93, "0"),  # the trailing space is the engine's
        ("one", 0.51, 0.86, 0.99, "0"),
        ("it", 1.2, 1.31, 0.95, "1"),
        ("was", 1.31, 1.5, 1.0, "1"),
        ("a", 1.5, 1.56, 0.87, "1"),
        ("bright", 1.56, 1.9, 0.79, "1"),
        ("cold", 1.9, 2.25, 0.91, "1"),
        ("day", 2.25, 2.71, 0.99, "1"),
    ],
}

ENGINE_OF = {
    "openai-whisper.json": "openai-whisper",
    "openai-whisper-backwards.json": "openai-whisper",
    "whisper-timestamped.json": "whisper-timestamped",
    "whisper-timestamped-ar.json": "whisper-timestamped",
    "whisperx.json": "whisperx",
    "whisperx-untimed.json": "whisperx",
    "whisper-cpp.json": "whisper.cpp",
    "whisper-cpp-oj.json": "whisper.cpp",
    "whisper-cpp-garbled.json": "whisper.cpp",
    "vosk.json": "vosk",
    "deepgram.json": "deepgram",
    "deepgram-multichannel.json": "deepgram",
    "deepgram-live.json": "deepgram",
    "deepgram-live-message.json": "deepgram",
    "assemblyai.json": "assemblyai",
    "assemblyai-multichannel.json": "assemblyai",
    "aws-transcribe.json": "aws-transcribe",
    "aws-transcribe-legacy.json": "aws-transcribe",
    "aws-transcribe-channels.json": "aws-transcribe",
    "google-stt.json": "google-stt",
    "google-stt-diarized.json": "google-stt",
    "azure-speech.json": "azure-speech",
    "azure-speech-batch.json": "azure-speech",
    "ibm-watson.json": "ibm-watson",
    "ibm-watson-websocket.json": "ibm-watson",
}

# The fixtures with the quirks that need a policy before the store takes them.
QUIRKS: dict[str, dict[str, Any]] = {
    "openai-whisper-backwards.json": {"order": "sort"},
    "whisperx-untimed.json": {"untimed": "interpolate"},
    "whisper-cpp-garbled.json": {"inverted": "drop"},
}


def test_every_fixture_is_known_and_every_engine_has_one() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.json")}
    assert on_disk == set(ENGINE_OF)
    assert set(ENGINE_OF.values()) | {"faster-whisper"} == set(ENGINES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adapter_yields_exactly_the_engines_words(name: str) -> None:
    words = list(words_from(ENGINE_OF[name], load(name)))
    assert bits(rows(words)) == bits(EXPECTED[name])
    assert all(set(w) == {"word", "start", "end", "confidence", "speaker"} for w in words)


@pytest.mark.parametrize("name", sorted(ENGINE_OF))
def test_detect_names_the_engine_of_each_fixture(name: str) -> None:
    assert detect(load(name)) == ENGINE_OF[name]


@pytest.mark.parametrize(
    "payload",
    [{"foo": 1}, {"results": {"other": []}}, [], 42, "text", {"results": [{"x": 1}]}],
    ids=["unknown keys", "results object", "empty list", "number", "string", "results list"],
)
def test_detect_refuses_what_no_engine_writes(payload: Any) -> None:
    with pytest.raises(UnknownEngine, match="name the engine"):
        detect(payload)
    with pytest.raises(ValidationError):  # UnknownEngine is a ValidationError
        words_from("auto", payload)


def test_an_unknown_engine_name_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownEngine, match="deepgram") as info:
        words_from("sphinx", {})
    assert "unknown engine 'sphinx'" in str(info.value)


# --- round trips through a real Store ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENGINE_OF))
async def test_stored_words_come_back_bit_exact(store: Store, name: str) -> None:
    payload = load(name)
    words, _ = repair(list(words_from(ENGINE_OF[name], payload)), **QUIRKS.get(name, {}))
    job = await new_job(store)
    stored = await store_and_read(store, job, iter(words))
    assert bits(stored) == bits(rows(words))
    if name in EXPECTED:
        assert bits(stored) == bits(EXPECTED[name])


async def test_arabic_with_combining_marks_round_trips_code_point_for_code_point(
    store: Store,
) -> None:
    payload = load("whisper-timestamped-ar.json")
    given_text = [w["text"] for w in payload["segments"][0]["words"]]
    assert any(unicodedata.combining(c) for c in "".join(given_text))
    stored = await store_and_read(store, await new_job(store), words_from("auto", payload))
    assert [r[0] for r in stored] == given_text


# --- the Python engines' in-memory objects -------------------------------------------------------


def test_openai_whisper_numpy_floats_become_plain_floats() -> None:
    np = pytest.importorskip("numpy")
    payload = load("openai-whisper.json")
    for segment in payload["segments"]:
        for word in segment["words"]:
            # As whisper computes them: round(float + np.float64, 2) is an np.float64.
            word["start"] = round(word["start"] + np.float64(0.0), 2)
            word["end"] = round(word["end"] + np.float64(0.0), 2)
            word["probability"] = np.float64(word["probability"])
    assert type(payload["segments"][0]["words"][0]["start"]) is np.float64
    words = list(openai_whisper(payload))
    assert bits(rows(words)) == bits(EXPECTED["openai-whisper.json"])


async def test_openai_whisper_numpy_result_is_stored_as_emitted(store: Store) -> None:
    np = pytest.importorskip("numpy")
    payload = load("openai-whisper.json")
    for segment in payload["segments"]:
        for word in segment["words"]:
            word["start"] = round(word["start"] + np.float64(0.0), 2)
            word["end"] = round(word["end"] + np.float64(0.0), 2)
            word["probability"] = np.float32(word["probability"])  # float32 is no float
    stored = await store_and_read(store, await new_job(store), openai_whisper(payload))
    expected = [
        (w, s, e, float(np.float32(c)), sp) for w, s, e, c, sp in EXPECTED["openai-whisper.json"]
    ]
    assert bits(stored) == bits(expected)


@dataclasses.dataclass
class Word:
    """faster-whisper's Word, field for field."""

    start: float
    end: float
    word: str
    probability: float


@dataclasses.dataclass
class Segment:
    """The part of faster-whisper's Segment the adapter reads (plus a few others)."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    words: list[Word] | None


def faster_segments(count: int, produced: list[int]) -> Iterator[Segment]:
    """A generator like WhisperModel.transcribe's; ``produced`` records each segment made."""
    for i in range(count):
        produced.append(i)
        base = i * 2.0
        yield Segment(
            i,
            0,
            base,
            base + 1.0,
            " one two",
            [Word(base, base + 0.4, " one", 0.91), Word(base + 0.5, base + 1.0, " two", 0.87)],
        )


def test_faster_whisper_reads_the_generator_lazily() -> None:
    produced: list[int] = []
    words = faster_whisper(faster_segments(1000, produced))
    assert produced == []  # nothing read before the first word is asked for
    first = next(words)
    assert produced == [0]
    assert rows([first]) == [(" one", 0.0, 0.4, 0.91, None)]
    assert detect(faster_segments(1, [])) == "faster-whisper"


async def test_faster_whisper_segments_stream_into_the_store(store: Store) -> None:
    produced: list[int] = []
    stored = await store_and_read(
        store, await new_job(store), words_from("faster-whisper", faster_segments(50, produced))
    )
    assert len(stored) == 100 and len(produced) == 50
    assert stored[2:4] == [(" one", 2.0, 2.4, 0.91, None), (" two", 2.5, 3.0, 0.87, None)]


def test_faster_whisper_without_word_timestamps_says_how_to_get_them() -> None:
    segments = iter([Segment(0, 0, 0.0, 1.0, " hi", None)])
    with pytest.raises(ValidationError, match=r"segments\[0\]\.words.*word_timestamps=True"):
        list(faster_whisper(segments))


# --- multichannel -------------------------------------------------------------------------------


def test_one_channel_can_be_chosen_and_keeps_its_own_speakers() -> None:
    payload = load("deepgram-multichannel.json")
    only = list(deepgram(payload, channel=1))
    assert [w["word"] for w in only] == ["Hi,", "I", "need", "help."]
    assert {w["speaker"] for w in only} == {None}
    second = list(assemblyai(load("assemblyai-multichannel.json"), channel="2"))
    assert [(w["word"], w["speaker"]) for w in second] == [
        ("Hi,", "2"),
        ("it's", "2"),
        ("Sam.", "2"),
    ]
    with pytest.raises(ValidationError, match="no channel 5"):
        deepgram(payload, channel=5)
    with pytest.raises(ValidationError, match="has no channels"):
        words_from("vosk", load("vosk.json"), channel=0)


def test_diarized_multichannel_speakers_carry_channel_and_speaker() -> None:
    payload = load("deepgram-multichannel.json")
    for c, channel in enumerate(payload["results"]["channels"]):
        for word in channel["alternatives"][0]["words"]:
            word["speaker"] = 1 - c
    speakers = [w["speaker"] for w in deepgram(payload)]
    assert speakers[:4] == ["ch0:1", "ch0:1", "ch0:1", "ch1:0"]


def test_deepgram_diarized_multichannel_keeps_a_speaker_equal_to_its_channel() -> None:
    # Deepgram's speaker numbers are independent of the channel: speaker 0 on channel 0 is
    # still speaker 0, and must not collapse into the bare channel label.
    payload = load("deepgram-multichannel.json")
    for channel in payload["results"]["channels"]:
        for i, word in enumerate(channel["alternatives"][0]["words"]):
            word["speaker"] = i % 2
    merged = [(w["word"], w["speaker"]) for w in deepgram(payload)]
    assert merged == [
        ("Thanks", "ch0:0"),
        ("for", "ch0:1"),
        ("calling.", "ch0:0"),
        ("Hi,", "ch1:0"),
        ("I", "ch1:1"),
        ("need", "ch1:0"),
        ("Okay.", "ch0:1"),
        ("help.", "ch1:1"),
    ]
    # channel= gives the same speakers, unprefixed.
    assert [w["speaker"] for w in deepgram(payload, channel=0)] == ["0", "1", "0", "1"]


def test_assemblyai_multichannel_drops_a_speaker_that_only_repeats_its_channel() -> None:
    words = list(assemblyai(load("assemblyai-multichannel.json")))
    assert [w["speaker"] for w in words] == ["ch1", "ch2", "ch2", "ch2", "ch1", "ch1"]
    payload = load("assemblyai-multichannel.json")
    payload["words"][0]["speaker"] = "B"
    assert next(assemblyai(payload))["speaker"] == "ch1:B"


# --- live (websocket) sessions --------------------------------------------------------------------


def live_message(channel: int, words: list[tuple[str, float, int]], final: bool = True) -> Any:
    return {
        "type": "Results",
        "channel_index": [channel, 2],
        "start": words[0][1],
        "duration": 1.0,
        "is_final": final,
        "channel": {
            "alternatives": [
                {
                    "words": [
                        {"word": t, "start": s, "end": s + 0.2, "confidence": 0.9, "speaker": k}
                        for t, s, k in words
                    ]
                }
            ]
        },
    }


def test_deepgram_live_multichannel_session_merges_its_channels() -> None:
    session = [
        live_message(0, [("hello", 0.1, 0)]),
        live_message(1, [("hi", 0.2, 0)], final=False),
        live_message(1, [("hi", 0.3, 0)]),
        live_message(0, [("there", 0.5, 1)]),
    ]
    assert detect(session) == "deepgram"
    assert [(w["word"], w["start"], w["speaker"]) for w in deepgram(session)] == [
        ("hello", 0.1, "ch0:0"),
        ("hi", 0.3, "ch1:0"),
        ("there", 0.5, "ch0:1"),
    ]
    assert [w["word"] for w in deepgram(session, channel=1)] == ["hi"]
    with pytest.raises(ValidationError, match="no channel 2"):
        list(deepgram(session, channel=2))


def test_an_interim_deepgram_message_alone_is_refused() -> None:
    message = load("deepgram-live-message.json")
    message["is_final"] = False
    with pytest.raises(ValidationError, match=r"deepgram: is_final: an interim result"):
        list(deepgram(message))
    session = load("deepgram-live.json")[:1]  # interim only
    with pytest.raises(ValidationError, match=r"no final result"):
        list(deepgram(session))


def test_a_live_message_of_an_unknown_type_is_refused() -> None:
    session = load("deepgram-live.json")
    session[2]["type"] = "Transcript"
    with pytest.raises(ValidationError, match=r"deepgram: \[2\]\.type: unknown message type"):
        list(deepgram(session))


def test_a_bad_word_in_a_session_is_refused_naming_the_message() -> None:
    session = load("deepgram-live.json")
    session[4]["channel"]["alternatives"][0]["words"][1]["end"] = "2.62"
    with pytest.raises(
        ValidationError, match=r"deepgram: \[4\]\.channel\.alternatives\[0\]\.words\[1\]\.end"
    ):
        list(deepgram(session))
    watson = load("ibm-watson-websocket.json")
    watson[4]["results"][0]["alternatives"][0]["timestamps"][2][1] = None
    watson[4]["results"][0]["alternatives"][0]["timestamps"][2][2] = "x"
    with pytest.raises(
        ValidationError,
        match=r"ibm-watson: \[4\]\.results\[0\]\.alternatives\[0\]\.timestamps\[2\]\[2\]",
    ):
        list(words_from("ibm-watson", watson))


def test_a_watson_session_error_message_is_refused_with_its_text() -> None:
    watson = load("ibm-watson-websocket.json")
    watson.insert(3, {"error": "Session timed out."})
    with pytest.raises(ValidationError, match=r"ibm-watson: \[3\]\.error: .*Session timed out"):
        list(words_from("ibm-watson", watson))


@pytest.mark.parametrize(
    ("engine", "name", "message"),
    [
        ("deepgram", "deepgram.json", r"deepgram: \$: expected one object, got a list of 1"),
        ("openai-whisper", "openai-whisper.json", r"got a list of 1 .*payload\[0\]"),
        ("assemblyai", "assemblyai.json", r"got a list of 1 .*payload\[0\]"),
    ],
)
def test_a_payload_wrapped_in_a_list_is_named_as_wrapped(
    engine: str, name: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        list(words_from(engine, [load(name)]))
    with pytest.raises(UnknownEngine, match=rf"wrapped.*{engine}"):
        detect([load(name)])


def test_a_payload_wrapped_in_an_object_is_named_as_wrapped() -> None:
    with pytest.raises(ValidationError, match=r"results: missing.*found under 'response'"):
        list(words_from("deepgram", {"response": load("deepgram.json")}))


# --- ambiguous payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "candidates"),
    [
        ({"text": "", "segments": [], "language": "en"}, ("openai-whisper", "whisper-timestamped")),
        (
            {"text": "", "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.0, "words": []}]},
            ("openai-whisper", "whisper-timestamped"),
        ),
        ({"results": []}, ("google-stt", "ibm-watson")),
    ],
    ids=["empty whisper", "whisper without words", "empty results"],
)
def test_detect_says_when_the_keys_cannot_tell_the_engines_apart(
    payload: Any, candidates: tuple[str, ...]
) -> None:
    with pytest.raises(AmbiguousEngine, match="could be any of") as info:
        detect(payload)
    assert info.value.candidates == candidates
    assert isinstance(info.value, UnknownEngine)


def test_an_empty_whisper_timestamped_result_is_told_by_its_segments() -> None:
    # whisper-timestamped gives each segment a confidence; openai-whisper does not.
    segment = {"id": 0, "start": 0.0, "end": 1.0, "text": "", "confidence": 0.0, "words": []}
    assert detect({"text": "", "segments": [segment]}) == "whisper-timestamped"


# --- AWS punctuation ----------------------------------------------------------------------------


def test_aws_punctuation_before_any_word_goes_onto_the_first_word() -> None:
    payload = {
        "results": {
            "items": [
                {"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": "¿"}]},
                {
                    "type": "pronunciation",
                    "start_time": "0.1",
                    "end_time": "0.4",
                    "alternatives": [{"confidence": "0.9", "content": "Qué"}],
                },
                {"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": "?"}]},
            ]
        }
    }
    assert rows(words_from("auto", payload)) == [("¿Qué?", 0.1, 0.4, 0.9, None)]


# --- refusals name the place and the fix ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "edit", "where"),
    [
        (
            "deepgram.json",
            lambda p: p["results"]["channels"][0]["alternatives"][0]["words"][1].update(
                start="0.48"
            ),
            r"deepgram: results\.channels\[0\]\.alternatives\[0\]\.words\[1\]\.start: "
            r"expected seconds as a number, got '0\.48'",
        ),
        (
            "aws-transcribe.json",
            lambda p: p["results"]["items"][2].update(start_time="half past"),
            r"aws-transcribe: results\.items\[2\]\.start_time: expected seconds",
        ),
        (
            "assemblyai.json",
            lambda p: p["words"][3].update(confidence=97.0),
            r"assemblyai: words\[3\]\.confidence: confidence 97\.0 is outside \[0, 1\]",
        ),
        (
            "ibm-watson.json",
            lambda p: p["results"][1]["alternatives"][0]["word_confidence"].pop(),
            r"ibm-watson: results\[1\]\.alternatives\[0\]\.word_confidence: 5 entries for 6",
        ),
        (
            "google-stt.json",
            lambda p: p["results"][0]["alternatives"][0]["words"][0].update(startTime="1.5 s"),
            r"google-stt: .*words\[0\]\.startTime: expected a duration like '12\.300s'",
        ),
        (
            "azure-speech.json",
            lambda p: p["NBest"][0]["Words"][2].update(Offset=4800000.5),
            r"azure-speech: NBest\[0\]\.Words\[2\]\.Offset: expected 100-ns ticks",
        ),
        (
            "whisperx.json",
            lambda p: p["segments"][0]["words"][2].update(speaker=True),
            r"whisperx: segments\[0\]\.words\[2\]\.speaker: expected a speaker label",
        ),
        (
            "vosk.json",
            lambda p: p["result"][1].update(word=None),
            r"vosk: result\[1\]\.word: expected the word's text as a string",
        ),
    ],
    ids=["deepgram", "aws", "assemblyai", "watson", "google", "azure", "whisperx", "vosk"],
)
def test_a_bad_value_is_refused_naming_its_path(name: str, edit: Any, where: str) -> None:
    payload = load(name)
    edit(payload)
    with pytest.raises(ValidationError, match=where):
        list(words_from(ENGINE_OF[name], payload))


def test_whisper_cpp_segment_output_is_refused_asking_for_one_word_per_entry() -> None:
    payload = load("whisper-cpp-oj.json")
    payload["transcription"][1]["text"] = " not what"
    with pytest.raises(
        ValidationError, match=r"transcription\[1\]\.text: ' not what' is several.*-ml 1"
    ):
        list(words_from("whisper.cpp", payload))


def test_missing_word_timestamps_say_which_option_to_turn_on() -> None:
    payload = load("openai-whisper.json")
    del payload["segments"][1]["words"]
    with pytest.raises(ValidationError, match=r"segments\[1\]\.words: missing.*word_timestamps"):
        list(openai_whisper(payload))


# --- unit conversions ---------------------------------------------------------------------------

E = "test"


@given(st.integers(min_value=0, max_value=10**12))
def test_milliseconds_give_the_float_of_the_decimal(ms: int) -> None:
    assert units.milliseconds(ms, E, "x") == float(Decimal(ms) / 1000)


@given(st.integers(min_value=0, max_value=10**15))
def test_ticks_give_the_float_of_the_decimal(count: int) -> None:
    assert units.from_ticks(units.ticks(count, E, "x")) == float(Decimal(count) / 10**7)
    assert units.from_ticks(units.ticks(float(count), E, "x")) == units.from_ticks(count)


@given(st.integers(min_value=0, max_value=10**9), st.integers(0, 999_999_999))
def test_both_duration_forms_and_the_decimal_agree(whole: int, nanos: int) -> None:
    decimal = f"{whole}.{nanos:09d}"
    as_string = units.duration(f"{decimal}s", E, "x")
    as_object = units.duration({"seconds": str(whole), "nanos": nanos}, E, "x")
    assert as_string == as_object == float(decimal)
    assert units.duration({"seconds": whole, "nanos": nanos}, E, "x") == as_object


@given(st.integers(min_value=0, max_value=99 * 3_600_000))
def test_clock_strings_equal_their_milliseconds(ms: int) -> None:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    assert units.clock(f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}", E, "x") == (
        units.milliseconds(ms, E, "x")
    )


@given(st.floats(min_value=0, max_value=1e7, allow_nan=False))
def test_numeric_strings_and_numbers_agree(value: float) -> None:
    assert units.seconds_text(repr(value), E, "x") == units.seconds(value, E, "x") == value


def test_numpy_scalars_and_decimals_become_builtin_floats() -> None:
    np = pytest.importorskip("numpy")
    for value in (np.float64(0.66), np.float32(0.5), np.int64(3), Decimal("1.25")):
        result = units.number(value, E, "x")
        assert type(result) is float and result == float(value)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), "1.0", None, [1.0]])
def test_non_numbers_are_refused_as_seconds(value: object) -> None:
    if value is None:
        assert units.seconds(value, E, "x") is None  # absent: an untimed word
        return
    with pytest.raises(ValidationError, match="x: expected seconds"):
        units.seconds(value, E, "x")


def test_integer_speakers_become_their_decimal_string() -> None:
    assert units.speaker(0, E, "x") == "0"
    assert units.speaker(12, E, "x") == "12"
    assert units.speaker("SPEAKER_00", E, "x") == "SPEAKER_00"
    with pytest.raises(ValidationError, match="speaker label"):
        units.speaker(1.5, E, "x")


def test_times_too_large_for_a_float_are_refused_not_overflowing() -> None:
    huge = 10**400
    with pytest.raises(ValidationError, match=r"x: .* is too large to be a time"):
        units.milliseconds(huge, E, "x")
    with pytest.raises(ValidationError, match=r"x: .* ticks is out of range"):
        units.ticks(2**63, E, "x")
    with pytest.raises(ValidationError, match="expected a duration"):
        units.duration(f"{huge}.5s", E, "x")
    payload = load("assemblyai.json")
    payload["words"][2]["end"] = huge
    with pytest.raises(ValidationError, match=r"words\[2\]\.end: .* too large"):
        list(words_from("assemblyai", payload))


# --- the fast path and the checked path agree ---------------------------------------------------
#
# Every adapter takes words whose values need no conversion (a str, finite builtin floats, a
# confidence in [0, 1], the engine's usual units) without calling the converters; anything
# else goes down the checked path. Frozen payloads (mappings that are not dicts, tuples for
# lists) take the checked path only: whatever one value is changed to, both must give the
# same words, bit for bit, or the same refusal.


def frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(frozen(item) for item in value)
    return value


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in ``value`` (a dict's key can also be deleted)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from leaves(item, (*path, index))


def exact(value: object) -> tuple[str, str]:
    """A value with its type, a float by every bit (and the sign of zero)."""
    return type(value).__name__, value.hex() if isinstance(value, float) else repr(value)


def outcome(engine: str, payload: Any) -> tuple[str, Any]:
    try:
        words = list(words_from(engine, payload))
    except ValidationError as exc:
        # The same refusal, whatever the container types shown in it.
        return "refused", str(exc).replace("mappingproxy", "").translate(NO_BRACKETS)
    return "stored", [[(key, exact(value)) for key, value in w.items()] for w in words]


NO_BRACKETS = str.maketrans("", "", "()[]")


def checked_only(payload: Any) -> Any:
    """``payload`` frozen inside; a list at the top stays a list (its shape means something
    there: Azure's continuous results, Vosk's utterances)."""
    if isinstance(payload, list):
        return [frozen(item) for item in payload]
    return frozen(payload)


ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -0.0, 0.5, 1.0, 1.5, 97.0, 2.0**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "0.5", "1.230s", "nan", "inf", "1e3", " 2.5", "x", "00:00:01,000"]),
    st.text(max_size=8),
)


@pytest.mark.parametrize("name", sorted(ENGINE_OF))
def test_the_fast_path_gives_what_the_checked_path_gives(name: str) -> None:
    engine = ENGINE_OF[name]
    assert outcome(engine, load(name)) == outcome(engine, checked_only(load(name)))


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(ENGINE_OF)), st.data())
def test_any_one_changed_value_gives_the_same_on_both_paths(name: str, data: st.DataObject) -> None:
    engine = ENGINE_OF[name]
    payload = load(name)
    path = data.draw(st.sampled_from(list(leaves(payload))))
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(ODD_VALUES)
    assert outcome(engine, payload) == outcome(engine, checked_only(payload))
