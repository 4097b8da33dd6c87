"""Word timestamps: round trips, refusals with nothing written, streaming, appends, windows,
backfill, cascades, a connection killed mid-insert, and the 0003 migration's data move."""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import asyncpg
import pytest
from pydantic import TypeAdapter

from media_store import (
    Conflict,
    DatabaseUnavailable,
    Dsn,
    Job,
    JobNotFound,
    Settings,
    Store,
    ValidationError,
    WordTimestamp,
    migrate,
)
from media_store.errors import TranscriptionNotFound, WordOrderConflict
from media_store.repositories import transcriptions as transcriptions_module
from media_store.words.segments import (
    SEGMENT_COLUMNS,
    SEGMENT_WORDS,
    pack_confidences,
    pack_floats,
    pack_lengths,
    split_words,
)
from media_store.words.timestamps import Words, WordsInput, WordsOutput, validate_words

Word = dict[str, Any]


def synthetic(n: int, *, start: float = 0.0, step: float = 0.35) -> list[Word]:
    """``n`` words, each ``step`` seconds after the previous, lasting 0.3 s."""
    return [
        {
            "word": f"w{i}",
            "start": round(start + i * step, 3),
            "end": round(start + i * step + 0.3, 3),
            "confidence": (i % 100) / 100,
        }
        for i in range(n)
    ]


def transcription(job_id: uuid.UUID, **kw: Any) -> dict[str, Any]:
    return {"job_id": job_id, "provider": "whisper", "text_content": "…", **kw}


async def counts(store: Store) -> tuple[int, int, int]:
    """(transcriptions, word segments, words)."""
    row = await store.pool.fetchrow(
        "SELECT (SELECT count(*) FROM transcriptions) AS t,"
        " (SELECT count(*) FROM transcription_word_segments) AS s,"
        " (SELECT coalesce(sum(word_count), 0) FROM transcription_word_segments) AS w"
    )
    assert row is not None
    return int(row["t"]), int(row["s"]), int(row["w"])


def same(actual: object, expected: object) -> bool:
    """``actual == expected`` between Words (typed as a sequence of WordTimestamp) and plain
    lists of word dicts: the documented equality, which mypy's strict equality cannot see."""
    return actual == expected


@pytest.fixture
async def job(store: Store) -> Job:
    return await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})


# --- round trips ------------------------------------------------------------------------------

MIXED: list[Word] = [
    {"word": "Hello", "start": 0.0, "end": 0.42, "confidence": 0.98, "speaker": "A"},
    {"word": "naïve café", "start": 0.42, "end": 0.42, "confidence": 1.0},  # zero length
    {"word": "🎙️👋🏽", "start": 0.5, "end": 0.9, "confidence": 0.0, "speaker": "B"},
    {"word": "שלום", "start": 0.9, "end": 1.2, "speaker": "B"},  # right-to-left, no confidence
    {"word": "مرحبا", "start": 0.9, "end": 1.5, "confidence": 0.123456789012345},
    {"word": "", "start": 2, "end": 3, "confidence": 1},  # ints are numbers
    {"word": "\u202eRLO\u200d", "start": 3.0000001, "end": 10800.123456789, "confidence": 0.5},
]


async def test_create_and_read_back_the_same_words(store: Store, job: Job) -> None:
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=MIXED))
    assert same(created.word_timestamps, MIXED)
    fetched = await store.transcriptions.get(created.id)
    assert fetched == created
    assert fetched is not None and same(fetched.word_timestamps, MIXED)
    models = [WordTimestamp.model_validate(w) for w in MIXED]
    assert fetched.word_timestamps == models  # equal to the models too
    assert models == fetched.word_timestamps  # from either side
    assert await store.transcriptions.words(created.id) == MIXED
    assert await store.transcriptions.count_words(created.id) == len(MIXED)
    third = fetched.word_timestamps[2]
    assert (third.word, third.start, third.end, third.confidence, third.speaker) == (
        "🎙️👋🏽",
        0.5,
        0.9,
        0.0,
        "B",
    )
    assert fetched.word_timestamps[3].confidence is None
    assert [w.word for w in fetched.word_timestamps] == [w["word"] for w in MIXED]


async def test_words_compare_unequal_when_any_value_differs(store: Store, job: Job) -> None:
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=MIXED))
    words = created.word_timestamps
    assert words is not None
    assert not same(words, MIXED[:-1])
    assert not same(words, [*MIXED[:-1], {**MIXED[-1], "end": 10800.12345678}])
    assert not same(words, [{**MIXED[0], "speaker": None}, *MIXED[1:]])
    assert not same(words, "not words")


async def test_large_transcript_spans_segments_and_round_trips(store: Store, job: Job) -> None:
    words = synthetic(3 * SEGMENT_WORDS + 7)
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=words))
    assert await counts(store) == (1, 4, len(words))
    assert await store.transcriptions.words(created.id) == words
    (listed,) = await store.transcriptions.list_for_job(job.id)
    assert listed == created


async def test_transcription_without_words_has_none_and_empty_list_stays_empty(
    store: Store, job: Job
) -> None:
    none = await store.transcriptions.create(transcription(job.id))
    empty = await store.transcriptions.create(transcription(job.id, word_timestamps=[]))
    assert none.word_timestamps is None
    assert empty.word_timestamps == []
    assert await store.transcriptions.get(none.id) == none
    assert await store.transcriptions.get(empty.id) == empty
    assert await store.transcriptions.count_words(none.id) == 0
    assert await store.transcriptions.words(none.id) == []


