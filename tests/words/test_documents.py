"""Search documents made by the writer (:mod:`media_store.words.documents`) against what the
server makes of the same words (``to_tsvector`` of the words joined by spaces): equal on
generated Unicode words with punctuation, hyphens, numbers, addresses and tags, in five
configurations, through every write path; the segments left to the server (a word that may
begin a tag, PostgreSQL's position limits) stored equal too; and the made documents equal
the server's where they are made, so the writer's path is the one tested."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import pytest

from media_store import Store
from media_store.repositories import transcriptions as transcriptions_module
from media_store.words import documents as documents_module
from media_store.words.documents import (
    Analyses,
    Analysis,
    quoted,
    segment_documents,
)
from media_store.words.segments import SEGMENT_WORDS

# Pieces of words: letters of several scripts, digits, and the characters the default
# parser gives a meaning to (hyphens, dots, '@', '/', ':', '&', quotes, tags' brackets).
PIECES = [
    *"abcxyzABC",
    "the",
    "of",
    "running",
    "Straße",
    "café",
    "e\u0301",  # e and a combining acute
    "naïve",
    "мир",
    "Ελλάδα",
    "東京都",
    "नमस्ते",
    "مرحبا",
    "שלום",
    "ไทย",
    "👋🏽",
    "👨\u200d👩\u200d👧",
    "ﬁ",
    *"0123456789",
    *"-.,'’:;/@&_+#%$!?()[]\"=~*^|\\",
    ">",
    "&amp;",
    "http://",
    "www.",
    ".com",
    "1.5",
    "-3",
    "1e10",
    "v1.2.3",
]

# Words that may begin a tag, which may span words ('<a href="x y">'): rare in a transcript,
# and each sends its segment to the server.
TAGS = ["<b>", "</b>", "<a", "<unk>", "<", "x<y"]

# Words the parser reads in a way of their own.
TRICKY = [
    "well-known",
    "e-mail",
    "foo-bar-baz",
    "3.14",
    "-5",
    "1e10",
    "v1.2.3",
    "user@example.com",
    "http://example.com/a?b=c",
    "/usr/bin/env",
    "&amp;",
    "don't",
    "it's",
    "O'Neil",
    "—",
    "...",
    "12:30",
    "C++",
    "#hashtag",
    'href="x',
    'y">',
    "x" * 2100,  # a token too long to index: the parser skips it
    " leading",
    "New York",  # an ASR's word holding a space
]

# Words of 100 hyphenated parts (101 positions each: the word, then each part), no part twice.
LONG_WORDS = [
    "-".join("".join("abcdefghij"[int(d)] for d in f"{w:03d}{p:03d}") for p in range(100))
    for w in range(200)
]

CONFIGS = {"en": "english", None: "simple", "de": "german", "ru": "russian", "fr": "french"}


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test with the process's caches empty: its outcome not hanging on the order."""
    monkeypatch.setattr(transcriptions_module, "_ANALYSES", Analyses())
    monkeypatch.setattr(transcriptions_module, "_CONFIG_OF", {})


def index_calls(monkeypatch: pytest.MonkeyPatch, store: Store) -> list[tuple[Any, Any, Any]]:
    """(transcription id, seq, document sent) of every segment the store's transcriptions
    write from now: by write_word_segments, or by create_transcription_with_words (whose
    transcription is the row it returns)."""
    calls: list[tuple[Any, Any, Any]] = []
    repository = type(store.transcriptions)
    fetchval, fetchrow = repository._fetchval, repository._fetchrow

    async def recorded_val(self: Any, q: Any, *args: Any) -> Any:
        if q.name == "write_word_segments":
            calls.extend(zip(args[1], args[2], args[13], strict=True))
        return await fetchval(self, q, *args)

    async def recorded_row(self: Any, q: Any, *args: Any) -> Any:
        row = await fetchrow(self, q, *args)
        if q.name == "create_transcription_with_words":
            assert row is not None
            calls.extend((row["id"], seq, d) for seq, d in zip(args[7], args[18], strict=True))
        return row

    monkeypatch.setattr(repository, "_fetchval", recorded_val)
    monkeypatch.setattr(repository, "_fetchrow", recorded_row)
    return calls


