"""Transcriptions and their word timestamps. Same order as sql/transcriptions.sql, then
sql/words.sql, then sql/search.sql (:mod:`media_store.repositories.search`), within each
class: the reads (:class:`TranscriptionReads`, also the replica
view's), then the writes (:class:`TranscriptionRepository`).

Words are stored in ``transcription_word_segments`` (migrations/0003): runs of up to
:data:`~media_store.words.segments.SEGMENT_WORDS` words as packed columns, written with their
search documents in one statement per :data:`STATEMENT_SEGMENTS` segments. Every write that
touches words is all or nothing: one statement (a create of at most that many segments,
outside a caller's transaction), or one transaction (``_transaction``: a savepoint inside the
caller's transaction), so a bad word or a lost connection midway leaves nothing of the call
behind. The codec between words and segment rows is :mod:`media_store.words.segments`.
"""

from __future__ import annotations

import math
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar, Literal, TypeAlias, get_args, overload

import asyncpg

from media_store.db.queries import Query, query
from media_store.errors import (
    JobNotFound,
    TranscriptionNotFound,
    ValidationError,
    WordOrderConflict,
)
from media_store.models import arguments
from media_store.models.fields import shown
from media_store.models.inputs import validate_batch, validate_input
from media_store.models.rows import from_row
from media_store.models.schemas import Transcription, TranscriptionCreate
from media_store.repositories.job_outputs import MAX_BATCH, ChildReads, ChildRepository
from media_store.repositories.search import CONFIGS as _CONFIGS
from media_store.repositories.search import POSITIONS as _POSITIONS
from media_store.repositories.search import TranscriptionSearch
from media_store.words.captions import (
    CaptionFormat,
    CaptionRules,
    Turn,
    captions_of,
    check_format,
    check_min_gap,
    turns_of,
)
from media_store.words.documents import (
    Analyses,
    Analysis,
    analyses_of,
    analysis_chunks,
    segment_documents,
)
from media_store.words.segments import (
    SEGMENT_WORDS,
    WORD_COLUMNS,
    segment_records,
    segment_text,
    segments_count,
    segments_window,
    segments_words,
)
from media_store.words.timestamps import (
    WordInput,
    Words,
    WordSource,
    check_max_end,
    concat,
    none_if_empty,
    validate_words,
)

_UUID = uuid.UUID
_NO_ID = uuid.UUID(int=0)  # the transcription of a statement that makes it (not sent)
_ROW_PARAMS = (_UUID, str, str, str | None, float | None, bool, dict[str, Any])
_SEGMENT_COLUMNS = [("transcription_id", _UUID), *WORD_COLUMNS]
# A segment's packed columns and its search document, as the writing statements take them
# (one list per column: seq onwards).
_SEGMENT_ARRAYS = (
    list[int],  # seq
    list[float],  # first_start
    list[float],  # last_start
    list[int],  # word_count
    list[str],  # words
    list[bytes],  # word_lengths
    list[bytes],  # starts
    list[bytes],  # ends
    list[bytes],  # confidences
    list[bytes | None],  # speakers
    list[str],  # the text search configuration
    list[str | None],  # the document made here
    list[str | None],  # else the words for the server to parse
)

# What _write_words writes: (job id, transcription id, first seq, words, language).
_Part: TypeAlias = tuple[uuid.UUID, uuid.UUID, int, Words, str | None]

# The search documents' makings, kept by the process (media_store.words.documents): each
# distinct word's analysis per configuration, and each language's configuration (languages
# are a few; past MAX_LANGUAGES the map starts again).
_ANALYSES = Analyses()
_CONFIG_OF: dict[str | None, tuple[str, bool]] = {}
MAX_LANGUAGES = 1_000

# Words validated and written per statement when the input is an iterator: memory stays bounded
# by this many words whatever the length of the stream.
STREAM_CHUNK_WORDS = 32 * SEGMENT_WORDS

# Segments (with their search documents) written per statement: 32,768 words, about a
# megabyte of arguments. A create of at most this many, outside a caller's transaction, is one
# statement with its row (create_transcription_with_words): one round trip where a transaction
# of the row, the segments and the documents took six.
STATEMENT_SEGMENTS = 128

# turns() and captions() read words in time windows of about this many words (8 segments: a
# window re-reads at most the segment it shares with the next), starting WINDOW_SECONDS wide.
WINDOW_WORDS = 8 * SEGMENT_WORDS
WINDOW_SECONDS = 600.0
LAST_WINDOW_START = 2.0**32  # seconds, about 136 years: see _windows