async def test_models_serialise_words_as_a_list_of_dicts(store: Store, job: Job) -> None:
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=MIXED[:2]))
    dumped = created.model_dump()["word_timestamps"]
    assert dumped == [
        {"word": "Hello", "start": 0.0, "end": 0.42, "confidence": 0.98, "speaker": "A"},
        {"word": "naïve café", "start": 0.42, "end": 0.42, "confidence": 1.0, "speaker": None},
    ]
    assert '"word":"Hello"' in created.model_dump_json()


def test_words_constructor_validates_and_slices() -> None:
    words = Words(synthetic(10))
    assert len(words) == 10 and words[1:3] == synthetic(10)[1:3]
    assert words.window(0.7, 1.4) == synthetic(10)[2:4]
    with pytest.raises(ValidationError):
        Words([{"word": "x", "start": 1.0, "end": 0.5}])


# --- refusals -----------------------------------------------------------------------------------

GOOD = {"word": "ok", "start": 1.0, "end": 1.5, "confidence": 0.5}
BAD_WORDS: dict[str, Any] = {
    "nan start": {**GOOD, "start": math.nan},
    "nan end": {**GOOD, "end": math.nan},
    "inf end": {**GOOD, "end": math.inf},
    "negative start": {**GOOD, "start": -0.1, "end": 0.2},
    "end before start": {**GOOD, "end": 0.9},
    "confidence above 1": {**GOOD, "confidence": 1.5},
    "confidence below 0": {**GOOD, "confidence": -0.01},
    "nan confidence": {**GOOD, "confidence": math.nan},
    "NUL in word": {**GOOD, "word": "a\x00b"},
    "NUL in speaker": {**GOOD, "speaker": "S\x00"},
    "lone surrogate in word": {**GOOD, "word": "a\ud800"},
    "speaker too long": {**GOOD, "speaker": "s" * 51},
    "start as text": {**GOOD, "start": "1.0"},
    "start as bool": {**GOOD, "start": True},
    "confidence as text": {**GOOD, "confidence": "high"},
    "word not text": {**GOOD, "word": 7},
    "speaker not text": {**GOOD, "speaker": 3},
    "huge int end": {**GOOD, "end": 10**400},
    "missing end": {"word": "ok", "start": 1.0},
    "not a mapping": ("ok", 1.0, 1.5),
}


@pytest.mark.parametrize("bad", list(BAD_WORDS.values()), ids=list(BAD_WORDS))
async def test_bad_word_in_the_middle_of_a_create_writes_nothing(
    store: Store, job: Job, bad: Any
) -> None:
    words: list[Any] = [*synthetic(600), bad, *synthetic(5, start=300.0)]
    before = await counts(store)
    with pytest.raises(ValidationError) as info:
        await store.transcriptions.create(transcription(job.id, word_timestamps=words))
    assert "word 600" in str(info.value)
    assert await counts(store) == before


@pytest.mark.parametrize("bad", list(BAD_WORDS.values()), ids=list(BAD_WORDS))
async def test_bad_word_in_an_appended_batch_writes_nothing(
    store: Store, job: Job, bad: Any
) -> None:
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=[GOOD]))
    before = await counts(store)
    with pytest.raises(ValidationError) as info:
        await store.transcriptions.append_words(created.id, [GOOD, bad])
    loc = info.value.errors[0]["loc"]
    assert isinstance(loc, tuple) and loc[0] == 1  # the index of the bad word
    assert await counts(store) == before


async def test_out_of_order_starts_are_refused_naming_the_word(store: Store, job: Job) -> None:
    words = synthetic(10)
    words[7] = {**words[7], "start": words[6]["start"] - 0.01}
    before = await counts(store)
    with pytest.raises(ValidationError, match=r"word 7 \(start\): starts"):
        await store.transcriptions.create(transcription(job.id, word_timestamps=words))
    assert await counts(store) == before


def test_equal_starts_and_overlapping_words_are_allowed() -> None:
    words = validate_words(
        [
            {"word": "a", "start": 1.0, "end": 2.0},
            {"word": "b", "start": 1.0, "end": 1.5},  # crosstalk: same start, overlaps a
        ]
    )
    assert words.starts == [1.0, 1.0]


async def test_creating_for_a_missing_job_writes_no_words(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.transcriptions.create(transcription(uuid.uuid4(), word_timestamps=[GOOD]))
    assert await counts(store) == (0, 0, 0)


async def test_a_create_for_a_missing_job_in_a_caller_transaction_leaves_the_rest_of_it(
    store: Store, job: Job
) -> None:
    """Inside a caller's transaction a create runs in a savepoint (not as the one statement
    a create outside one is): its failure leaves what the caller wrote, and the caller's
    transaction goes on."""
    async with store.transaction() as tx:
        kept = await tx.transcriptions.create(transcription(job.id, word_timestamps=synthetic(5)))
        with pytest.raises(JobNotFound):
            await tx.transcriptions.create(
                transcription(uuid.uuid4(), word_timestamps=synthetic(300))
            )
        await tx.transcriptions.append_words(kept.id, synthetic(2, start=100.0))
    assert await counts(store) == (1, 2, 7)  # the append is a segment of its own


@pytest.mark.parametrize("statement_segments", [1, 2, 128])
async def test_a_create_of_more_segments_than_a_statement_takes_is_written_whole(
    store: Store, job: Job, monkeypatch: pytest.MonkeyPatch, statement_segments: int
) -> None:
    """Past STATEMENT_SEGMENTS a create writes its row, then its segments in statements of that
    many (in one transaction); at or under it, one statement. Either way the words read back
    exactly, and a bad word anywhere writes nothing."""
    monkeypatch.setattr(transcriptions_module, "STATEMENT_SEGMENTS", statement_segments)
    words = synthetic(3 * SEGMENT_WORDS + 17)
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=words))
    assert same(await store.transcriptions.words(created.id), words)
    assert await counts(store) == (1, 4, len(words))
    bad = [*synthetic(2 * SEGMENT_WORDS), {**GOOD, "start": math.nan}]
    with pytest.raises(ValidationError):
        await store.transcriptions.create(transcription(job.id, word_timestamps=bad))
    missing = transcription(uuid.uuid4(), word_timestamps=synthetic(2 * SEGMENT_WORDS + 1))
    with pytest.raises(JobNotFound):
        await store.transcriptions.create(missing)
    assert await counts(store) == (1, 4, len(words))


