"""Adapters for the hosted speech APIs: Deepgram, AssemblyAI, AWS Transcribe, Google Cloud
Speech-to-Text (v1), Microsoft Azure Speech and IBM Watson Speech to Text.

Each takes the parsed JSON response as the service returns it and yields the store's word
dicts lazily. Units are converted (see :mod:`media_store.asr.units`); multichannel output is
merged in start order with the channel in the speaker (see :mod:`media_store.asr`), unless
``channel=`` picks one channel, whose words then keep their own speakers unprefixed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from media_store.asr.units import (
    MAX_FAST_MS,
    MAX_TICKS,
    StoreWord,
    confidence,
    duration,
    duration_text,
    fast_word,
    from_ticks,
    integer,
    items,
    mapping,
    milliseconds,
    plain,
    refuse,
    required,
    seconds,
    seconds_text,
    speaker,
    text,
    ticks,
)

# Speaker types the fast paths take as they are (an int becomes its decimal string).
_LABEL = (str, int)


def channel_speaker(channel: object, own: str | None) -> str:
    """The speaker of a word in merged multichannel output: ``ch{channel}`` (the engine's own
    channel number), then ``:{speaker}`` whenever the engine also diarized the channel.

    The speaker is kept even when it equals the channel number: Deepgram's, Google's and
    Azure's speaker numbers are independent of the channel (speaker 0 on channel 0 is still
    speaker 0, and dropping it would merge that speaker with the channel's undiarized
    words). Only AssemblyAI writes a speaker that merely repeats the channel; its adapter
    drops that one itself."""
    label = f"ch{channel}"
    return label if own is None else f"{label}:{own}"


def merge_channels(channels: Sequence[tuple[object, Iterator[StoreWord]]]) -> Iterator[StoreWord]:
    """Merge per-channel word streams (each in start order) lazily by start; on equal starts
    the lower channel first. One channel passes through with its speakers untouched."""
    if len(channels) == 1:
        return channels[0][1]
    labelled = [_labelled(number, words) for number, words in channels]
    return map(itemgetter(1), heapq.merge(*labelled, key=itemgetter(0)))


def _labelled(channel: object, words: Iterator[StoreWord]) -> Iterator[tuple[float, StoreWord]]:
    # An untimed word sorts with the word before it in its channel, so it stays beside it.
    last = 0.0
    for word in words:
        word["speaker"] = channel_speaker(channel, word["speaker"])
        start = word["start"]
        if start is not None:
            last = start
        yield last, word


# --- Deepgram --------------------------------------------------------------------------------


def deepgram(
    response: Mapping[str, Any] | Sequence[Any], *, channel: int | None = None
) -> Iterator[StoreWord]:
    """Deepgram pre-recorded: ``results.channels[c].alternatives[0].words[]`` with ``word``
    (lowercase), ``punctuated_word`` (when punctuate / smart_format is on), ``start``,
    ``end`` (seconds), ``confidence`` and, when diarized, ``speaker`` (an integer).

    Also Deepgram live (the websocket): one ``{"type": "Results", "channel": {"alternatives":
    [...]}, "is_final": ...}`` message, or a saved session, a list of the messages as
    received (see :func:`_deepgram_live`).

    The stored text is ``punctuated_word`` when present (what the transcript shows), else
    ``word``. ``speaker_confidence`` has no place in the store's word and is not kept.
    Multichannel (one word list per channel, each starting at 0): merged, speaker ``ch0``,
    ``ch1`` (``ch0:1`` when diarized too); ``channel=`` selects one channel.
    """
    engine = "deepgram"
    if isinstance(response, list | tuple):
        if any(isinstance(m, Mapping) and "results" in m and "type" not in m for m in response):
            mapping(response, engine, "$")  # pre-recorded responses in a list: say "wrapped"
        return _deepgram_live(response, channel, single=False)
    if isinstance(response, Mapping) and "results" not in response and "type" in response:
        return _deepgram_live([response], channel, single=True)
    results = mapping(
        required(mapping(response, engine, "$"), "results", engine, ""), engine, "results"
    )
    channels = items(required(results, "channels", engine, "results"), engine, "results.channels")
    chosen = range(len(channels)) if channel is None else [channel]
    streams = []
    for c in chosen:
        if not 0 <= c < len(channels):
            refuse(engine, "results.channels", f"no channel {c}", f"pick 0..{len(channels) - 1}")
        where = f"results.channels[{c}].alternatives"
        alternatives = items(
            mapping(channels[c], engine, f"results.channels[{c}]").get("alternatives"),
            engine,
            where,
        )
        if not alternatives:
            continue
        best = mapping(alternatives[0], engine, f"{where}[0]")
        words = items(required(best, "words", engine, f"{where}[0]"), engine, f"{where}[0].words")
        streams.append((c, _deepgram_words(words, f"{where}[0].words")))
    return merge_channels(streams) if streams else iter(())


# The live messages that carry no words (the websocket also sends these; a saved session
# holds them between the results).
_LIVE_OTHER = frozenset({"Metadata", "SpeechStarted", "UtteranceEnd"})


def _deepgram_live(
    messages: Sequence[Any], channel: int | None, *, single: bool
) -> Iterator[StoreWord]:
    """Deepgram live results: ``channel.alternatives[0].words[]`` of each ``Results``
    message, final results only (``is_final: true``; an interim result is revised by the
    final one that follows it, so keeping it would store its words twice), in the order
    received. Word times are already from the start of the stream. ``channel_index``
    (``[channel, channels]``) tells a multichannel stream's channels apart: merged as for
    pre-recorded output, or ``channel=`` picks one. A single message must be final; a
    session must hold at least one final result."""
    engine = "deepgram"
    by_channel: dict[int, list[tuple[str, Sequence[Any]]]] = {}
    results = 0
    for m, raw in enumerate(messages):
        where = "" if single else f"[{m}]"
        message = mapping(raw, engine, where or "$")
        kind = message.get("type")
        if isinstance(kind, str) and kind in _LIVE_OTHER:
            continue
        if kind != "Results":
            refuse(
                engine,
                _join(where, "type"),
                f"unknown message type {kind!r}",
                "save the websocket's messages as received (Results, Metadata, ...)",
            )
        results += 1
        final = message.get("is_final")
        if not isinstance(final, bool):
            refuse(
                engine, _join(where, "is_final"), f"expected true or false, got {final!r}", "fix"
            )
        if not final:
            if single:
                refuse(
                    engine,
                    _join(where, "is_final"),
                    "an interim result (its words are revised by the final result after it)",
                    "save the final results (is_final: true)",
                )
            continue
        number = _live_channel(message.get("channel_index"), _join(where, "channel_index"))
        body = mapping(required(message, "channel", engine, where), engine, _join(where, "channel"))
        path = _join(where, "channel.alternatives")
        alternatives = items(body.get("alternatives"), engine, path)
        if not alternatives:
            continue
        best = mapping(alternatives[0], engine, f"{path}[0]")
        words = items(required(best, "words", engine, f"{path}[0]"), engine, f"{path}[0].words")
        by_channel.setdefault(number, []).append((f"{path}[0].words", words))
    if results and not by_channel and not single:
        refuse(engine, "$", f"no final result (is_final: true) in {results} result(s)", "save them")
    if channel is not None:
        if channel not in by_channel:
            refuse(engine, "channel_index", f"no channel {channel}", f"pick {sorted(by_channel)}")
        by_channel = {channel: by_channel[channel]}
    streams = [
        (c, _chained(_deepgram_words(words, path) for path, words in group))
        for c, group in sorted(by_channel.items())
    ]
    return merge_channels(streams) if streams else iter(())


def _live_channel(value: object, path: str) -> int:
    """The channel of a live message, from ``channel_index`` = ``[channel, channels]``; a
    message without one is of a single-channel stream: 0."""
    engine = "deepgram"
    if value is None:
        return 0
    pair = items(value, engine, path)
    if len(pair) != 2:
        refuse(engine, path, f"expected [channel, channels], got {pair!r}", "fix it")
    return integer(pair[0], engine, f"{path}[0]", "a channel number")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _chained(streams: Iterable[Iterator[StoreWord]]) -> Iterator[StoreWord]:
    for stream in streams:
        yield from stream


def _deepgram_words(words: Sequence[Any], where: str) -> Iterator[StoreWord]:
    engine = "deepgram"
    for w, raw in enumerate(words):
        if type(raw) is dict:
            t = raw.get("punctuated_word")
            if t is None:
                t = raw.get("word")
            start, end, score = raw.get("start"), raw.get("end"), raw.get("confidence")
            label = raw.get("speaker")
            fast = fast_word(t, start, end, score, label)
            if fast is not None:
                yield fast
                continue
        path = f"{where}[{w}]"
        word = mapping(raw, engine, path)
        key = "punctuated_word" if word.get("punctuated_word") is not None else "word"
        yield {
            "word": text(word.get(key), engine, f"{path}.{key}"),
            "start": seconds(word.get("start"), engine, f"{path}.start"),
            "end": seconds(word.get("end"), engine, f"{path}.end"),
            "confidence": confidence(word.get("confidence"), engine, f"{path}.confidence"),
            "speaker": speaker(word.get("speaker"), engine, f"{path}.speaker"),
        }


# --- AssemblyAI ------------------------------------------------------------------------------


def assemblyai(transcript: Mapping[str, Any], *, channel: str | None = None) -> Iterator[StoreWord]:
    """AssemblyAI's transcript: ``words[]`` with ``text``, ``start`` / ``end`` in
    milliseconds, ``confidence`` and ``speaker`` (``"A"``; null unless speaker_labels).

    Multichannel transcripts already interleave the channels' words by time, each word with
    its ``channel`` (``"1"``, ``"2"``: AssemblyAI counts from 1); their speaker becomes
    ``ch1`` / ``ch1:A``, the same form as Deepgram's merged channels. ``channel=`` keeps only
    that channel's words, with their own speakers.
    """
    engine = "assemblyai"
    transcript = mapping(transcript, engine, "$")
    words = items(required(transcript, "words", engine, ""), engine, "words")
    channels = transcript.get("audio_channels")
    multichannel = (isinstance(channels, int) and channels > 1) or any(
        isinstance(w, Mapping) and w.get("channel") is not None for w in words[:1]
    )
    return _assemblyai_words(words, multichannel, channel)


def _assemblyai_words(
    words: Sequence[Any], multichannel: bool, only: str | None
) -> Iterator[StoreWord]:
    engine = "assemblyai"
    channelled = multichannel or only is not None
    for w, raw in enumerate(words):
        if type(raw) is dict and not channelled:
            fast = _assemblyai_plain(raw)
            if fast is not None:
                yield fast
                continue
        path = f"words[{w}]"
        word = mapping(raw, engine, path)
        own = speaker(word.get("speaker"), engine, f"{path}.speaker")
        if multichannel or only is not None:
            number = speaker(word.get("channel"), engine, f"{path}.channel")
            if number is None:
                refuse(engine, f"{path}.channel", "missing in a multichannel transcript", "fix")
            if only is not None:
                if number != str(only):
                    continue
            else:
                # AssemblyAI's multichannel words carry the channel number as their speaker
                # ("1" on channel "1"): it names no diarized speaker, so it adds nothing.
                own = channel_speaker(number, None if own == number else own)
        yield {
            "word": text(word.get("text"), engine, f"{path}.text"),
            "start": milliseconds(word.get("start"), engine, f"{path}.start"),
            "end": milliseconds(word.get("end"), engine, f"{path}.end"),
            "confidence": confidence(word.get("confidence"), engine, f"{path}.confidence"),
            "speaker": own,
        }


def _assemblyai_plain(word: dict[str, Any]) -> StoreWord | None:
    """The fast path of one word (see :func:`~media_store.asr.units.plain`): whole
    milliseconds, else None for the checked path."""
    start, end = word.get("start"), word.get("end")
    if not (
        type(start) is int
        and type(end) is int
        and -MAX_FAST_MS <= start <= MAX_FAST_MS
        and -MAX_FAST_MS <= end <= MAX_FAST_MS
    ):
        return None
    t, score, label = word.get("text"), word.get("confidence"), word.get("speaker")
    start_s, end_s = start / 1000, end / 1000
    return fast_word(t, start_s, end_s, score, label)


# --- AWS Transcribe --------------------------------------------------------------------------


def aws_transcribe(job: Mapping[str, Any], *, channel: str | None = None) -> Iterator[StoreWord]:
    """AWS Transcribe's output file: ``results.items[]``; a ``pronunciation`` item is a word
    (``alternatives[0].content``, ``start_time`` / ``end_time`` and ``confidence`` as
    numeric strings), a ``punctuation`` item has no times and is appended to the word before
    it (``"Hello"`` + ``","`` -> ``"Hello,"``; punctuation before any word is prepended to
    the first word).

    Speakers: ``speaker_label`` on the item (newer output), else looked up by start time in
    ``results.speaker_labels.segments[].items[]`` (older output); kept as given (``spk_0``).
    Channel identification (``results.channel_labels.channels[]``, each with its
    ``channel_label`` ``ch_0`` and ``items``): merged, speaker ``ch0`` / ``ch0:spk_1``;
    ``channel="ch_1"`` selects one.
    """
    engine = "aws-transcribe"
    results = mapping(required(mapping(job, engine, "$"), "results", engine, ""), engine, "results")
    speakers = _aws_speakers(results)
    labels = results.get("channel_labels")
    if labels is None:
        item_list = items(required(results, "items", engine, "results"), engine, "results.items")
        return _aws_words(item_list, "results.items", speakers)
    where = "results.channel_labels.channels"
    channels = items(
        mapping(labels, engine, "results.channel_labels").get("channels"), engine, where
    )
    streams = []
    for c, raw in enumerate(channels):
        entry = mapping(raw, engine, f"{where}[{c}]")
        label = text(entry.get("channel_label"), engine, f"{where}[{c}].channel_label")
        if channel is not None and label != channel:
            continue
        item_list = items(entry.get("items"), engine, f"{where}[{c}].items")
        number = label.removeprefix("ch_")
        streams.append((number, _aws_words(item_list, f"{where}[{c}].items", speakers)))
    if channel is not None and not streams:
        refuse(engine, where, f"no channel labelled {channel!r}", "pick a channel_label present")
    if channel is not None:
        return streams[0][1]
    return merge_channels(streams) if streams else iter(())


def _aws_speakers(results: Mapping[str, Any]) -> dict[str, str]:
    """Older output: start_time (the string, as the items carry it) -> speaker_label."""
    engine = "aws-transcribe"
    labels = results.get("speaker_labels")
    if labels is None:
        return {}
    where = "results.speaker_labels.segments"
    found: dict[str, str] = {}
    for s, segment in enumerate(
        items(mapping(labels, engine, where).get("segments") or [], engine, where)
    ):
        for i, raw in enumerate(
            items(
                mapping(segment, engine, f"{where}[{s}]").get("items") or [],
                engine,
                f"{where}[{s}].items",
            )
        ):
            item = mapping(raw, engine, f"{where}[{s}].items[{i}]")
            start, label = item.get("start_time"), item.get("speaker_label")
            if isinstance(start, str) and isinstance(label, str):
                found[start] = label
    return found


def _aws_words(
    item_list: Sequence[Any], where: str, speakers: Mapping[str, str]
) -> Iterator[StoreWord]:
    pending: StoreWord | None = None  # held back until we know no punctuation follows
    leading = ""  # punctuation seen before the first word
    for i, raw in enumerate(item_list):
        item = _aws_plain(raw, speakers)
        if item is None:
            item = _aws_item(raw, f"{where}[{i}]", speakers)
        if isinstance(item, str):  # punctuation
            if pending is None:
                leading += item
            else:
                pending["word"] += item
            continue
        word = item
        if pending is not None:
            yield pending
        if leading:
            word["word"] = leading + word["word"]
            leading = ""
        pending = word
    if pending is not None:
        yield pending


def _aws_plain(raw: object, speakers: Mapping[str, str]) -> StoreWord | str | None:
    """The fast path of one item: a word (its times and confidence numeric strings), a
    punctuation item's text, or None for the checked path (:func:`_aws_item`)."""
    if type(raw) is not dict:
        return None
    alternatives = raw.get("alternatives")
    if type(alternatives) is not list or not alternatives or type(alternatives[0]) is not dict:
        return None
    best = alternatives[0]
    content, kind = best.get("content"), raw.get("type")
    if type(content) is not str:
        return None
    if kind == "punctuation":
        return content
    start_text, end_text, score_text = (
        raw.get("start_time"),
        raw.get("end_time"),
        best.get("confidence"),
    )
    if kind != "pronunciation" or not (
        type(start_text) is str and type(end_text) is str and type(score_text) is str
    ):
        return None
    try:
        start, end, score = float(start_text), float(end_text), float(score_text)
    except ValueError:
        return None
    label = raw.get("speaker_label")
    if label is None:
        label = speakers.get(start_text)
    return fast_word(content, start, end, score, label)


