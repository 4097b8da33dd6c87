"""Word timestamps: 100 transcripts x 10,000 words, written and read.

Every contender starts from the same input: each transcript's words as a list of dicts, as
``orjson.loads`` gives them from an ASR's JSON (parsed untimed, just before its insert), and
does its whole path to stored rows, one call per transcript:
- media_store: ``store.transcriptions.create`` (column-wise validation, one binary COPY of
  segments, one transaction);
- the plan's design: SQLAlchemy 2 async ORM (asyncpg driver), a Transcription ORM object with
  a JSONB ``word_timestamps`` column, tables of the plan's shape, one session per transcript;
- the ingest limit: asyncpg binary COPY of the same words, prebuilt as tuples (untimed), one
  row per word into a table with no index or constraint.
Contenders alternate, 3 rounds on fresh databases, medians reported.

Then: bytes per word on disk, reading a 10,000-word transcript into what the API returns,
a 60-second window of a 3-hour transcript against the whole transcript, and the peak memory of
a 1,000,000-word streamed insert.
"""

from __future__ import annotations

import asyncio
import gc
import random
import resource
import statistics
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from benchmarks.common import Timer, fresh_database, median, print_table, write_results
from benchmarks.plan_orm import Base, PlanJob, PlanTranscription
from media_store import Dsn, Settings, Store

TRANSCRIPTS = 100
WORDS = 10_000
DISTINCT = 10  # distinct transcripts generated; transcript i uses blob i % DISTINCT
ROUNDS = 3
READS = 30
WINDOW_S = 60.0
LONG_WORDS = 30_240  # 3 hours at 2.8 words/s
STREAM_WORDS = 1_000_000

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


def asr_json(n: int, seed: int, rate: float = 2.8) -> bytes:
    """An ASR's output: ``n`` words at about ``rate`` words a second, times to 10 ms."""
    rng = random.Random(seed)
    t = 0.0
    words = []
    # A word lasts 0.08-0.6 s (mean 0.34); the next starts 0.6 of that later plus a pause,
    # so that starts are on average 1 / rate apart.
    mean_pause = 1 / rate - 0.6 * 0.34
    for _ in range(n):
        t += rng.expovariate(1 / mean_pause)
        duration = rng.uniform(0.08, 0.6)
        words.append(
            {
                "word": rng.choice(VOCABULARY) + rng.choice(("", "", "", ",", ".")),
                "start": round(t, 2),
                "end": round(t + duration, 2),
                "confidence": round(rng.uniform(0.4, 1.0), 4),
            }
        )
        t += duration * 0.6
    return orjson.dumps({"segments": [], "words": words})


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

Insert = Callable[[list[dict[str, Any]]], Awaitable[None]]


async def run_writes(blobs: list[bytes], insert: Insert) -> float:
    """Seconds spent inserting all transcripts (parsing untimed)."""
    total = 0.0
    for i in range(TRANSCRIPTS):
        words = parse(blobs[i % DISTINCT])
        with Timer() as t:
            await insert(words)
        total += t.elapsed
    return total


async def media_store_writes(server_url: str, blobs: list[bytes]) -> tuple[float, int]:
    async with fresh_database(server_url) as url:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=2, max_size=2))
        async with store:
            job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})

            async def insert(words: list[dict[str, Any]]) -> None:
                await store.transcriptions.create(
                    {
                        "job_id": job.id,
                        "provider": "whisper",
                        "text_content": "…",
                        "word_timestamps": words,
                    }
                )

            seconds = await run_writes(blobs, insert)
            size = await store.pool.fetchval(
                "SELECT pg_total_relation_size('transcription_word_segments')"
            )
        return seconds, int(size)


async def plan_writes(server_url: str, blobs: list[bytes]) -> tuple[float, int]:
    async with fresh_database(server_url, migrated=False) as url:
        engine = await plan_engine(url)
        try:
            job_id = await plan_job(engine)
            sessions = async_sessionmaker(engine, expire_on_commit=False)

            async def insert(words: list[dict[str, Any]]) -> None:
                async with sessions() as session, session.begin():
                    session.add(
                        PlanTranscription(
                            job_id=job_id,
                            provider="whisper",
                            text_content="…",
                            word_timestamps=words,
                        )
                    )

            seconds = await run_writes(blobs, insert)
        finally:
            await engine.dispose()
        conn = await asyncpg.connect(url)
        try:
            size = await conn.fetchval("SELECT pg_total_relation_size('transcriptions')")
        finally:
            await conn.close()
        return seconds, int(size)