# What append_words does with words of a batch that overlap the stored tail (see there).
OverlapPolicy: TypeAlias = Literal["refuse", "skip"]
OVERLAP_POLICIES: tuple[str, ...] = get_args(OverlapPolicy)


@dataclass(frozen=True, slots=True)
class Appended:
    """What ``append_words(..., on_overlap="skip")`` did.

    ``appended``: words stored. ``skipped``: words of the batch not stored because they
    overlapped what was stored (they are the batch's first words, in start order, so the
    skipped indexes are ``0 .. skipped - 1`` unless a new word shares the tail's start).
    ``tail_start``: the start of the last stored word the batch was compared with (None: the
    transcription had no words, nothing was skipped)."""

    appended: int
    skipped: int
    tail_start: float | None


class TranscriptionReads(TranscriptionSearch, ChildReads[Transcription]):
    """The reads of transcriptions and their words: what ``store.replica.transcriptions``
    offers. ``get``, ``list_for_job``, ``words`` and ``words_between`` run two statements
    each (the rows, then their word segments; or the segments, then whether an empty result
    means an unknown transcription): on the replica view the whole call runs on one server
    (see :mod:`media_store.replicas`), where the second sees at least what the first saw."""

    __slots__ = ()

    row_model = Transcription
    _get_query = query("get_transcription", returns=Transcription, params=(_UUID,))
    _list_for_job_query = query(
        "list_transcriptions_for_job", returns=Transcription, params=(_UUID,)
    )
    # sql/words.sql
    _segments_query = query("list_word_segments", returns=_SEGMENT_COLUMNS, params=(_UUID,))
    _segments_for_job_query = query(
        "list_word_segments_for_job", returns=_SEGMENT_COLUMNS, params=(_UUID,)
    )
    _segments_between_query = query(
        "list_word_segments_between", returns=_SEGMENT_COLUMNS, params=(_UUID, float, float)
    )
    _count_words_query = query(
        "count_words", returns=[("transcription_id", _UUID), ("word_count", int)], params=(_UUID,)
    )
    queries: ClassVar[tuple[Query, ...]] = (
        _get_query,
        _list_for_job_query,
        _segments_query,
        _segments_for_job_query,
        _segments_between_query,
        _count_words_query,
        *TranscriptionSearch.queries,
    )

    async def get(self, row_id: uuid.UUID) -> Transcription | None:
        """One transcription with all its words, or None."""
        row_id = arguments.identifier("row_id", row_id)
        row = await self._fetchrow(self._get_query, row_id)
        if row is None:
            return None
        segments = await self._fetch(self._segments_query, row_id)
        return _model(row, segments_words(segments) if segments else None)

    async def list_for_job(self, job_id: uuid.UUID) -> list[Transcription]:
        """The job's transcriptions in creation order, each with all its words."""
        job_id = arguments.identifier("job_id", job_id)
        rows = await self._fetch(self._list_for_job_query, job_id)
        if not rows:
            return []
        by_transcription: dict[uuid.UUID, list[asyncpg.Record]] = {}
        for segment in await self._fetch(self._segments_for_job_query, job_id):
            by_transcription.setdefault(segment["transcription_id"], []).append(segment)
        result = []
        for row in rows:
            segments = by_transcription.get(row["id"])
            result.append(_model(row, segments_words(segments) if segments else None))
        return result

    async def words(self, transcription_id: uuid.UUID) -> Words:
        """All words of a transcription, in order. Raises :class:`TranscriptionNotFound`."""
        transcription_id = arguments.identifier("transcription_id", transcription_id)
        segments = await self._fetch(self._segments_query, transcription_id)
        if not segments:
            await self.count_words(transcription_id)  # raises when it does not exist
            return Words.trusted([], [], [], [], None)
        return segments_words(segments)

    async def words_between(self, transcription_id: uuid.UUID, t0: float, t1: float) -> Words:
        """The words with ``t0 <= start < t1``, in order, reading only the segments that
        hold such words. A word straddling ``t0`` (start < t0 < end) is not in the window; a
        word straddling ``t1`` (start < t1 < end) is. Raises :class:`TranscriptionNotFound`.
        """
        transcription_id = arguments.identifier("transcription_id", transcription_id)
        t0, t1 = arguments.number("t0", t0), arguments.number("t1", t1)
        segments = await self._fetch(self._segments_between_query, transcription_id, t0, t1)
        if not segments:
            await self.count_words(transcription_id)
            return Words.trusted([], [], [], [], None)
        return segments_window(segments, t0, t1)

    async def count_words(self, transcription_id: uuid.UUID) -> int:
        """Number of words of a transcription. Raises :class:`TranscriptionNotFound`."""
        transcription_id = arguments.identifier("transcription_id", transcription_id)
        row = await self._fetchrow(self._count_words_query, transcription_id)
        if row is None:
            raise TranscriptionNotFound(transcription_id)
        return int(row["word_count"])

    # --- turns and captions: streamed, a window of words at a time ------------------------------
    # Plain methods returning async iterators: the arguments are checked when called, before
    # any SQL; an unknown transcription raises TranscriptionNotFound at the first item. On the
    # replica view each window is a read of its own (they are not coroutine methods, so not
    # routed whole): iterate inside store.replica.transaction() for one snapshot.

    def turns(
        self, transcription_id: uuid.UUID, *, min_gap: float | None = None
    ) -> AsyncIterator[Turn]:
        """The transcription's speaker turns in order (:class:`Turn`), read a window of
        words at a time (:func:`~media_store.words.captions.turns_of` says how turns are cut
        and their text joined). ``min_gap``: a pause longer than this many seconds within
        one speaker's words starts a new turn; None, the default: only a change of speaker
        does. Raises :class:`ValidationError` at once on bad arguments."""
        transcription_id = arguments.identifier("transcription_id", transcription_id)
        return turns_of(self._windows(transcription_id), min_gap=check_min_gap(min_gap))

    def captions(
        self,
        transcription_id: uuid.UUID,
        format: CaptionFormat = "srt",
        *,
        max_chars: int = 42,
        max_lines: int = 2,
        max_duration: float = 7.0,
        min_duration: float = 0.833,
        max_gap: float | None = 1.5,
        split_on_speaker: bool = True,
    ) -> AsyncIterator[str]:
        """The transcription's captions as an SRT or WebVTT file, a chunk a cue, read a window
        of words at a time. The rules (:class:`~media_store.words.captions.CaptionRules`):
        lines of at most ``max_chars`` characters broken at word boundaries (a longer word
        takes a line of its own), at most ``max_lines`` lines and ``max_duration`` seconds a
        cue, at least ``min_duration`` where the next cue starts late enough, a new cue after
        a pause longer than ``max_gap`` and, with ``split_on_speaker``, at every change of
        speaker; WebVTT names the speaker in a voice span. Raises :class:`ValidationError` at
        once on bad arguments."""
        transcription_id = arguments.identifier("transcription_id", transcription_id)
        rules = CaptionRules(
            max_chars=max_chars,
            max_lines=max_lines,
            max_duration=max_duration,
            min_duration=min_duration,
            max_gap=max_gap,
            split_on_speaker=split_on_speaker,
        )
        return captions_of(self._windows(transcription_id), check_format(format), rules)

    async def _windows(self, transcription_id: uuid.UUID) -> AsyncIterator[Words]:
        """The transcription's words as consecutive time windows ``[t0, t1)``, every word
        once, until as many words as it had when the count was read. Raises
        :class:`TranscriptionNotFound` first thing.

        A window is as wide as :data:`WINDOW_WORDS` words took at the speech rate seen so far
        (:data:`WINDOW_SECONDS` at first). Over a silence the windows double until one finds
        words; it holds at most about the silence's length of speech, so only a silence
        longer than a window's worth of speech lets a window hold more than that."""
        total = await self.count_words(transcription_id)
        seen, t0, width = 0, 0.0, WINDOW_SECONDS
        probe = width
        while seen < total:
            # Past LAST_WINDOW_START the rest is read in one window, open-ended: reached only
            # by times no media has, or when words went away meanwhile (a deleted
            # transcription), and then the loop ends instead of widening for ever.
            t1 = math.inf if t0 + probe > LAST_WINDOW_START else t0 + probe
            segments = await self._fetch(self._segments_between_query, transcription_id, t0, t1)
            window = segments_window(segments, t0, t1) if segments else None
            if window:
                yield window
                seen += len(window)
                if probe == width:  # a window at the speech rate: follow the rate
                    width *= min(max(WINDOW_WORDS / len(window), 1 / 8), 8)
                probe = width
            else:
                probe *= 2
            if t1 == math.inf:
                return
            t0 = t1


