"""The storage codec of word timestamps: :class:`~media_store.words.Words` to and from the
rows of ``transcription_word_segments`` (migrations/0003, speakers as of 0006).

A segment holds up to :data:`SEGMENT_WORDS` consecutive words of one transcription as packed
columns, written as one element per segment of each parameter array of a statement
(sql/words.sql): the words as one text plus their lengths (int4), starts, ends
and confidences as big-endian float8 in ``bytea`` (the formats of ``int4send``/``float8send``,
so the SQL functions of the migrations can read them too), and the speakers as a small
dictionary plus one code byte a word (:func:`pack_speakers`).

Every column of a segment is a single value for the driver: a ``bytea`` or a ``text`` is one
copy on both sides, where an array of a word's values would cost the driver and the server a
step per word (a statement's arrays take a step per segment).
"""

from __future__ import annotations

import math
import struct
import sys
import uuid
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Any, TypeAlias

import asyncpg

from media_store._compiled import compiled
from media_store.words.timestamps import SpeakerCodes, Words, concat, none_if_empty

# Words a storage segment holds at most. A 60-second window of speech (150-250 words) touches
# one or two segments, and only the words inside it are decoded. Measured (a diarized 3.1 h,
# 40,000-word transcript, when segments were written by COPY): 128 or 64 slowed the write down
# by a third and more (more rows, each with its index entries and checks), and 64 takes 31
# bytes a word in its rows alone. At most 256: a speaker code is one byte (see pack_speakers).
SEGMENT_WORDS = 256

SEGMENT_TABLE = "transcription_word_segments"
# The packed columns a read of segments returns for :func:`segments_words` to decode, as its
# query declares them (name, type).
WORD_COLUMNS: list[tuple[str, Any]] = [
    ("words", str),
    ("word_lengths", bytes),
    ("starts", bytes),
    ("ends", bytes),
    ("confidences", bytes),
    ("speakers", bytes | None),
]
SEGMENT_COLUMNS = (
    "job_id",  # the distribution key (migrations/0009)
    "transcription_id",
    "seq",
    "first_start",
    "last_start",
    "word_count",
    "words",
    "word_lengths",
    "starts",
    "ends",
    "confidences",
    "speakers",
)

Segment: TypeAlias = "asyncpg.Record | Mapping[str, Any]"

_SWAP = sys.byteorder == "little"  # packed numbers are big-endian, as float8send writes them
_NAN = math.nan


def pack_floats(values: list[float]) -> bytes:
    """``values`` as big-endian IEEE-754 doubles (the segments' bytea format)."""
    # struct converts and orders the bytes in one C loop: measured faster than an array
    # of doubles byteswapped (decoding is the other way round, see unpack_floats).
    return struct.pack(f">{len(values)}d", *values)


def unpack_floats(data: bytes) -> list[float]:
    unpacked = array("d")
    unpacked.frombytes(data)
    if _SWAP:
        unpacked.byteswap()
    return unpacked.tolist()


def pack_lengths(words: list[str]) -> bytes:
    """The length of each word in characters, as big-endian int4s (int4send's format)."""
    # struct converts and orders the bytes in one C loop: measured a third faster than an
    # array of the lengths byteswapped.
    return struct.pack(f">{len(words)}i", *map(len, words))


