"""``store.transcriptions.search`` on a real database (migrations/0016): every hit and every
time in it compared with a brute-force scan of the same words (each word's lexemes read from
PostgreSQL one by one), across languages, speakers, Unicode and both joining styles, page by
page through the cursor; the filters; the index kept by every write path and gone with its
words; bad input refused before any SQL; on the replica view too."""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
import pytest

from media_store import Store, ValidationError
from media_store.repositories import search as search_repository
from media_store.words import search as search_module
from media_store.words.search import LEXICON_WORDS, Lexicon, SearchHit, parse_query

# Words with stems shared across forms, stop words, accents, CJK, punctuation attached.
VOCABULARY = [
    "budget",
    "budgets",
    "inflation",
    "interest",
    "rates",
    "rate",
    "running",
    "runs",
    "café",
    "naïve",
    "Grüße",
    "東京",
    "the",
    "of",
    "and",
    "world,",
    "Hello!",
    "state",
    "art.",
    "über",
]
LANGUAGES = ["en", "en-US", "de", "fr", "xx", None]  # xx: no configuration
SPEAKERS = ["Ann", "Bo", "Zoë"]


def transcript(rng: random.Random, count: int, *, verbatim: bool) -> list[dict[str, Any]]:
    words, t = [], 0.0
    for i in range(count):
        t += rng.choice([0.2, 0.35, 0.5])
        text = rng.choice(VOCABULARY)
        words.append(
            {
                "word": f" {text}" if verbatim else text,
                "start": round(t, 3),
                "end": round(t + 0.18, 3),
                "speaker": SPEAKERS[(i // 17) % 3],
            }
        )
    return words


async def corpus(store: Store, seed: int = 7) -> list[uuid.UUID]:
    """Transcriptions of 1 to 700 words (1 to 3 segments) in every language, some appended
    to after creation (their later words in segments of their own)."""
    rng = random.Random(seed)
    made = []
    for n, language in enumerate(LANGUAGES * 2):
        job = await store.jobs.create(
            {"job_type": "audio" if n % 2 else "video", "media_url": f"s3://b/{n}"}
        )
        words = transcript(rng, rng.choice([1, 40, 300, 700]), verbatim=n % 3 == 0)
        split = len(words) // 2 if n % 4 == 1 else len(words)
        item = await store.transcriptions.create(
            {
                "job_id": job.id,
                "provider": "whisper",
                "text_content": "-",
                "language": language,
                "word_timestamps": words[:split],
            }
        )
        if split < len(words):
            await store.transcriptions.append_words(item.id, words[split:])
        made.append(item.id)
    return made


async def brute_force(
    db_url: str, query: str, ids: Iterable[uuid.UUID]
) -> dict[tuple[uuid.UUID, int], list[tuple[float, float]]]:
    """Every occurrence of ``query`` per (transcription, segment), found word by word: each
    stored word's lexemes and each term's, read from PostgreSQL with the transcription's
    configuration, matched here; segments as stored."""
    kinds, texts = parse_query(query)
    conn = await asyncpg.connect(db_url)
    found: dict[tuple[uuid.UUID, int], list[tuple[float, float]]] = {}
    try:
        for tid in ids:
            config = await conn.fetchval(
                "SELECT media_store_search_config(language)::text FROM transcriptions"
                " WHERE id = $1",
                tid,
            )

            async def lexemes(text: str, config: str = config) -> frozenset[str]:
                got = await conn.fetchval(
                    "SELECT tsvector_to_array(to_tsvector($1::regconfig, $2))", config, text
                )
                return frozenset(got)

            segments = await conn.fetch(
                "SELECT seq, media_store_unpack_words(words, word_lengths) AS words,"
                " media_store_unpack_float8(starts) AS starts,"
                " media_store_unpack_float8(ends) AS ends"
                " FROM transcription_word_segments WHERE transcription_id = $1 ORDER BY seq",
                tid,
            )
            for seg in segments:
                have = [await lexemes(w) for w in seg["words"]]
                occurrences: list[tuple[int, int]] = []
                every_term = True
                for kind, text in zip(kinds, texts, strict=True):
                    term: list[tuple[int, int]] = []
                    if kind == "word":
                        want = await lexemes(text)
                        term = [(i, i) for i, h in enumerate(have) if want and h & want]
                    elif kind == "prefix":
                        prefixes = {text.lower(), *(await lexemes(text))}
                        term = [
                            (i, i)
                            for i, h in enumerate(have)
                            if any(x.startswith(p) for x in h for p in prefixes)
                        ]
                    else:
                        parts = [await lexemes(w) for w in text.split()]
                        term = [
                            (i, i + len(parts) - 1)
                            for i in range(len(have) - len(parts) + 1)
                            if all(not p or have[i + j] & p for j, p in enumerate(parts))
                        ]
                    every_term = every_term and bool(term)
                    occurrences += term
                if not every_term or not occurrences:
                    continue
                runs: list[tuple[int, int]] = []
                for lo, hi in sorted(set(occurrences)):
                    if runs and lo <= runs[-1][1]:
                        runs[-1] = (runs[-1][0], max(hi, runs[-1][1]))
                    else:
                        runs.append((lo, hi))
                found[tid, seg["seq"]] = [
                    (seg["starts"][lo], max(seg["ends"][lo : hi + 1])) for lo, hi in runs
                ]
    finally:
        await conn.close()
    return found


def encoded_raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def encoded(value: Any) -> str:
    return encoded_raw(json.dumps(value))


async def every_hit(store: Store, query: str, **filters: Any) -> list[SearchHit]:
    """All pages of ``query``, three hits a page, through the cursor."""
    hits: list[SearchHit] = []
    after = None
    while True:
        page = await store.transcriptions.search(query, after=after, limit=3, **filters)
        hits += page.hits
        if page.next is None:
            return hits
        after = page.next


QUERIES = [
    "budget",  # stems: budgets too (where the language stems)
    "rates",
    "café",
    "naïve",
    "東京",
    "Grüße",
    "hello",
    "world",
    "run*",
    "infla*",
    '"interest rates"',
    '"state of the art"',
    'budget "interest rates"',
    "budget inflation",
    "über",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_hits_are_exactly_what_a_word_by_word_scan_finds(
    store: Store, db_url: str, query: str
) -> None:
    ids = await corpus(store)
    expected = await brute_force(db_url, query, ids)
    hits = await every_hit(store, query)

    # one hit a matching segment, each once, ranked best first
    assert [h.rank for h in hits] == sorted((h.rank for h in hits), reverse=True)
    got = {(h.transcription_id, h.start): h for h in hits}
    assert len(got) == len(hits)
    assert {(tid, occ[0][0]) for (tid, _), occ in expected.items()} == set(got)
    by_first = {(tid, occ[0][0]): occ for (tid, _), occ in expected.items()}
    for key, hit in got.items():
        occurrences = by_first[key]
        assert hit.matches == occurrences  # every occurrence's exact times, in order
        assert (hit.start, hit.end) == occurrences[0]
        assert hit.text and hit.text in hit.snippet


async def test_a_hit_names_its_job_speaker_and_words(store: Store) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/talk"})
    words = [
        {"word": " Rates", "start": 1.0, "end": 1.4, "speaker": "Ann"},
        {"word": " of", "start": 1.5, "end": 1.6, "speaker": "Ann"},
        {"word": " interest", "start": 11.25, "end": 11.75, "speaker": "Bo"},
        {"word": " rates,", "start": 11.8, "end": 12.5, "speaker": "Bo"},
        {"word": " rose.", "start": 12.6, "end": 13.0, "speaker": "Bo"},
    ]
    made = await store.transcriptions.create(
        {
            "job_id": job.id,
            "provider": "whisper",
            "text_content": "-",
            "language": "en",
            "word_timestamps": words,
        }
    )
    page = await store.transcriptions.search('"interest rate"')
    [hit] = page.hits
    assert (hit.transcription_id, hit.job_id) == (made.id, job.id)
    assert (hit.start, hit.end, hit.speaker, hit.text) == (11.25, 12.5, "Bo", "interest rates,")
    assert hit.snippet == "Rates of interest rates, rose."
    assert page.next is None
    # the speaker filter keeps occurrences whose first word is theirs
    ann = await store.transcriptions.search("rates", speaker="Ann")
    assert [(h.start, h.matches) for h in ann.hits] == [(1.0, [(1.0, 1.4)])]
    assert (await store.transcriptions.search("rose", speaker="Ann")).hits == []


async def test_filters_by_job_type_job_and_language(store: Store) -> None:
    ids = await corpus(store)
    everything = await every_hit(store, "budget")
    assert everything
    for job_type in ("audio", "video"):
        hits = await every_hit(store, "budget", job_type=job_type)
        for hit in hits:
            assert (await store.jobs.get_by_id(hit.job_id)).job_type == job_type  # type: ignore[union-attr]
        assert hits == [h for h in everything if h in hits]
    one = everything[0]
    assert all(h.job_id == one.job_id for h in await every_hit(store, "budget", job_id=one.job_id))
    english = await every_hit(store, "budget", language="en")
    languages = {t.id: t.language for t in [await store.transcriptions.get(i) for i in ids] if t}
    assert english and {languages[h.transcription_id] for h in english} == {"en", "en-US"}
    # one configuration searched (its match made by the index scan alone): the same hits as
    # the search of every configuration, those of English transcripts
    assert english == [h for h in everything if languages[h.transcription_id] in ("en", "en-US")]
    # 'budgets' is found by 'budget' in English (stemmed), not in a language without a
    # configuration ('simple': the word as written)
    assert any(h.text.strip() == "budgets" for h in english)
    simple = await every_hit(store, "budget", language="xx")
    assert simple and all(h.text.strip() != "budgets" for h in simple)


async def test_every_write_path_indexes_the_words_and_a_delete_takes_them_away(
    store: Store, db_url: str
) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    first = [{"word": "alpha", "start": 0.0, "end": 0.5}]
    made = await store.transcriptions.create(
        {"job_id": job.id, "provider": "p", "text_content": "-", "word_timestamps": first}
    )
    await store.transcriptions.append_words(made.id, [{"word": "omega", "start": 1, "end": 2}])

    async def streamed() -> Any:
        for i in range(600):
            yield {"word": "zeta" if i == 599 else "x", "start": float(i), "end": i + 0.5}

    other, _ = await store.transcriptions.create_streamed(
        {"job_id": job.id, "provider": "p", "text_content": "-"}, streamed()
    )
    [batch] = await store.transcriptions.create_many(
        [
            {
                "job_id": job.id,
                "provider": "p",
                "text_content": "-",
                "word_timestamps": [{"word": "kappa", "start": 3, "end": 4}],
            }
        ]
    )
    for word, tid, start in (
        ("kappa", batch.id, 3.0),
        ("alpha", made.id, 0.0),
        ("omega", made.id, 1.0),
        ("zeta", other.id, 599.0),
    ):
        [hit] = (await store.transcriptions.search(word)).hits
        assert (hit.transcription_id, hit.start) == (tid, start)

    conn = await asyncpg.connect(db_url)
    try:
        count = "SELECT count(*) FROM transcription_word_search"
        segments = "SELECT count(*) FROM transcription_word_segments"
        assert await conn.fetchval(count) == await conn.fetchval(segments) == 1 + 2 + 3
        await store.transcriptions.delete(made.id)
        assert await conn.fetchval(count) == await conn.fetchval(segments) == 1 + 3
    finally:
        await conn.close()
    assert (await store.transcriptions.search("alpha")).hits == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("",), "no words"),
        (("   ***  ",), "no words"),
        (('"open',), "unclosed"),
        (("a\x00b",), "NUL"),
        (("x" * 1001,), "at most"),
        ((42,), "string"),
    ],
)
async def test_a_bad_query_is_refused_before_any_sql(
    store: Store, args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        await store.transcriptions.search(*args)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"limit": 1001},
        {"job_type": "podcast"},
        {"job_id": "not-a-uuid"},
        {"language": ""},
        {"speaker": 3},
        {"speaker": "\ud800"},  # a lone surrogate: no text PostgreSQL could take
        {"language": "x" * 64},
        {"after": "bm90IGEgY3Vyc29y"},
        {"after": "%%%"},
        # well-formed JSON, wrong shapes and values: refused before any SQL, never another
        # exception (an id that is no string, NaN, out-of-range rank or seq, a bool, nesting)
        {"after": encoded([1, 123, str(uuid.uuid4()), 0])},
        {"after": encoded([1, [], str(uuid.uuid4()), 0])},
        {"after": encoded([float("nan"), str(uuid.uuid4()), str(uuid.uuid4()), 0])},
        {"after": encoded([1e300, str(uuid.uuid4()), str(uuid.uuid4()), 0])},
        {"after": encoded([True, str(uuid.uuid4()), str(uuid.uuid4()), 0])},
        {"after": encoded([1.0, str(uuid.uuid4()), str(uuid.uuid4()), 2**31])},
        {"after": encoded_raw("[" * 100_000)},
    ],
)
async def test_bad_arguments_are_refused(store: Store, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        await store.transcriptions.search("budget", **kwargs)


async def test_stop_words_alone_find_nothing(store: Store) -> None:
    await corpus(store)
    page = await store.transcriptions.search("the of and", language="en")
    assert page.hits == [] and page.next is None


async def test_search_runs_on_the_replica_view(store: Store) -> None:
    await corpus(store)
    primary = await every_hit(store, "inflation")
    page = await store.replica.transcriptions.search("inflation", limit=1000)
    assert primary and page.hits == primary


async def test_phrase_stop_words_at_its_ends_and_odd_terms(store: Store) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    words = [
        {"word": "Budget", "start": 0.0, "end": 0.5},
        {"word": "cuts", "start": 0.6, "end": 0.9},
        {"word": "and", "start": 1.0, "end": 1.1},
    ]
    made = await store.transcriptions.create(
        {
            "job_id": job.id,
            "provider": "p",
            "text_content": "-",
            "language": "en_GB",
            "word_timestamps": words,
        }
    )
    # "the budget": its leading stop word drops out, as phraseto_tsquery drops it; the hit is
    # the first word of the segment, placed on it
    [hit] = (await store.transcriptions.search('"the budget cuts and"')).hits
    assert (hit.start, hit.end, hit.text) == (0.0, 0.9, "Budget cuts")
    # a language given as a bare code finds its family, written with '_' too; no wildcards
    assert [
        h.transcription_id for h in (await store.transcriptions.search("cuts", language="en")).hits
    ] == [made.id]
    assert (await store.transcriptions.search("cuts", language="e%")).hits == []
    # a prefix with a backslash or a quote is a term, not an error
    assert (await store.transcriptions.search("a\\b* don't*")).hits == []


def test_the_lexicon_stays_bounded_and_keeps_what_it_was_told() -> None:
    lexicon = Lexicon()
    words = [f"w{i}" for i in range(LEXICON_WORDS + 10)]
    lexicon.add("english", words[:3], [["w"], [], ["a", "b"]])
    assert lexicon.of("english")["w2"] == frozenset({"a", "b"})
    assert lexicon.missing("english", ["w0", "w1", "zz"]) == ["zz"]
    assert lexicon.missing("german", ["w0"]) == ["w0"]  # per configuration
    lexicon.add("german", ["Rate", "Raten"], [["rat"], ["rat"]])
    german = lexicon.of("german")
    assert german["Rate"] is german["Raten"]  # equal sets are one object
    taken = lexicon.of("english")
    lexicon.add("english", words[3:], [[w] for w in words[3:]])
    assert lexicon.generation == 1
    known = lexicon.of("english")
    assert len(known) + len(lexicon.of("german")) <= LEXICON_WORDS
    assert known[words[-1]] == frozenset({words[-1]})  # the newest kept, the oldest forgotten
    assert lexicon.missing("english", ["w0"]) == ["w0"]
    assert taken["w0"] == frozenset({"w"})  # a mapping taken before stays whole


async def test_hits_are_the_same_with_a_cold_lexicon(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/x"})
    rng = random.Random(3)
    await store.transcriptions.create(
        {
            "job_id": job.id,
            "provider": "p",
            "text_content": "-",
            "language": "en",
            "word_timestamps": transcript(rng, 600, verbatim=True),
        }
    )
    queries = ["budget", '"interest rates"', "infla*", "café"]
    warm = [await store.transcriptions.search(q, job_id=job.id) for q in queries]
    monkeypatch.setattr(search_repository, "_LEXICON", Lexicon())
    cold = [await store.transcriptions.search(q, job_id=job.id) for q in queries]
    assert cold == warm
    assert all(page.hits for page in cold)
    # a lexicon that forgets its older half while a search reads the words' lexemes
    monkeypatch.setattr(search_module, "LEXICON_WORDS", 10)
    monkeypatch.setattr(search_repository, "_LEXICON", Lexicon())
    forgetting = [await store.transcriptions.search(q, job_id=job.id) for q in queries]
    assert forgetting == warm
    assert search_repository._LEXICON.generation > 0