# --- appends ------------------------------------------------------------------------------------


async def test_appended_batches_keep_their_order(store: Store, job: Job) -> None:
    created = await store.transcriptions.create(transcription(job.id))
    first, second = synthetic(700), synthetic(300, start=245.0)
    assert await store.transcriptions.append_words(created.id, first) == 700
    # a batch may start exactly where the last stored word starts
    same_start = [{"word": "tie", "start": 245.0, "end": 245.0}]
    assert await store.transcriptions.append_words(created.id, same_start) == 1
    assert await store.transcriptions.append_words(created.id, second) == 300
    assert await store.transcriptions.words(created.id) == [*first, *same_start, *second]
    fetched = await store.transcriptions.get(created.id)
    assert fetched is not None and same(fetched.word_timestamps, [*first, *same_start, *second])
    seqs = await store.pool.fetch(
        "SELECT seq FROM transcription_word_segments WHERE transcription_id = $1 ORDER BY seq",
        created.id,
    )
    assert [r["seq"] for r in seqs] == list(range(len(seqs)))


async def test_a_batch_that_precedes_what_is_stored_is_refused(store: Store, job: Job) -> None:
    created = await store.transcriptions.create(
        transcription(job.id, word_timestamps=synthetic(20, start=100.0))
    )
    before = await counts(store)
    last_start = synthetic(20, start=100.0)[-1]["start"]
    for batch in (synthetic(5), [{"word": "x", "start": last_start - 0.001, "end": 200.0}]):
        with pytest.raises(WordOrderConflict) as info:
            await store.transcriptions.append_words(created.id, batch)
        assert isinstance(info.value, Conflict)
        assert info.value.stored_last_start == last_start
    assert await counts(store) == before


# --- an append that re-sends the stored tail (on_overlap) -----------------------------------------


def spoken(*words: tuple[str, float, float]) -> list[Word]:
    return [
        {"word": w, "start": start, "end": end, "confidence": 0.9, "speaker": "A"}
        for w, start, end in words
    ]


STORED = spoken(("one", 1.0, 1.4), ("two", 1.5, 1.9), ("three", 2.0, 2.4), ("four", 2.5, 2.9))


async def stored_transcription(store: Store, job: Job) -> uuid.UUID:
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=STORED))
    return created.id


async def test_an_overlapping_append_is_refused_by_default_writing_nothing(
    store: Store, job: Job
) -> None:
    tid = await stored_transcription(store, job)
    resent = [*STORED[2:], *spoken(("five", 3.0, 3.4))]
    before = await counts(store)
    with pytest.raises(WordOrderConflict) as info:
        await store.transcriptions.append_words(tid, resent)
    assert info.value.stored_last_start == 2.5
    with pytest.raises(WordOrderConflict):
        await store.transcriptions.append_words(tid, resent, on_overlap="refuse")
    assert await counts(store) == before
    assert await store.transcriptions.words(tid) == STORED


async def test_skip_drops_the_resent_words_and_says_how_many(store: Store, job: Job) -> None:
    tid = await stored_transcription(store, job)
    new = spoken(("five", 3.0, 3.4), ("six", 3.5, 3.9))
    # The overlap window re-sends "three" and "four" (the last stored word) as they were.
    result = await store.transcriptions.append_words(tid, [*STORED[2:], *new], on_overlap="skip")
    assert result == transcriptions_module.Appended(appended=2, skipped=2, tail_start=2.5)
    assert await store.transcriptions.words(tid) == [*STORED, *new]
    # Re-sent again, with nothing new: nothing stored.
    again = await store.transcriptions.append_words(tid, new, on_overlap="skip")
    assert (again.appended, again.skipped) == (0, 2)
    assert await store.transcriptions.count_words(tid) == 6


async def test_skip_keeps_a_new_word_that_starts_with_the_tail(store: Store, job: Job) -> None:
    tid = await stored_transcription(store, job)
    # "four" re-sent; "4" starts when "four" does but is another word (crosstalk): stored.
    batch = [*spoken(("two", 1.5, 1.9), ("four", 2.5, 2.9), ("4", 2.5, 2.7), ("five", 3.0, 3.4))]
    result = await store.transcriptions.append_words(tid, batch, on_overlap="skip")
    assert (result.appended, result.skipped) == (2, 2)
    assert await store.transcriptions.words(tid) == [*STORED, *batch[2:]]
    # A word equal to the stored one but for one value is no copy: stored.
    differs = [{**batch[-1], "confidence": 0.8}]
    result = await store.transcriptions.append_words(tid, differs, on_overlap="skip")
    assert result == transcriptions_module.Appended(appended=1, skipped=0, tail_start=3.0)
    assert await store.transcriptions.count_words(tid) == 7