def split_words(text: str, lengths: bytes) -> list[str]:
    """The words :func:`pack_lengths` and a concatenation made: the inverse of both."""
    return _split(text, lengths, 0, len(lengths) // 4)


# The compiled _split (a slice a word, no list of offsets made), or None.
_compiled_split: Callable[[str, bytes, int, int], list[str] | None] | None = compiled("split_words")


def _split(text: str, lengths: bytes, lo: int, hi: int) -> list[str]:
    """Words ``lo`` to ``hi`` (exclusive) of :func:`split_words`; only those are sliced."""
    if _compiled_split is not None:
        words = _compiled_split(text, lengths, lo, hi)
        if words is not None:
            return words
    unpacked = array("i")
    unpacked.frombytes(lengths[: 4 * hi])
    if _SWAP:
        unpacked.byteswap()
    ends = list(accumulate(unpacked))
    firsts = [0, *ends]
    return [text[i:j] for i, j in zip(firsts[lo:hi], ends[lo:hi], strict=True)]


def pack_confidences(values: list[float | None]) -> bytes:
    """Like :func:`pack_floats`, with NaN where a word has no confidence."""
    try:  # mostly every word has one: no search for None ahead
        return pack_floats(values)  # type: ignore[arg-type]
    except struct.error:
        return pack_floats([_NAN if v is None else v for v in values])


def unpack_confidences(data: bytes) -> list[float | None]:
    values: list[float | None] = unpack_floats(data)  # type: ignore[assignment]
    # The sum is NaN when an element is (confidences are in [0, 1]: it cannot overflow).
    if math.isnan(sum(values)):  # type: ignore[arg-type]
        return [None if v != v else v for v in values]  # NaN is the only value != itself
    return values


# --- speakers ----------------------------------------------------------------------------------

_COUNT = struct.Struct("!H")
_LENGTH = struct.Struct("!i")
_NO_SPEAKER = _LENGTH.pack(-1)
# Up to this many bytes of speaker values (diarized speech: a few speakers, a few dozen bytes)
# are stored whole in every segment of a batch, whether the segment uses them all or not:
# no per-segment pass over its codes.
_SHARED_VALUES = 256


def _entry(speaker: str | None) -> bytes:
    if speaker is None:
        return _NO_SPEAKER
    data = speaker.encode()
    return _LENGTH.pack(len(data)) + data


def pack_speakers(speakers: Sequence[str | None]) -> bytes | None:
    """The speakers of one segment's words as one bytea, or None when no word has one.

    Layout (migrations/0006): a count k (int2), k distinct values, each an int4 byte length
    (-1: no speaker) and its UTF-8 bytes, then one byte a word: the index of its value among
    the k. Written here sorted, no speaker last. Diarized speech has a few speakers: the
    values take a few dozen bytes, and the codes compress to almost nothing.
    """
    return next(_pack_speaker_runs(speakers, len(speakers)))


def _pack_speaker_runs(
    speakers: Sequence[str | None], run: int, coded: SpeakerCodes | None = None
) -> Iterator[bytes | None]:
    """:func:`pack_speakers` of each ``run`` consecutive speakers, the whole column coded at
    once: one dict lookup a word (in C), then per segment a slice of the codes. ``coded``:
    the names and codes the compiled reader made along with the columns (the same as made
    here)."""
    if coded is not None:
        names, codes = coded
    else:
        distinct = set(speakers)
        names = [*sorted(name for name in distinct if name is not None)]
        if None in distinct:
            names.append(None)  # last: see below
        if len(names) > 256:  # more than a byte codes: each run with its own values
            if run >= len(speakers):
                raise ValueError("a segment holds at most 256 distinct speakers")
            for lo in range(0, len(speakers), run):
                yield from _pack_speaker_runs(speakers[lo : lo + run], run)
            return
        index = {name: code for code, name in enumerate(names)}
        codes = bytes(itemgetter(*speakers)(index) if len(speakers) > 1 else [index[speakers[0]]])
    values = _values(names)
    no_speaker = len(names) - 1 if names[-1] is None else None
    for lo in range(0, len(speakers), run):
        part = codes[lo : lo + run]
        if no_speaker is not None and part.count(no_speaker) == len(part):
            yield None  # no speaker in this run
        elif len(values) <= _SHARED_VALUES:
            yield values + part  # all the values, used here or not: a few bytes
        else:  # only the values this run uses, renumbered
            kept = sorted(set(part))
            renumber = bytearray(256)
            for new, old in enumerate(kept):
                renumber[old] = new
            yield _values([names[code] for code in kept]) + part.translate(renumber)


def _values(names: list[str | None]) -> bytes:
    return b"".join([_COUNT.pack(len(names)), *map(_entry, names)])


def unpack_speakers(data: bytes, lo: int = 0, hi: int | None = None) -> list[str | None]:
    """The speakers of words ``lo`` to ``hi`` (exclusive; default: all) of a
    :func:`pack_speakers` value."""
    names: list[str | None] = []
    at = _COUNT.size
    for _ in range(_COUNT.unpack_from(data)[0]):
        (size,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if size < 0:
            names.append(None)
        else:
            names.append(data[at : at + size].decode())
            at += size
    codes = data[at + lo : len(data) if hi is None else at + hi]
    if len(names) == 1:
        return names * len(codes)
    return list(map(names.__getitem__, codes))


# --- segments ----------------------------------------------------------------------------------


def segment_text(words: Words, index: int) -> str:
    """The words of segment ``index`` (as :func:`segment_records` cuts them) joined by
    spaces: the text its search document is made of (migrations/0016)."""
    return " ".join(words.words[index * SEGMENT_WORDS : (index + 1) * SEGMENT_WORDS])


def segment_records(
    job_id: uuid.UUID, transcription_id: uuid.UUID, first_seq: int, words: Words
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``words`` (of transcription ``transcription_id`` of job ``job_id``) cut
    into segments of :data:`SEGMENT_WORDS`, numbered from ``first_seq``, in the order of
    :data:`SEGMENT_COLUMNS`."""
    # Packed once per column; a segment's bytes are then a slice (a memcpy).
    coded: SpeakerCodes | None = None
    if words.packed is not None:  # made by the compiled reader with the columns
        lengths, starts, ends, confidences, coded = words.packed
    else:
        lengths = pack_lengths(words.words)
        starts, ends = pack_floats(words.starts), pack_floats(words.ends)
        confidences = pack_confidences(words.confidences)
    speakers = words.speakers
    speaker_runs: Iterator[bytes | None] = (
        repeat(None) if speakers is None else _pack_speaker_runs(speakers, SEGMENT_WORDS, coded)
    )
    for seq, lo in enumerate(range(0, len(words), SEGMENT_WORDS), first_seq):
        hi = min(lo + SEGMENT_WORDS, len(words))
        yield (
            job_id,
            transcription_id,
            seq,
            words.starts[lo],
            words.starts[hi - 1],
            hi - lo,
            "".join(words.words[lo:hi]),
            lengths[4 * lo : 4 * hi],
            starts[8 * lo : 8 * hi],
            ends[8 * lo : 8 * hi],
            confidences[8 * lo : 8 * hi],
            next(speaker_runs),
        )


def segments_count(word_count: int) -> int:
    return -(-word_count // SEGMENT_WORDS)


def segments_words(segments: Iterable[Segment]) -> Words:
    """The words of consecutive segment rows (in ``seq`` order) as one :class:`Words`."""
    return concat(_decode(s, 0, len(s["word_lengths"]) // 4) for s in segments)


def segments_window(segments: Iterable[Segment], t0: float, t1: float) -> Words:
    """The words with ``t0 <= start < t1`` of consecutive segment rows, as
    :meth:`Words.window` selects them; the other words of the segments are not decoded."""
    parts = []
    for s in segments:
        starts = unpack_floats(s["starts"])
        lo = bisect_left(starts, t0)
        hi = bisect_left(starts, t1, lo)
        if lo < hi:
            parts.append(_decode(s, lo, hi, starts[lo:hi]))
    return concat(parts)


def _decode(segment: Segment, lo: int, hi: int, starts: list[float] | None = None) -> Words:
    """Words ``lo`` to ``hi`` (exclusive) of one segment row."""
    speakers = segment["speakers"]
    if speakers is not None:
        if isinstance(speakers, bytes):
            speakers = unpack_speakers(speakers, lo, hi)
        else:  # text[], as a database not yet migrated to 0006 holds them
            speakers = speakers[lo:hi]
        # A segment stores speakers when one of its words has one; these words may have none.
        speakers = none_if_empty(speakers)
    return Words.trusted(
        _split(segment["words"], segment["word_lengths"], lo, hi),
        unpack_floats(segment["starts"][8 * lo : 8 * hi]) if starts is None else starts,
        unpack_floats(segment["ends"][8 * lo : 8 * hi]),
        unpack_confidences(segment["confidences"][8 * lo : 8 * hi]),
        speakers,
    )