def _aws_item(raw: object, path: str, speakers: Mapping[str, str]) -> StoreWord | str:
    """One item, every value checked (refusals name ``path``): a word, or a punctuation
    item's text."""
    engine = "aws-transcribe"
    item = mapping(raw, engine, path)
    alternatives = items(
        required(item, "alternatives", engine, path), engine, f"{path}.alternatives"
    )
    if not alternatives:
        refuse(engine, f"{path}.alternatives", "empty", "check the file")
    best = mapping(alternatives[0], engine, f"{path}.alternatives[0]")
    content = text(best.get("content"), engine, f"{path}.alternatives[0].content")
    kind = item.get("type")
    if kind == "punctuation":
        return content
    if kind != "pronunciation":
        refuse(engine, f"{path}.type", f"unknown item type {kind!r}", "expected pronunciation")
    start_text = item.get("start_time")
    label = item.get("speaker_label")
    if label is None and isinstance(start_text, str):
        label = speakers.get(start_text)
    return {
        "word": content,
        "start": seconds_text(start_text, engine, f"{path}.start_time"),
        "end": seconds_text(item.get("end_time"), engine, f"{path}.end_time"),
        "confidence": confidence(
            best.get("confidence"), engine, f"{path}.alternatives[0].confidence"
        ),
        "speaker": speaker(label, engine, f"{path}.speaker_label"),
    }