async def test_skip_with_nothing_stored_or_no_overlap_skips_nothing(store: Store, job: Job) -> None:
    empty = await store.transcriptions.create(transcription(job.id))
    result = await store.transcriptions.append_words(empty.id, STORED, on_overlap="skip")
    assert result == transcriptions_module.Appended(appended=4, skipped=0, tail_start=None)
    later = spoken(("five", 3.0, 3.4))
    result = await store.transcriptions.append_words(empty.id, later, on_overlap="skip")
    assert result == transcriptions_module.Appended(appended=1, skipped=0, tail_start=2.5)


async def test_skip_still_refuses_a_bad_word_in_the_overlap(store: Store, job: Job) -> None:
    tid = await stored_transcription(store, job)
    before = await counts(store)
    bad = [{**STORED[1], "confidence": 7.0}, *spoken(("five", 3.0, 3.4))]
    with pytest.raises(ValidationError, match=r"word 0 \(confidence\)"):
        await store.transcriptions.append_words(tid, bad, on_overlap="skip")
    assert await counts(store) == before


async def test_skip_across_the_chunks_of_a_stream(
    store: Store, job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcriptions_module, "STREAM_CHUNK_WORDS", 3)
    stored = synthetic(20)
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=stored))
    new = synthetic(5, start=100.0)
    # 11 re-sent words (3 chunks and a bit), then 5 new ones, from an iterator.
    result = await store.transcriptions.append_words(
        created.id, iter([*stored[9:], *new]), on_overlap="skip"
    )
    assert (result.appended, result.skipped) == (5, 11)
    assert await store.transcriptions.words(created.id) == [*stored, *new]


async def test_an_unknown_overlap_policy_is_refused_before_anything(store: Store, job: Job) -> None:
    tid = await stored_transcription(store, job)
    with pytest.raises(ValidationError, match="on_overlap must be one of refuse, skip"):
        await store.transcriptions.append_words(tid, STORED, on_overlap="merge")  # type: ignore[call-overload]


async def test_append_to_a_missing_transcription_raises_not_found(store: Store) -> None:
    with pytest.raises(TranscriptionNotFound):
        await store.transcriptions.append_words(uuid.uuid4(), [GOOD])
    for read in (
        store.transcriptions.words,
        store.transcriptions.count_words,
    ):
        with pytest.raises(TranscriptionNotFound):
            await read(uuid.uuid4())
    with pytest.raises(TranscriptionNotFound):
        await store.transcriptions.words_between(uuid.uuid4(), 0, 1)


async def test_concurrent_appends_to_one_transcription_are_serialised(
    store: Store, job: Job
) -> None:
    created = await store.transcriptions.create(transcription(job.id))
    first, second = synthetic(600), synthetic(600, start=1000.0)
    async with store.transaction() as tx:
        await tx.transcriptions.append_words(created.id, first)
        # a second appender waits for the lock held by this transaction
        waiting = asyncio.create_task(store.transcriptions.append_words(created.id, second))
        # wait until the server reports the second appender blocked on a lock (asked on
        # another connection: inside a transaction pg_stat_activity is one snapshot)
        while not await store.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            assert not waiting.done()
            await asyncio.sleep(0.01)
        assert not waiting.done()
    assert await waiting == 600
    assert await store.transcriptions.words(created.id) == [*first, *second]


async def test_appends_inside_a_caller_transaction_roll_back_with_it(
    store: Store, job: Job
) -> None:
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=[GOOD]))
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.transcriptions.append_words(created.id, synthetic(50, start=5.0))
            assert await tx.transcriptions.count_words(created.id) == 51
            raise RuntimeError("the caller gives up")
    assert await store.transcriptions.count_words(created.id) == 1


async def test_a_failed_append_in_a_caller_transaction_leaves_the_rest_of_it(
    store: Store, job: Job
) -> None:
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=[GOOD]))
    async with store.transaction() as tx:
        await tx.transcriptions.append_words(created.id, synthetic(3, start=2.0))
        with pytest.raises(WordOrderConflict):
            await tx.transcriptions.append_words(created.id, synthetic(3))
        await tx.transcriptions.append_words(created.id, synthetic(3, start=9.0))
    assert await store.transcriptions.count_words(created.id) == 7


# --- iterators and streaming --------------------------------------------------------------------


def word_stream(n: int, *, bad_at: int | None = None) -> Iterator[Word]:
    for i in range(n):
        word = {"word": "x", "start": i * 0.3, "end": i * 0.3 + 0.2, "confidence": 0.9}
        if i == bad_at:
            word["end"] = -1.0
        yield word


async def async_word_stream(n: int) -> AsyncIterator[Word]:
    for word in word_stream(n):
        yield word


async def test_iterator_and_async_iterator_inputs(store: Store, job: Job) -> None:
    n = 2 * transcriptions_module.STREAM_CHUNK_WORDS + 11
    created, count = await store.transcriptions.create_streamed(
        transcription(job.id), word_stream(n)
    )
    assert count == n
    assert await store.transcriptions.words(created.id) == list(word_stream(n))
    other = await store.transcriptions.create(transcription(job.id))
    assert await store.transcriptions.append_words(other.id, async_word_stream(1000)) == 1000
    assert (
        await store.transcriptions.append_words(
            other.id,
            ({**w, "start": w["start"] + 300, "end": w["end"] + 300} for w in word_stream(5)),
        )
        == 5
    )
    assert await store.transcriptions.count_words(other.id) == 1005