class TranscriptionRepository(
    TranscriptionReads, ChildRepository[TranscriptionCreate, Transcription]
):
    """Transcriptions: the reads of :class:`TranscriptionReads`, and the writes (every write
    that touches words in one transaction)."""

    __slots__ = ()

    create_model = TranscriptionCreate
    _create_query = query("create_transcription", returns=Transcription, params=_ROW_PARAMS)
    _create_with_words_query = query(
        "create_transcription_with_words",
        returns=Transcription,
        params=(*_ROW_PARAMS, *_SEGMENT_ARRAYS),
    )
    _create_many_query = query(
        "create_transcriptions",
        returns=Transcription,
        params=tuple(list[t] for t in _ROW_PARAMS),  # type: ignore[valid-type]
    )
    _delete_query = query("delete_transcription", returns=[("id", _UUID)], params=(_UUID,))
    # sql/words.sql
    _lock_words_query = query(
        "lock_transcription_words",
        returns=[("id", _UUID), ("job_id", _UUID), ("language", str | None)],
        params=(_UUID,),
    )
    _word_tail_query = query(
        "get_word_tail", returns=[("seq", int), ("last_start", float)], params=(_UUID, _UUID)
    )
    _write_words_query = query(
        "write_word_segments", returns=None, params=(list[_UUID], list[_UUID], *_SEGMENT_ARRAYS)
    )
    queries = (
        _create_query,
        _create_with_words_query,
        _create_many_query,
        TranscriptionReads._get_query,
        TranscriptionReads._list_for_job_query,
        _delete_query,
        _lock_words_query,
        _word_tail_query,
        _write_words_query,
        TranscriptionReads._segments_query,
        TranscriptionReads._segments_for_job_query,
        TranscriptionReads._segments_between_query,
        TranscriptionReads._count_words_query,
        *TranscriptionSearch.queries,
        _CONFIGS,
        _POSITIONS,
    )

    async def _write_words(self, parts: list[_Part]) -> None:
        """Write the segments of each (job, transcription, first seq, words, language) with
        their search documents (migrations/0016), in the caller's transaction: one statement
        (write_word_segments) a :data:`STATEMENT_SEGMENTS` segments."""
        configs, analyses = await self._makings(parts)
        # The parts in the name order of their configurations: a configuration new to the
        # database is inserted (and locked until commit) by the first statement holding it, so
        # every writer takes new ones in the same order and two cannot deadlock.
        ordered = sorted(parts, key=lambda part: configs[part[4]][0])
        for columns in _statements(ordered, configs, analyses):
            await self._fetchval(self._write_words_query, *columns)

    async def _makings(
        self, parts: list[_Part]
    ) -> tuple[dict[str | None, tuple[str, bool]], dict[str, Mapping[str, Analysis | None]]]:
        """What the documents of ``parts``' segments are made of: the configuration of each
        language, and the analyses of the words of each configuration made here."""
        configs = await self._configs({part[4] for part in parts})
        words_of: dict[str, list[str]] = {}  # each configuration's words, as given
        for part in parts:
            config, analysable = configs[part[4]]
            if analysable:
                words_of.setdefault(config, []).extend(part[3].words)
        return configs, await self._analyses(words_of)

    async def _configs(self, languages: set[str | None]) -> dict[str | None, tuple[str, bool]]:
        """The text search configuration of each of ``languages`` (and whether documents in
        it are made here), from :data:`_CONFIG_OF`, read from the database where unknown."""
        found = {language: _CONFIG_OF[language] for language in languages if language in _CONFIG_OF}
        unknown = [language for language in languages if language not in found]
        if unknown:
            rows = await self._fetch(_CONFIGS, unknown)  # in input order
            if len(_CONFIG_OF) + len(unknown) > MAX_LANGUAGES:
                _CONFIG_OF.clear()
            for language, row in zip(unknown, rows, strict=True):
                found[language] = _CONFIG_OF[language] = (row["config"], row["analysable"])
        return found

    async def _analyses(
        self, words_of: Mapping[str, Collection[str]]
    ) -> dict[str, Mapping[str, Analysis | None]]:
        """The analyses of the words of each configuration (``words_of``, repeats allowed): those
        :data:`_ANALYSES` does not hold read in one statement (and the words of a chunk that
        failed as a whole in one more, each alone) and added to it."""
        before = {config: _ANALYSES.of(config) for config in words_of}
        generation = _ANALYSES.generation
        unknown = {config: _ANALYSES.missing(config, words) for config, words in words_of.items()}
        # None where no chunk holds a word (see analysis_chunks) or its chunk failed.
        fetched = {config: dict.fromkeys(words) for config, words in unknown.items() if words}
        if not fetched:
            return before
        failed = await self._analyse(fetched, unknown, alone=False)
        if failed:
            await self._analyse(fetched, failed, alone=True)
        for config, found in fetched.items():
            _ANALYSES.add(config, found)
        return _ANALYSES.views(before, fetched, generation)

    async def _analyse(
        self,
        fetched: dict[str, dict[str, Analysis | None]],
        words: Mapping[str, list[str]],
        *,
        alone: bool,
    ) -> dict[str, list[str]]:
        """Read the analyses of ``words`` (per configuration) into ``fetched``, in chunks
        (:func:`analysis_chunks`); returns the words of the chunks of several words that failed
        as a whole (one word failed them all: worth trying each alone)."""
        configs: list[str] = []
        texts: list[str] = []
        chunked: list[list[str]] = []
        for config, some in words.items():
            chunks, chunk_texts = analysis_chunks(some, alone=alone)
            configs += [config] * len(chunks)
            texts += chunk_texts
            chunked += chunks
        if not texts:
            return {}
        rows = await self._fetch(_POSITIONS, configs, texts)
        failed: dict[str, list[str]] = {}
        analysed = analyses_of(chunked, (tuple(row) for row in rows))
        for config, chunk, results in zip(configs, chunked, analysed, strict=True):
            fetched[config].update(zip(chunk, results, strict=True))
            if len(chunk) > 1 and not any(results):
                failed.setdefault(config, []).extend(chunk)
        return failed

    def _params(self, item: TranscriptionCreate) -> tuple[Any, ...]:
        # The plan's jsonb column is a marker now: '[]' = created with word timestamps.
        return (
            item.job_id,
            item.provider,
            item.text_content,
            item.language,
            item.confidence_score,
            item.word_timestamps is not None,
            item.metadata,
        )

    # --- create ------------------------------------------------------------------------------

    async def create(
        self, data: TranscriptionCreate | Mapping[str, Any], *, max_end: float | None = None
    ) -> Transcription:
        """Insert a transcription with its words (``word_timestamps``), all or nothing.

        ``max_end``: the media's end in seconds; a word ending after it is refused (times in
        milliseconds read as seconds). Raises :class:`ValidationError` before any SQL on bad
        input (naming the first bad word) and :class:`JobNotFound` when the job does not
        exist.
        """
        max_end = _max_end(max_end)
        item = validate_input(TranscriptionCreate, data)
        words = _words_of(item)
        if words and max_end is not None:
            check_max_end(words, max_end)
        return _model(await self._insert_with(item, words), words)

    async def _insert_with(self, item: TranscriptionCreate, words: Words | None) -> asyncpg.Record:
        """Insert the row of ``item`` with ``words`` (validated) and their documents, all or
        nothing: in one statement up to :data:`STATEMENT_SEGMENTS` segments (in a savepoint
        inside a caller's transaction, which a failed statement would otherwise end), else the
        row and then the words' statements in one transaction."""
        if words and len(words) > STATEMENT_SEGMENTS * SEGMENT_WORDS:
            async with self._transaction() as tx:
                row = await tx._insert_row(item)
                await tx._write_words([(row["job_id"], row["id"], 0, words, row["language"])])
            return row
        if isinstance(self._db, asyncpg.Pool):
            return await self._insert_alone(item, words)
        async with self._transaction() as tx:
            return await tx._insert_alone(item, words)

    async def create_many(
        self, items: Sequence[TranscriptionCreate | Mapping[str, Any]]
    ) -> list[Transcription]:
        """Backfill: insert many transcriptions with their words, all or nothing.

        Every item (and every word) is validated before anything is written; then one INSERT
        for the transcriptions, then their words in statements of :data:`STATEMENT_SEGMENTS`
        segments.
        """
        arguments.sequence("items", items, MAX_BATCH)
        valid = validate_batch(TranscriptionCreate, items)
        if not valid:
            return []
        words = [_words_of(item) for item in valid]
        columns = [list(c) for c in zip(*(self._params(item) for item in valid), strict=True)]
        async with self._transaction() as tx:
            try:
                rows = await tx._fetch(self._create_many_query, *columns)
            except JobNotFound as exc:
                missing = sorted({str(item.job_id) for item in valid})
                raise JobNotFound(
                    None, f"a job these transcriptions belong to does not exist (one of {missing})"
                ) from exc
            parts = [
                (row["job_id"], row["id"], 0, w, row["language"])
                for row, w in zip(rows, words, strict=True)
                if w
            ]
            if parts:
                await tx._write_words(parts)
        return [_model(row, w) for row, w in zip(rows, words, strict=True)]

    async def create_streamed(
        self,
        data: TranscriptionCreate | Mapping[str, Any],
        words: WordSource,
        *,
        max_end: float | None = None,
    ) -> tuple[Transcription, int]:
        """Insert a transcription and stream ``words`` (an iterator or async iterator, or a
        sequence) into it in bounded memory, in one transaction: all or nothing.

        The words of an iterator are validated and written :data:`STREAM_CHUNK_WORDS` at a
        time after the first :data:`STATEMENT_SEGMENTS` segments' worth, so a million-word
        stream never sits in memory; a stream that ends within that first piece, or a sequence
        (in memory already), is validated whole and written as :meth:`create` writes words.
        ``data`` may carry ``word_timestamps`` too: they are written with the row, and the
        stream continues after them, :data:`STREAM_CHUNK_WORDS` at a time. Returns
        the transcription as created from ``data`` (the streamed words are not echoed back)
        and the number of words stored.
        ``max_end``: as in :meth:`create`.
        """
        max_end = _max_end(max_end)
        item = validate_input(TranscriptionCreate, data)
        first = _words_of(item)
        if first and max_end is not None:
            check_max_end(first, max_end)
        _word_source(words)
        if item.word_timestamps is None:
            item = item.model_copy(update={"word_timestamps": []})
        if not first:
            return await self._create_streamed(
                item, _chunks(words, STATEMENT_SEGMENTS * SEGMENT_WORDS), max_end
            )
        async with self._transaction() as tx:
            row = await tx._insert_row(item)
            await tx._write_words([(row["job_id"], row["id"], 0, first, row["language"])])
            after = first.starts[-1]
            stored = len(first)
            streamed = await tx._stream(
                row["job_id"],
                row["id"],
                row["language"],
                segments_count(stored),
                _chunks(words),
                after=after,
                offset=stored,
                max_end=max_end,
            )
        return _model(row, first), stored + streamed.stored

    async def _create_streamed(
        self,
        item: TranscriptionCreate,
        chunks: AsyncIterator[Sequence[WordInput]],
        max_end: float | None,
    ) -> tuple[Transcription, int]:
        """create_streamed of a transcription with no words in its data: the first chunk
        (at most a statement's worth) checked before any SQL, then written with the row in one
        statement, the only one when the source has no more (as :meth:`create` does); else in a
        transaction with the following chunks."""
        head = await anext(chunks, None)
        given = validate_words(head if head is not None else [], max_end=max_end)
        following = None if head is None else await anext(chunks, None)
        if following is None:
            return _model(await self._insert_with(item, given), None), len(given)
        async with self._transaction() as tx:
            row = await tx._insert_alone(item, given)
            streamed = await tx._stream(
                row["job_id"],
                row["id"],
                row["language"],
                segments_count(len(given)),
                _followed(following, chunks),
                after=given.starts[-1] if given else None,
                offset=len(given),
                max_end=max_end,
            )
        return _model(row, None), len(given) + streamed.stored

    # --- words -------------------------------------------------------------------------------

    @overload
    async def append_words(
        self,
        transcription_id: uuid.UUID,
        words: WordSource,
        *,
        on_overlap: Literal["refuse"] = "refuse",
        max_end: float | None = None,
    ) -> int: ...

    @overload
    async def append_words(
        self,
        transcription_id: uuid.UUID,
        words: WordSource,
        *,
        on_overlap: Literal["skip"],
        max_end: float | None = None,
    ) -> Appended: ...

    @overload
    async def append_words(
        self,
        transcription_id: uuid.UUID,
        words: WordSource,
        *,
        on_overlap: OverlapPolicy,
        max_end: float | None = None,
    ) -> int | Appended: ...

    async def append_words(
        self,
        transcription_id: uuid.UUID,
        words: WordSource,
        *,
        on_overlap: OverlapPolicy = "refuse",
        max_end: float | None = None,
    ) -> int | Appended:
        """Append a batch (or a stream) of words to a transcription, all or nothing.

        Appends to one transcription are serialised (its row is locked for the call). Within
        the batch the usual rules hold (:class:`ValidationError`, for every word, skipped or
        not). A batch that starts before the start of the last stored word (the overlap
        window of streaming ASR, which re-sends words already stored) is, by ``on_overlap``:

        - ``"refuse"`` (the default): :class:`WordOrderConflict` (a :class:`Conflict`),
          nothing written. Returns the number of words appended.
        - ``"skip"``: its words that start before the last stored word's start are not
          stored, nor are those starting exactly then that repeat a stored word with that
          start (word, times, confidence and speaker all equal: a re-sent copy); a new word
          sharing the start is stored. The rest is appended. Returns :class:`Appended`, with
          how many were skipped.

        ``max_end``: as in :meth:`create`. Raises :class:`TranscriptionNotFound`.
        """
        transcription_id = arguments.identifier("transcription_id", transcription_id)
        max_end = _max_end(max_end)
        if on_overlap not in OVERLAP_POLICIES:
            raise ValidationError(
                f"on_overlap must be one of {', '.join(OVERLAP_POLICIES)}, got {shown(on_overlap)}"
            )
        _word_source(words)
        async with self._transaction() as tx:
            owner = await tx._fetchrow(self._lock_words_query, transcription_id)
            if owner is None:
                raise TranscriptionNotFound(transcription_id)
            job_id = owner["job_id"]
            tail = await tx._fetchrow(self._word_tail_query, job_id, transcription_id)
            tail_start = None if tail is None else tail["last_start"]
            stream = await tx._stream(
                job_id,
                transcription_id,
                owner["language"],
                0 if tail is None else tail["seq"] + 1,
                _chunks(words),
                tail_start=tail_start,
                on_overlap=on_overlap,
                max_end=max_end,
            )
        if on_overlap == "refuse":
            return stream.stored
        return Appended(stream.stored, stream.skipped, tail_start)

    # --- internals -----------------------------------------------------------------------------

    async def _insert_row(self, item: TranscriptionCreate) -> asyncpg.Record:
        return await self._insert_alone(item, None)

    async def _insert_alone(self, item: TranscriptionCreate, words: Words | None) -> asyncpg.Record:
        """Insert the row of ``item`` and, when given, ``words`` (at most
        :data:`STATEMENT_SEGMENTS` segments) with their documents, in one statement."""
        try:
            if not words:
                row = await self._fetchrow(self._create_query, *self._params(item))
            else:
                part: _Part = (item.job_id, _NO_ID, 0, words, item.language)
                [columns] = _statements([part], *await self._makings([part]))
                row = await self._fetchrow(
                    self._create_with_words_query, *self._params(item), *columns[2:]
                )
        except JobNotFound as exc:
            raise JobNotFound(item.job_id) from exc
        assert row is not None
        return row

    async def _stream(
        self,
        job_id: uuid.UUID,
        transcription_id: uuid.UUID,
        language: str | None,
        next_seq: int,
        chunks: AsyncIterator[Sequence[WordInput]],
        *,
        after: float | None = None,
        offset: int = 0,
        tail_start: float | None = None,
        on_overlap: OverlapPolicy = "refuse",
        max_end: float | None = None,
    ) -> _Streamed:
        """Validate and write the words of ``chunks`` chunk by chunk; must run inside a
        transaction.

        ``tail_start``: the start of the last word already stored (appends), which the
        stream's words must not start before: see ``on_overlap`` in :meth:`append_words`.
        """
        result = _Streamed()
        overlap = _Overlap(self, transcription_id, tail_start) if tail_start is not None else None
        async for chunk in chunks:
            batch = validate_words(chunk, after=after, offset=offset + result.seen, max_end=max_end)
            result.seen += len(batch)
            if not batch:
                continue
            after = batch.starts[-1]
            if overlap is not None:
                if on_overlap == "refuse":
                    if batch.starts[0] < overlap.tail_start:
                        raise WordOrderConflict(
                            transcription_id, overlap.tail_start, batch.starts[0]
                        )
                else:
                    batch, skipped = await overlap.skip(batch)
                    result.skipped += skipped
                if after > overlap.tail_start:
                    overlap = None  # every later word starts after the stored tail
                if not batch:
                    continue
            await self._write_words([(job_id, transcription_id, next_seq, batch, language)])
            next_seq += segments_count(len(batch))
            result.stored += len(batch)
        return result


