"""Search across transcriptions (issue 23, item 5): ``store.transcriptions.search`` beside what a
user would write instead, on a generated corpus, at 1 million words and again after it grew to
``MEDIA_STORE_SEARCH_WORDS`` (default 10 million, about 1,000 hours).

The corpus: transcripts of 10,000 words (an hour at 2.8 words a second), Whisper-style words
(a leading space, punctuation attached to one word in ten), two to four speakers taking turns
of 5 to 40 words; languages English 50%, German 20%, French 15%, Spanish 10%, none 5% ('simple'
configuration). Words are drawn from a Zipf-distributed vocabulary of 30,000 made-up words
(exponent 1.07, as spoken language), with planted terms: a rare word (one transcript in 50,
once), a family sharing a prefix ("inflat…", about 1 word in 2,000) and a two-word phrase
("interest rates", about 1 in 5,000), the phrase's words also apart. The common word is the
vocabulary's most frequent (about 1 word in 12).

Contenders, on one fresh database, each query kind run side by side in rotating order, as the
load leaves the tables (nothing is analyzed or vacuumed by hand; on a server whose autovacuum
is off the GIN pending lists stay as the inserts left them):

- media_store: ``search(query, limit=20)``, ranked best first, each hit placed on its words;
- ILIKE over ``text_content`` (the whole transcript's text, as the plan stores it):
  ``WHERE text_content ILIKE '%…%' LIMIT 20`` (transcripts only, no times);
- one row a word with a GIN index on ``to_tsvector(config, word)`` (the transcription's
  configuration), ``LIMIT 20`` unranked; a phrase as a self-join on the next word; a prefix
  as ``'…':*``.

Reported per kind: p50 and p95 in ms of the repeated runs, the first run apart (each
contender's plans made then; media_store's lexicon of the hit words' lexemes emptied before
it, as in a process just started), and the growth from 1 million words to the full corpus.
The ingest cost of the index is measured by ``python -m benchmarks words`` (its contender
without the documents' statement); this module reports the bytes a word of each layout.
"""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg

from benchmarks.common import fresh_database, judge, print_table, write_results
from media_store import Dsn, Settings, Store
from media_store.repositories import search as search_repository
from media_store.words.search import Lexicon

WORDS_ENV = "MEDIA_STORE_SEARCH_WORDS"
TOTAL_WORDS = int(os.environ.get(WORDS_ENV, "10000000"))
FIRST_STEP = min(1_000_000, TOTAL_WORDS)
TRANSCRIPT_WORDS = 10_000
VOCABULARY = 30_000
ZIPF = 1.07
REPS = 15
ILIKE_REPS = 3  # a scan of every transcript's text: seconds a query at 10M words
LIMIT = 20
TARGET_PHRASE_MS = 20.0
TARGET_RARE_MS = 5.0

LANGUAGES = [("en", 50), ("de", 20), ("fr", 15), ("es", 10), (None, 5)]
RARE = "zanzibarian"
PREFIX_FAMILY = ["inflation", "inflate", "inflated", "inflationary", "inflating"]
PHRASE = ("interest", "rates")

MEDIA_STORE = "media_store search"
ILIKE = "ILIKE over text_content"
FLAT = "a row a word, GIN"
CONTENDERS = (MEDIA_STORE, FLAT, ILIKE)

