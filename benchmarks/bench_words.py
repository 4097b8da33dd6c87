"""Word timestamps: 100 transcripts x 10,000 words, written and read, in two input profiles.

The profiles, side by side in every measurement:
- plain: English words (a few accented or non-Latin), no speaker, only the five keys the
  library reads;
- diarized: what a diarizing ASR gives (whisperX-style): a speaker on every word, two
  speakers alternating in turns of 1-40 words; Unicode words with a leading space
  (" café", " 東京", " 🎙️"); keys the library ignores on every word (``id``,
  ``probability``, ``tokens``).

Every write contender starts from the same input, prepared before any clock starts (and
frozen out of the garbage collector's walks): each transcript's words as ``orjson.loads``
gives them from the ASR's JSON (dicts), and the same words as plain-row tuples built from
those dicts. One call per transcript; in the clock:
- media_store (batch): ``store.transcriptions.create`` from the dicts (column-wise
  validation, packing, one transaction with the row and one binary COPY of segments, then
  their search documents), language ``en`` as the ASR reports it (so the ``english`` text
  search configuration: stemming and stop words);
- media_store (streamed): ``create_streamed`` from ``iter(dicts)`` (the words are made
  before the clock, unlike the million-word memory test below);
- media_store (batch), search index off: the same, its statement cut before the search
  documents (the words alone: what issue 21 judges against the COPY step alone, at least
  1.2x, the target having come before the documents; the whole ``create`` is judged by issue
  23's, at least 0.8x, what the index may cost);
- COPY step alone: asyncpg binary COPY of the prebuilt tuples, one row per word, into a
  logged table with no key, index or constraint; its clock leaves out building the rows
  from the dicts, which any code storing the dicts must do;
- dicts -> plain rows -> COPY: the tuples built from the dicts in the clock, then the same
  COPY: the same work as media_store's side, from the same input;
- the plan's design: SQLAlchemy 2 async ORM, a JSONB ``word_timestamps`` column.
Each (profile, contender) pair writes into its own fresh database per round; the pairs take
turns call by call (their order rotating), so that at its i-th call every contender's tables
hold the same i - 1 transcripts, and a burst of load on this shared machine falls on all of
them alike. Per call: wall time, this process's CPU time and (where the server runs here)
the server backend's CPU time from /proc. 3 rounds; ratios are per round, then the median.

Then, per profile: bytes per word on disk, reading a 10,000-word transcript into what the API
returns, a 60-second window of a 3.1-hour, 40,000-word transcript against the whole of it
(the two reads alternating), and the peak memory of a 1,000,000-word streamed insert from a
generator (its time includes making the words). The targets are judged on the worse profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import resource
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from benchmarks.common import Timer, fresh_database, judge, median, print_table, write_results
from benchmarks.plan_orm import Base, PlanJob, PlanTranscription
from media_store import Dsn, Settings, Store, TranscriptionCreate, Words
from media_store.models.inputs import validate_input
from media_store.repositories.transcriptions import TranscriptionRepository
from media_store.words.segments import segment_records

TRANSCRIPTS = 100
WORDS = 10_000
DISTINCT = 10  # distinct transcripts generated; transcript i uses blob i % DISTINCT
ROUNDS = 3
READS = 30
WINDOW_READS = 90
WINDOW_S = 60.0
LONG_WORDS = 40_000
LONG_HOURS = 3.1
STREAM_WORDS = 1_000_000

PLAIN = "plain"
DIARIZED = "diarized"
PROFILES = (PLAIN, DIARIZED)

MEDIA_STORE = "media_store (create, batch)"
STREAMED = "media_store (create_streamed, iterator)"
UNINDEXED = "media_store (create, batch), search index off"
COPY_ALONE = "COPY step alone (prebuilt plain rows)"
DICTS_COPY = "dicts -> plain rows -> COPY"
PLAN = "plan (SQLAlchemy ORM, JSONB)"

# Issue 21, item 2: the batch API from the dicts against the COPY step alone of the same
# words as prebuilt plain rows; streamed within 0.9x of batch.
TARGET_VS_COPY_ALONE = 1.2
TARGET_INDEXED_VS_COPY_ALONE = 0.8  # issue 23: the search index in place
TARGET_STREAMED_VS_BATCH = 0.9
TARGET_VS_PLAN = 2.5
TARGET_BYTES_PER_WORD = 32
TARGET_READ_VS_PLAN = 3
TARGET_WINDOW_VS_WHOLE = 25
# The two parts of media_store's bytes on disk (see MediaStoreWriter.size_parts).
WORDS_PART = "words"
SEARCH_PART = "search documents"

VOCABULARY = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "it",
    "you",
    "that",
    "he",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "I",
    "his",
    "they",
    "be",
    "at",
    "one",
    "have",
    "this",
    "from",
    "or",
    "had",
    "by",
    "hot",
    "word",
    "but",
    "what",
    "some",
    "we",
    "can",
    "out",
    "other",
    "were",
    "all",
    "there",
    "when",
    "up",
    "use",
    "your",
    "how",
    "said",
    "an",
    "each",
    "she",
    "which",
    "do",
    "their",
    "time",
    "if",
    "will",
    "way",
    "about",
    "many",
    "then",
    "them",
    "write",
    "would",
    "like",
    "so",
    "these",
    "her",
    "long",
    "make",
    "thing",
    "see",
    "him",
    "two",
    "has",
    "look",
    "more",
    "day",
    "could",
    "go",
    "come",
    "did",
    "number",
    "sound",
    "no",
    "most",
    "people",
    "my",
    "over",
    "know",
    "water",
    "than",
    "call",
    "first",
    "who",
    "may",
    "down",
    "side",
    "been",
    "now",
    "find",
    "réunion",
    "naïve",
    "東京",
    "שלום",
    "🎙️",
]
# The diarized profile's words: the same, and more that are neither ASCII nor one code point
# a character, each written with the leading space whisper-style models put before a word.
UNICODE_VOCABULARY = [
    *VOCABULARY,
    "café",
    "Straße",
    "São",
    "Zürich",
    "мир",
    "Ελλάδα",
    "नमस्ते",
    "مرحبا",
    "👋🏽",
    "😀",
]
SPEAKERS = ("SPEAKER_00", "SPEAKER_01")


def asr_words(profile: str, n: int, seed: int, rate: float = 2.8) -> Iterator[dict[str, Any]]:
    """An ASR's words in ``profile``: ``n`` words at about ``rate`` words a second, times to
    10 ms."""
    rng = random.Random(seed)
    diarized = profile == DIARIZED
    vocabulary = UNICODE_VOCABULARY if diarized else VOCABULARY
    t = 0.0
    # A word lasts 0.08-0.6 s (mean 0.34); the next starts 0.6 of that later plus a pause,
    # so that starts are on average 1 / rate apart.
    mean_pause = 1 / rate - 0.6 * 0.34
    speaker, turn = 0, rng.randint(1, 40)
    for i in range(n):
        t += rng.expovariate(1 / mean_pause)
        duration = rng.uniform(0.08, 0.6)
        text = rng.choice(vocabulary) + rng.choice(("", "", "", ",", "."))
        confidence = round(rng.uniform(0.4, 1.0), 4)
        word: dict[str, Any] = {
            "word": text,
            "start": round(t, 2),
            "end": round(t + duration, 2),
            "confidence": confidence,
        }
        if diarized:
            if turn == 0:
                speaker, turn = 1 - speaker, rng.randint(1, 40)
            turn -= 1
            word = {
                "id": i,
                **word,
                "word": " " + text,
                "probability": confidence,
                "tokens": [rng.randrange(50_000) for _ in range(rng.randint(1, 3))],
                "speaker": SPEAKERS[speaker],
            }
        yield word
        t += duration * 0.6


def asr_json(profile: str, n: int, seed: int, rate: float = 2.8) -> bytes:
    """The ASR's JSON output holding :func:`asr_words`."""
    return orjson.dumps({"segments": [], "words": list(asr_words(profile, n, seed, rate))})


