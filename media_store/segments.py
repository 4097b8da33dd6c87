"""The storage codec of word timestamps: :class:`~media_store.words.Words` to and from the
rows of ``transcription_word_segments`` (migrations/0003).

A segment holds up to :data:`SEGMENT_WORDS` consecutive words of one transcription as packed
columns, written by binary COPY: the words as one text plus their lengths (int4), starts, ends
and confidences as big-endian float8 in ``bytea`` (the formats of ``int4send``/``float8send``,
so the SQL functions of migrations/0003 can read them too), speakers as ``text[]``.
"""

from __future__ import annotations

import math
import sys
import uuid
from array import array
from collections.abc import Iterable, Iterator, Mapping
from itertools import accumulate
from typing import Any

import asyncpg

from media_store.words import Words, concat, none_if_empty

# Words a storage segment holds at most (migrations/0003). A 60-second window (~170 words)
# touches one or two segments. Measured (benchmarks/bench_words.py, a 3-hour transcript):
# 256 keeps a window read >= 20x faster than the whole transcript (512: ~17x) at about the
# same write speed and size.
SEGMENT_WORDS = 256

SEGMENT_TABLE = "transcription_word_segments"
SEGMENT_COLUMNS = (
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


_SWAP = sys.byteorder == "little"  # packed doubles are big-endian, as float8send writes them
_NAN = math.nan


def pack_floats(values: list[float]) -> bytes:
    """``values`` as big-endian IEEE-754 doubles (the segments' bytea format)."""
    packed = array("d", values)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def unpack_floats(data: bytes) -> list[float]:
    unpacked = array("d")
    unpacked.frombytes(data)
    if _SWAP:
        unpacked.byteswap()
    return unpacked.tolist()


def pack_lengths(words: list[str]) -> bytes:
    """The length of each word in characters, as big-endian int4s (int4send's format)."""
    packed = array("i", map(len, words))
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def split_words(text: str, lengths: bytes) -> list[str]:
    """The words :func:`pack_lengths` and a concatenation made: the inverse of both."""
    unpacked = array("i")
    unpacked.frombytes(lengths)
    if _SWAP:
        unpacked.byteswap()
    ends = list(accumulate(unpacked))
    return list(map(text.__getitem__, map(slice, [0, *ends], ends)))


def pack_confidences(values: list[float | None]) -> bytes:
    """Like :func:`pack_floats`, with NaN where a word has no confidence."""
    if None in values:
        return pack_floats([_NAN if v is None else v for v in values])
    return pack_floats(values)  # type: ignore[arg-type]  # no None in it


def unpack_confidences(data: bytes) -> list[float | None]:
    values: list[float | None] = unpack_floats(data)  # type: ignore[assignment]
    # The sum is NaN when an element is (confidences are in [0, 1]: it cannot overflow).
    if math.isnan(sum(values)):  # type: ignore[arg-type]
        return [None if v != v else v for v in values]  # NaN is the only value != itself
    return values


def segment_records(
    transcription_id: uuid.UUID, first_seq: int, words: Words
) -> Iterator[tuple[Any, ...]]:
    """COPY records of ``words`` cut into segments of :data:`SEGMENT_WORDS`, numbered from
    ``first_seq``, in the order of :data:`SEGMENT_COLUMNS`."""
    speakers = words.speakers
    # Packed once per column; a segment's bytes are then a slice (a memcpy).
    lengths = pack_lengths(words.words)
    starts, ends = pack_floats(words.starts), pack_floats(words.ends)
    confidences = pack_confidences(words.confidences)
    for seq, lo in enumerate(range(0, len(words), SEGMENT_WORDS), first_seq):
        hi = min(lo + SEGMENT_WORDS, len(words))
        yield (
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
            None if speakers is None else none_if_empty(speakers[lo:hi]),
        )


def segments_count(word_count: int) -> int:
    return -(-word_count // SEGMENT_WORDS)


def segments_words(segments: Iterable[asyncpg.Record | Mapping[str, Any]]) -> Words:
    """The words of consecutive segment rows (in ``seq`` order) as one :class:`Words`."""
    return concat(
        Words.trusted(
            split_words(s["words"], s["word_lengths"]),
            unpack_floats(s["starts"]),
            unpack_floats(s["ends"]),
            unpack_confidences(s["confidences"]),
            s["speakers"],
        )
        for s in segments
    )