FLAT_DDL = """
CREATE TABLE flat_words (
    transcription_id uuid NOT NULL,
    idx integer NOT NULL,
    word text NOT NULL,
    start float8 NOT NULL,
    finish float8 NOT NULL,
    speaker text,
    config regconfig NOT NULL,
    tsv tsvector NOT NULL,
    PRIMARY KEY (transcription_id, idx)
);
CREATE INDEX flat_words_tsv ON flat_words USING gin (tsv);
"""
# The words of the transcriptions created since the last call, a row each, from the segments.
FLAT_FILL = """
INSERT INTO flat_words (transcription_id, idx, word, start, finish, speaker, config, tsv)
SELECT s.transcription_id, s.seq * 256 + w.n - 1, w.word, w.start, w.finish, w.speaker, c.config,
       to_tsvector(c.config, w.word)
FROM transcription_word_segments AS s
JOIN transcriptions AS t ON t.id = s.transcription_id
CROSS JOIN LATERAL (SELECT media_store_search_config(t.language) AS config) AS c
CROSS JOIN LATERAL unnest(media_store_unpack_words(s.words, s.word_lengths),
                          media_store_unpack_float8(s.starts), media_store_unpack_float8(s.ends),
                          coalesce(media_store_unpack_speakers(s.speakers),
                                   array_fill(NULL::text, ARRAY[s.word_count])))
     WITH ORDINALITY AS w (word, start, finish, speaker, n)
WHERE s.transcription_id = any($1::uuid[])
"""
# The configurations the corpus uses, each arm with its own constant query: what a user who
# keeps a configuration per row writes so that each arm can use the GIN index.
FLAT_CONFIGS = ("english", "german", "french", "spanish", "simple")
FLAT_WORD = (
    "SELECT * FROM ("
    + " UNION ALL ".join(
        f"(SELECT transcription_id, start FROM flat_words"
        f" WHERE config = '{c}'::regconfig AND tsv @@ plainto_tsquery('{c}', $1) LIMIT $2)"
        for c in FLAT_CONFIGS
    )
    + ") AS found LIMIT $2"
)
FLAT_PREFIX = """
SELECT transcription_id, start FROM flat_words
WHERE tsv @@ to_tsquery('simple', quote_literal($1) || ':*')
LIMIT $2
"""
FLAT_PHRASE = (
    "SELECT * FROM ("
    + " UNION ALL ".join(
        f"(SELECT a.transcription_id, a.start FROM flat_words AS a"
        f" JOIN flat_words AS b ON b.transcription_id = a.transcription_id AND b.idx = a.idx + 1"
        f" WHERE a.config = '{c}'::regconfig AND a.tsv @@ plainto_tsquery('{c}', $1)"
        f" AND b.tsv @@ plainto_tsquery('{c}', $2) LIMIT $3)"
        for c in FLAT_CONFIGS
    )
    + ") AS found LIMIT $3"
)
ILIKE_QUERY = "SELECT id FROM transcriptions WHERE text_content ILIKE $1 LIMIT $2"


def vocabulary(rng: random.Random) -> list[str]:
    """Made-up words of two to four syllables, distinct."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["tra", "sch", "ño", "ü"]
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Corpus:
    """Transcripts made one at a time, the same for a seed."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        weights = [1 / (rank + 1) ** ZIPF for rank in range(VOCABULARY)]
        total = sum(weights)
        self.cumulative = list(_accumulate([w / total for w in weights]))
        self.common = self.words[0]
        self.count = 0

    def transcript(self) -> tuple[str | None, list[dict[str, Any]], str]:
        rng = self.rng
        language = rng.choices([lang for lang, _ in LANGUAGES], [w for _, w in LANGUAGES])[0]
        drawn = rng.choices(self.words, cum_weights=self.cumulative, k=TRANSCRIPT_WORDS)
        for i in range(TRANSCRIPT_WORDS):
            roll = rng.random()
            if roll < 1 / 2_000:
                drawn[i] = rng.choice(PREFIX_FAMILY)
            elif roll < 1 / 2_000 + 1 / 5_000 and i + 1 < TRANSCRIPT_WORDS:
                drawn[i], drawn[i + 1] = PHRASE
            elif roll < 1 / 2_000 + 2 / 5_000:
                drawn[i] = rng.choice(PHRASE)  # the phrase's words apart too
        if self.count % 50 == 7:
            drawn[rng.randrange(TRANSCRIPT_WORDS)] = RARE
        self.count += 1
        speakers = [f"SPEAKER_{n:02d}" for n in range(rng.randint(2, 4))]
        words, t, speaker, left = [], 0.0, 0, 0
        for text in drawn:
            if left == 0:
                speaker, left = rng.randrange(len(speakers)), rng.randint(5, 40)
            left -= 1
            t += rng.uniform(0.2, 0.5)
            if rng.random() < 0.1:
                text += rng.choice(",.?!")
            words.append(
                {
                    "word": " " + text,
                    "start": round(t, 3),
                    "end": round(t + 0.25, 3),
                    "speaker": speakers[speaker],
                }
            )
        return language, words, "".join(w["word"] for w in words).strip()


