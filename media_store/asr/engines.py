"""The engines by name, :func:`detect` (which engine wrote this payload?) and
:func:`words_from`, the single entry point."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from media_store.asr import local, services
from media_store.asr.units import StoreWord
from media_store.errors import ValidationError

# Every engine, under the name the import command and the metadata use.
ENGINES: dict[str, Callable[..., Iterator[StoreWord]]] = {
    "openai-whisper": local.openai_whisper,
    "faster-whisper": local.faster_whisper,
    "whisper-timestamped": local.whisper_timestamped,
    "whisperx": local.whisperx,
    "whisper.cpp": local.whisper_cpp,
    "vosk": local.vosk,
    "deepgram": services.deepgram,
    "assemblyai": services.assemblyai,
    "aws-transcribe": services.aws_transcribe,
    "google-stt": services.google_stt,
    "azure-speech": services.azure_speech,
    "ibm-watson": services.ibm_watson,
}

# The engines whose adapter takes ``channel=`` (multichannel output).
CHANNELLED = frozenset({"deepgram", "assemblyai", "aws-transcribe", "google-stt", "azure-speech"})


class UnknownEngine(ValidationError):
    """The payload is no engine's output this package knows, or the engine name is unknown."""


class AmbiguousEngine(UnknownEngine):
    """The payload's keys fit more than one engine (an empty result says nothing about the
    words' keys): :attr:`candidates` names them, and the caller must name the engine.
    Guessing would record the wrong provider."""

    def __init__(self, candidates: tuple[str, ...], why: str) -> None:
        self.candidates = candidates
        super().__init__(
            f"cannot tell which engine wrote this payload: {why}, so it could be any of "
            f"{', '.join(candidates)}; name the engine",
            [{"loc": ("$",), "msg": "ambiguous engine"}],
        )


def words_from(engine: str, payload: Any, *, channel: Any = None) -> Iterator[StoreWord]:
    """The store's word dicts from ``payload``, the output of ``engine`` (a name of
    :data:`ENGINES`, or ``"auto"`` to :func:`detect` it).

    Returns a lazy iterator: a payload whose shape is wrong at the top is refused here, a bad
    word when the iterator reaches it. ``channel`` picks one channel of multichannel output
    (the engine's own channel id) instead of merging them. Raises :class:`UnknownEngine`
    and :class:`~media_store.errors.ValidationError`.
    """
    if engine == "auto":
        engine = detect(payload)
    adapter = ENGINES.get(engine)
    if adapter is None:
        raise UnknownEngine(
            f"unknown engine {engine!r}; use one of {', '.join(ENGINES)} or 'auto'",
            [{"loc": ("engine",), "msg": "unknown engine"}],
        )
    if channel is None:
        return adapter(payload)
    if engine not in CHANNELLED:
        raise ValidationError(
            f"{engine}: has no channels to choose from; leave channel unset",
            [{"loc": ("channel",), "msg": "not a multichannel engine"}],
        )
    return adapter(payload, channel=channel)


def detect(payload: Any) -> str:
    """The name of the engine that wrote ``payload`` (parsed JSON, or faster-whisper's
    segments), from the keys only that engine writes. Raises :class:`UnknownEngine`.

    A generator or iterator is taken for faster-whisper's segments without being read (no
    other engine hands one over); detection never consumes it.
    """
    if isinstance(payload, Mapping):
        found = _detect_object(payload)
    elif isinstance(payload, list):
        found = _detect_list(payload)
        if found is None:
            _refuse_wrapped(payload)
    elif isinstance(payload, Iterator):
        found = "faster-whisper"
    else:
        found = None
    if found is None:
        keys = sorted(payload)[:12] if isinstance(payload, Mapping) else type(payload).__name__
        raise UnknownEngine(
            f"cannot tell which engine wrote this payload (top level: {keys}); "
            f"name the engine: one of {', '.join(ENGINES)}",
            [{"loc": ("$",), "msg": "unknown engine"}],
        )
    return found


def _detect_object(payload: Mapping[str, Any]) -> str | None:
    if payload.get("type") == "Results" and isinstance(payload.get("channel"), Mapping):
        return "deepgram"  # one live (websocket) message
    results = payload.get("results")
    if isinstance(results, Mapping):
        if "channels" in results:
            return "deepgram"
        if {"items", "transcripts", "channel_labels"} & results.keys():
            return "aws-transcribe"
        return None
    if isinstance(results, list):
        return _detect_results(payload, results)
    if {"NBest", "RecognitionStatus", "recognizedPhrases"} & payload.keys():
        return "azure-speech"
    if isinstance(payload.get("transcription"), list):
        return "whisper.cpp"
    if isinstance(payload.get("result"), list):
        return "vosk"
    if "word_segments" in payload:
        return "whisperx"
    if isinstance(payload.get("segments"), list):
        return _detect_whisper(payload["segments"])
    if isinstance(payload.get("words"), list):
        return "assemblyai"
    return None