LIMIT_DDL = (
    "CREATE TABLE plain_words (transcription_id uuid, word text, start float8, finish float8,"
    " confidence float8, speaker text)"
)
LIMIT_COLUMNS = ["transcription_id", "word", "start", "finish", "confidence", "speaker"]


async def limit_writes(server_url: str, blobs: list[bytes]) -> tuple[float, int]:
    async with fresh_database(server_url, migrated=False) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(LIMIT_DDL)
            total = 0.0
            for i in range(TRANSCRIPTS):
                tid = uuid.uuid4()
                rows = [
                    (tid, w["word"], w["start"], w["end"], w.get("confidence"), w.get("speaker"))
                    for w in parse(blobs[i % DISTINCT])
                ]
                with Timer() as t:
                    await conn.copy_records_to_table(
                        "plain_words", records=rows, columns=LIMIT_COLUMNS
                    )
                total += t.elapsed
            size = await conn.fetchval("SELECT pg_total_relation_size('plain_words')")
        finally:
            await conn.close()
        return total, int(size)


# --- reads ---------------------------------------------------------------------------------


async def timed(times: int, call: Callable[[], Awaitable[Any]]) -> float:
    """Median seconds of ``times`` calls."""
    samples = []
    for _ in range(times):
        with Timer() as t:
            await call()
        samples.append(t.elapsed)
    return statistics.median(samples)


async def reads(server_url: str, blobs: list[bytes]) -> dict[str, float]:
    words = parse(blobs[0])
    long_words = parse(asr_json(LONG_WORDS, seed=99))
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

            results["media_store_read_10k_s"] = await timed(READS, get_short)

            async def words_short() -> None:
                assert len(await store.transcriptions.words(short.id)) == WORDS

            results["media_store_words_10k_s"] = await timed(READS, words_short)

            rng = random.Random(7)

            async def window() -> None:
                t0 = rng.uniform(0, duration - WINDOW_S)
                await store.transcriptions.words_between(long.id, t0, t0 + WINDOW_S)

            async def whole() -> None:
                assert len(await store.transcriptions.words(long.id)) == LONG_WORDS

            results["window_60s_s"] = await timed(READS * 3, window)
            results["whole_3h_s"] = await timed(READS, whole)
            sample = await store.transcriptions.words_between(long.id, 3600.0, 3600.0 + WINDOW_S)
            results["window_words"] = len(sample)
            results["long_duration_s"] = duration
    async with fresh_database(server_url, migrated=False) as url:
        engine = await plan_engine(url)
        try:
            job_id = await plan_job(engine)
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with sessions() as session, session.begin():
                row = PlanTranscription(
                    job_id=job_id, provider="whisper", text_content="…", word_timestamps=words
                )
                session.add(row)
            plan_id = row.id

            async def plan_get() -> None:
                async with sessions() as session:
                    t = await session.get(PlanTranscription, plan_id)
                    assert t is not None and len(t.word_timestamps) == WORDS

            results["plan_read_10k_s"] = await timed(READS, plan_get)
        finally:
            await engine.dispose()
    return results


# --- a million-word stream -------------------------------------------------------------


def stream(n: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(5)
    t = 0.0
    for _ in range(n):
        t += rng.uniform(0.05, 0.5)
        yield {
            "word": rng.choice(VOCABULARY),
            "start": round(t, 2),
            "end": round(t + 0.3, 2),
            "confidence": round(rng.random(), 4),
        }


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def streamed_insert(server_url: str) -> dict[str, float]:
    results: dict[str, float] = {}
    async with fresh_database(server_url) as url:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=2))
        async with store:
            job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
            data = {"job_id": job.id, "provider": "whisper", "text_content": "…"}
            gc.collect()
            rss_before = maxrss_mib()
            with Timer() as t:
                _, count = await store.transcriptions.create_streamed(data, stream(STREAM_WORDS))
            assert count == STREAM_WORDS
            results["stream_seconds"] = t.elapsed
            results["stream_words_per_s"] = STREAM_WORDS / t.elapsed
            results["stream_maxrss_before_mib"] = rss_before
            results["stream_maxrss_delta_mib"] = maxrss_mib() - rss_before
            tracemalloc.start()
            try:
                _, count = await store.transcriptions.create_streamed(data, stream(STREAM_WORDS))
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            results["stream_tracemalloc_peak_mib"] = peak / 2**20
    return results


