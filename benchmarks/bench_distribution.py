"""Word segments keyed by job (migration 0009) against the 0006 layout, side by side.

0009 adds the job's id to every segment (a 16-byte column, a composite foreign key to
transcriptions (job_id, id), job_id leading the primary key and the time index) and every
segment query filters by it, looking the job up from the transcription in the same statement
where the caller has only the transcription. What that costs, measured in one run:

- ingest: the same diarized transcripts (10,000 words each, a speaker on every word, Unicode
  words) into a database migrated to 0006 and one migrated to head, each transcript as the
  library writes it (its row, then one binary COPY of its segments, in one transaction), the
  two databases taking turns transcript by transcript, their order alternating. The segment
  records are packed inside the clock on both sides (media_store.words.segments; the 0006 side
  without the job column). Words/s and the server's CPU (its backend, from /proc) per word.
- reads: a 60-second window and the whole of a 3.1-hour, 40,000-word transcript, with the
  0006 queries on the 0006 database and the 0009 queries (sql/words.sql) on the other,
  alternating call by call.
- bytes per word: pg_total_relation_size of the segments (table, TOAST and every index) over
  the words stored, and of transcriptions too.

Nothing is analyzed or warmed on either side beyond what the alternation gives both.
"""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from typing import Any, TypeAlias

import asyncpg

from benchmarks.bench_words import DIARIZED, asr_words
from benchmarks.common import fresh_database, median, print_table, write_results
from media_store import Dsn, Settings, Store, migrate
from media_store.db.connections import init_connection
from media_store.db.queries import QUERIES
from media_store.words.segments import SEGMENT_COLUMNS, SEGMENT_TABLE, segment_records
from media_store.words.timestamps import Words, validate_words

TRANSCRIPTS = 40
WORDS = 10_000
ROUNDS = 3
LONG_WORDS = 40_000
WINDOW_S = 60.0
WINDOW_READS = 200
WHOLE_READS = 30

BEFORE = "0006 (segments by transcription)"
AFTER = "0009 (segments by job)"

# The queries of sql/words.sql as of 0006, for the 0006 database.
BEFORE_WHOLE = """
SELECT transcription_id, words, word_lengths, starts, ends, confidences, speakers
FROM transcription_word_segments
WHERE transcription_id = $1::uuid
ORDER BY seq"""
BEFORE_WINDOW = """
SELECT transcription_id, words, word_lengths, starts, ends, confidences, speakers
FROM transcription_word_segments
WHERE transcription_id = $1::uuid
  AND seq >= (SELECT seq FROM transcription_word_segments
              WHERE transcription_id = $1::uuid AND last_start >= $2::float8
              ORDER BY last_start, seq
              LIMIT 1)
  AND seq <= coalesce((SELECT seq FROM transcription_word_segments
                       WHERE transcription_id = $1::uuid AND last_start >= $3::float8
                       ORDER BY last_start, seq
                       LIMIT 1), 2147483647)
  AND first_start < $3::float8
ORDER BY seq"""
WAL_POSITION = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
JOBS = 5_000
CREATE_ROW = """
INSERT INTO transcriptions (job_id, provider, text_content, word_timestamps)
VALUES ($1, 'bench', $2, '[]') RETURNING id"""

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def _backend_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None  # the server runs elsewhere
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Side:
    def __init__(self, name: str, conn: Conn, job_id: uuid.UUID) -> None:
        self.name = name
        self.conn = conn
        self.job_id = job_id
        self.pid = 0
        self.seconds = 0.0
        self.words = 0
        self.cpu_s: float | None = 0.0

    async def write(self, words: Words) -> None:
        with_job = self.name == AFTER
        columns = SEGMENT_COLUMNS if with_job else SEGMENT_COLUMNS[1:]
        start = time.perf_counter()
        async with self.conn.transaction():
            # the transcript's text, as an ASR returns it beside the words
            tid = await self.conn.fetchval(CREATE_ROW, self.job_id, "".join(words.words))
            records = segment_records(self.job_id, tid, 0, words)
            await self.conn.copy_records_to_table(
                SEGMENT_TABLE,
                records=records if with_job else (r[1:] for r in records),
                columns=columns,
            )
        self.seconds += time.perf_counter() - start
        self.words += len(words)


async def _open(url: str) -> tuple[Conn, uuid.UUID]:
    conn: Conn = await asyncpg.connect(url)
    await init_connection(conn)
    job_id = await conn.fetchval(
        "INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'https://bench') RETURNING id"
    )
    return conn, job_id


