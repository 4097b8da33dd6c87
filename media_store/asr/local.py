"""Adapters for the engines that run in-process or on one's own machines: the Whisper family
(openai-whisper, faster-whisper, whisper-timestamped, whisperX, whisper.cpp) and Vosk.

Each takes the engine's output as emitted (parsed JSON, or the Python objects the library
returns) and yields the store's word dicts lazily, in the engine's order: nothing is sorted,
dropped or invented here (see :mod:`media_store.asr.repair` for that). Word text is kept
exactly, leading space included (Whisper's ``" Jane?"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from media_store.asr.units import (
    MAX_FAST_MS,
    StoreWord,
    clock,
    confidence,
    fast_word,
    field,
    items,
    mapping,
    milliseconds,
    refuse,
    seconds,
    speaker,
    text,
)


def _segment_words(
    engine: str, segments: Iterable[Any], text_key: str, confidence_key: str, fix: str
) -> Iterator[StoreWord]:
    """The words of Whisper-style ``segments[].words[]`` (mappings or objects)."""
    for s, segment in enumerate(segments):
        words = field(segment, "words")
        if words is None:
            refuse(engine, f"segments[{s}].words", "missing: no word timestamps", fix)
        for w, word in enumerate(items(words, engine, f"segments[{s}].words")):
            if type(word) is dict:
                t, start, end = word.get(text_key), word.get("start"), word.get("end")
                score = word.get(confidence_key)
                fast = fast_word(t, start, end, score)
                if fast is not None:
                    yield fast
                    continue
            path = f"segments[{s}].words[{w}]"
            yield {
                "word": text(field(word, text_key), engine, f"{path}.{text_key}"),
                "start": seconds(field(word, "start"), engine, f"{path}.start"),
                "end": seconds(field(word, "end"), engine, f"{path}.end"),
                "confidence": confidence(
                    field(word, confidence_key), engine, f"{path}.{confidence_key}"
                ),
                "speaker": None,
            }


def openai_whisper(result: Mapping[str, Any]) -> Iterator[StoreWord]:
    """openai-whisper's ``transcribe(..., word_timestamps=True)`` result, as returned (numpy
    floats) or as written to JSON: ``segments[].words[]`` with ``word``, ``start``, ``end``
    and ``probability`` (the confidence)."""
    engine = "openai-whisper"
    segments = items(mapping(result, engine, "$").get("segments"), engine, "segments")
    return _segment_words(
        engine, segments, "word", "probability", "transcribe with word_timestamps=True"
    )


def faster_whisper(segments: Iterable[Any]) -> Iterator[StoreWord]:
    """faster-whisper's segments: the generator ``WhisperModel.transcribe`` returns (first
    item of its tuple), consumed lazily so a long file streams, or the same as dicts (JSON).
    Each segment's ``words`` holds ``Word(start, end, word, probability)``."""
    engine = "faster-whisper"
    if isinstance(segments, Mapping):  # a JSON dump that kept the transcribe() result shape
        segments = items(segments.get("segments"), engine, "segments")
    if isinstance(segments, str | bytes) or not isinstance(segments, Iterable):
        refuse(engine, "$", f"expected the segments, got {type(segments).__name__}", "pass them")
    return _segment_words(
        engine, segments, "word", "probability", "transcribe with word_timestamps=True"
    )


def whisper_timestamped(result: Mapping[str, Any]) -> Iterator[StoreWord]:
    """whisper-timestamped: ``segments[].words[]`` with ``text``, ``start``, ``end``,
    ``confidence``. Whitespace-only words (seen in Japanese output) are kept as they are."""
    engine = "whisper-timestamped"
    segments = items(mapping(result, engine, "$").get("segments"), engine, "segments")
    return _segment_words(engine, segments, "text", "confidence", "run with word timestamps on")