# --- Google Cloud Speech-to-Text v1 --------------------------------------------------------------


def google_stt(response: Mapping[str, Any], *, channel: int | None = None) -> Iterator[StoreWord]:
    """Google Cloud Speech-to-Text v1 (recognize / longrunningrecognize):
    ``results[].alternatives[0].words[]`` with ``word``, ``startTime`` / ``endTime`` as
    ``"12.300s"`` (JSON) or ``{"seconds": "12", "nanos": 300000000}`` (REST / JS objects),
    ``confidence`` only when word confidence was requested (otherwise None: the
    alternative's confidence is the whole result's, not a word's) and ``speakerTag`` (an
    integer; ``speakerLabel`` in newer responses).

    Results are consecutive pieces of the audio and are read in order. With diarization the
    last result repeats every word of the audio with its speaker: then only that result is
    read. With separate recognition per channel each result has a ``channelTag``: merged,
    speaker ``ch1`` / ``ch1:2`` (Google counts channels from 1); ``channel=`` selects one.
    """
    engine = "google-stt"
    results = items(
        required(mapping(response, engine, "$"), "results", engine, ""), engine, "results"
    )
    indexed = list(enumerate(results))
    if indexed and _google_diarized(indexed[-1][1]):
        indexed = indexed[-1:]
    by_channel: dict[int, list[tuple[int, Any]]] = {}
    for r, result in indexed:
        tag = mapping(result, engine, f"results[{r}]").get("channelTag")
        by_channel.setdefault(int(tag) if isinstance(tag, int) else 0, []).append((r, result))
    if channel is not None:
        if channel not in by_channel:
            refuse(
                engine, "results", f"no channelTag {channel}", f"pick one of {sorted(by_channel)}"
            )
        return _google_words(by_channel[channel])
    streams = [(tag, _google_words(group)) for tag, group in sorted(by_channel.items())]
    return merge_channels(streams) if streams else iter(())