def _accumulate(values: list[float]) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


async def load(store: Store, conn: asyncpg.Connection[Any], corpus: Corpus, count: int) -> float:
    """Store ``count`` transcripts through the store and into the one-row-a-word table;
    returns the seconds the store's inserts took."""
    spent = 0.0
    made: list[uuid.UUID] = []
    for _ in range(count):
        language, words, text = corpus.transcript()
        job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/talk.wav"})
        started = time.perf_counter()
        item = await store.transcriptions.create(
            {
                "job_id": job.id,
                "provider": "whisper",
                "text_content": text,
                "language": language,
                "word_timestamps": words,
            }
        )
        spent += time.perf_counter() - started
        made.append(item.id)
        if len(made) == 20:
            await conn.execute(FLAT_FILL, made)
            made = []
    if made:
        await conn.execute(FLAT_FILL, made)
    return spent


def kinds(corpus: Corpus) -> dict[str, dict[str, Callable[..., Awaitable[int]]]]:
    """Per query kind, how each contender runs it (returning its row count)."""

    def store_query(text: str) -> Callable[[Store, asyncpg.Connection[Any]], Awaitable[int]]:
        async def run(store: Store, conn: asyncpg.Connection[Any]) -> int:
            return len((await store.transcriptions.search(text, limit=LIMIT)).hits)

        return run

    def sql(query: str, *args: Any) -> Callable[[Store, asyncpg.Connection[Any]], Awaitable[int]]:
        async def run(store: Store, conn: asyncpg.Connection[Any]) -> int:
            return len(await conn.fetch(query, *args, LIMIT))

        return run

    common = corpus.common
    return {
        "rare word": {
            MEDIA_STORE: store_query(RARE),
            FLAT: sql(FLAT_WORD, RARE),
            ILIKE: sql(ILIKE_QUERY, f"%{RARE}%"),
        },
        "common word": {
            MEDIA_STORE: store_query(common),
            FLAT: sql(FLAT_WORD, common),
            ILIKE: sql(ILIKE_QUERY, f"%{common}%"),
        },
        "two-word phrase": {
            MEDIA_STORE: store_query(f'"{PHRASE[0]} {PHRASE[1]}"'),
            FLAT: sql(FLAT_PHRASE, *PHRASE),
            ILIKE: sql(ILIKE_QUERY, f"%{PHRASE[0]} {PHRASE[1]}%"),
        },
        "prefix": {
            MEDIA_STORE: store_query("inflat*"),
            FLAT: sql(FLAT_PREFIX, "inflat"),
            ILIKE: sql(ILIKE_QUERY, "%inflat%"),
        },
    }