# --- the run -------------------------------------------------------------------------------


async def main(server_url: str) -> None:
    blobs = [asr_json(WORDS, seed) for seed in range(DISTINCT)]
    total_words = TRANSCRIPTS * WORDS
    # First, while the process is small: the streamed insert's memory.
    memory = await streamed_insert(server_url)

    contenders: dict[str, Callable[[str, list[bytes]], Awaitable[tuple[float, int]]]] = {
        "media_store": media_store_writes,
        "plan (SQLAlchemy ORM, JSONB)": plan_writes,
        "ingest limit (COPY, plain rows)": limit_writes,
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    sizes: dict[str, int] = {}
    names = list(contenders)
    for round_ in range(ROUNDS):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            elapsed, size = await contenders[name](server_url, blobs)
            seconds[name].append(elapsed)
            sizes[name] = size
    rate = {name: total_words / median(s) for name, s in seconds.items()}
    ms, plan, limit = (rate[n] for n in names)

    read = await reads(server_url, blobs)

    print_table(
        f"word timestamps: {TRANSCRIPTS} transcripts x {WORDS:,} words, median of {ROUNDS} rounds",
        ["contender", "words/s", "vs limit", "vs plan", "bytes/word on disk"],
        [
            [name, rate[name], rate[name] / limit, rate[name] / plan, sizes[name] / total_words]
            for name in names
        ],
    )
    read_ratio = read["plan_read_10k_s"] / read["media_store_read_10k_s"]
    window_ratio = read["whole_3h_s"] / read["window_60s_s"]
    print_table(
        "reads (median ms)",
        ["read", "ms", "ratio"],
        [
            ["plan: ORM get of a 10,000-word transcript", read["plan_read_10k_s"] * 1e3, 1.0],
            ["media_store: get of the same", read["media_store_read_10k_s"] * 1e3, read_ratio],
            [
                "media_store: words() of the same",
                read["media_store_words_10k_s"] * 1e3,
                read["plan_read_10k_s"] / read["media_store_words_10k_s"],
            ],
            [f"whole 3-hour transcript ({LONG_WORDS:,} words)", read["whole_3h_s"] * 1e3, 1.0],
            ["60-second window of it", read["window_60s_s"] * 1e3, window_ratio],
        ],
    )
    print_table(
        f"streamed insert of {STREAM_WORDS:,} words (an iterator of dicts)",
        ["measure", "value"],
        [
            ["seconds", memory["stream_seconds"]],
            ["words/s", memory["stream_words_per_s"]],
            ["ru_maxrss delta (MiB)", memory["stream_maxrss_delta_mib"]],
            ["tracemalloc peak (MiB)", memory["stream_tracemalloc_peak_mib"]],
        ],
    )
    targets = {
        "write_vs_limit>=0.8": ms / limit >= 0.8,
        "write_vs_plan>=2.5": ms / plan >= 2.5,
        "bytes_per_word<=32": sizes[names[0]] / total_words <= 32,
        "read_vs_plan>=3": read_ratio >= 3,
        "window_vs_whole>=20": window_ratio >= 20,
    }
    print("  targets:", ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    write_results(
        "words",
        {
            "transcripts": TRANSCRIPTS,
            "words_per_transcript": WORDS,
            "rounds": ROUNDS,
            "seconds": seconds,
            "words_per_s": rate,
            "ratios": {
                "media_store_vs_limit": ms / limit,
                "media_store_vs_plan": ms / plan,
                "read_10k_media_store_vs_plan": read_ratio,
                "window_60s_vs_whole_3h": window_ratio,
            },
            "bytes_per_word": {name: sizes[name] / total_words for name in names},
            "reads": read,
            "stream": memory,
            "targets": targets,
        },
    )


if __name__ == "__main__":  # pragma: no cover
    import sys

    from benchmarks.common import bench_server

    with bench_server() as url:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else url))