def whisperx(result: Mapping[str, Any]) -> Iterator[StoreWord]:
    """whisperX after alignment (and diarization): ``segments[].words[]`` (else the flat
    ``word_segments[]``) with ``word``, ``start``, ``end``, ``score`` and ``speaker``
    (``"SPEAKER_00"``, absent on some words).

    Words whisperX could not align (numerals, some symbols) have no ``start`` / ``end`` /
    ``score``: they come out with ``start`` and ``end`` None, for the untimed policy.
    """
    engine = "whisperx"
    result = mapping(result, engine, "$")
    if result.get("segments") is not None:
        segments = items(result["segments"], engine, "segments")
        return _whisperx_words(
            ((f"segments[{s}].words", field(seg, "words")) for s, seg in enumerate(segments)),
        )
    if result.get("word_segments") is not None:
        return _whisperx_words(iter([("word_segments", result["word_segments"])]))
    refuse(engine, "segments", "missing (and no word_segments)", "pass whisperX's aligned result")


def _whisperx_words(groups: Iterator[tuple[str, Any]]) -> Iterator[StoreWord]:
    engine = "whisperx"
    for where, words in groups:
        if words is None:
            refuse(engine, where, "missing: the segment was not aligned", "run whisperx.align")
        for w, word in enumerate(items(words, engine, where)):
            if type(word) is dict:
                t, start, end, score = (
                    word.get("word"),
                    word.get("start"),
                    word.get("end"),
                    word.get("score"),
                )
                label = word.get("speaker")
                fast = fast_word(t, start, end, score, label)
                if fast is not None:
                    yield fast
                    continue
            path = f"{where}[{w}]"
            yield {
                "word": text(field(word, "word"), engine, f"{path}.word"),
                "start": seconds(field(word, "start"), engine, f"{path}.start"),
                "end": seconds(field(word, "end"), engine, f"{path}.end"),
                "confidence": confidence(field(word, "score"), engine, f"{path}.score"),
                "speaker": speaker(field(word, "speaker"), engine, f"{path}.speaker"),
            }


def whisper_cpp(output: Mapping[str, Any]) -> Iterator[StoreWord]:
    """whisper.cpp's ``-oj`` / ``-ojf`` JSON, run with one word per entry (``-ml 1``):
    ``transcription[]`` with ``text`` and ``offsets.from`` / ``offsets.to`` in milliseconds
    (else the ``timestamps`` strings ``"00:00:08,110"``). An entry holding several words
    (output made without ``-ml 1``) is refused: its times are a segment's, not a word's.

    Confidence: with ``-ojf`` each entry lists its ``tokens[]`` with ``p``; the word's
    confidence is the mean ``p`` of its text tokens (special tokens, ``[_BEG_]``,
    ``[_TT_150]``, are left out: they are timing markers, not the word), as openai-whisper
    computes a word's probability. ``-oj`` output has no confidence: None.
    """
    engine = "whisper.cpp"
    entries = items(mapping(output, engine, "$").get("transcription"), engine, "transcription")
    return _whisper_cpp_words(entries)


def _whisper_cpp_words(entries: Iterable[Any]) -> Iterator[StoreWord]:
    engine = "whisper.cpp"
    for i, raw in enumerate(entries):
        if type(raw) is dict:  # the fast path: offsets in whole milliseconds, one word
            offsets, word = raw.get("offsets"), raw.get("text")
            if type(offsets) is dict and type(word) is str and len(word.split()) <= 1:
                start, end = offsets.get("from"), offsets.get("to")
                score = _plain_token_mean(raw.get("tokens"))
                if (
                    type(start) is int
                    and type(end) is int
                    and max(abs(start), abs(end)) <= MAX_FAST_MS
                    and score != _CHECK
                ):
                    yield {
                        "word": word,
                        "start": start / 1000,
                        "end": end / 1000,
                        "confidence": score,
                        "speaker": None,
                    }
                    continue
        path = f"transcription[{i}]"
        entry = mapping(raw, engine, path)
        offsets = entry.get("offsets")
        if isinstance(offsets, Mapping):
            start = milliseconds(offsets.get("from"), engine, f"{path}.offsets.from")
            end = milliseconds(offsets.get("to"), engine, f"{path}.offsets.to")
        else:
            stamps = mapping(entry.get("timestamps") or {}, engine, f"{path}.timestamps")
            start = clock(stamps.get("from"), engine, f"{path}.timestamps.from")
            end = clock(stamps.get("to"), engine, f"{path}.timestamps.to")
        word = text(entry.get("text"), engine, f"{path}.text")
        if len(word.split()) > 1:  # whitespace inside the word (str.split: str.isspace)
            refuse(
                engine,
                f"{path}.text",
                f"{word!r} is several words: this is segment-level output",
                "run whisper.cpp with -ml 1 so that each entry is one word",
            )
        yield {
            "word": word,
            "start": start,
            "end": end,
            "confidence": _token_mean(entry.get("tokens"), f"{path}.tokens"),
            "speaker": None,
        }


