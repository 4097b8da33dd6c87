"""The word segments' storage as of migration 0006: speakers packed as a dictionary and codes,
their SQL decoder, the conversion of existing rows and its rollback, window reads that decode
only the words inside the window, and the window query's plan on a never-analyzed table."""

from __future__ import annotations

import random
import uuid
from typing import Any

import asyncpg
import pytest

from media_store import Dsn, Job, Store, ValidationError, migrate
from media_store.words.segments import (
    SEGMENT_COLUMNS,
    SEGMENT_WORDS,
    pack_confidences,
    pack_floats,
    pack_lengths,
    pack_speakers,
    segment_records,
    segments_window,
    segments_words,
    unpack_speakers,
)
from media_store.words.timestamps import validate_words

Word = dict[str, Any]


def diarized(n: int, *, seed: int = 1, speakers: int = 2, rate: float = 3.6) -> list[Word]:
    """``n`` words in turns of 1-40 words among ``speakers`` speakers, Unicode words with a
    leading space, keys the library ignores."""
    rng = random.Random(seed)
    words: list[Word] = []
    t, speaker, turn = 0.0, 0, 0
    for i in range(n):
        if turn == 0:
            speaker, turn = rng.randrange(speakers), rng.randint(1, 40)
        turn -= 1
        t += rng.uniform(0.5, 1.5) / rate
        words.append(
            {
                "id": i,
                "word": " " + rng.choice(["café", "naïve", "東京", "👋🏽", "the", "שלום"]),
                "start": round(t, 2),
                "end": round(t + 0.3, 2),
                "confidence": round(rng.random(), 4),
                "probability": 0.5,
                "tokens": [i],
                "speaker": f"SPEAKER_{speaker:02d}",
            }
        )
    return words


def same(actual: object, expected: object) -> bool:
    """Words compared with a list of dicts (the documented equality, hidden from mypy)."""
    return actual == expected


@pytest.fixture
async def job(store: Store) -> Job:
    return await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})


# --- the speaker codec ------------------------------------------------------------------------

SPEAKER_CASES: list[list[str | None]] = [
    ["A"],
    ["A", "A", "B", None, "A"],
    [None, "東京 🎙️", None],
    ["", None, ""],
    [f"S{i}" for i in range(SEGMENT_WORDS)],  # a distinct speaker on every word
]


@pytest.mark.parametrize("speakers", SPEAKER_CASES)
async def test_packed_speakers_decode_in_sql_as_in_python(
    store: Store, speakers: list[str | None]
) -> None:
    packed = pack_speakers(speakers)
    assert packed is not None
    assert unpack_speakers(packed) == speakers
    assert unpack_speakers(packed, 1, 3) == speakers[1:3]
    assert await store.pool.fetchval("SELECT media_store_unpack_speakers($1)", packed) == speakers


def test_a_segment_without_speakers_stores_none_even_in_a_diarized_batch() -> None:
    named = [{"word": "w", "start": float(i), "end": float(i), "speaker": "A"} for i in range(3)]
    silent = [{"word": "w", "start": 3.0 + i, "end": 3.0 + i} for i in range(SEGMENT_WORDS)]
    records = list(segment_records(uuid.uuid4(), uuid.uuid4(), 0, validate_words(named + silent)))
    speakers = [r[SEGMENT_COLUMNS.index("speakers")] for r in records]
    assert speakers[0] is not None and speakers[1] is None


@pytest.mark.parametrize(
    "name",
    [
        lambda i: f"S{i}",  # a speaker a word: more than one byte codes in the batch
        lambda i: f"{'long speaker name ' * 2}{i // 20}",  # values too long to repeat
    ],
    ids=["more-than-256", "long-values"],
)
def test_segments_of_a_batch_with_many_speakers_carry_only_their_own(
    name: Any,
) -> None:
    words = diarized(3 * SEGMENT_WORDS)
    for i, word in enumerate(words):
        word["speaker"] = name(i)
    records = list(segment_records(uuid.uuid4(), uuid.uuid4(), 0, validate_words(words)))
    packed = [r[SEGMENT_COLUMNS.index("speakers")] for r in records]
    assert [s for p in packed for s in unpack_speakers(p)] == [w["speaker"] for w in words]
    # each segment's values are those of its own words
    first = {w["speaker"] for w in words[:SEGMENT_WORDS]}
    assert set(unpack_speakers(packed[0])) == first
    assert len(packed[0]) == 2 + sum(4 + len(v.encode()) for v in first) + SEGMENT_WORDS


# --- speaker validation on the distinct values ------------------------------------------------


class LooksLikeA:
    """Hashes and compares equal to the speaker "A", but is no string."""

    def __hash__(self) -> int:
        return hash("A")

    def __eq__(self, other: object) -> bool:
        return other == "A"


@pytest.mark.parametrize(
    "bad",
    [LooksLikeA(), ["A"], 3, "A" * 51, "A\x00", "\ud800"],
    ids=["equal-non-string", "unhashable", "number", "too-long", "NUL", "lone-surrogate"],
)
def test_every_speaker_is_checked_though_only_distinct_values_are_examined(bad: object) -> None:
    words: list[Word] = [
        {"word": "w", "start": float(i), "end": float(i), "speaker": s}
        for i, s in enumerate(["A", None, "A", bad, "B"])
    ]
    with pytest.raises(ValidationError) as refused:
        validate_words(words)
    assert refused.value.errors[0]["loc"] == (3, "speaker")


# --- round trips and windows ------------------------------------------------------------------