def _google_diarized(result: object) -> bool:
    # Only a well-formed last result is looked at here; a malformed one is refused when read.
    alternatives = result.get("alternatives") if isinstance(result, Mapping) else None
    if not isinstance(alternatives, list | tuple) or not alternatives:
        return False
    if not isinstance(alternatives[0], Mapping):
        return False
    words = alternatives[0].get("words") or []
    if not isinstance(words, list | tuple):
        return False
    return any(isinstance(w, Mapping) and ("speakerTag" in w or "speakerLabel" in w) for w in words)


def _google_words(results: Iterable[tuple[int, Any]]) -> Iterator[StoreWord]:
    engine = "google-stt"
    for r, result in results:
        where = f"results[{r}].alternatives"
        alternatives = items(
            mapping(result, engine, f"results[{r}]").get("alternatives") or [], engine, where
        )
        if not alternatives:
            continue
        best = mapping(alternatives[0], engine, f"{where}[0]")
        for w, raw in enumerate(items(best.get("words") or [], engine, f"{where}[0].words")):
            if type(raw) is dict:
                fast = _google_plain(raw)
                if fast is not None:
                    yield fast
                    continue
            path = f"{where}[0].words[{w}]"
            word = mapping(raw, engine, path)
            label = word.get("speakerLabel") or word.get("speakerTag")
            yield {
                "word": text(word.get("word"), engine, f"{path}.word"),
                "start": duration(
                    word.get("startTime", word.get("startOffset")), engine, f"{path}.startTime"
                ),
                "end": duration(
                    word.get("endTime", word.get("endOffset")), engine, f"{path}.endTime"
                ),
                "confidence": confidence(word.get("confidence"), engine, f"{path}.confidence"),
                "speaker": speaker(label, engine, f"{path}.speakerTag"),
            }