def _statements(
    parts: list[_Part],
    configs: Mapping[str | None, tuple[str, bool]],
    analyses: Mapping[str, Mapping[str, Analysis | None]],
) -> Iterator[list[tuple[Any, ...]]]:
    """The arguments of write_word_segments for the segments of ``parts``, at most
    :data:`STATEMENT_SEGMENTS` segments a statement: each segment's columns, its configuration,
    and its document made here where the configuration allows (else its words, for the server
    to parse). A statement's documents are made when it is due, not all before the first."""
    rows: list[tuple[Any, ...]] = []
    step = STATEMENT_SEGMENTS * SEGMENT_WORDS
    for job_id, transcription_id, first_seq, words, language in parts:
        config, analysable = configs[language]
        records = segment_records(job_id, transcription_id, first_seq, words)
        for lo in range(0, len(words), step):
            count = segments_count(min(len(words) - lo, step))
            documents: list[str | None] = (
                segment_documents(words.words[lo : lo + step], SEGMENT_WORDS, analyses[config])
                if analysable
                else [None] * count
            )
            first = lo // SEGMENT_WORDS
            # documents first: zip stops at their end without taking the next chunk's record.
            for k, (document, record) in enumerate(zip(documents, records, strict=False)):
                text = None if document is not None else segment_text(words, first + k)
                rows.append((*record, config, document, text))
                if len(rows) == STATEMENT_SEGMENTS:
                    yield list(zip(*rows, strict=True))
                    rows = []
    if rows:
        yield list(zip(*rows, strict=True))


