"""Transcriptions and their word timestamps. Same order as sql/transcriptions.sql, then
sql/words.sql.

Words are stored in ``transcription_word_segments`` (migrations/0003): runs of up to
:data:`~media_store.words.SEGMENT_WORDS` words as parallel arrays, written by binary COPY.
Every write that touches words runs in one transaction (a savepoint inside the caller's
transaction), so a bad word or a lost connection midway leaves nothing of the call behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from itertools import chain, islice
from typing import Any

import asyncpg

from media_store.errors import (
    DatabaseError,
    DatabaseUnavailable,
    JobNotFound,
    ValidationError,
    connection_lost,
    translate,
)
from media_store.models import (
    Transcription,
    TranscriptionCreate,
    from_row,
    validate_batch,
    validate_input,
)
from media_store.queries import query
from media_store.repositories.base import DRIVER_ERRORS
from media_store.repositories.children import MAX_BATCH, ChildRepository
from media_store.words import (
    SEGMENT_COLUMNS,
    SEGMENT_TABLE,
    SEGMENT_WORDS,
    TranscriptionNotFound,
    WordInput,
    WordOrderConflict,
    Words,
    WordSource,
    concat,
    segment_records,
    segments_count,
    split_words,
    unpack_confidences,
    unpack_floats,
    validate_words,
)

_UUID = uuid.UUID
_ROW_PARAMS = (_UUID, str, str, str | None, float | None, bool, dict[str, Any])
_SEGMENT_COLUMNS = [
    ("transcription_id", _UUID),
    ("words", str),
    ("word_lengths", bytes),
    ("starts", bytes),
    ("ends", bytes),
    ("confidences", bytes),
    ("speakers", list[str | None] | None),
]

# Words validated and copied per COPY when the input is an iterator: memory stays bounded
# by this many words whatever the length of the stream.
STREAM_CHUNK_WORDS = 32 * SEGMENT_WORDS


class TranscriptionRepository(ChildRepository[TranscriptionCreate, Transcription]):
    __slots__ = ()

    create_model = TranscriptionCreate
    row_model = Transcription
    _insert = query("create_transcription", returns=Transcription, params=_ROW_PARAMS)
    _insert_many = query(
        "create_transcriptions",
        returns=Transcription,
        params=tuple(list[t] for t in _ROW_PARAMS),  # type: ignore[valid-type]
    )
    _get = query("get_transcription", returns=Transcription, params=(_UUID,))
    _list = query("list_transcriptions_for_job", returns=Transcription, params=(_UUID,))
    _delete = query("delete_transcription", returns=[("id", _UUID)], params=(_UUID,))
    _lock = query("lock_transcription_words", returns=[("id", _UUID)], params=(_UUID,))
    _tail = query("get_word_tail", returns=[("seq", int), ("last_start", float)], params=(_UUID,))
    _segments = query("list_word_segments", returns=_SEGMENT_COLUMNS, params=(_UUID,))
    _segments_for_job = query(
        "list_word_segments_for_job", returns=_SEGMENT_COLUMNS, params=(_UUID,)
    )
    _segments_between = query(
        "list_word_segments_between", returns=_SEGMENT_COLUMNS, params=(_UUID, float, float)
    )
    _count = query(
        "count_words", returns=[("transcription_id", _UUID), ("word_count", int)], params=(_UUID,)
    )

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

    # --- create / get / list / delete --------------------------------------------------------

    async def create(self, data: TranscriptionCreate | Mapping[str, Any]) -> Transcription:
        """Insert a transcription with its words (``word_timestamps``), all or nothing.

        Raises :class:`ValidationError` before any SQL on bad input (naming the first bad
        word) and :class:`JobNotFound` when the job does not exist.
        """
        item = validate_input(TranscriptionCreate, data)
        words = _words_of(item)
        async with self._transaction() as tx:
            row = await tx._insert_row(item)
            if words:
                await tx._copy(SEGMENT_TABLE, segment_records(row["id"], 0, words), SEGMENT_COLUMNS)
        return _model(row, words)

    async def create_many(
        self, items: Sequence[TranscriptionCreate | Mapping[str, Any]]
    ) -> list[Transcription]:
        """Backfill: insert many transcriptions with their words, all or nothing.

        Every item (and every word) is validated before anything is written; then one INSERT
        for the transcriptions and one binary COPY for all their words.
        """
        if len(items) > MAX_BATCH:
            raise ValidationError(f"at most {MAX_BATCH} transcriptions per batch, got {len(items)}")
        valid = validate_batch(TranscriptionCreate, items)
        if not valid:
            return []
        words = [_words_of(item) for item in valid]
        columns = [list(c) for c in zip(*(self._params(item) for item in valid), strict=True)]
        async with self._transaction() as tx:
            try:
                rows = await tx._fetch(self._insert_many, *columns)
            except JobNotFound as exc:
                missing = sorted({str(item.job_id) for item in valid})
                raise JobNotFound(
                    None, f"a job these transcriptions belong to does not exist (one of {missing})"
                ) from exc
            records = chain.from_iterable(
                segment_records(row["id"], 0, w) for row, w in zip(rows, words, strict=True) if w
            )
            if any(words):
                await tx._copy(SEGMENT_TABLE, records, SEGMENT_COLUMNS)
        return [_model(row, w) for row, w in zip(rows, words, strict=True)]

    async def create_streamed(
        self, data: TranscriptionCreate | Mapping[str, Any], words: WordSource
    ) -> tuple[Transcription, int]:
        """Insert a transcription and stream ``words`` (an iterator or async iterator, or a
        sequence) into it in bounded memory, in one transaction: all or nothing.

        The words are validated and copied :data:`STREAM_CHUNK_WORDS` at a time, so a
        million-word stream never sits in memory. ``data`` may carry ``word_timestamps``
        too; the stream continues after them. Returns the transcription as created from
        ``data`` (the streamed words are not echoed back) and the number of words stored.
        """
        item = validate_input(TranscriptionCreate, data)
        first = _words_of(item)
        async with self._transaction() as tx:
            if item.word_timestamps is None:
                item = item.model_copy(update={"word_timestamps": []})
            row = await tx._insert_row(item)
            if first:
                await tx._copy(SEGMENT_TABLE, segment_records(row["id"], 0, first), SEGMENT_COLUMNS)
            after = first.starts[-1] if first else None
            stored = len(first) if first else 0
            streamed = await tx._stream(
                row["id"], segments_count(stored), words, after=after, offset=stored
            )
        return _model(row, first), stored + streamed

    async def get(self, row_id: uuid.UUID) -> Transcription | None:
        """One transcription with all its words, or None."""
        row = await self._fetchrow(self._get, row_id)
        if row is None:
            return None
        segments = await self._fetch(self._segments, row_id)
        return _model(row, _join(segments) if segments else None)

    async def list_for_job(self, job_id: uuid.UUID) -> list[Transcription]:
        """The job's transcriptions in creation order, each with all its words."""
        rows = await self._fetch(self._list, job_id)
        if not rows:
            return []
        by_transcription: dict[uuid.UUID, list[asyncpg.Record]] = {}
        for segment in await self._fetch(self._segments_for_job, job_id):
            by_transcription.setdefault(segment["transcription_id"], []).append(segment)
        result = []
        for row in rows:
            segments = by_transcription.get(row["id"])
            result.append(_model(row, _join(segments) if segments else None))
        return result

    # --- words -------------------------------------------------------------------------------

    async def append_words(self, transcription_id: uuid.UUID, words: WordSource) -> int:
        """Append a batch (or a stream) of words to a transcription, all or nothing.

        Appends to one transcription are serialised (its row is locked for the call). The
        batch must start at or after the start of the last stored word, else
        :class:`WordOrderConflict` (a :class:`Conflict`); within the batch the usual rules
        hold (:class:`ValidationError`). Raises :class:`TranscriptionNotFound`. Returns the
        number of words appended.
        """
        async with self._transaction() as tx:
            if await tx._fetchval(self._lock, transcription_id) is None:
                raise TranscriptionNotFound(transcription_id)
            tail = await tx._fetchrow(self._tail, transcription_id)
            return await tx._stream(
                transcription_id,
                0 if tail is None else tail["seq"] + 1,
                words,
                stored_last_start=None if tail is None else tail["last_start"],
            )

    async def words(self, transcription_id: uuid.UUID) -> Words:
        """All words of a transcription, in order. Raises :class:`TranscriptionNotFound`."""
        segments = await self._fetch(self._segments, transcription_id)
        if not segments:
            await self.count_words(transcription_id)  # raises when it does not exist
            return Words._trusted([], [], [], [], None)
        return _join(segments)

    async def words_between(self, transcription_id: uuid.UUID, t0: float, t1: float) -> Words:
        """The words with ``t0 <= start < t1``, in order, reading only the segments that
        hold such words. A word straddling ``t0`` (start < t0 < end) is not in the window; a
        word straddling ``t1`` (start < t1 < end) is. Raises :class:`TranscriptionNotFound`.
        """
        for name, value in (("t0", t0), ("t1", t1)):
            if type(value) not in (int, float) or not math.isfinite(value):
                raise ValidationError(f"{name} must be a finite number, got {value!r}")
        segments = await self._fetch(self._segments_between, transcription_id, t0, t1)
        if not segments:
            await self.count_words(transcription_id)
            return Words._trusted([], [], [], [], None)
        return _join(segments).window(t0, t1)

    async def count_words(self, transcription_id: uuid.UUID) -> int:
        """Number of words of a transcription. Raises :class:`TranscriptionNotFound`."""
        row = await self._fetchrow(self._count, transcription_id)
        if row is None:
            raise TranscriptionNotFound(transcription_id)
        return int(row["word_count"])

    # --- internals -----------------------------------------------------------------------------

    async def _insert_row(self, item: TranscriptionCreate) -> asyncpg.Record:
        try:
            row = await self._fetchrow(self._insert, *self._params(item))
        except JobNotFound as exc:
            raise JobNotFound(item.job_id) from exc
        assert row is not None
        return row

    async def _stream(
        self,
        transcription_id: uuid.UUID,
        next_seq: int,
        source: WordSource,
        *,
        after: float | None = None,
        offset: int = 0,
        stored_last_start: float | None = None,
    ) -> int:
        """Validate and COPY ``source`` chunk by chunk; must run inside a transaction."""
        count = 0
        async for chunk in _chunks(source):
            batch = validate_words(chunk, after=after, offset=offset + count)
            if not batch:
                continue
            if count == 0 and stored_last_start is not None and batch.starts[0] < stored_last_start:
                raise WordOrderConflict(transcription_id, stored_last_start, batch.starts[0])
            await self._copy(
                SEGMENT_TABLE, segment_records(transcription_id, next_seq, batch), SEGMENT_COLUMNS
            )
            next_seq += segments_count(len(batch))
            count += len(batch)
            after = batch.starts[-1]
        return count

    async def _copy(
        self, table: str, records: Iterable[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        """The base COPY, abandoned as soon as the connection dies.

        asyncpg 0.32 can wait forever on a COPY whose server connection is killed while the
        socket's write buffer is full (its writing_allowed event is never set again). A
        termination listener ends the wait: the COPY is cancelled and the caller gets
        :class:`DatabaseUnavailable` (the server has rolled the transaction back).
        """
        db = self._db
        if isinstance(db, asyncpg.Pool):  # pragma: no cover - COPY runs in _transaction
            await super()._copy(table, records, columns)
            return
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_lost(_: object) -> None:
            if not lost.done():
                lost.set_result(None)

        db.add_termination_listener(on_lost)
        copy = asyncio.ensure_future(super()._copy(table, records, columns))
        try:
            await asyncio.wait({copy, lost}, return_when=asyncio.FIRST_COMPLETED)
            if not copy.done():
                copy.cancel()
                with contextlib.suppress(BaseException):
                    await copy
                raise DatabaseUnavailable("database connection lost during the COPY")
            copy.result()
        finally:
            lost.cancel()
            with contextlib.suppress(*DRIVER_ERRORS):
                db.remove_termination_listener(on_lost)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[TranscriptionRepository]:
        """This repository on one connection inside a transaction: a new one on a connection
        borrowed from the pool, or a savepoint in the caller's transaction. Committed when
        the block exits normally, rolled back when it raises."""
        db = self._db
        if not isinstance(db, asyncpg.Pool):
            async with _in_transaction(db):
                yield TranscriptionRepository(db)
            return
        try:
            conn = await db.acquire()
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        try:
            async with _in_transaction(conn):
                yield TranscriptionRepository(conn)
        finally:
            # A connection broken mid-COPY may fail its reset on release; the pool then
            # terminates it and opens a new one. The error that matters is already raised.
            with contextlib.suppress(*DRIVER_ERRORS):
                await db.release(conn)


@contextlib.asynccontextmanager
async def _in_transaction(conn: Any) -> AsyncIterator[None]:
    tx = conn.transaction()
    try:
        await tx.start()
    except DRIVER_ERRORS as exc:
        raise translate(exc, conn) from exc
    try:
        yield
    except BaseException as exc:
        # If the connection is gone the server has already rolled back.
        broken = connection_lost(conn)
        if not broken:
            try:
                await tx.rollback()
            except DRIVER_ERRORS:
                broken = True
        if broken and type(exc) is DatabaseError:
            # A connection killed between two statements can surface as a protocol-state
            # error on the next one; the failed rollback shows the connection is lost.
            raise DatabaseUnavailable("database connection lost during the write") from exc
        raise
    try:
        await tx.commit()
    except DRIVER_ERRORS as exc:
        raise translate(exc, conn) from exc


def _words_of(item: TranscriptionCreate) -> Words | None:
    words = item.word_timestamps
    assert words is None or isinstance(words, Words)
    return words


def _model(row: asyncpg.Record, words: Words | None) -> Transcription:
    if words is None and row["word_timestamps"] is not None:
        words = Words._trusted([], [], [], [], None)
    return from_row(Transcription, {**dict(row), "word_timestamps": words})


def _join(segments: Sequence[asyncpg.Record]) -> Words:
    """The words of consecutive segment rows as one :class:`Words`."""
    return concat(
        Words._trusted(
            split_words(s["words"], s["word_lengths"]),
            unpack_floats(s["starts"]),
            unpack_floats(s["ends"]),
            unpack_confidences(s["confidences"]),
            s["speakers"],
        )
        for s in segments
    )


async def _chunks(source: WordSource) -> AsyncIterator[Sequence[WordInput]]:
    """``source`` in pieces of at most :data:`STREAM_CHUNK_WORDS` words (a sequence whole:
    it is in memory already)."""
    if isinstance(source, Sequence):
        yield source
        return
    if isinstance(source, AsyncIterable):
        buffer: list[WordInput] = []
        async for word in source:
            buffer.append(word)
            if len(buffer) >= STREAM_CHUNK_WORDS:
                yield buffer
                buffer = []
        if buffer:
            yield buffer
        return
    if not isinstance(source, Iterable):
        raise ValidationError(f"expected words, got {type(source).__name__}")
    iterator: Iterator[WordInput] = iter(source)
    while chunk := list(islice(iterator, STREAM_CHUNK_WORDS)):
        yield chunk
