"""Word timestamps: 100 transcripts x 10,000 words, written and read, in two input profiles.

The profiles, side by side in every measurement:
- plain: English words (a few accented or non-Latin), no speaker, only the five keys the
  library reads;
- diarized: what a diarizing ASR gives (whisperX-style): a speaker on every word, two
  speakers alternating in turns of 1-40 words; Unicode words with a leading space
  (" café", " 東京", " 🎙️"); keys the library ignores on every word (``id``,
  ``probability``, ``tokens``).

Every write contender starts from the same input: each transcript's words as a list of dicts,
as ``orjson.loads`` gives them from the ASR's JSON (parsed untimed, just before its insert),
and does its whole path to stored rows, one call per transcript:
- media_store: ``store.transcriptions.create`` (column-wise validation, one binary COPY of
  segments, one transaction);
- the plan's design: SQLAlchemy 2 async ORM (asyncpg driver), a Transcription ORM object with
  a JSONB ``word_timestamps`` column, tables of the plan's shape, one session per transcript;
- the ingest limit: asyncpg binary COPY of the same words, prebuilt as tuples (untimed), one
  row per word into a logged table with no index or constraint.
Each (profile, contender) pair writes into its own fresh database, all opened before the clock
starts; the pairs take turns transcript by transcript (their order rotating), so that a burst
of load on this shared machine falls on all of them alike. 3 rounds on fresh databases,
medians of rounds.

Then, per profile: bytes per word on disk, reading a 10,000-word transcript into what the API
returns, a 60-second window of a 3.1-hour, 40,000-word transcript against the whole of it
(the two reads alternating), and the peak memory of a 1,000,000-word streamed insert.
The targets are judged on the worse profile.
"""

from __future__ import annotations

import asyncio
import contextlib
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
WINDOW_READS = 90
WINDOW_S = 60.0
LONG_WORDS = 40_000
LONG_HOURS = 3.1
STREAM_WORDS = 1_000_000

PLAIN = "plain"
DIARIZED = "diarized"
PROFILES = (PLAIN, DIARIZED)

MEDIA_STORE = "media_store"
PLAN = "plan (SQLAlchemy ORM, JSONB)"
LIMIT = "ingest limit (COPY, plain rows)"

TARGET_VS_LIMIT = 0.8
TARGET_VS_PLAN = 2.5
TARGET_BYTES_PER_WORD = 32
TARGET_READ_VS_PLAN = 3
TARGET_WINDOW_VS_WHOLE = 25

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