@dataclass(slots=True)
class _Streamed:
    stored: int = 0
    skipped: int = 0
    seen: int = 0  # words read from the source, stored or skipped


class _Overlap:
    """The words of an append that overlap the stored tail, for ``on_overlap="skip"``."""

    __slots__ = ("repository", "stored_at_tail", "tail_start", "transcription_id")

    def __init__(
        self, repository: TranscriptionRepository, transcription_id: uuid.UUID, tail_start: float
    ) -> None:
        self.repository = repository
        self.transcription_id = transcription_id
        self.tail_start = tail_start
        # The stored words that start at tail_start, read when a batch word starts then too.
        self.stored_at_tail: Counter[tuple[Any, ...]] | None = None

    async def skip(self, batch: Words) -> tuple[Words, int]:
        """``batch`` without its words that start before the tail, or at its start as an
        exact copy of a stored word; and how many those were. The batch is in start order:
        they are its first words."""
        before = bisect_left(batch.starts, self.tail_start)
        at = bisect_right(batch.starts, self.tail_start, before)
        if at == before:
            return batch[before:], before
        if self.stored_at_tail is None:
            stored = await self.repository.words_between(
                self.transcription_id, self.tail_start, math.nextafter(self.tail_start, math.inf)
            )
            self.stored_at_tail = Counter(_rows(stored))
        kept = []
        for index, row in enumerate(_rows(batch[before:at]), before):
            if self.stored_at_tail[row] > 0:
                self.stored_at_tail[row] -= 1  # each stored word matches one copy
            else:
                kept.append(index)
        new = Words.trusted(
            [batch.words[i] for i in kept],
            [batch.starts[i] for i in kept],
            [batch.ends[i] for i in kept],
            [batch.confidences[i] for i in kept],
            None if batch.speakers is None else none_if_empty([batch.speakers[i] for i in kept]),
        )
        skipped = at - len(kept)
        return concat([new, batch[at:]]), skipped