def _google_plain(word: dict[str, Any]) -> StoreWord | None:
    """The fast path of one word: times in the JSON form (``"1.230s"``), else None."""
    start_text, end_text = word.get("startTime"), word.get("endTime")
    if type(start_text) is not str or type(end_text) is not str:
        return None
    start, end = duration_text(start_text), duration_text(end_text)
    t, score = word.get("word"), word.get("confidence")
    label = word.get("speakerLabel") or word.get("speakerTag")
    return fast_word(t, start, end, score, label)


# --- Microsoft Azure Speech --------------------------------------------------------------------


def azure_speech(
    result: Mapping[str, Any] | list[Any], *, channel: int | None = None
) -> Iterator[StoreWord]:
    """Azure Speech, detailed output with word-level timestamps: ``NBest[0].Words[]`` with
    ``Word``, ``Offset`` and ``Duration`` in 100-ns ticks and ``Confidence``; one result, or
    a list of them (continuous recognition). Also the batch transcription file:
    ``recognizedPhrases[].nBest[0].words[]`` with ``offsetInTicks`` / ``durationInTicks``,
    the phrase's ``speaker`` (an integer, when diarized) and ``channel``.

    A word ends at ``(Offset + Duration) / 10**7`` seconds, added as ticks then divided
    once. Batch multichannel: merged, speaker ``ch0`` / ``ch0:1``; ``channel=`` selects one.
    """
    engine = "azure-speech"
    if isinstance(result, Mapping) and "recognizedPhrases" in result:
        return _azure_batch(result, channel)
    results = result if isinstance(result, list) else [mapping(result, engine, "$")]
    return _azure_words(results, isinstance(result, list))