class Writer:
    """One contender on its own database: ``prepare`` (untimed) turns the parsed words into
    what ``insert`` (timed) takes."""

    def prepare(self, words: list[dict[str, Any]]) -> Any:
        return words

    async def insert(self, prepared: Any) -> None:
        raise NotImplementedError

    async def size(self) -> int:
        """Bytes on disk of what the inserts wrote (table, indexes, TOAST)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class MediaStoreWriter(Writer):
    def __init__(self, store: Store, job_id: uuid.UUID) -> None:
        self.store, self.job_id = store, job_id

    @classmethod
    async def open(cls, url: str) -> MediaStoreWriter:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=2, max_size=2))
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
        return cls(store, job.id)

    async def insert(self, prepared: Any) -> None:
        await self.store.transcriptions.create(
            {
                "job_id": self.job_id,
                "provider": "whisper",
                "text_content": "…",
                "word_timestamps": prepared,
            }
        )

    async def size(self) -> int:
        size = await self.store.pool.fetchval(
            "SELECT pg_total_relation_size('transcription_word_segments')"
        )
        return int(size)

    async def close(self) -> None:
        await self.store.close()


class PlanWriter(Writer):
    def __init__(self, engine: AsyncEngine, job_id: uuid.UUID) -> None:
        self.engine, self.job_id = engine, job_id
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> PlanWriter:
        engine = await plan_engine(url)
        return cls(engine, await plan_job(engine))

    async def insert(self, prepared: Any) -> None:
        async with self.sessions() as session, session.begin():
            session.add(
                PlanTranscription(
                    job_id=self.job_id,
                    provider="whisper",
                    text_content="…",
                    word_timestamps=prepared,
                )
            )

    async def size(self) -> int:
        async with self.engine.connect() as conn:
            size = await conn.exec_driver_sql("SELECT pg_total_relation_size('transcriptions')")
            return int(size.scalar_one())

    async def close(self) -> None:
        await self.engine.dispose()


LIMIT_DDL = (
    "CREATE TABLE plain_words (transcription_id uuid, word text, start float8, finish float8,"
    " confidence float8, speaker text)"
)
LIMIT_COLUMNS = ["transcription_id", "word", "start", "finish", "confidence", "speaker"]


class LimitWriter(Writer):
    def __init__(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, url: str) -> LimitWriter:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
        await conn.execute(LIMIT_DDL)
        return cls(conn)

    def prepare(self, words: list[dict[str, Any]]) -> Any:
        tid = uuid.uuid4()
        return [
            (tid, w["word"], w["start"], w["end"], w.get("confidence"), w.get("speaker"))
            for w in words
        ]

    async def insert(self, prepared: Any) -> None:
        await self.conn.copy_records_to_table(
            "plain_words", records=prepared, columns=LIMIT_COLUMNS
        )

    async def size(self) -> int:
        return int(await self.conn.fetchval("SELECT pg_total_relation_size('plain_words')"))

    async def close(self) -> None:
        await self.conn.close()


WRITERS: dict[str, tuple[Callable[[str], Awaitable[Writer]], bool]] = {
    # contender: (open on a fresh database, whether that database is migrated)
    MEDIA_STORE: (MediaStoreWriter.open, True),
    PLAN: (PlanWriter.open, False),
    LIMIT: (LimitWriter.open, False),
}

Pair = tuple[str, str]  # (profile, contender)


async def write_round(
    server_url: str, blobs: dict[str, list[bytes]], round_: int
) -> dict[Pair, tuple[float, int]]:
    """Every (profile, contender) pair writes all transcripts, taking turns transcript by
    transcript. Returns each pair's seconds (inserts only) and bytes on disk."""
    async with contextlib.AsyncExitStack() as stack:
        writers: dict[Pair, Writer] = {}
        for profile in PROFILES:
            for name, (open_writer, migrated) in WRITERS.items():
                url = await stack.enter_async_context(fresh_database(server_url, migrated=migrated))
                writer = await open_writer(url)
                stack.push_async_callback(writer.close)
                writers[(profile, name)] = writer
        pairs = list(writers)
        seconds = dict.fromkeys(pairs, 0.0)
        for i in range(TRANSCRIPTS):
            shift = (i + round_) % len(pairs)
            for pair in pairs[shift:] + pairs[:shift]:
                writer = writers[pair]
                prepared = writer.prepare(parse(blobs[pair[0]][i % DISTINCT]))
                with Timer() as t:
                    await writer.insert(prepared)
                seconds[pair] += t.elapsed
        return {pair: (seconds[pair], await writers[pair].size()) for pair in pairs}


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
            results["stream_words_per_s"] = STREAM_WORDS / t.elapsed
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
    total_words = TRANSCRIPTS * WORDS
    server = await server_info(server_url)
    print(f"\nPostgreSQL {server['version']}, segments: {server['segment_compression']}")
    # First, while the process is small: the streamed inserts' memory.
    memory = {p: await streamed_insert(server_url, p) for p in PROFILES}

    seconds: dict[Pair, list[float]] = {}
    sizes: dict[Pair, int] = {}
    for round_ in range(ROUNDS):
        for pair, (elapsed, size) in (await write_round(server_url, blobs, round_)).items():
            seconds.setdefault(pair, []).append(elapsed)
            sizes[pair] = size
    rate = {pair: total_words / median(s) for pair, s in seconds.items()}
    read = {p: await reads(server_url, p, blobs[p]) for p in PROFILES}

    profiles: dict[str, dict[str, Any]] = {}
    for p in PROFILES:
        ms, plan, limit = (rate[(p, name)] for name in WRITERS)
        profiles[p] = {
            "seconds": {name: seconds[(p, name)] for name in WRITERS},
            "words_per_s": {name: rate[(p, name)] for name in WRITERS},
            "bytes_per_word": {name: sizes[(p, name)] / total_words for name in WRITERS},
            "ratios": {
                "media_store_vs_limit": ms / limit,
                "media_store_vs_plan": ms / plan,
                "read_10k_media_store_vs_plan": read[p]["plan_read_10k_s"]
                / read[p]["media_store_read_10k_s"],
                "window_60s_vs_whole": read[p]["whole_long_s"] / read[p]["window_60s_s"],
            },
            "reads": read[p],
            "stream": memory[p],
        }

    for p in PROFILES:
        r = profiles[p]
        print_table(
            f"word timestamps, {p}: {TRANSCRIPTS} transcripts x {WORDS:,} words,"
            f" median of {ROUNDS} rounds",
            ["contender", "words/s", "vs limit", "vs plan", "bytes/word on disk"],
            [
                [
                    name,
                    r["words_per_s"][name],
                    r["words_per_s"][name] / r["words_per_s"][LIMIT],
                    r["words_per_s"][name] / r["words_per_s"][PLAN],
                    r["bytes_per_word"][name],
                ]
                for name in WRITERS
            ],
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
        f"streamed insert of {STREAM_WORDS:,} words (an iterator of dicts)",
        ["measure", *PROFILES],
        [
            ["seconds", *(memory[p]["stream_seconds"] for p in PROFILES)],
            ["words/s", *(memory[p]["stream_words_per_s"] for p in PROFILES)],
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
    targets = {
        f"write_vs_limit>={TARGET_VS_LIMIT}": worse["media_store_vs_limit"] >= TARGET_VS_LIMIT,
        f"write_vs_plan>={TARGET_VS_PLAN}": worse["media_store_vs_plan"] >= TARGET_VS_PLAN,
        f"bytes_per_word<={TARGET_BYTES_PER_WORD}": worse["media_store_bytes_per_word"]
        <= TARGET_BYTES_PER_WORD,
        f"read_vs_plan>={TARGET_READ_VS_PLAN}": worse["read_10k_media_store_vs_plan"]
        >= TARGET_READ_VS_PLAN,
        f"window_vs_whole>={TARGET_WINDOW_VS_WHOLE}": worse["window_60s_vs_whole"]
        >= TARGET_WINDOW_VS_WHOLE,
    }
    print("  worse profile:", ", ".join(f"{k} {v:.2f}" for k, v in worse.items()))
    print("  targets:", ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    write_results(
        "words",
        {
            "transcripts": TRANSCRIPTS,
            "words_per_transcript": WORDS,
            "rounds": ROUNDS,
            "server": server,
            "long_transcript": {"words": LONG_WORDS, "hours": LONG_HOURS},
            "profiles": profiles,
            "worse": worse,
            "targets": targets,
        },
    )


if __name__ == "__main__":  # pragma: no cover
    import sys

    from benchmarks.common import bench_server

    with bench_server() as url:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else url))