def _detect_results(payload: Mapping[str, Any], results: list[Any]) -> str | None:
    """Google and Watson both write ``results[].alternatives[]``; the words tell them apart
    (Watson: ``timestamps`` lists; Google: ``words`` objects), else the result's keys."""
    if "result_index" in payload or isinstance(payload.get("speaker_labels"), list):
        return "ibm-watson"
    if not results:
        # Google's and Watson's empty responses differ in no key.
        raise AmbiguousEngine(("google-stt", "ibm-watson"), "'results' is empty")
    for result in results:
        if not isinstance(result, Mapping):
            return None
        for alternative in result.get("alternatives") or []:
            if isinstance(alternative, Mapping):
                if {"timestamps", "word_confidence"} & alternative.keys():
                    return "ibm-watson"
                if "words" in alternative:
                    return "google-stt"
        if {"resultEndTime", "languageCode", "channelTag"} & result.keys():
            return "google-stt"
        if "final" in result:
            return "ibm-watson"
    return None


def _detect_whisper(segments: list[Any]) -> str:
    """openai-whisper (``word`` + ``probability``), whisper-timestamped (``text`` +
    ``confidence``) or whisperX (``score``, ``speaker``, or words with no times), from the
    first word that shows its keys; with no word at all, from the segments' keys (only
    whisper-timestamped gives a segment a ``confidence``), else :class:`AmbiguousEngine`:
    openai-whisper and whisper-timestamped write the same top level, and naming the wrong
    one would record the wrong provider."""
    segment_keys: set[str] = set()
    for segment in segments:
        words = segment.get("words") if isinstance(segment, Mapping) else None
        if isinstance(segment, Mapping):
            segment_keys.update(k for k in segment if isinstance(k, str))
        for word in words or []:
            if not isinstance(word, Mapping):
                continue
            keys = word.keys()
            if "score" in keys or "speaker" in keys:
                return "whisperx"
            if "probability" in keys:
                return "openai-whisper"
            if "text" in keys and "word" not in keys:
                return "whisper-timestamped"
            if "word" in keys and "start" not in keys:
                return "whisperx"  # an unaligned word: only whisperX writes those
    if "confidence" in segment_keys:
        return "whisper-timestamped"
    if "speaker" in segment_keys:  # a diarized whisperX segment
        return "whisperx"
    why = "no segment holds a word" if segments else "'segments' is empty"
    raise AmbiguousEngine(("openai-whisper", "whisper-timestamped"), why)


def _detect_list(payload: list[Any]) -> str | None:
    # A saved websocket session: the messages without words (Deepgram's Metadata, Watson's
    # {"state": "listening"}) may come first, so every message is looked at.
    for message in payload:
        if not isinstance(message, Mapping):
            break
        if message.get("type") == "Results" and isinstance(message.get("channel"), Mapping):
            return "deepgram"
        if "type" not in message and (
            ("result_index" in message and isinstance(message.get("results"), list))
            or isinstance(message.get("speaker_labels"), list)
        ):
            return "ibm-watson"
    first = payload[0] if payload else None
    if isinstance(first, Mapping):
        if {"NBest", "RecognitionStatus"} & first.keys():
            return "azure-speech"
        if "result" in first or set(first.keys()) <= {"text", "spk", "partial"}:
            return "vosk"
        return None
    if first is not None and not isinstance(first, str) and hasattr(first, "words"):
        return "faster-whisper"
    return None


def _refuse_wrapped(payload: list[Any]) -> None:
    """Raise :class:`UnknownEngine` saying so when ``payload`` is a list holding an engine's
    one-object output (a batch of one, a client's envelope): the fix is to unwrap it, not
    to name an engine."""
    first = payload[0] if payload else None
    if not isinstance(first, Mapping):
        return
    try:
        inner = _detect_object(first)
    except AmbiguousEngine:
        return
    if inner is not None:
        raise UnknownEngine(
            f"a list of {len(payload)} where one object was expected: the output is wrapped "
            f"(its first element looks like {inner}'s); pass the object itself (payload[0])",
            [{"loc": ("$",), "msg": "wrapped payload"}],
        )