def _azure_words(results: list[Any], is_list: bool) -> Iterator[StoreWord]:
    engine = "azure-speech"
    for r, raw in enumerate(results):
        where = f"[{r}].NBest" if is_list else "NBest"
        one = mapping(raw, engine, f"[{r}]" if is_list else "$")
        nbest = one.get("NBest")
        if nbest is None:
            if one.get("RecognitionStatus") not in (None, "Success"):
                continue  # NoMatch / InitialSilenceTimeout: nothing was recognised
            refuse(engine, where, "missing", "request OutputFormat.Detailed with word timestamps")
        best = mapping(items(nbest, engine, where)[0], engine, f"{where}[0]")
        words = items(required(best, "Words", engine, f"{where}[0]"), engine, f"{where}[0].Words")
        for w, raw_word in enumerate(words):
            if type(raw_word) is dict:
                fast = _azure_plain(raw_word, "Word", "Offset", "Duration", "Confidence", None)
                if fast is not None:
                    yield fast
                    continue
            path = f"{where}[0].Words[{w}]"
            word = mapping(raw_word, engine, path)
            offset = ticks(required(word, "Offset", engine, path), engine, f"{path}.Offset")
            length = ticks(required(word, "Duration", engine, path), engine, f"{path}.Duration")
            yield {
                "word": text(word.get("Word"), engine, f"{path}.Word"),
                "start": from_ticks(offset),
                "end": from_ticks(offset + length),
                "confidence": confidence(word.get("Confidence"), engine, f"{path}.Confidence"),
                "speaker": None,
            }


def _azure_batch(result: Mapping[str, Any], channel: int | None) -> Iterator[StoreWord]:
    engine = "azure-speech"
    phrases = items(result.get("recognizedPhrases"), engine, "recognizedPhrases")
    by_channel: dict[int, list[int]] = {}
    for p, phrase in enumerate(phrases):
        number = mapping(phrase, engine, f"recognizedPhrases[{p}]").get("channel", 0)
        by_channel.setdefault(number if isinstance(number, int) else 0, []).append(p)
    if channel is not None:
        if channel not in by_channel:
            refuse(engine, "recognizedPhrases", f"no channel {channel}", "pick a channel present")
        return _azure_phrase_words(phrases, by_channel[channel])
    streams = [(c, _azure_phrase_words(phrases, group)) for c, group in sorted(by_channel.items())]
    return merge_channels(streams) if streams else iter(())