async def measure(
    store: Store, conn: asyncpg.Connection[Any], corpus: Corpus
) -> dict[str, dict[str, dict[str, float]]]:
    """p50 and p95 (ms) per kind and contender, the contenders taking turns."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for kind, runs in kinds(corpus).items():
        times: dict[str, list[float]] = {name: [] for name in runs}
        rows: dict[str, int] = {}
        first: dict[str, float] = {}
        for name, run in runs.items():  # a first run each: plans made, pages read once
            if name == MEDIA_STORE:
                # Its words' lexemes not known yet (what a process meets after a start).
                search_repository._LEXICON = Lexicon()
            started = time.perf_counter()
            rows[name] = await run(store, conn)
            first[name] = (time.perf_counter() - started) * 1e3
        for rep in range(REPS):
            order = list(runs)[rep % len(runs) :] + list(runs)[: rep % len(runs)]
            for name in order:
                if name == ILIKE and rep >= ILIKE_REPS:
                    continue
                started = time.perf_counter()
                await runs[name](store, conn)
                times[name].append((time.perf_counter() - started) * 1e3)
        result[kind] = {
            name: {
                "p50_ms": statistics.median(values),
                "p95_ms": sorted(values)[max(0, round(0.95 * len(values)) - 1)],
                "rows": rows[name],
                "runs": len(values),
                "first_ms": first[name],
            }
            for name, values in times.items()
        }
    return result


async def sizes(conn: asyncpg.Connection[Any], words: int) -> dict[str, float]:
    """Bytes a word of each layout (tables, indexes and TOAST)."""
    row = await conn.fetchrow(
        "SELECT pg_total_relation_size('transcription_word_segments') AS segments,"
        " pg_total_relation_size('transcription_word_search') AS search,"
        " pg_total_relation_size('flat_words') AS flat,"
        " pg_total_relation_size('transcriptions') AS transcriptions"
    )
    assert row is not None
    return {
        "word segments": row["segments"] / words,
        "search documents (media_store's index)": row["search"] / words,
        "a row a word with GIN": row["flat"] / words,
        "transcriptions (text_content for ILIKE)": row["transcriptions"] / words,
    }


async def main(server_url: str) -> None:
    corpus = Corpus()
    steps = sorted({FIRST_STEP, TOTAL_WORDS})
    results: dict[str, Any] = {"steps": {}}
    async with fresh_database(server_url) as url:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=2))
        conn: asyncpg.Connection[Any] = await asyncpg.connect(url)
        try:
            await conn.execute(FLAT_DDL)
            stored = 0
            for step in steps:
                count = (step - stored) // TRANSCRIPT_WORDS
                spent = await load(store, conn, corpus, count)
                stored += count * TRANSCRIPT_WORDS
                timings = await measure(store, conn, corpus)
                results["steps"][str(stored)] = {
                    "words": stored,
                    "store_ingest_words_per_s": count * TRANSCRIPT_WORDS / spent,
                    "queries": timings,
                    "bytes_per_word": await sizes(conn, stored),
                }
                print_table(
                    f"search at {stored:,} words ({stored // TRANSCRIPT_WORDS:,} transcripts of"
                    f" {TRANSCRIPT_WORDS:,}; limit {LIMIT}; p50 / p95 ms of {REPS} runs,"
                    f" ILIKE {ILIKE_REPS}; (the first run: plans made, media_store's lexicon"
                    " empty))",
                    ["query", *CONTENDERS, "media_store hits"],
                    [
                        [
                            kind,
                            *(
                                f"{t[name]['p50_ms']:.1f} / {t[name]['p95_ms']:.1f}"
                                f" ({t[name]['first_ms']:.1f})"
                                for name in CONTENDERS
                            ),
                            t[MEDIA_STORE]["rows"],
                        ]
                        for kind, t in timings.items()
                    ],
                )
                for layout, value in results["steps"][str(stored)]["bytes_per_word"].items():
                    print(f"  {layout}: {value:.1f} bytes a word")
        finally:
            await conn.close()
            await store.close()
    first, last = (results["steps"][str(s)] for s in (steps[0], steps[-1]))
    growth = {
        kind: last["queries"][kind][MEDIA_STORE]["p50_ms"]
        / first["queries"][kind][MEDIA_STORE]["p50_ms"]
        for kind in last["queries"]
    }
    results["growth_p50"] = growth
    print(
        f"  media_store p50 growth from {steps[0]:,} to {steps[-1]:,} words: "
        + ", ".join(f"{kind} {value:.2f}x" for kind, value in growth.items())
    )
    top = last["queries"]
    judge(
        f"search p50 of a two-word phrase at {steps[-1]:,} words, ms",
        top["two-word phrase"][MEDIA_STORE]["p50_ms"],
        TARGET_PHRASE_MS,
        higher_is_better=False,
    )
    judge(
        f"search p50 of a rare word at {steps[-1]:,} words, ms",
        top["rare word"][MEDIA_STORE]["p50_ms"],
        TARGET_RARE_MS,
        higher_is_better=False,
    )
    write_results("search", results)