def _rows(words: Words) -> Iterator[tuple[Any, ...]]:
    speakers: Iterable[str | None] = (
        words.speakers if words.speakers is not None else [None] * len(words)
    )
    return zip(words.words, words.starts, words.ends, words.confidences, speakers, strict=True)


def _word_source(words: WordSource) -> None:
    """Refuse, before any SQL, a ``words`` argument that is no collection of words at all."""
    if isinstance(words, str | bytes | Mapping) or not isinstance(words, Iterable | AsyncIterable):
        raise ValidationError(
            f"words must be a list, an iterator or an async iterator of words, got {shown(words)}"
        )


def _max_end(value: float | None) -> float | None:
    return None if value is None else arguments.number("max_end", value)


def _words_of(item: TranscriptionCreate) -> Words | None:
    words = item.word_timestamps
    assert words is None or isinstance(words, Words)
    return words


def _model(row: asyncpg.Record, words: Words | None) -> Transcription:
    if words is None and row["word_timestamps"] is not None:
        words = Words.trusted([], [], [], [], None)
    return from_row(Transcription, {**dict(row), "word_timestamps": words})


async def _chunks(source: WordSource, first: int = 0) -> AsyncIterator[Sequence[WordInput]]:
    """``source`` in pieces of at most :data:`STREAM_CHUNK_WORDS` words, the first of at most
    ``first`` when given (a sequence whole: it is in memory already)."""
    if isinstance(source, Sequence):
        yield source
        return
    size = first or STREAM_CHUNK_WORDS
    if isinstance(source, AsyncIterable):
        buffer: list[WordInput] = []
        async for word in source:
            buffer.append(word)
            if len(buffer) >= size:
                yield buffer
                buffer, size = [], STREAM_CHUNK_WORDS
        if buffer:
            yield buffer
        return
    if not isinstance(source, Iterable):
        raise ValidationError(f"expected words, got {type(source).__name__}")
    iterator: Iterator[WordInput] = iter(source)
    while chunk := list(islice(iterator, size)):
        yield chunk
        size = STREAM_CHUNK_WORDS


async def _followed(
    head: Sequence[WordInput], rest: AsyncIterator[Sequence[WordInput]]
) -> AsyncIterator[Sequence[WordInput]]:
    """``head``, then the chunks of ``rest``."""
    yield head
    async for chunk in rest:
        yield chunk