async def test_streamed_create_continues_after_the_words_in_data(store: Store, job: Job) -> None:
    head = synthetic(3)
    created, count = await store.transcriptions.create_streamed(
        transcription(job.id, word_timestamps=head),
        ({**w, "start": w["start"] + 10, "end": w["end"] + 10} for w in synthetic(4)),
    )
    assert count == 7
    assert same(created.word_timestamps, head)
    assert len(await store.transcriptions.words(created.id)) == 7


async def test_bad_word_late_in_a_stream_writes_nothing(store: Store, job: Job) -> None:
    # The first chunks are already copied when the bad word arrives: all of it goes.
    bad_at = 2 * transcriptions_module.STREAM_CHUNK_WORDS + 5
    with pytest.raises(ValidationError, match=f"word {bad_at} "):
        await store.transcriptions.create_streamed(
            transcription(job.id), word_stream(bad_at + 10, bad_at=bad_at)
        )
    assert await counts(store) == (0, 0, 0)


@pytest.mark.parametrize("statement_segments", [1, 128])
async def test_a_streamed_create_from_a_list_is_checked_whole_then_written(
    store: Store, job: Job, monkeypatch: pytest.MonkeyPatch, statement_segments: int
) -> None:
    """A list is in memory already: create_streamed checks it whole before any SQL (a bad
    word anywhere, even a max_end past the media, writes nothing) and writes it as create
    does: one statement, or past STATEMENT_SEGMENTS the row then the words' statements, on
    the pool and in a caller's transaction alike."""
    monkeypatch.setattr(transcriptions_module, "STATEMENT_SEGMENTS", statement_segments)
    words = synthetic(2 * SEGMENT_WORDS + 3)
    created, count = await store.transcriptions.create_streamed(transcription(job.id), words)
    assert count == len(words)
    assert created.word_timestamps == []
    assert same(await store.transcriptions.words(created.id), words)
    async with store.transaction() as tx:
        inner, _ = await tx.transcriptions.create_streamed(transcription(job.id), words[:5])
        with pytest.raises(ValidationError, match=f"word {len(words)} "):
            await tx.transcriptions.create_streamed(
                transcription(job.id), [*words, {**GOOD, "start": 500.0, "end": math.inf}]
            )
    assert await store.transcriptions.count_words(inner.id) == 5
    with pytest.raises(ValidationError, match="max_end"):
        await store.transcriptions.create_streamed(transcription(job.id), words, max_end=10.0)
    assert await counts(store) == (2, 4, len(words) + 5)


@pytest.mark.parametrize("length", [0, 255, 256, 257, 700])
async def test_a_stream_past_its_first_piece_is_written_with_the_row_then_chunk_by_chunk(
    store: Store, job: Job, monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    """The first piece of an iterator (a statement's worth: 256 words here) is checked before
    any SQL and written with the row; a stream that ends within it is that one statement, a
    longer one goes on in chunks (100 words here) in the same transaction. The words read
    back in order; a bad word past the first piece, named by its index in the stream, leaves
    nothing."""
    monkeypatch.setattr(transcriptions_module, "STATEMENT_SEGMENTS", 1)
    monkeypatch.setattr(transcriptions_module, "STREAM_CHUNK_WORDS", 100)
    words = synthetic(length)
    created, count = await store.transcriptions.create_streamed(transcription(job.id), iter(words))
    assert count == length
    assert same(await store.transcriptions.words(created.id), words)
    before = await counts(store)
    # A segment per chunk past the first piece: 256 + 100 + 100 + ... words.
    rest = max(0, length - SEGMENT_WORDS)
    assert before == (1, -(-min(length, SEGMENT_WORDS) // SEGMENT_WORDS) + -(-rest // 100), length)
    bad = [*synthetic(length + 1), {**GOOD, "start": 10_000.0, "end": math.nan}]
    with pytest.raises(ValidationError, match=f"word {length + 1} "):
        await store.transcriptions.create_streamed(transcription(job.id), iter(bad))
    assert await counts(store) == before


async def test_killed_connection_during_a_large_insert_leaves_nothing_and_pool_recovers(
    store: Store, job: Job, db_url: str
) -> None:
    admin = await asyncpg.connect(db_url)
    chunk = transcriptions_module.STREAM_CHUNK_WORDS
    # The stream's first piece is written with the row (a statement's worth), then chunks.
    first = transcriptions_module.STATEMENT_SEGMENTS * SEGMENT_WORDS

    async def words_then_kill() -> AsyncIterator[Word]:
        for i, word in enumerate(word_stream(first + 10 * chunk)):
            if i == first + 2 * chunk + 1:
                # The first piece and two chunks are written inside the open transaction:
                # kill it.
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND state LIKE 'idle in transaction%'"
                )
                assert killed == 1
            yield word

    try:
        with pytest.raises(DatabaseUnavailable):
            await store.transcriptions.create_streamed(transcription(job.id), words_then_kill())
    finally:
        await admin.close()
    assert await counts(store) == (0, 0, 0)
    # The pool replaced the dead connection: the next calls work.
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=[GOOD]))
    assert await store.transcriptions.count_words(created.id) == 1


async def test_killed_connection_during_one_big_create_leaves_nothing(
    store: Store, job: Job, db_url: str
) -> None:
    """200,000 words: the row, then statements of 128 segments, in one transaction; killed
    once one of those statements is seen running (or its transaction between two)."""
    words = synthetic(200_000, step=0.01)
    admin = await asyncpg.connect(db_url)
    try:
        insert = asyncio.create_task(
            store.transcriptions.create(transcription(job.id, word_timestamps=words))
        )
        killed = 0
        while not insert.done() and not killed:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND query LIKE '%INSERT INTO transcription_word_segments%'"
                " AND state IN ('active', 'idle in transaction')"
            )
        if killed:
            with pytest.raises(DatabaseUnavailable):
                await insert
            assert await counts(store) == (0, 0, 0)
        else:  # pragma: no cover - it finished before it was seen; all of it is there
            await insert
            assert await counts(store) == (1, segments(200_000), 200_000)
    finally:
        await admin.close()
    assert await store.ping()