def parse(blob: bytes) -> list[dict[str, Any]]:
    words: list[dict[str, Any]] = orjson.loads(blob)["words"]
    return words


# --- the plan's design ---------------------------------------------------------------------------


def orm_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def plan_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(orm_url(url), pool_size=2)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine


async def plan_job(engine: AsyncEngine) -> uuid.UUID:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        job = PlanJob(job_type="audio", media_url="https://example.com/a.mp3")
        session.add(job)
    return job.id


# --- the write contenders ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcript:
    """One transcript's input, prepared before any clock starts, for every contender alike:
    its words as ``orjson.loads`` gives them (``dicts``) and as plain rows (``rows``: the
    tuples a plain-row COPY takes, built from those dicts)."""

    dicts: list[dict[str, Any]]
    rows: list[tuple[Any, ...]]


def plain_rows(words: list[dict[str, Any]], tid: uuid.UUID) -> list[tuple[Any, ...]]:
    """What any code storing ``words`` as plain rows must do first: dicts into tuples."""
    return [
        (tid, w["word"], w["start"], w["end"], w.get("confidence"), w.get("speaker")) for w in words
    ]


def prepare(blob: bytes) -> Transcript:
    words = parse(blob)
    return Transcript(words, plain_rows(words, uuid.uuid4()))