def generated_words(rng: random.Random, n: int) -> list[str]:
    words = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.002:
            word = rng.choice(TAGS)
        elif roll < 0.1:
            word = rng.choice(TRICKY)
        else:
            word = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4)))
        words.append((" " if rng.random() < 0.5 else "") + word)
    return words


def timed(words: list[str], start: float = 0.0) -> list[dict[str, Any]]:
    return [
        {"word": w, "start": start + i * 0.5, "end": start + i * 0.5 + 0.4}
        for i, w in enumerate(words)
    ]


# Each stored document against to_tsvector of its segment's words joined by spaces.
MISMATCHES = """
SELECT count(*) FILTER (WHERE d.document <> to_tsvector(
           d.config, array_to_string(media_store_unpack_words(s.words, s.word_lengths), ' '))),
       count(*)
FROM transcription_word_search AS d
JOIN transcription_word_segments AS s USING (job_id, transcription_id, seq)
"""


@pytest.mark.parametrize("statement_segments", [128, 3, 1])
async def test_every_write_path_stores_the_documents_the_server_would_make(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch, statement_segments: int
) -> None:
    """Also with statements of a few segments: a create past them takes the transaction's
    path, and a statement holds the segments of several transcriptions (create_many)."""
    monkeypatch.setattr(transcriptions_module, "STATEMENT_SEGMENTS", statement_segments)
    calls = index_calls(monkeypatch, store)
    rng = random.Random(23)
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    for language in CONFIGS:
        data = {"job_id": job.id, "provider": "p", "text_content": "-", "language": language}
        made = await store.transcriptions.create(
            {**data, "word_timestamps": timed(generated_words(rng, 700))}
        )
        await store.transcriptions.append_words(
            made.id, timed(generated_words(rng, 300), start=1_000.0)
        )
        await store.transcriptions.create_streamed(data, iter(timed(generated_words(rng, 900))))
        await store.transcriptions.create_many(
            [{**data, "word_timestamps": timed(generated_words(rng, n))} for n in (1, 257, 40)]
        )
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(MISMATCHES)
        assert row is not None
        mismatched, documents = row
        assert documents == await conn.fetchval("SELECT count(*) FROM transcription_word_segments")
        assert documents >= 5 * (3 + 1 + 4 + 1 + 2 + 1)
        assert mismatched == 0
        # Made by the writer exactly where nothing sends the segment to the server: a word
        # with '<' in it, or a first word not led by a letter or digit.
        by_writer = {(tid, seq): document is not None for tid, seq, document in calls}
        segments = await conn.fetch(
            "SELECT transcription_id, seq, media_store_unpack_words(words, word_lengths) AS w"
            " FROM transcription_word_segments"
        )
        expected = {
            (r["transcription_id"], r["seq"]): r["w"][0].lstrip()[:1].isalnum()
            and not any("<" in w for w in r["w"])
            for r in segments
        }
        assert by_writer == expected
        assert sum(by_writer.values()) > documents // 3
        configs = await conn.fetchval(
            "SELECT array_agg(config::text ORDER BY config::text) FROM transcription_search_configs"
        )
        assert configs == sorted(CONFIGS.values())
    finally:
        await conn.close()