def segments(n: int) -> int:
    return -(-n // SEGMENT_WORDS)


# --- backfill -----------------------------------------------------------------------------------


async def test_backfill_inserts_many_transcriptions_with_their_words(
    store: Store, job: Job
) -> None:
    items = [
        transcription(job.id, word_timestamps=synthetic(1000)),
        transcription(job.id),
        transcription(job.id, word_timestamps=[]),
        transcription(job.id, word_timestamps=MIXED),
    ]
    created = await store.transcriptions.create_many(items)
    assert same([t.word_timestamps for t in created], [synthetic(1000), None, [], MIXED])
    assert await counts(store) == (4, segments(1000) + 1, 1000 + len(MIXED))
    assert await store.transcriptions.list_for_job(job.id) == created
    assert await store.transcriptions.create_many([]) == []


async def test_backfill_with_one_bad_word_writes_nothing(store: Store, job: Job) -> None:
    items = [
        transcription(job.id, word_timestamps=synthetic(100)),
        transcription(job.id, word_timestamps=[*synthetic(5), {**GOOD, "confidence": 2}]),
    ]
    with pytest.raises(ValidationError, match="item 1"):
        await store.transcriptions.create_many(items)
    with pytest.raises(JobNotFound):
        await store.transcriptions.create_many(
            [items[0], transcription(uuid.uuid4(), word_timestamps=synthetic(3))]
        )
    assert await counts(store) == (0, 0, 0)


# --- time windows -------------------------------------------------------------------------------


async def test_window_rule_at_the_edges(store: Store, job: Job) -> None:
    words = [
        {"word": "before", "start": 0.0, "end": 0.9},
        {"word": "straddles_t0", "start": 0.8, "end": 1.2},
        {"word": "at_t0", "start": 1.0, "end": 1.4},
        {"word": "inside", "start": 1.5, "end": 1.9},
        {"word": "straddles_t1", "start": 1.9, "end": 2.5},
        {"word": "at_t1", "start": 2.0, "end": 2.2},
        {"word": "after", "start": 3.0, "end": 3.5},
    ]
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=words))
    window = await store.transcriptions.words_between(created.id, 1.0, 2.0)
    # t0 <= start < t1: a word straddling t0 is out, one straddling t1 is in.
    assert [w.word for w in window] == ["at_t0", "inside", "straddles_t1"]
    assert await store.transcriptions.words_between(created.id, 2.0, 2.0) == []
    assert await store.transcriptions.words_between(created.id, 5.0, 9.0) == []
    assert await store.transcriptions.words_between(created.id, 0, 100) == words
    with pytest.raises(ValidationError):
        await store.transcriptions.words_between(created.id, math.nan, 1.0)


async def test_windows_across_segments_match_a_filter_of_all_words(store: Store, job: Job) -> None:
    words = synthetic(5 * SEGMENT_WORDS + 100, step=0.25)
    # duplicate starts on a segment boundary
    b = words[SEGMENT_WORDS]["start"]
    words[SEGMENT_WORDS - 1] = {**words[SEGMENT_WORDS - 1], "start": b, "end": b + 0.2}
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=words))
    end = words[-1]["start"]
    for t0, t1 in [(0, 60), (b - 0.1, b), (b, b + 0.1), (b / 2, end - 10), (end - 60, end + 1)]:
        expected = [w for w in words if t0 <= w["start"] < t1]
        assert await store.transcriptions.words_between(created.id, t0, t1) == expected


# --- cascades -----------------------------------------------------------------------------------


async def test_deleting_a_transcription_or_its_job_removes_its_words(
    store: Store, job: Job
) -> None:
    a = await store.transcriptions.create(transcription(job.id, word_timestamps=synthetic(600)))
    b = await store.transcriptions.create(transcription(job.id, word_timestamps=synthetic(10)))
    other = await store.jobs.create({"job_type": "audio", "media_url": "https://x/b.mp3"})
    await store.transcriptions.create(transcription(other.id, word_timestamps=synthetic(5)))
    assert await counts(store) == (3, segments(600) + 2, 615)
    assert await store.transcriptions.delete(a.id) is True
    assert await counts(store) == (2, 2, 15)
    assert await store.jobs.delete(job.id) is True
    assert await counts(store) == (1, 1, 5)
    with pytest.raises(TranscriptionNotFound):
        await store.transcriptions.words(b.id)


async def test_packed_seconds_decode_in_sql_as_in_python(store: Store) -> None:
    values = [0.0, 1e-310, 0.1, 2.5, 10800.123456789, 1e300, 5e-324]
    packed = pack_floats(values)
    assert await store.pool.fetchval("SELECT media_store_unpack_float8($1)", packed) == values
    assert await store.pool.fetchval(
        "SELECT media_store_unpack_float8($1)", pack_confidences([0.5, None, 1.0])
    ) == [0.5, None, 1.0]
    assert await store.pool.fetchval("SELECT float8send($1) = $2", 0.1, pack_floats([0.1]))
    words = ["naïve", "", "🎙️👋🏽", "שלום", "x"]
    text, lengths = "".join(words), pack_lengths(words)
    assert split_words(text, lengths) == words
    assert (
        await store.pool.fetchval("SELECT media_store_unpack_words($1, $2)", text, lengths) == words
    )