# What _plain_token_mean returns for tokens it cannot read without the checks (never a
# mean: means of probabilities are in [0, 1]).
_CHECK = -1.0


def _plain_token_mean(tokens: object) -> float | None:
    """:func:`_token_mean` of tokens that need no conversion (a list of dicts, each ``p``
    None or a float in [0, 1]), else :data:`_CHECK`: the caller then takes the checked path."""
    if tokens is None:
        return None
    if type(tokens) is not list:
        return _CHECK
    total = 0.0
    count = 0
    for token in tokens:
        if type(token) is not dict:
            return _CHECK
        token_text = token.get("text")
        if isinstance(token_text, str) and token_text.startswith("[_"):
            continue
        p = token.get("p")
        if p is None:
            continue
        if type(p) is not float or not 0.0 <= p <= 1.0:
            return _CHECK
        total += p
        count += 1
    return total / count if count else None


def _token_mean(tokens: object, path: str) -> float | None:
    if tokens is None:
        return None
    engine = "whisper.cpp"
    total = 0.0
    count = 0
    for t, token in enumerate(items(tokens, engine, path)):
        token = mapping(token, engine, f"{path}[{t}]")
        token_text = token.get("text")
        if isinstance(token_text, str) and token_text.startswith("[_"):
            continue
        p = confidence(token.get("p"), engine, f"{path}[{t}].p")
        if p is not None:
            total += p
            count += 1
    return total / count if count else None


def vosk(output: Mapping[str, Any] | list[Any]) -> Iterator[StoreWord]:
    """Vosk / Kaldi: ``result[]`` with ``word``, ``start``, ``end``, ``conf``, from one
    ``Result()`` / ``FinalResult()``, or a list of them (one per utterance), in order."""
    engine = "vosk"
    if isinstance(output, list):
        return _vosk_words(
            (f"[{r}].result", mapping(each, engine, f"[{r}]").get("result"))
            for r, each in enumerate(output)
        )
    result = mapping(output, engine, "$").get("result")
    if result is None:
        refuse(engine, "result", "missing: no word times", "call SetWords(True) on the recogniser")
    return _vosk_words(iter([("result", result)]))


def _vosk_words(groups: Iterable[tuple[str, Any]]) -> Iterator[StoreWord]:
    engine = "vosk"
    for where, words in groups:
        if words is None:  # an utterance with no words ({"text": ""})
            continue
        for w, raw in enumerate(items(words, engine, where)):
            if type(raw) is dict:
                t, start, end, score = (
                    raw.get("word"),
                    raw.get("start"),
                    raw.get("end"),
                    raw.get("conf"),
                )
                fast = fast_word(t, start, end, score)
                if fast is not None:
                    yield fast
                    continue
            path = f"{where}[{w}]"
            word = mapping(raw, engine, path)
            yield {
                "word": text(word.get("word"), engine, f"{path}.word"),
                "start": seconds(word.get("start"), engine, f"{path}.start"),
                "end": seconds(word.get("end"), engine, f"{path}.end"),
                "confidence": confidence(word.get("conf"), engine, f"{path}.conf"),
                "speaker": None,
            }