async def test_the_made_documents_equal_the_servers_where_they_are_made(
    store: Store, db_url: str
) -> None:
    """Not only stored equal: made by the writer, for most segments (those with no '<')."""
    rng = random.Random(7)
    repository = store.transcriptions
    conn = await asyncpg.connect(db_url)
    try:
        for language, config in CONFIGS.items():
            words = [w for w in generated_words(rng, 12 * SEGMENT_WORDS) if "<" not in w]
            configs = await repository._configs({language})
            assert configs[language] == (f"pg_catalog.{config}", True)
            config = configs[language][0]
            analyses = await repository._analyses({config: set(words)})
            documents = segment_documents(words, SEGMENT_WORDS, analyses[config])
            segments = [
                words[lo : lo + SEGMENT_WORDS] for lo in range(0, len(words), SEGMENT_WORDS)
            ]
            # Left to the server only where a word the parser may read otherwise at the start
            # of a text begins the segment.
            assert [d is None for d in documents] == [
                not s[0].lstrip()[:1].isalnum() for s in segments
            ]
            assert any(d is not None for d in documents)
            equal = await conn.fetch(
                "SELECT d::tsvector = to_tsvector($1::regconfig, t) AS equal"
                " FROM unnest($2::text[], $3::text[]) AS x (d, t) WHERE d IS NOT NULL",
                config,
                documents,
                [" ".join(s) for s in segments],
            )
            assert [r["equal"] for r in equal] == [True] * sum(d is not None for d in documents)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("words", "made"),
    [
        (["a"] * SEGMENT_WORDS, False),  # 256 positions of 'a': to_tsvector keeps 255
        (["a"] * (SEGMENT_WORDS - 1) + ["b"], True),
        (["<b>", "x"], False),  # a tag may span words
        (["~the", "x"], False),  # read otherwise at the start of a text
        (["x", "~the"], True),
        (["-".join(["x"] * 100)] * 100, False),  # 'x' 10,000 times: 255 kept
        (LONG_WORDS[:200], False),  # past position 16,383
        (LONG_WORDS[:100], True),
    ],
)
async def test_segments_past_the_limits_are_left_to_the_server(
    store: Store, db_url: str, words: list[str], made: bool
) -> None:
    repository = store.transcriptions
    analyses = await repository._analyses({"pg_catalog.simple": set(words)})
    [document] = segment_documents(words, SEGMENT_WORDS, analyses["pg_catalog.simple"])
    assert (document is not None) is made
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    await store.transcriptions.create(
        {"job_id": job.id, "provider": "p", "text_content": "-", "word_timestamps": timed(words)}
    )
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(MISMATCHES)
        assert row is not None
        mismatched, documents = row
        assert (mismatched, documents) == (0, 1)
    finally:
        await conn.close()


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_a_lexeme_is_quoted_and_written_at_each_position(
    monkeypatch: pytest.MonkeyPatch, compiled: bool
) -> None:
    """The Python path writes a lexeme once a position, the compiled one once with all its
    positions, in the server's order (tests/words/test_speedups.py compares the two)."""
    if compiled and documents_module._compiled is None:
        pytest.skip("media_store._speedups is not compiled in this install")
    if not compiled:
        monkeypatch.setattr(documents_module, "_compiled", None)
    a = Analysis(((quoted("it's") + ":", 0),), 1, quoted("it's") + ":", True)
    well = Analysis(
        ((quoted("well-known") + ":", 0), (quoted("well") + ":", 1), (quoted("known") + ":", 2)),
        3,
        None,
        True,
    )
    stop = Analysis((), 1, None, True)
    nothing = Analysis((), 0, None, True)
    slash = Analysis(((quoted("a\\b") + ":", 0),), 1, quoted("a\\b") + ":", True)
    analyses = {"it's": a, "well-known": well, "the": stop, ",": nothing, "a\\b": slash}
    words = ["it's", "the", ",", "well-known", "it's", "a\\b"]
    if compiled:
        assert segment_documents(words, SEGMENT_WORDS, analyses) == [
            "'a\\\\b':7 'it''s':1,6 'known':5 'well':4 'well-known':3"
        ]
        assert segment_documents(words, 2, analyses) == [
            "'it''s':1",
            "'known':3 'well':2 'well-known':1",
            "'a\\\\b':2 'it''s':1",
        ]
    else:
        assert segment_documents(words, SEGMENT_WORDS, analyses) == [
            "'it''s':1 'well-known':3 'well':4 'known':5 'it''s':6 'a\\\\b':7"
        ]
        assert segment_documents(words, 2, analyses) == [
            "'it''s':1",
            "'well-known':1 'well':2 'known':3",
            "'it''s':1 'a\\\\b':2",
        ]


def test_the_analyses_stay_bounded_and_keep_what_they_were_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("media_store.words.documents.ANALYSED_WORDS", 10)
    cache = Analyses()
    word = Analysis((("'w':", 0),), 1, "'w':", True)
    cache.add("simple", {f"w{i}": word for i in range(8)})
    kept = cache.of("simple")
    cache.add("english", {f"e{i}": None for i in range(4)})
    assert cache.generation == 1
    assert sum(len(cache.of(c)) for c in ("simple", "english")) <= 10
    assert len(kept) == 8  # a mapping taken before stays whole
    assert cache.missing("simple", ["w7", "w0"]) == ["w0"]
    assert cache.of("english")["e3"] is None