async def test_the_database_refuses_malformed_segments(store: Store, job: Job) -> None:
    created = await store.transcriptions.create(transcription(job.id))
    one, nan = pack_floats([1.0]), pack_confidences([None])
    a, ab = pack_lengths(["a"]), pack_lengths(["a", "b"])
    for record in [
        (job.id, created.id, 0, 1.0, 1.0, 2, "a", a, one, one, nan, None),  # count mismatch
        (job.id, created.id, 0, 1.0, 1.0, 1, "a", a, one + one, one, nan, None),  # bytes mismatch
        (job.id, created.id, 0, 2.0, 2.0, 1, "a", a, one, one, nan, None),  # bounds wrong
        (job.id, created.id, 0, 1.0, 1.0, 1, "ab", ab, one, one, nan, None),  # lengths mismatch
        (job.id, created.id, -1, 1.0, 1.0, 1, "a", a, one, one, nan, None),  # negative seq
        (job.id, uuid.uuid4(), 0, 1.0, 1.0, 1, "a", a, one, one, nan, None),  # no transcription
        (uuid.uuid4(), created.id, 0, 1.0, 1.0, 1, "a", a, one, one, nan, None),  # another job
    ]:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await store.pool.copy_records_to_table(
                "transcription_word_segments", records=[record], columns=SEGMENT_COLUMNS
            )
    assert await counts(store) == (1, 0, 0)


# --- the 0003 migration moves the plan's JSONB words and puts them back -----------------------


async def test_migration_0003_moves_jsonb_words_and_rollback_restores_them(
    empty_db_url: str,
) -> None:
    dsn = Dsn(empty_db_url)
    migrate.apply(dsn, target="0001_initial_schema")
    legacy = [
        {"word": "old", "start": 0.5, "end": 0.9, "confidence": 0.7},
        {"word": "words", "start": 1.0, "end": 1.5, "speaker": "S1"},
    ] + [{"word": "w", "start": 2.0 + i, "end": 2.5 + i} for i in range(600)]
    conn = await asyncpg.connect(empty_db_url)
    try:
        job_id = await conn.fetchval(
            "INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'x') RETURNING id"
        )
        tid = await conn.fetchval(
            "INSERT INTO transcriptions (job_id, provider, text_content, word_timestamps)"
            " VALUES ($1, 'p', 't', $2::text::jsonb) RETURNING id",
            job_id,
            json.dumps(legacy),
        )
        none_id = await conn.fetchval(
            "INSERT INTO transcriptions (job_id, provider, text_content)"
            " VALUES ($1, 'p', 't') RETURNING id",
            job_id,
        )
    finally:
        await conn.close()
    migrate.apply(dsn, target="0003_word_timestamps")
    # The code reads the head schema: the later migrations carry the moved words on too.
    later = migrate.apply(dsn)
    store = await Store.open(settings=Settings(dsn=dsn, min_size=1, max_size=2))
    try:
        moved = await store.transcriptions.get(tid)
        assert moved is not None and same(moved.word_timestamps, legacy)
        none = await store.transcriptions.get(none_id)
        assert none is not None and none.word_timestamps is None
        assert await store.transcriptions.count_words(tid) == 602
    finally:
        await store.close()
    assert migrate.rollback(dsn, count=len(later)) == list(reversed(later))
    assert migrate.rollback(dsn) == ["0003_word_timestamps"]
    conn = await asyncpg.connect(empty_db_url)
    try:
        restored = await conn.fetchval(
            "SELECT word_timestamps::text FROM transcriptions WHERE id = $1", tid
        )
        assert json.loads(restored) == legacy
        assert (
            await conn.fetchval("SELECT word_timestamps FROM transcriptions WHERE id = $1", none_id)
            is None
        )
        assert await conn.fetchval("SELECT to_regclass('transcription_word_segments')") is None
    finally:
        await conn.close()


# --- any real number; other engines' keys; the media's end (issue 10) ---------------------------


def test_any_finite_real_is_a_number_stored_as_the_nearest_float() -> None:
    np = pytest.importorskip("numpy")
    words = validate_words(
        [
            {"word": "a", "start": np.float64(0.66), "end": np.float32(0.75), "confidence": 0.5},
            {
                "word": "b",
                "start": np.int64(1),
                "end": Decimal("1.25"),
                "confidence": np.float64(1),
            },
            {"word": "c", "start": Fraction(3, 2), "end": 2, "confidence": Decimal("0.1")},
        ]
    )
    assert words.starts == [0.66, 1.0, 1.5]
    assert words.ends == [float(np.float32(0.75)), 1.25, 2.0]
    assert words.confidences == [0.5, 1.0, 0.1]
    for column in (words.starts, words.ends, words.confidences):
        assert {type(v) for v in column} == {float}  # builtin floats, as read back


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "True"),
        ("numpy bool", "True"),
        (Decimal("NaN"), "nan"),
        (Decimal("sNaN"), "Decimal('sNaN')"),
        (Decimal("1e400"), "inf"),
        (Fraction(10**400), "Fraction"),
        ("0.5", "'0.5'"),
    ],
    ids=["bool", "numpy bool", "Decimal NaN", "Decimal sNaN", "Decimal 1e400", "huge", "text"],
)
def test_bools_and_non_finite_reals_are_not_numbers(value: Any, shown: str) -> None:
    if isinstance(value, str) and value == "numpy bool":
        value = pytest.importorskip("numpy").bool_(True)
    pattern = r"word 1 \(start\): must be a finite number, got .*" + re.escape(shown)
    with pytest.raises(ValidationError, match=pattern):
        validate_words([GOOD, {**GOOD, "start": value}])