async def ingest_round(server_url: str, blobs: list[Words], order: int) -> dict[str, Any]:
    async with (
        fresh_database(server_url, migrated=False) as before_url,
        fresh_database(server_url) as after_url,
    ):
        migrate.apply(Dsn(before_url), target="0006_segment_speakers_and_windows")
        sides = []
        for name, url in ((BEFORE, before_url), (AFTER, after_url)):
            conn, job_id = await _open(url)
            side = Side(name, conn, job_id)
            side.pid = await conn.fetchval("SELECT pg_backend_pid()")
            sides.append(side)
        try:
            cpu0 = {s.name: _backend_cpu_s(s.pid) for s in sides}
            for i in range(TRANSCRIPTS):
                turn = sides if (i + order) % 2 == 0 else sides[::-1]
                for side in turn:
                    await side.write(blobs[i % len(blobs)])
            result: dict[str, Any] = {}
            for side in sides:
                c0, c1 = cpu0[side.name], _backend_cpu_s(side.pid)
                size = await side.conn.fetchval(
                    "SELECT pg_total_relation_size('transcription_word_segments')"
                )
                rows = await side.conn.fetchval("SELECT pg_total_relation_size('transcriptions')")
                result[side.name] = {
                    "words_per_s": side.words / side.seconds,
                    "server_cpu_us_per_word": None
                    if c0 is None or c1 is None
                    else (c1 - c0) * 1e6 / side.words,
                    "segment_bytes_per_word": size / side.words,
                    "transcription_bytes_per_transcript": rows / TRANSCRIPTS,
                }
            return result
        finally:
            for side in sides:
                await side.conn.close()


async def reads(server_url: str) -> dict[str, dict[str, float]]:
    long_words = validate_words(list(asr_words(DIARIZED, LONG_WORDS, seed=99)))
    duration = long_words.ends[-1]
    async with (
        fresh_database(server_url, migrated=False) as before_url,
        fresh_database(server_url) as after_url,
    ):
        migrate.apply(Dsn(before_url), target="0006_segment_speakers_and_windows")
        before_conn, before_job = await _open(before_url)
        after_conn, after_job = await _open(after_url)
        try:
            before = Side(BEFORE, before_conn, before_job)
            after = Side(AFTER, after_conn, after_job)
            wal: dict[str, float] = {}
            for side in (before, after):  # one after the other: the WAL is the server's
                lsn0 = await side.conn.fetchval(WAL_POSITION)
                await side.write(long_words)
                wal[side.name] = (await side.conn.fetchval(WAL_POSITION) - lsn0) / LONG_WORDS
            before_tid = await before_conn.fetchval("SELECT id FROM transcriptions")
            after_tid = await after_conn.fetchval("SELECT id FROM transcriptions")
            new_whole = QUERIES["list_word_segments"].sql
            new_window = QUERIES["list_word_segments_between"].sql
            rng = random.Random(7)
            times: dict[str, dict[str, list[float]]] = {
                "window": {BEFORE: [], AFTER: []},
                "whole": {BEFORE: [], AFTER: []},
            }
            calls = [
                (BEFORE, before_conn, before_tid, BEFORE_WINDOW, BEFORE_WHOLE),
                (AFTER, after_conn, after_tid, new_window, new_whole),
            ]
            for i in range(WINDOW_READS):
                t0 = rng.uniform(0, duration - WINDOW_S)
                for name, conn, tid, window, _ in calls if i % 2 == 0 else calls[::-1]:
                    start = time.perf_counter()
                    rows = await conn.fetch(window, tid, t0, t0 + WINDOW_S)
                    times["window"][name].append(time.perf_counter() - start)
                    assert rows
            for i in range(WHOLE_READS):
                for name, conn, tid, _, whole in calls if i % 2 == 0 else calls[::-1]:
                    start = time.perf_counter()
                    rows = await conn.fetch(whole, tid)
                    times["whole"][name].append(time.perf_counter() - start)
                    assert sum(len(r["word_lengths"]) // 4 for r in rows) == LONG_WORDS
        finally:
            await before_conn.close()
            await after_conn.close()
    result: dict[str, dict[str, float]] = {
        read: {name: median(values) for name, values in by_side.items()}
        for read, by_side in times.items()
    }
    result["wal_bytes_per_word"] = wal
    return result


async def job_footprint(server_url: str) -> dict[str, float]:
    """Bytes on disk (jobs table and its indexes) and WAL bytes per job through its whole
    cycle (create, claim in batches of 10, complete in one statement per batch), on head."""
    async with fresh_database(server_url) as url:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=2))
        try:
            async with store.connection() as repos:
                conn = repos.executor
                assert isinstance(conn, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy)
                lsn0 = await conn.fetchval(WAL_POSITION)
            for i in range(JOBS):
                await store.jobs.create(
                    {
                        "job_type": "audio",
                        "media_url": f"https://media.example/{i}.wav",
                        "parameters": {"language": "en", "diarize": True},
                    }
                )
            while claimed := await store.jobs.claim("bench", limit=10):
                await store.jobs.complete_many("bench", {job.id: None for job in claimed})
            async with store.connection() as repos:
                conn = repos.executor
                assert isinstance(conn, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy)
                lsn1 = await conn.fetchval(WAL_POSITION)
                size = await conn.fetchval("SELECT pg_total_relation_size('jobs')")
        finally:
            await store.close()
    return {"jobs": JOBS, "bytes_per_job": size / JOBS, "wal_bytes_per_job": (lsn1 - lsn0) / JOBS}