async def test_a_process_reads_each_word_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcriptions_module, "_ANALYSES", Analyses())
    statements: list[str] = []
    repository = store.transcriptions
    fetch = type(repository)._fetch

    async def counted(self: Any, q: Any, *args: Any) -> Any:
        statements.append(q.name)
        return await fetch(self, q, *args)

    monkeypatch.setattr(type(repository), "_fetch", counted)
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    data = {"job_id": job.id, "provider": "p", "text_content": "-", "language": "en"}
    words = timed(["alpha", "beta", "alpha"])
    await repository.create({**data, "word_timestamps": words})
    await repository.create({**data, "word_timestamps": words})
    assert statements.count("search_word_positions") == 1


async def test_a_word_that_fails_its_chunk_is_tried_alone(store: Store) -> None:
    """300 parts of 'x': the chunk's 'x' passes 255 positions, so the chunk fails as a whole;
    its other words are then analysed alone, and only that word is left to the server."""
    repository = store.transcriptions
    crowded = "-".join(["x"] * 300)
    analyses = await repository._analyses({"pg_catalog.simple": {"hello", "world", crowded}})
    known = analyses["pg_catalog.simple"]
    assert known[crowded] is None
    assert known["hello"] is not None and known["hello"].single == "'hello':"
    assert known["world"] is not None


async def test_languages_past_the_limit_start_the_map_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcriptions_module, "MAX_LANGUAGES", 3)
    repository = store.transcriptions
    assert (await repository._configs({"en"}))["en"][0] == "pg_catalog.english"
    await repository._configs({"xx", "yy"})
    both = await repository._configs({"en", "de"})  # a known one and a new one, past the limit
    assert both == {"en": ("pg_catalog.english", True), "de": ("pg_catalog.german", True)}
    assert len(transcriptions_module._CONFIG_OF) <= 3


async def test_a_backfill_writes_its_configurations_in_name_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configuration new to the database is inserted (and locked until commit) by the first
    statement holding it: across a create_many's statements the configurations come in name
    order whatever the items' order, so two backfills of the same new languages in opposite
    orders cannot deadlock."""
    monkeypatch.setattr(transcriptions_module, "STATEMENT_SEGMENTS", 1)
    sent: list[list[str]] = []
    repository = type(store.transcriptions)
    fetchval = repository._fetchval

    async def recorded(self: Any, q: Any, *args: Any) -> Any:
        if q.name == "write_word_segments":
            sent.append(list(args[12]))
        return await fetchval(self, q, *args)

    monkeypatch.setattr(repository, "_fetchval", recorded)
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    items = [
        {
            "job_id": job.id,
            "provider": "p",
            "text_content": "-",
            "language": language,
            "word_timestamps": timed(generated_words(random.Random(n), 300)),
        }
        for n, language in enumerate(["fr", "en", "ru", "de", "en"])
    ]
    await store.transcriptions.create_many(items)
    configs = [config for statement in sent for config in statement]
    assert len(sent) == 10  # two segments an item, one a statement
    assert configs == sorted(configs)
    assert set(configs) == {
        "pg_catalog.english",
        "pg_catalog.french",
        "pg_catalog.german",
        "pg_catalog.russian",
    }


async def test_a_create_cancelled_while_its_documents_are_made_leaves_nothing(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while the documents of its second statement are made (its first statement
    written): the transaction rolls back, and the pool's connection works on."""
    monkeypatch.setattr(transcriptions_module, "STATEMENT_SEGMENTS", 4)
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    data = {"job_id": job.id, "provider": "p", "text_content": "-", "language": "en"}
    words = timed(generated_words(random.Random(3), 20 * SEGMENT_WORDS))
    made = segment_documents
    slices = 0

    def slow(*args: Any) -> Any:
        nonlocal slices
        slices += 1
        if slices == 2:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
        return made(*args)

    monkeypatch.setattr(transcriptions_module, "segment_documents", slow)
    with pytest.raises(asyncio.CancelledError):
        await store.transcriptions.create({**data, "word_timestamps": words})
    assert slices == 2
    monkeypatch.setattr(transcriptions_module, "segment_documents", made)
    conn = await asyncpg.connect(db_url)
    try:
        for table in ("transcriptions", "transcription_word_segments", "transcription_word_search"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        await conn.close()
    # The pool's connection works on: a write and a search after it.
    made_after = await store.transcriptions.create({**data, "word_timestamps": timed(["zebra"])})
    [hit] = (await store.transcriptions.search("zebra")).hits
    assert hit.transcription_id == made_after.id