async def test_numpy_words_are_stored_and_read_back_as_floats(store: Store, job: Job) -> None:
    np = pytest.importorskip("numpy")
    given = [
        {"word": " Are", "start": np.float64(0.66), "end": np.float64(0.66), "confidence": 0.3},
        {"word": " you", "start": np.float64(0.66), "end": np.float64(0.86), "confidence": 0.9},
    ]
    created = await store.transcriptions.create(transcription(job.id, word_timestamps=given))
    stored = await store.transcriptions.words(created.id)
    assert stored == given
    assert stored.starts == [0.66, 0.66] and type(stored.starts[0]) is float


@pytest.mark.parametrize("key", ["probability", "score", "conf"])
async def test_a_confidence_under_another_engines_name_is_refused_naming_it(
    store: Store, job: Job, key: str
) -> None:
    words = [*synthetic(5), {"word": " hi", "start": 9.0, "end": 9.2, key: 0.87}]
    before = await counts(store)
    for write in (
        lambda: store.transcriptions.create(transcription(job.id, word_timestamps=words)),
        lambda: store.transcriptions.create_streamed(transcription(job.id), iter(words)),
    ):
        with pytest.raises(ValidationError) as info:
            await write()
        message = str(info.value)
        assert f"word 5 ({key}): has '{key}' but no 'confidence'" in message
        assert "rename" in message and "words_from" in message
    assert await counts(store) == before
    with pytest.raises(ValidationError) as info:
        validate_words(words)
    assert info.value.errors[0]["loc"] == (5, key)


def test_other_keys_beside_the_five_are_still_ignored() -> None:
    # Whisper's dicts carry probability beside a confidence the caller set, and ids, tokens.
    words = validate_words(
        [
            {"id": 0, "word": "a", "start": 0.0, "end": 0.2, "confidence": 0.9, "probability": 0.9},
            {"word": "b", "start": 0.3, "end": 0.4, "tokens": [1, 2], "avg_logprob": -0.2},
        ]
    )
    assert words.confidences == [0.9, None]


def test_text_without_word_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"word 1 \(text\): has 'text' but no 'word'"):
        validate_words([GOOD, {"text": "hi", "start": 2.0, "end": 2.1, "confidence": 0.5}])
    # Both present: the word is "word", text is another key.
    words = validate_words([{"word": "hi", "text": "Hi!", "start": 0.0, "end": 0.1}])
    assert words.words == ["hi"]


async def test_words_ending_after_max_end_are_refused_on_every_write(
    store: Store, job: Job
) -> None:
    # An AssemblyAI transcript's milliseconds read as seconds: 484 hours of a 29-minute call.
    milliseconds: list[dict[str, Any]] = [
        {"word": "Smoke", "start": 250, "end": 650, "confidence": 0.97},
        {"word": "Yes.", "start": 1743210, "end": 1743560, "confidence": 0.6},
    ]
    seconds = [{**w, "start": w["start"] / 1000, "end": w["end"] / 1000} for w in milliseconds]
    empty = await store.transcriptions.create(transcription(job.id))
    before = await counts(store)
    for write in (
        lambda: store.transcriptions.create(
            transcription(job.id, word_timestamps=milliseconds), max_end=1744.0
        ),
        lambda: store.transcriptions.create_streamed(
            transcription(job.id), iter(milliseconds), max_end=1744.0
        ),
        lambda: store.transcriptions.append_words(empty.id, milliseconds, max_end=1744.0),
    ):
        with pytest.raises(
            ValidationError, match=r"word 1 \(end\): ends at 1743560.0 s, after max_end \(1744.0 s"
        ):
            await write()
    assert await counts(store) == before
    created = await store.transcriptions.create(
        transcription(job.id, word_timestamps=seconds), max_end=1744.0
    )
    assert await store.transcriptions.words(created.id) == seconds
    assert await store.transcriptions.append_words(empty.id, seconds, max_end=1743.56) == 2


@pytest.mark.parametrize("bad", [math.nan, math.inf, True, "10"])
async def test_a_bad_max_end_is_refused_before_anything(store: Store, job: Job, bad: Any) -> None:
    with pytest.raises(ValidationError, match="max_end must be a finite number"):
        await store.transcriptions.create(
            transcription(job.id, word_timestamps=[GOOD]), max_end=bad
        )
    assert await counts(store) == (0, 0, 0)


def test_to_dicts_gives_what_the_models_dump() -> None:
    words = validate_words([*synthetic(3), {**GOOD, "start": 9.0, "end": 9.5, "speaker": "A"}])
    assert words.to_dicts() == [w.model_dump() for w in words]
    assert list(words.to_dicts()[0]) == ["word", "start", "end", "confidence", "speaker"]


def test_the_words_fields_have_a_json_schema_of_the_five_keys() -> None:
    accepted = TypeAdapter(WordsInput).json_schema(mode="validation")
    assert accepted["items"] == {"$ref": "#/$defs/WordTimestamp"}
    returned = TypeAdapter(WordsOutput).json_schema(mode="serialization")
    assert returned["items"] == {"$ref": "#/$defs/WordDict"}
    word = returned["$defs"]["WordDict"]
    assert word["required"] == ["word", "start", "end", "confidence", "speaker"]
    assert word["properties"]["speaker"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