async def test_diarized_words_round_trip_with_their_speakers(store: Store, job: Job) -> None:
    words = diarized(5 * SEGMENT_WORDS + 17)
    created = await store.transcriptions.create(
        {"job_id": job.id, "provider": "whisperx", "text_content": "…", "word_timestamps": words}
    )
    stored = await store.transcriptions.words(created.id)
    assert same(stored, words)
    assert stored.speakers == [w["speaker"] for w in words]


async def test_windows_decode_the_same_words_as_a_filter_of_all(store: Store, job: Job) -> None:
    # Speakers on the first half only: a window may cut a segment where none is left.
    words = diarized(6 * SEGMENT_WORDS)
    for word in words[len(words) // 2 :]:
        del word["speaker"]
    created = await store.transcriptions.create(
        {"job_id": job.id, "provider": "whisperx", "text_content": "…", "word_timestamps": words}
    )
    whole = await store.transcriptions.words(created.id)
    end = words[-1]["start"]
    rng = random.Random(3)
    for t0, t1 in [
        (0.0, end + 1),
        (-5.0, 0.0),
        (end, end + 1),
        *(
            (t, t + rng.choice([1.0, 30.0, 60.0, 200.0]))
            for t in (rng.uniform(0, end) for _ in range(40))
        ),
    ]:
        window = await store.transcriptions.words_between(created.id, t0, t1)
        expected = whole.window(t0, t1)
        assert same(window, expected), (t0, t1)
        assert window.speakers == expected.speakers


async def test_the_window_query_probes_its_segments_on_a_never_analyzed_table(
    store: Store, job: Job, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    base = {"job_id": job.id, "provider": "whisperx", "text_content": "…"}
    for seed in range(5):
        await store.transcriptions.create({**base, "word_timestamps": diarized(2000, seed=seed)})
    target = await store.transcriptions.create({**base, "word_timestamps": diarized(8000)})
    assert await raw.fetchval(
        "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables"
        " WHERE relname = 'transcription_word_segments'"
    )
    sql = store.transcriptions._segments_between_query.sql
    plan = "\n".join(
        r[0]
        for r in await raw.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + sql, target.id, 600.0, 660.0)
    )
    assert "transcription_word_segments_time" in plan
    assert "Seq Scan" not in plan and "Bitmap" not in plan
    # Only the rows of the window's segments are visited: none is fetched and thrown away.
    assert "Rows Removed by Filter" not in plan


# --- migration 0006 converts stored speakers and its rollback restores them -------------------


async def test_migration_0006_packs_stored_speakers_and_rollback_restores_them(
    empty_db_url: str,
) -> None:
    dsn = Dsn(empty_db_url)
    ids = migrate.migration_ids()
    before_0006 = ids[ids.index("0006_segment_speakers_and_windows") - 1]
    migrate.apply(dsn, target=before_0006)
    cases: list[list[str | None]] = [*SPEAKER_CASES, [None, None]]
    conn = await asyncpg.connect(empty_db_url)
    try:
        job_id = await conn.fetchval(
            "INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'x') RETURNING id"
        )
        tid = await conn.fetchval(
            "INSERT INTO transcriptions (job_id, provider, text_content, word_timestamps)"
            " VALUES ($1, 'p', 't', '[]') RETURNING id",
            job_id,
        )
        for seq, speakers in enumerate(cases):
            n = len(speakers)
            starts = pack_floats([float(seq)] * n)
            await conn.copy_records_to_table(
                "transcription_word_segments",
                records=[
                    (
                        tid,
                        seq,
                        float(seq),
                        float(seq),
                        n,
                        "w" * n,
                        pack_lengths(["w"] * n),
                        starts,
                        starts,
                        pack_confidences([None] * n),
                        speakers,
                    )
                ],
                columns=[c for c in SEGMENT_COLUMNS if c != "job_id"],  # before 0009
            )
        old = [
            r[0]
            for r in await conn.fetch(
                "SELECT speakers FROM transcription_word_segments ORDER BY seq"
            )
        ]
    finally:
        await conn.close()

    migrate.apply(dsn, target="0006_segment_speakers_and_windows")  # later ones may follow
    conn = await asyncpg.connect(empty_db_url)
    try:
        rows = await conn.fetch(
            "SELECT speakers, media_store_unpack_speakers(speakers) AS unpacked"
            " FROM transcription_word_segments ORDER BY seq"
        )
    finally:
        await conn.close()
    for row, speakers in zip(rows[:-1], cases, strict=False):
        assert unpack_speakers(row["speakers"]) == row["unpacked"] == speakers
    assert rows[-1]["speakers"] is None  # no word with a speaker: no speakers at all

    assert migrate.rollback(dsn) == ["0006_segment_speakers_and_windows"]
    conn = await asyncpg.connect(empty_db_url)
    try:
        restored = [
            r[0]
            for r in await conn.fetch(
                "SELECT speakers FROM transcription_word_segments ORDER BY seq"
            )
        ]
    finally:
        await conn.close()
    assert restored[:-1] == old[:-1]
    assert restored[-1] is None


def test_segments_from_text_arrays_read_as_from_packed_speakers() -> None:
    # A database not yet migrated to 0006 hands speakers back as a list.
    speakers: list[str | None] = ["A", None, "B"]
    row: dict[str, Any] = {
        "words": "abc",
        "word_lengths": pack_lengths(["a", "b", "c"]),
        "starts": pack_floats([0.0, 1.0, 2.0]),
        "ends": pack_floats([0.5, 1.5, 2.5]),
        "confidences": pack_confidences([None, 0.5, 1.0]),
    }
    for value in (speakers, pack_speakers(speakers)):
        segment = {**row, "speakers": value}
        assert segments_words([segment]).speakers == speakers
        assert segments_window([segment], 0.0, 1.0).speakers == ["A"]
        # the one word of this window has no speaker: neither has the window
        assert segments_window([segment], 1.0, 2.0).speakers is None