def _azure_phrase_words(phrases: Sequence[Any], indexes: list[int]) -> Iterator[StoreWord]:
    engine = "azure-speech"
    for p in indexes:
        where = f"recognizedPhrases[{p}]"
        phrase = phrases[p]
        own = speaker(phrase.get("speaker"), engine, f"{where}.speaker")
        nbest = items(required(phrase, "nBest", engine, where), engine, f"{where}.nBest")
        if not nbest:
            continue
        best = mapping(nbest[0], engine, f"{where}.nBest[0]")
        words = items(
            required(best, "words", engine, f"{where}.nBest[0]"), engine, f"{where}.nBest[0].words"
        )
        for w, raw in enumerate(words):
            if type(raw) is dict:
                fast = _azure_plain(
                    raw, "word", "offsetInTicks", "durationInTicks", "confidence", own
                )
                if fast is not None:
                    yield fast
                    continue
            path = f"{where}.nBest[0].words[{w}]"
            word = mapping(raw, engine, path)
            offset = ticks(
                required(word, "offsetInTicks", engine, path), engine, f"{path}.offsetInTicks"
            )
            length = ticks(
                required(word, "durationInTicks", engine, path), engine, f"{path}.durationInTicks"
            )
            yield {
                "word": text(word.get("word"), engine, f"{path}.word"),
                "start": from_ticks(offset),
                "end": from_ticks(offset + length),
                "confidence": confidence(word.get("confidence"), engine, f"{path}.confidence"),
                "speaker": own,
            }


def _azure_plain(
    word: dict[str, Any],
    text_key: str,
    offset_key: str,
    length_key: str,
    score_key: str,
    own: str | None,
) -> StoreWord | None:
    """The fast path of one word: 64-bit tick counts, else None."""
    offset, length = word.get(offset_key), word.get(length_key)
    if (
        type(offset) is not int
        or type(length) is not int
        or not -MAX_TICKS < offset < MAX_TICKS
        or not -MAX_TICKS < length < MAX_TICKS
    ):
        return None
    t, score = word.get(text_key), word.get(score_key)
    start, end = from_ticks(offset), from_ticks(offset + length)
    return fast_word(t, start, end, score, own)


# --- IBM Watson Speech to Text -------------------------------------------------------------------


def ibm_watson(response: Mapping[str, Any] | Sequence[Any]) -> Iterator[StoreWord]:
    """IBM Watson Speech to Text: ``results[].alternatives[0].timestamps`` =
    ``[[word, start, end], ...]`` (seconds) with the parallel ``word_confidence`` =
    ``[[word, confidence], ...]`` (when requested), and the top-level ``speaker_labels[]``
    (``from``, ``to``, ``speaker`` an integer) matched to words by their start time.
    Word text is kept as given (a trailing space has been seen: ``"Chapter "``).

    Also a websocket session saved as a list of its messages: the results of every message
    in order, final ones only (``final: true``; an interim result is revised by the final
    one after it), speakers from every ``{"speaker_labels": [...]}`` message (a later label
    for the same start revises an earlier one); ``{"state": ...}`` messages are skipped and
    an ``{"error": ...}`` message is refused with its text."""
    engine = "ibm-watson"
    if isinstance(response, list | tuple):
        return _watson_session(response)
    response = mapping(response, engine, "$")
    results = items(required(response, "results", engine, ""), engine, "results")
    speakers: dict[float, str | None] = {}
    _watson_speakers(response.get("speaker_labels"), "speaker_labels", speakers)
    return _watson_words(((f"results[{r}]", result) for r, result in enumerate(results)), speakers)


