"""Engines' JSON straight to the store's word columns: typed decoders that read only the
fields the words need.

``orjson.loads`` builds every object of a file, and recognisers write far more than the
words: whisper.cpp ``-ojf`` a dict of six fields a token and two timestamp objects a word
(270 bytes of JSON a word), AWS a dict, a list and a dict an item with times and
confidences as strings, Watson lists a word twice over. A msgspec decoder typed to the few
fields the words need skips the rest while scanning (no object is made for it), checks the
types as it goes, and the columns are then made in C, not a Python step a word: in one pass
over the structs by the compiled ``struct_columns`` where it was built (times in seconds,
whole milliseconds, ticks or Duration texts; media_store/_speedups.c), else by maps
(``float`` of AWS's strings, ``attrgetter`` of the structs).

This is only a fast path, for the shapes the engines write. :func:`columns` returns None
whenever a file is anything else: another engine, a value of another type or out of range,
a multichannel or session file, punctuation or tokens it does not know. The caller then
takes the general path (``orjson.loads``, :func:`~media_store.asr.detect`,
:func:`~media_store.asr.words_from`), which gives the same words, and the same refusals
naming the path of a bad value (tests/asr/test_asr_decode.py holds the two paths equal).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from itertools import chain, compress, repeat
from operator import attrgetter, eq, itemgetter, ne
from typing import Any, TypeAlias

import msgspec

from media_store._compiled import compiled
from media_store.asr.units import MAX_FAST_MS, MAX_TICKS

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
    result: msgspec.Raw = msgspec.field(default_factory=_raw)
    word_segments: msgspec.Raw = msgspec.field(default_factory=_raw)
    segments: msgspec.Raw = msgspec.field(default_factory=_raw)
    words: msgspec.Raw = msgspec.field(default_factory=_raw)


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


# What _engine answers for the Whisper family's shape: which of the four is told by the
# words' keys, read with the words themselves (see columns).
_WHISPER_FAMILY = "whisper family"


def _engine(data: bytes) -> str | None:
    """The engine detect() would name for this file (its _detect_object, in its order),
    when the keys settle it and it is read here; else None (the general path decides)."""
    if _kind(msgspec.Raw(data)) == "[":
        return _list_engine(data)
    top = _TOP.decode(data)
    if len(top.type):
        return None  # maybe a Deepgram live message: the general path
    results = _kind(top.results)
    if results == "{":
        keys = _RESULTS_KEYS.decode(top.results)
        if len(keys.channels):
            return "deepgram"
        if len(keys.items) or len(keys.transcripts) or len(keys.channel_labels):
            return "aws-transcribe"
        return None
    if results == "[":
        if len(top.result_index) or _kind(top.speaker_labels) == "[":
            return "ibm-watson"
        return _results_engine(top.results)
    if any(map(len, (top.NBest, top.RecognitionStatus, top.recognizedPhrases))):
        return "azure-speech"
    if _kind(top.transcription) == "[":
        return "whisper.cpp"
    if _kind(top.result) == "[":
        return "vosk"
    if len(top.word_segments):
        return "whisperx"
    if _kind(top.segments) == "[":
        return _WHISPER_FAMILY
    if _kind(top.words) == "[":
        return "assemblyai"
    return None


_LIST = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])
_RESULTS = msgspec.json.Decoder(list[msgspec.Raw])
_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_GOOGLE_KEYS = frozenset({"resultEndTime", "languageCode", "channelTag"})


def _results_engine(raw: msgspec.Raw) -> str | None:
    """Google or Watson from ``results[]`` (detect()'s _detect_results): the first result
    whose alternatives or keys tell, each read as keys and unparsed values."""
    results = _RESULTS.decode(raw)
    if not results:
        return None  # ambiguous: the general path says so
    for result in results:
        if _kind(result) != "{":
            return None
        keys = _KEYS.decode(result)
        alternatives = keys.get("alternatives")
        if alternatives is not None and _kind(alternatives) == "[":
            for alternative in _RESULTS.decode(alternatives):
                if _kind(alternative) != "{":
                    continue
                inner = _KEYS.decode(alternative)
                if "timestamps" in inner or "word_confidence" in inner:
                    return "ibm-watson"
                if "words" in inner:
                    return "google-stt"
        elif alternatives is not None and _kind(alternatives) not in ("n",):
            return None  # alternatives of another type: the general path
        if _GOOGLE_KEYS & keys.keys():
            return "google-stt"
        if "final" in keys:
            return "ibm-watson"
    return None


_VOSK_KEYS = frozenset({"text", "spk", "partial"})


def _list_engine(data: bytes) -> str | None:
    """detect()'s choice for a JSON array (its _detect_list), for the lists read here: Azure's
    continuous recognition, Vosk's utterances. Each element is read as keys and unparsed
    values (an element is a result or an utterance, not a word)."""
    messages = _LIST.decode(data)
    for message in messages:
        if "type" in message or "result_index" in message or "speaker_labels" in message:
            return None  # a live session (Deepgram, Watson): the general path
    first = messages[0] if messages else None
    if first is None:
        return None
    if "NBest" in first or "RecognitionStatus" in first:
        return "azure-speech"
    if "result" in first or first.keys() <= _VOSK_KEYS:
        return "vosk"
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


# --- the Whisper family (openai-whisper, faster-whisper, whisper-timestamped, whisperX) -------

_Unset: TypeAlias = msgspec.UnsetType
UNSET = msgspec.UNSET


class _WhisperWord(msgspec.Struct, gc=False):
    """A word of any of the four: which keys it has tells the engine (UNSET: absent)."""

    word: str | _Unset | None = UNSET
    text: str | _Unset | None = UNSET
    start: float | _Unset | None = UNSET
    end: float | _Unset | None = UNSET
    probability: float | _Unset | None = UNSET
    confidence: float | _Unset | None = UNSET
    score: float | _Unset | None = UNSET
    speaker: int | str | _Unset | None = UNSET


class _WhisperSegment(msgspec.Struct, gc=False):
    words: list[_WhisperWord] | _Unset | None = UNSET
    confidence: msgspec.Raw = msgspec.field(default_factory=_raw)
    speaker: msgspec.Raw = msgspec.field(default_factory=_raw)


class _WhisperResult(msgspec.Struct):
    segments: list[_WhisperSegment] | _Unset | None = UNSET
    # whisperX's flat copy of every word, read (_WORD_SEGMENTS) only when there are no
    # segments, as the adapter does: scanned, not built, otherwise.
    word_segments: msgspec.Raw = msgspec.field(default_factory=_raw)


_WHISPER = msgspec.json.Decoder(_WhisperResult)
_SEGMENTS = msgspec.json.Decoder(list[_WhisperSegment])
_WORD_SEGMENTS = msgspec.json.Decoder(list[_WhisperWord] | None)
_WORDS_OF = attrgetter("words")


def _whisper_engine(result: _WhisperResult) -> str | None:
    """detect()'s choice among the Whisper family (its _detect_whisper, on the keys)."""
    if len(result.word_segments):
        return "whisperx"
    if not isinstance(result.segments, list):
        return None
    segment_keys: set[str] = set()
    for segment in result.segments:
        if len(segment.confidence):
            segment_keys.add("confidence")
        if len(segment.speaker):
            segment_keys.add("speaker")
        for word in segment.words or ():
            if word.score is not UNSET or word.speaker is not UNSET:
                return "whisperx"
            if word.probability is not UNSET:
                return "openai-whisper"
            if word.text is not UNSET and word.word is UNSET:
                return "whisper-timestamped"
            if word.word is not UNSET and word.start is UNSET:
                return "whisperx"
    if "confidence" in segment_keys:
        return "whisper-timestamped"
    if "speaker" in segment_keys:
        return "whisperx"
    return None  # ambiguous: the general path says so


def _whisper_words(segments: object) -> list[_WhisperWord]:
    if not isinstance(segments, list):
        raise _NotPlain
    groups = list(map(_WORDS_OF, segments))
    if not all(isinstance(group, list) for group in groups):
        raise _NotPlain  # a segment without words: the adapter refuses it, naming it
    return list(chain.from_iterable(groups))


def _word_columns(
    words: list[Any], text: str | list[Any], confidence: str, speaker: str | None = None
) -> Columns:
    """Columns of decoded word structs (``text``: the text's field, or the texts): every
    text a str, every time given, confidences in [0, 1] (absent: None), speakers str (an
    int as its decimal string); else :class:`_NotPlain`. The compiled ``struct_columns``
    makes them in one pass where built; for words off that shape it returns None and this
    code decides."""
    made = _compiled_columns(words, text, confidence, speaker, None)
    if made is not None:
        return made
    texts = list(map(attrgetter(text), words)) if isinstance(text, str) else text
    starts = list(map(_START, words))
    ends = list(map(_END, words))
    confidences = [None if c is UNSET else c for c in map(attrgetter(confidence), words)]
    if not set(map(type, texts)) <= {str} or not set(map(type, starts + ends)) <= {float}:
        raise _NotPlain  # an untimed word (the untimed policy), a missing text
    if not math.isfinite(sum(starts) + sum(ends)):
        raise _NotPlain
    _check_confidences(confidences)
    speakers: list[str | None] | None = None
    if speaker is not None:
        labels = [None if s is UNSET else s for s in map(attrgetter(speaker), words)]
        if labels.count(None) != len(labels):
            kinds = set(map(type, labels))
            if not kinds <= {str, int, type(None)}:
                raise _NotPlain
            speakers = labels if int not in kinds else [_label(s) for s in labels]
    return texts, starts, ends, confidences, speakers


def _label(value: str | int | None) -> str | None:
    return str(value) if type(value) is int else value  # type: ignore[return-value]


_START, _END = attrgetter("start"), attrgetter("end")
# The compiled _word_columns (media_store/_speedups.c), or None; its last argument says how
# the structs hold their times: None for seconds in start and end, or (start field, end or
# duration field, units a second, whether a duration, the largest count it converts: within
# 2**52, so that a sum of two is exact; a larger one takes the Python code).
_struct_columns: Callable[..., Columns | None] | None = compiled("struct_columns")
_MS = ("start", "end", 1000, False, 2**52)
_TICKS = ("Offset", "Duration", 10_000_000, True, 2**52)
_DURATION_TEXTS = ("startTime", "endTime", 0, False, 0)  # "12.300s", as _seconds reads it


def _compiled_columns(
    words: list[Any],
    text: str | list[Any],
    confidence: str,
    speaker: str | None,
    times: tuple[str, str, int, bool, int] | None,
) -> Columns | None:
    """The columns ``struct_columns`` makes of ``words``, or None where it was not built or
    the words are off its shape: then the caller's Python code decides."""
    if _struct_columns is None:
        return None
    return _struct_columns(words, text, confidence, speaker, UNSET, times)


def _whisper_result(data: bytes) -> _WhisperResult:
    if _kind(msgspec.Raw(data)) == "[":  # faster-whisper's segments, dumped as a list
        return _WhisperResult(segments=_SEGMENTS.decode(data))
    return _WHISPER.decode(data)


def _whisperx_words(result: _WhisperResult) -> list[_WhisperWord]:
    if result.segments is not None and result.segments is not UNSET:
        return _whisper_words(result.segments)
    words = _WORD_SEGMENTS.decode(result.word_segments) if len(result.word_segments) else None
    if words is None:
        raise _NotPlain
    return words


_WHISPER_COLUMNS: dict[str, Callable[[_WhisperResult], Columns]] = {
    "openai-whisper": lambda r: _word_columns(_whisper_words(r.segments), "word", "probability"),
    "faster-whisper": lambda r: _word_columns(_whisper_words(r.segments), "word", "probability"),
    "whisper-timestamped": lambda r: _word_columns(
        _whisper_words(r.segments), "text", "confidence"
    ),
    "whisperx": lambda r: _word_columns(_whisperx_words(r), "word", "score", "speaker"),
}


# --- Vosk, Deepgram, AssemblyAI, Azure --------------------------------------------------------


class _VoskWord(msgspec.Struct, gc=False):
    word: str
    start: float
    end: float
    conf: float | None = None


class _VoskResult(msgspec.Struct, gc=False):
    result: list[_VoskWord] | None = None


_VOSK = msgspec.json.Decoder(_VoskResult)
_VOSK_LIST = msgspec.json.Decoder(list[_VoskResult])


def _vosk(data: bytes) -> Columns:
    if _kind(msgspec.Raw(data)) == "[":
        parts = [r.result for r in _VOSK_LIST.decode(data) if r.result is not None]
        words = list(chain.from_iterable(parts))
    else:
        result = _VOSK.decode(data).result
        if result is None:
            raise _NotPlain
        words = result
    return _word_columns(words, "word", "conf")


class _DeepgramWord(msgspec.Struct, gc=False):
    start: float
    end: float
    word: str | None = None
    punctuated_word: str | None = None
    confidence: float | None = None
    speaker: int | str | None = None


class _DeepgramAlternative(msgspec.Struct, gc=False):
    words: list[_DeepgramWord]


class _DeepgramChannel(msgspec.Struct, gc=False):
    alternatives: list[_DeepgramAlternative]


class _DeepgramResults(msgspec.Struct):
    channels: list[_DeepgramChannel]


class _Deepgram(msgspec.Struct):
    results: _DeepgramResults


_DEEPGRAM = msgspec.json.Decoder(_Deepgram)
_PUNCTUATED = attrgetter("punctuated_word")


def _deepgram(data: bytes) -> Columns:
    channels = _DEEPGRAM.decode(data).results.channels
    if len(channels) != 1:
        raise _NotPlain  # channels to merge into speakers
    if not channels[0].alternatives:
        return [], [], [], [], None
    words = channels[0].alternatives[0].words
    texts = list(map(_PUNCTUATED, words))
    if None in texts:
        texts = [w.word if w.punctuated_word is None else w.punctuated_word for w in words]
    return _word_columns(words, texts, "confidence", "speaker")


class _AssemblyWord(msgspec.Struct, gc=False):
    text: str
    start: int
    end: int
    confidence: float | None = None
    speaker: str | int | None = None
    channel: msgspec.Raw = msgspec.field(default_factory=_raw)


class _Assembly(msgspec.Struct):
    words: list[_AssemblyWord]
    audio_channels: msgspec.Raw = msgspec.field(default_factory=_raw)


_ASSEMBLY = msgspec.json.Decoder(_Assembly)


def _assemblyai(data: bytes) -> Columns:
    transcript = _ASSEMBLY.decode(data)
    if len(transcript.audio_channels) or (
        transcript.words and _kind(transcript.words[0].channel) not in ("", "n")
    ):
        raise _NotPlain  # multichannel
    words = transcript.words
    made = _compiled_columns(words, "text", "confidence", "speaker", _MS)
    if made is not None:
        return made
    starts_ms = list(map(_START, words))
    ends_ms = list(map(_END, words))
    if words and max(map(abs, starts_ms + ends_ms)) > MAX_FAST_MS:
        raise _NotPlain
    texts = list(map(_TEXT, words))
    confidences: list[float | None] = list(map(_CONFIDENCE, words))
    _check_confidences(confidences)
    labels = list(map(_SPEAKER, words))
    speakers = None
    if labels.count(None) != len(labels):
        speakers = [_label(s) for s in labels] if int in set(map(type, labels)) else labels
    return (
        texts,
        [ms / 1000 for ms in starts_ms],
        [ms / 1000 for ms in ends_ms],
        confidences,
        speakers,
    )


class _AzureWord(msgspec.Struct, gc=False):
    Word: str
    Offset: int
    Duration: int
    Confidence: float | None = None


class _AzureBest(msgspec.Struct, gc=False):
    Words: list[_AzureWord]


class _AzureResult(msgspec.Struct, gc=False):
    NBest: list[_AzureBest] | None = None
    RecognitionStatus: str | None = None
    recognizedPhrases: msgspec.Raw = msgspec.field(default_factory=_raw)


_AZURE = msgspec.json.Decoder(_AzureResult)
_AZURE_LIST = msgspec.json.Decoder(list[_AzureResult])
_OFFSET, _DURATION = attrgetter("Offset"), attrgetter("Duration")


def _azure_speech(data: bytes) -> Columns:
    if _kind(msgspec.Raw(data)) == "[":
        results = _AZURE_LIST.decode(data)
    else:
        results = [_AZURE.decode(data)]
        if len(results[0].recognizedPhrases):
            raise _NotPlain  # the batch transcription file
    groups = []
    for result in results:
        if result.NBest is None:
            if result.RecognitionStatus in (None, "Success"):
                raise _NotPlain  # the adapter refuses it
            continue
        if not result.NBest:
            raise _NotPlain
        groups.append(result.NBest[0].Words)
    words = list(chain.from_iterable(groups))
    made = _compiled_columns(words, "Word", "Confidence", None, _TICKS)
    if made is not None:
        return made
    offsets = list(map(_OFFSET, words))
    durations = list(map(_DURATION, words))
    if words and max(map(abs, offsets + durations)) >= MAX_TICKS:
        raise _NotPlain
    confidences: list[float | None] = list(map(attrgetter("Confidence"), words))
    _check_confidences(confidences)
    return (
        list(map(attrgetter("Word"), words)),
        [o / 10_000_000 for o in offsets],
        [(o + d) / 10_000_000 for o, d in zip(offsets, durations, strict=True)],
        confidences,
        None,
    )


# --- Google Cloud STT v1 ---------------------------------------------------------------------


class _GoogleWord(msgspec.Struct, gc=False):
    word: str
    startTime: str
    endTime: str
    confidence: float | None = None
    speakerTag: int | None = None
    speakerLabel: str | None = None


class _GoogleAlternative(msgspec.Struct, gc=False):
    words: list[_GoogleWord] | None = None


class _GoogleResult(msgspec.Struct, gc=False):
    alternatives: list[_GoogleAlternative] | None = None
    channelTag: msgspec.Raw = msgspec.field(default_factory=_raw)


class _Google(msgspec.Struct):
    results: list[msgspec.Raw]


_GOOGLE = msgspec.json.Decoder(_Google)
_GOOGLE_RESULT = msgspec.json.Decoder(_GoogleResult)
# A protobuf Duration's JSON form, as units.duration_text reads it, every time of a column
# at once: the times joined by NUL, each digits, maybe a point and 1 to 9 digits, then "s".
_DURATIONS = re.compile(r"(?:\d+(?:\.\d{1,9})?s\x00)*")
_START_TEXT, _END_TEXT = attrgetter("startTime"), attrgetter("endTime")
_SPEAKER_LABEL = attrgetter("speakerLabel")


def _google_stt(data: bytes) -> Columns:
    raw_results = _GOOGLE.decode(data).results
    if not raw_results:
        return [], [], [], [], None
    last = _GOOGLE_RESULT.decode(raw_results[-1])
    diarized = _google_words_of(last)
    if diarized and any(w.speakerTag is not None or w.speakerLabel is not None for w in diarized):
        results = [last]  # the last result repeats every word, with its speaker
    else:
        results = [*map(_GOOGLE_RESULT.decode, raw_results[:-1]), last]
    if any(len(result.channelTag) for result in results):
        raise _NotPlain  # channels to merge
    words = list(chain.from_iterable(map(_google_words_of, results)))
    if not any(map(_SPEAKER_LABEL, words)):  # no speakerLabel: a word's speaker is its tag
        made = _compiled_columns(words, "word", "confidence", "speakerTag", _DURATION_TEXTS)
        if made is not None:
            return made
    starts = _seconds(list(map(_START_TEXT, words)))
    ends = _seconds(list(map(_END_TEXT, words)))
    confidences: list[float | None] = list(map(_CONFIDENCE, words))
    _check_confidences(confidences)
    labels = [w.speakerLabel or w.speakerTag for w in words]
    speakers = None
    if labels.count(None) != len(labels):
        speakers = [_label(s) for s in labels]
    return list(map(attrgetter("word"), words)), starts, ends, confidences, speakers


def _google_words_of(result: _GoogleResult) -> list[_GoogleWord]:
    if not result.alternatives:
        return []
    return result.alternatives[0].words or []


def _seconds(durations: list[str]) -> list[float]:
    """``"12.300s"`` times as seconds, as units.duration_text reads each; else
    :class:`_NotPlain` (the adapter names the bad one)."""
    joined = "\x00".join(durations) + "\x00" if durations else ""
    if _DURATIONS.fullmatch(joined) is None:
        raise _NotPlain
    seconds = list(map(float, joined.replace("s\x00", " ").split()))
    if math.inf in seconds:
        raise _NotPlain
    return seconds


# --- the entry point ----------------------------------------------------------------------------


def _from_bytes(read: Callable[[_WhisperResult], Columns]) -> Callable[[bytes], Columns]:
    def decode(data: bytes) -> Columns:
        return read(_whisper_result(data))

    return decode


DECODERS: dict[str, Callable[[bytes], Columns]] = {
    "whisper.cpp": _whisper_cpp,
    "aws-transcribe": _aws_transcribe,
    "ibm-watson": _ibm_watson,
    "vosk": _vosk,
    "deepgram": _deepgram,
    "assemblyai": _assemblyai,
    "azure-speech": _azure_speech,
    "google-stt": _google_stt,
    **{name: _from_bytes(read) for name, read in _WHISPER_COLUMNS.items()},
}


def columns(data: bytes, engine: str = "auto") -> tuple[str, Columns] | None:
    """The engine and the word columns of the JSON file ``data`` when the fast path reads it
    (see the module docstring), else None. ``engine``: the engine's name, or ``"auto"``
    (the engine detect() would name). Never raises for a bad file: None."""
    try:
        name = _engine(data) if engine == "auto" else engine
        if name == _WHISPER_FAMILY:  # decoded once: the words' keys tell which
            result = _whisper_result(data)
            name = _whisper_engine(result)
            if name is None:
                return None
            return name, _WHISPER_COLUMNS[name](result)
        decoder = DECODERS.get(name) if name is not None else None
        if name is None or decoder is None:
            return None
        return name, decoder(data)
    except (msgspec.DecodeError, _NotPlain, RecursionError):
        return None