async def main(server_url: str) -> None:
    blobs = [validate_words(list(asr_words(DIARIZED, WORDS, seed=s))) for s in range(10)]
    rounds = [await ingest_round(server_url, blobs, order) for order in range(ROUNDS)]

    def med(side: str, key: str) -> float | None:
        values = [r[side][key] for r in rounds if r[side][key] is not None]
        return statistics.median(values) if values else None

    ingest = {
        side: {
            key: med(side, key)
            for key in (
                "words_per_s",
                "server_cpu_us_per_word",
                "segment_bytes_per_word",
                "transcription_bytes_per_transcript",
            )
        }
        for side in (BEFORE, AFTER)
    }
    read = await reads(server_url)
    wal = read.pop("wal_bytes_per_word")
    jobs = await job_footprint(server_url)
    ratios = {
        "ingest_after_vs_before": (ingest[AFTER]["words_per_s"] or 0)
        / (ingest[BEFORE]["words_per_s"] or 1),
        "window_read_after_vs_before": read["window"][BEFORE] / read["window"][AFTER],
        "whole_read_after_vs_before": read["whole"][BEFORE] / read["whole"][AFTER],
    }
    print_table(
        f"word segments by job (0009) vs by transcription (0006): {TRANSCRIPTS} diarized "
        f"transcripts x {WORDS:,} words, median of {ROUNDS} rounds",
        ["layout", "words/s", "server CPU us/word", "segment bytes/word"],
        [
            [
                side,
                ingest[side]["words_per_s"] or 0.0,
                ingest[side]["server_cpu_us_per_word"] or 0.0,
                ingest[side]["segment_bytes_per_word"] or 0.0,
            ]
            for side in (BEFORE, AFTER)
        ],
    )
    print_table(
        f"reads of a 3.1 h, {LONG_WORDS:,}-word transcript (median ms)",
        ["read", BEFORE, AFTER, "speed after/before"],
        [
            [
                f"{WINDOW_S:.0f}-second window",
                read["window"][BEFORE] * 1e3,
                read["window"][AFTER] * 1e3,
                ratios["window_read_after_vs_before"],
            ],
            [
                "whole",
                read["whole"][BEFORE] * 1e3,
                read["whole"][AFTER] * 1e3,
                ratios["whole_read_after_vs_before"],
            ],
        ],
    )
    print(
        f"  WAL bytes a word: {BEFORE} {wal[BEFORE]:.1f}, {AFTER} {wal[AFTER]:.1f}; a job's "
        f"cycle (create, claim, complete; {JOBS:,} jobs): {jobs['bytes_per_job']:.0f} bytes "
        f"on disk with indexes, {jobs['wal_bytes_per_job']:.0f} bytes of WAL"
    )
    print(
        "  ingest after/before "
        f"{ratios['ingest_after_vs_before']:.2f}x (words/s; 1.0 = no change, >1 = faster)"
    )
    write_results(
        "distribution",
        {
            "transcripts": TRANSCRIPTS,
            "words_per_transcript": WORDS,
            "rounds": ROUNDS,
            "ingest": ingest,
            "reads_s": read,
            "wal_bytes_per_word": wal,
            "job_footprint": jobs,
            "ratios": ratios,
            "per_round": rounds,
        },
    )