def _watson_session(messages: Sequence[Any]) -> Iterator[StoreWord]:
    engine = "ibm-watson"
    speakers: dict[float, str | None] = {}
    finals: list[tuple[str, Any]] = []
    for m, raw in enumerate(messages):
        message = mapping(raw, engine, f"[{m}]")
        if "error" in message:
            refuse(
                engine,
                f"[{m}].error",
                f"the session ended in an error: {message['error']!r}",
                "import a session that completed",
            )
        if "results" not in message and "speaker_labels" not in message:
            if "state" in message:
                continue  # {"state": "listening"}: the service is ready, no words
            refuse(engine, f"[{m}]", "neither results nor speaker_labels", "save the messages")
        _watson_speakers(message.get("speaker_labels"), f"[{m}].speaker_labels", speakers)
        if "results" not in message:
            continue
        results = items(message.get("results"), engine, f"[{m}].results")
        for r, result in enumerate(results):
            path = f"[{m}].results[{r}]"
            final = mapping(result, engine, path).get("final")
            if not isinstance(final, bool):
                refuse(engine, f"{path}.final", f"expected true or false, got {final!r}", "fix")
            if final:
                finals.append((path, result))
    return _watson_words(iter(finals), speakers)


def _watson_speakers(labels: object, where: str, speakers: dict[float, str | None]) -> None:
    """Add ``speaker_labels[]`` (start time -> speaker) to ``speakers``; later ones win."""
    engine = "ibm-watson"
    for s, raw in enumerate(items(labels or [], engine, where)):
        if type(raw) is dict:  # the fast path: a float time, an int or str speaker
            start, own = raw.get("from"), raw.get("speaker")
            if type(start) is float and start - start == 0.0 and type(own) in _LABEL:
                speakers[start] = own if type(own) is str else str(own)
                continue
        label = mapping(raw, engine, f"{where}[{s}]")
        start = seconds(label.get("from"), engine, f"{where}[{s}].from")
        if start is not None:
            speakers[start] = speaker(label.get("speaker"), engine, f"{where}[{s}].speaker")


def _watson_words(
    results: Iterable[tuple[str, Any]], speakers: Mapping[float, str | None]
) -> Iterator[StoreWord]:
    engine = "ibm-watson"
    for at, result in results:
        where = f"{at}.alternatives"
        alternatives = items(mapping(result, engine, at).get("alternatives") or [], engine, where)
        if not alternatives:
            continue
        best = mapping(alternatives[0], engine, f"{where}[0]")
        stamps = items(
            required(best, "timestamps", engine, f"{where}[0]"), engine, f"{where}[0].timestamps"
        )
        confidences = best.get("word_confidence")
        if confidences is not None:
            confidences = items(confidences, engine, f"{where}[0].word_confidence")
            if len(confidences) != len(stamps):
                refuse(
                    engine,
                    f"{where}[0].word_confidence",
                    f"{len(confidences)} entries for {len(stamps)} timestamps",
                    "give one [word, confidence] per timestamp",
                )
        for w, raw in enumerate(stamps):
            if type(raw) is list and len(raw) == 3:
                word, start, end = raw
                score, paired = None, True
                if confidences is not None:
                    pair = confidences[w]
                    paired = type(pair) is list and len(pair) == 2 and pair[0] == word
                    score = pair[1] if paired else None
                if paired and plain(word, start, end, score):
                    yield {
                        "word": word,
                        "start": start,
                        "end": end,
                        "confidence": score,
                        "speaker": speakers.get(start),
                    }
                    continue
            path = f"{where}[0].timestamps[{w}]"
            entry = items(raw, engine, path)
            if len(entry) != 3:
                refuse(engine, path, f"expected [word, start, end], got {entry!r}", "fix it")
            word = text(entry[0], engine, f"{path}[0]")
            start = seconds(entry[1], engine, f"{path}[1]")
            score = None
            if confidences is not None:
                pair = items(confidences[w], engine, f"{where}[0].word_confidence[{w}]")
                if len(pair) != 2 or pair[0] != word:
                    refuse(
                        engine,
                        f"{where}[0].word_confidence[{w}]",
                        f"expected [{word!r}, confidence], got {pair!r}",
                        "keep word_confidence parallel to timestamps",
                    )
                score = confidence(pair[1], engine, f"{where}[0].word_confidence[{w}][1]")
            yield {
                "word": word,
                "start": start,
                "end": seconds(entry[2], engine, f"{path}[2]"),
                "confidence": score,
                "speaker": speakers.get(start) if start is not None else None,
            }


__all__ = [
    "assemblyai",
    "aws_transcribe",
    "azure_speech",
    "channel_speaker",
    "deepgram",
    "google_stt",
    "ibm_watson",
    "merge_channels",
]