def backend_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the server backend ``pid`` has used; 0 when it cannot be
    read (a server on another machine): the column then says nothing."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Writer:
    """One contender on its own database: ``insert`` (timed) stores one transcript."""

    backend: int | None = None  # the server process of its one connection, when known

    async def insert(self, transcript: Transcript) -> None:
        raise NotImplementedError

    async def size(self) -> int:
        """Bytes on disk of what the inserts wrote (table, indexes, TOAST)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class MediaStoreWriter(Writer):
    """``store.transcriptions.create`` from the dicts (the public batch API)."""

    def __init__(self, store: Store, job_id: uuid.UUID, backend: int) -> None:
        self.store, self.job_id, self.backend = store, job_id, backend

    @classmethod
    async def open(cls, url: str) -> MediaStoreWriter:
        # One connection: the backend whose CPU is read is the one that did the work.
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1))
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
        backend = await store.pool.fetchval("SELECT pg_backend_pid()")
        return cls(store, job.id, int(backend))

    def data(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "provider": "whisper", "text_content": "…", "language": "en"}

    async def insert(self, transcript: Transcript) -> None:
        await self.store.transcriptions.create({**self.data(), "word_timestamps": transcript.dicts})

    async def size(self) -> int:
        # The words and their search documents (migrations/0016), indexes and TOAST included.
        return sum((await self.size_parts()).values())

    async def size_parts(self) -> dict[str, int]:
        """Bytes on disk of the words (the segments, their index and TOAST) and of their search
        documents (the table with its GIN index and TOAST), apart."""
        row = await self.store.pool.fetchrow(
            "SELECT pg_total_relation_size('transcription_word_segments') AS words,"
            " pg_total_relation_size('transcription_word_search') AS search"
        )
        assert row is not None
        return {WORDS_PART: int(row["words"]), SEARCH_PART: int(row["search"])}

    async def close(self) -> None:
        await self.store.close()


def unindexed_sql() -> str:
    """create_transcription_with_words (sql/transcriptions.sql) without its search documents:
    the statement cut before its ``documents`` part, returning the row as the whole one does
    (the row and its segments in one statement, as create writes them)."""
    whole = TranscriptionRepository._create_with_words_query.sql
    segments, found, _ = whole.partition("), documents AS (")
    assert found, "create_transcription_with_words no longer has a documents part"
    return segments + ")\nSELECT * FROM created"


UNINDEXED_SQL = unindexed_sql()


class UnindexedWriter(MediaStoreWriter):
    """``create``'s own steps without the search documents (migrations/0016): validation,
    packing, and its one statement without the documents' part. What the search index costs
    the batch path. The library's internals (private: a benchmark's view of them, not an
    API)."""

    async def insert(self, transcript: Transcript) -> None:
        repository = self.store.transcriptions
        item = validate_input(
            TranscriptionCreate, {**self.data(), "word_timestamps": transcript.dicts}
        )
        words = item.word_timestamps
        assert isinstance(words, Words)
        columns = list(zip(*segment_records(item.job_id, item.job_id, 0, words), strict=True))
        await self.store.pool.fetchrow(UNINDEXED_SQL, *repository._params(item), *columns[2:])


class StreamedWriter(MediaStoreWriter):
    """``store.transcriptions.create_streamed`` from an iterator over the same dicts."""

    async def insert(self, transcript: Transcript) -> None:
        await self.store.transcriptions.create_streamed(self.data(), iter(transcript.dicts))


class PlanWriter(Writer):
    def __init__(self, engine: AsyncEngine, job_id: uuid.UUID) -> None:
        self.engine, self.job_id = engine, job_id
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> PlanWriter:
        engine = await plan_engine(url)
        return cls(engine, await plan_job(engine))

    async def insert(self, transcript: Transcript) -> None:
        async with self.sessions() as session, session.begin():
            session.add(
                PlanTranscription(
                    job_id=self.job_id,
                    provider="whisper",
                    text_content="…",
                    word_timestamps=transcript.dicts,
                )
            )

    async def size(self) -> int:
        async with self.engine.connect() as conn:
            size = await conn.exec_driver_sql("SELECT pg_total_relation_size('transcriptions')")
            return int(size.scalar_one())

    async def close(self) -> None:
        await self.engine.dispose()


# A word-per-row table as a user would make it for the fastest ingest: no key, no index, no
# constraint (each of those costs the row layout more: DESIGN.md's measured layouts).
LIMIT_DDL = (
    "CREATE TABLE plain_words (transcription_id uuid, word text, start float8, finish float8,"
    " confidence float8, speaker text)"
)
LIMIT_COLUMNS = ["transcription_id", "word", "start", "finish", "confidence", "speaker"]


class CopyAloneWriter(Writer):
    """The COPY step alone: asyncpg binary COPY of the prebuilt plain rows."""

    def __init__(self, conn: asyncpg.Connection[asyncpg.Record], backend: int) -> None:
        self.conn, self.backend = conn, backend

    @classmethod
    async def open(cls, url: str) -> CopyAloneWriter:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
        await conn.execute(LIMIT_DDL)
        return cls(conn, int(await conn.fetchval("SELECT pg_backend_pid()")))

    async def insert(self, transcript: Transcript) -> None:
        await self.conn.copy_records_to_table(
            "plain_words", records=transcript.rows, columns=LIMIT_COLUMNS
        )

    async def size(self) -> int:
        return int(await self.conn.fetchval("SELECT pg_total_relation_size('plain_words')"))

    async def close(self) -> None:
        await self.conn.close()


class DictsCopyWriter(CopyAloneWriter):
    """The same from the dicts: the rows built (in the clock), then the COPY."""

    async def insert(self, transcript: Transcript) -> None:
        rows = plain_rows(transcript.dicts, uuid.uuid4())
        await self.conn.copy_records_to_table("plain_words", records=rows, columns=LIMIT_COLUMNS)


WRITERS: dict[str, tuple[Callable[[str], Awaitable[Writer]], bool]] = {
    # contender: (open on a fresh database, whether that database is migrated)
    MEDIA_STORE: (MediaStoreWriter.open, True),
    STREAMED: (StreamedWriter.open, True),
    UNINDEXED: (UnindexedWriter.open, True),
    COPY_ALONE: (CopyAloneWriter.open, False),
    DICTS_COPY: (DictsCopyWriter.open, False),
    PLAN: (PlanWriter.open, False),
}

Pair = tuple[str, str]  # (profile, contender)


@dataclass(slots=True)
class Spent:
    """One (profile, contender) pair's totals over a round's calls."""

    wall: float = 0.0  # seconds in the clock
    client: float = 0.0  # this process's CPU seconds in the clock
    server: float = 0.0  # its backend's CPU seconds over the calls (0: unknown)


async def write_round(
    server_url: str, inputs: dict[str, list[Transcript]], round_: int
) -> dict[Pair, Spent]:
    """Every (profile, contender) pair writes :data:`TRANSCRIPTS` transcripts into its own
    fresh database, the pairs taking turns call by call in rotating order: at its i-th call
    every contender's tables hold the same i - 1 transcripts' words (the same table state).
    Not emptied between calls: a TRUNCATE gives each relation a new file, and the next
    statement then pays for rebuilding its caches and plans (the store's foreign key check,
    its TOAST table and indexes) on the server: measured 1.6-2.7x the server CPU of a call
    into tables as they are between two inserts in use."""
    async with contextlib.AsyncExitStack() as stack:
        writers: dict[Pair, Writer] = {}
        for profile in PROFILES:
            for name, (open_writer, migrated) in WRITERS.items():
                url = await stack.enter_async_context(fresh_database(server_url, migrated=migrated))
                writer = await open_writer(url)
                stack.push_async_callback(writer.close)
                writers[(profile, name)] = writer
        pairs = list(writers)
        spent = {pair: Spent() for pair in pairs}
        for i in range(TRANSCRIPTS):
            shift = (i * 3 + round_) % len(pairs)
            for pair in pairs[shift:] + pairs[:shift]:
                writer, total = writers[pair], spent[pair]
                transcript = inputs[pair[0]][i % DISTINCT]
                server = backend_cpu(writer.backend)
                cpu = time.process_time()
                with Timer() as t:
                    await writer.insert(transcript)
                total.client += time.process_time() - cpu
                total.wall += t.elapsed
                total.server += backend_cpu(writer.backend) - server
        return spent


async def sizes(
    server_url: str, inputs: dict[str, list[Transcript]]
) -> tuple[dict[Pair, float], dict[str, dict[str, float]]]:
    """Bytes on disk per word of each pair, after all :data:`DISTINCT` transcripts; and, per
    profile, media_store's (batch) apart: its words and their search documents."""
    result: dict[Pair, float] = {}
    parts: dict[str, dict[str, float]] = {}
    for profile in PROFILES:
        for name, (open_writer, migrated) in WRITERS.items():
            async with fresh_database(server_url, migrated=migrated) as url:
                writer = await open_writer(url)
                try:
                    for transcript in inputs[profile]:
                        await writer.insert(transcript)
                    words = sum(len(t.dicts) for t in inputs[profile])
                    result[(profile, name)] = await writer.size() / words
                    if name == MEDIA_STORE:
                        assert isinstance(writer, MediaStoreWriter)
                        parts[profile] = {
                            part: size / words for part, size in (await writer.size_parts()).items()
                        }
                finally:
                    await writer.close()
    return result, parts


# --- reads ---------------------------------------------------------------------------------


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    with Timer() as t:
        await call()
    return t.elapsed


async def reads(server_url: str, profile: str, blobs: list[bytes]) -> dict[str, float]:
    """Median seconds of each read of ``profile``'s transcripts (see the module docstring)."""
    words = parse(blobs[0])
    rate = LONG_WORDS / (LONG_HOURS * 3600)
    long_words = list(asr_words(profile, LONG_WORDS, seed=99, rate=rate))
    duration = long_words[-1]["start"]
    results: dict[str, float] = {}
    async with fresh_database(server_url) as url:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=2))
        async with store:
            job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
            base = {"job_id": job.id, "provider": "whisper", "text_content": "…"}
            short = await store.transcriptions.create({**base, "word_timestamps": words})
            long = await store.transcriptions.create({**base, "word_timestamps": long_words})

            async def get_short() -> None:
                t = await store.transcriptions.get(short.id)
                assert t is not None and len(t.word_timestamps or ()) == WORDS

            async def words_short() -> None:
                assert len(await store.transcriptions.words(short.id)) == WORDS

            gets = [await timed(get_short) for _ in range(READS)]
            results["media_store_read_10k_s"] = statistics.median(gets)
            results["media_store_words_10k_s"] = statistics.median(
                [await timed(words_short) for _ in range(READS)]
            )

            rng = random.Random(7)

            async def window() -> None:
                t0 = rng.uniform(0, duration - WINDOW_S)
                await store.transcriptions.words_between(long.id, t0, t0 + WINDOW_S)

            async def whole() -> None:
                assert len(await store.transcriptions.words(long.id)) == LONG_WORDS

            # Alternating: three windows, then the whole.
            windows: list[float] = []
            wholes: list[float] = []
            for i in range(WINDOW_READS):
                windows.append(await timed(window))
                if i % 3 == 2:
                    wholes.append(await timed(whole))
            results["window_60s_s"] = statistics.median(windows)
            results["whole_long_s"] = statistics.median(wholes)
            sample = await store.transcriptions.words_between(long.id, 3600.0, 3600.0 + WINDOW_S)
            results["window_words"] = len(sample)
            results["long_duration_s"] = duration
    async with fresh_database(server_url, migrated=False) as url:
        writer = await PlanWriter.open(url)
        try:
            async with writer.sessions() as session, session.begin():
                row = PlanTranscription(
                    job_id=writer.job_id,
                    provider="whisper",
                    text_content="…",
                    word_timestamps=words,
                )
                session.add(row)
            plan_id = row.id

            async def plan_get() -> None:
                async with writer.sessions() as session:
                    t = await session.get(PlanTranscription, plan_id)
                    assert t is not None and len(t.word_timestamps) == WORDS

            results["plan_read_10k_s"] = statistics.median(
                [await timed(plan_get) for _ in range(READS)]
            )
        finally:
            await writer.close()
    return results


# --- a million-word stream -------------------------------------------------------------


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def streamed_insert(server_url: str, profile: str) -> dict[str, float]:
    results: dict[str, float] = {}
    async with fresh_database(server_url) as url:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=2))
        async with store:
            job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
            data = {"job_id": job.id, "provider": "whisper", "text_content": "…"}
            gc.collect()
            rss_before = maxrss_mib()
            with Timer() as t:
                _, count = await store.transcriptions.create_streamed(
                    data, asr_words(profile, STREAM_WORDS, seed=5)
                )
            assert count == STREAM_WORDS
            results["stream_seconds"] = t.elapsed
            results["stream_maxrss_before_mib"] = rss_before
            results["stream_maxrss_delta_mib"] = maxrss_mib() - rss_before
            tracemalloc.start()
            try:
                _, count = await store.transcriptions.create_streamed(
                    data, asr_words(profile, STREAM_WORDS, seed=5)
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            results["stream_tracemalloc_peak_mib"] = peak / 2**20
    return results


async def server_info(server_url: str) -> dict[str, str]:
    """The server's version and the compression migrations gave the segments' words (lz4, or
    pglz on a server built without lz4): the write figures depend on both."""
    async with fresh_database(server_url) as url:
        conn = await asyncpg.connect(url)
        try:
            version = await conn.fetchval("SHOW server_version")
            method = await conn.fetchval(
                "SELECT attcompression::text FROM pg_attribute"
                " WHERE attrelid = 'transcription_word_segments'::regclass AND attname = 'starts'"
            )
        finally:
            await conn.close()
    return {"version": str(version), "segment_compression": "lz4" if method == "l" else "pglz"}


# --- the run -------------------------------------------------------------------------------


async def main(server_url: str) -> None:
    blobs = {p: [asr_json(p, WORDS, seed) for seed in range(DISTINCT)] for p in PROFILES}
    server = await server_info(server_url)
    print(f"\nPostgreSQL {server['version']}, segments: {server['segment_compression']}")
    # First, while the process is small: the streamed inserts' memory.
    memory = {p: await streamed_insert(server_url, p) for p in PROFILES}

    # Every contender's input, prepared before any clock starts and frozen out of the
    # garbage collector's walks (they would fall on whichever call ran then).
    inputs = {p: [prepare(blob) for blob in blobs[p]] for p in PROFILES}
    gc.collect()
    gc.freeze()
    rounds = [await write_round(server_url, inputs, r) for r in range(ROUNDS)]
    per_word, parts = await sizes(server_url, inputs)
    gc.unfreeze()
    del inputs
    read = {p: await reads(server_url, p, blobs[p]) for p in PROFILES}

    total_words = TRANSCRIPTS * WORDS
    profiles: dict[str, dict[str, Any]] = {}
    for p in PROFILES:

        def ratio(name: str, other: str, p: str = p) -> float:
            # Per round (each round's contenders ran side by side), then the median.
            return median([r[(p, other)].wall / r[(p, name)].wall for r in rounds])

        ratios = {
            "batch_vs_copy_alone": ratio(MEDIA_STORE, COPY_ALONE),
            "batch_vs_dicts_copy": ratio(MEDIA_STORE, DICTS_COPY),
            "streamed_vs_batch": ratio(STREAMED, MEDIA_STORE),
            "streamed_vs_copy_alone": ratio(STREAMED, COPY_ALONE),
            "dicts_copy_vs_copy_alone": ratio(DICTS_COPY, COPY_ALONE),
            "batch_vs_plan": ratio(MEDIA_STORE, PLAN),
            "unindexed_vs_copy_alone": ratio(UNINDEXED, COPY_ALONE),
            "batch_vs_unindexed": ratio(MEDIA_STORE, UNINDEXED),
            "read_10k_media_store_vs_plan": read[p]["plan_read_10k_s"]
            / read[p]["media_store_read_10k_s"],
            "window_60s_vs_whole": read[p]["whole_long_s"] / read[p]["window_60s_s"],
        }
        profiles[p] = {
            "words_per_s": {
                name: total_words / median([r[(p, name)].wall for r in rounds]) for name in WRITERS
            },
            "client_cpu_ns_per_word": {
                name: median([r[(p, name)].client for r in rounds]) / total_words * 1e9
                for name in WRITERS
            },
            "server_cpu_ns_per_word": {
                name: median([r[(p, name)].server for r in rounds]) / total_words * 1e9
                for name in WRITERS
                if name != PLAN  # its pool's connections are not followed
            },
            "bytes_per_word": {name: per_word[(p, name)] for name in WRITERS},
            f"{MEDIA_STORE} bytes_per_word apart": parts[p],
            "ratios": ratios,
            "reads": read[p],
            "stream_memory": memory[p],
        }

    for p in PROFILES:
        r = profiles[p]
        copy_alone = r["words_per_s"][COPY_ALONE]
        print_table(
            f"word timestamps, {p}: {TRANSCRIPTS} transcripts x {WORDS:,} words a round, fresh"
            f" tables each round; medians of {ROUNDS} rounds",
            [
                "contender",
                "words/s",
                "vs COPY alone",
                "client CPU ns/word",
                "server CPU ns/word",
                "bytes/word on disk",
            ],
            [
                [
                    name,
                    r["words_per_s"][name],
                    r["words_per_s"][name] / copy_alone,
                    r["client_cpu_ns_per_word"][name],
                    r["server_cpu_ns_per_word"].get(name, "-"),
                    r["bytes_per_word"][name],
                ]
                for name in WRITERS
            ],
        )
        print(
            f"  {MEDIA_STORE}, bytes a word apart: the words (segments, their index, TOAST)"
            f" {parts[p][WORDS_PART]:.1f}; their search documents (table, GIN index, TOAST)"
            f" {parts[p][SEARCH_PART]:.1f}"
        )
        print("  ratios (medians of per-round ratios):")
        for key, value in r["ratios"].items():
            print(f"    {key}: {value:.2f}")
    print(
        "  Every contender starts from the same input, prepared outside the clock: each"
        " transcript's words\n  as orjson.loads gives them (dicts), and the same words as"
        " plain-row tuples built from them.\n  In the clock: media_store batch and streamed:"
        " the dicts to stored rows (validation, packing, COPY,\n  transaction); COPY alone:"
        " the COPY of the prebuilt tuples only (it leaves building them out);\n  dicts ->"
        " plain rows -> COPY: building the tuples from the dicts, then the COPY (the same"
        " work as\n  media_store's side: dicts in, rows stored); plan: its ORM from the dicts."
    )
    print_table(
        "reads (median ms; ratio: how many times faster than the row above it)",
        ["read", *PROFILES],
        [
            [
                "plan: ORM get of a 10,000-word transcript",
                *(read[p]["plan_read_10k_s"] * 1e3 for p in PROFILES),
            ],
            [
                "media_store: get of the same",
                *(read[p]["media_store_read_10k_s"] * 1e3 for p in PROFILES),
            ],
            ["  ratio", *(profiles[p]["ratios"]["read_10k_media_store_vs_plan"] for p in PROFILES)],
            [
                "media_store: words() of the same",
                *(read[p]["media_store_words_10k_s"] * 1e3 for p in PROFILES),
            ],
            [
                f"whole {LONG_HOURS} h transcript ({LONG_WORDS:,} words)",
                *(read[p]["whole_long_s"] * 1e3 for p in PROFILES),
            ],
            ["60-second window of it", *(read[p]["window_60s_s"] * 1e3 for p in PROFILES)],
            ["  ratio", *(profiles[p]["ratios"]["window_60s_vs_whole"] for p in PROFILES)],
        ],
    )
    print_table(
        f"memory of a streamed insert of {STREAM_WORDS:,} words (a generator making the words:"
        " its time includes making them)",
        ["measure", *PROFILES],
        [
            ["seconds", *(memory[p]["stream_seconds"] for p in PROFILES)],
            ["ru_maxrss delta (MiB)", *(memory[p]["stream_maxrss_delta_mib"] for p in PROFILES)],
            [
                "tracemalloc peak (MiB)",
                *(memory[p]["stream_tracemalloc_peak_mib"] for p in PROFILES),
            ],
        ],
    )
    # The targets, on the worse profile.
    worse = {
        key: min(profiles[p]["ratios"][key] for p in PROFILES) for key in profiles[PLAIN]["ratios"]
    }
    worse["media_store_bytes_per_word"] = max(
        profiles[p]["bytes_per_word"][MEDIA_STORE] for p in PROFILES
    )
    # Issue 21's bytes a word are the words' own (the target came before the search index);
    # the index's bytes are issue 23's "extra bytes a word", reported beside them.
    worse["media_store_words_bytes_per_word"] = max(parts[p][WORDS_PART] for p in PROFILES)
    worse["search_index_bytes_per_word"] = max(parts[p][SEARCH_PART] for p in PROFILES)
    # Issue 21's ingest target is the words' own (it came before the search documents, which
    # the COPY does not write); with the documents, issue 23's target: the index's cost.
    targets = {
        f"unindexed_vs_copy_alone>={TARGET_VS_COPY_ALONE}": worse["unindexed_vs_copy_alone"]
        >= TARGET_VS_COPY_ALONE,
        f"batch_vs_copy_alone>={TARGET_INDEXED_VS_COPY_ALONE}": worse["batch_vs_copy_alone"]
        >= TARGET_INDEXED_VS_COPY_ALONE,
        f"streamed_vs_batch>={TARGET_STREAMED_VS_BATCH}": worse["streamed_vs_batch"]
        >= TARGET_STREAMED_VS_BATCH,
        f"batch_vs_plan>={TARGET_VS_PLAN}": worse["batch_vs_plan"] >= TARGET_VS_PLAN,
        f"words_bytes_per_word<={TARGET_BYTES_PER_WORD}": worse["media_store_words_bytes_per_word"]
        <= TARGET_BYTES_PER_WORD,
        f"read_vs_plan>={TARGET_READ_VS_PLAN}": worse["read_10k_media_store_vs_plan"]
        >= TARGET_READ_VS_PLAN,
        f"window_vs_whole>={TARGET_WINDOW_VS_WHOLE}": worse["window_60s_vs_whole"]
        >= TARGET_WINDOW_VS_WHOLE,
    }
    print("  worse profile:", ", ".join(f"{k} {v:.2f}" for k, v in worse.items()))
    print("  targets:", ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    judge(
        "word ingest, the words alone (search documents apart), vs the COPY step alone",
        worse["unindexed_vs_copy_alone"],
        TARGET_VS_COPY_ALONE,
    )
    judge("streamed vs batch", worse["streamed_vs_batch"], TARGET_STREAMED_VS_BATCH)
    # Issue 23: what the search index costs word ingest.
    judge(
        "word ingest with the search index vs the COPY step alone",
        worse["batch_vs_copy_alone"],
        TARGET_INDEXED_VS_COPY_ALONE,
    )
    judge(
        "bytes a word of the words (their search documents apart)",
        worse["media_store_words_bytes_per_word"],
        TARGET_BYTES_PER_WORD,
        higher_is_better=False,
    )
    write_results(
        "words",
        {
            "transcripts": TRANSCRIPTS,
            "words_per_transcript": WORDS,
            "rounds": ROUNDS,
            "server": server,
            "definitions": DEFINITIONS,
            "long_transcript": {"words": LONG_WORDS, "hours": LONG_HOURS},
            "profiles": profiles,
            "worse": worse,
            "targets": targets,
        },
    )


DEFINITIONS = {
    "input": "each transcript's words as orjson.loads gives them (dicts) and as plain-row"
    " tuples built from those dicts, all prepared before any clock starts",
    "table_state": "each contender on its own fresh database per round, the contenders taking"
    " turns call by call: at its i-th call each holds the same i - 1 transcripts",
    MEDIA_STORE: "store.transcriptions.create from the dicts: validation, packing, one"
    " transaction with the transcription row, one COPY of segments, then one statement"
    " writing the segments' search documents (migrations/0016); its bytes include them, and"
    " are reported apart too: the words' (judged against 32 a word) and the documents'",
    UNINDEXED: "create's steps without its statement writing the search documents: what the"
    " index costs",
    STREAMED: "store.transcriptions.create_streamed from iter(dicts): the words are made"
    " before the clock",
    COPY_ALONE: "asyncpg binary COPY of the prebuilt tuples into a table with no key, index"
    " or constraint; leaves out building the rows from the dicts",
    DICTS_COPY: "the tuples built from the dicts in the clock, then the same COPY: the same"
    " work as media_store's side",
    PLAN: "the seed plan's SQLAlchemy ORM, a JSONB column, from the dicts",
    "ratios": "words/s of the first named over the second, per round, median of rounds",
}


if __name__ == "__main__":  # pragma: no cover
    import sys

    from benchmarks.common import bench_server

    with bench_server() as url:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else url))
