"""Search across transcriptions (migrations/0016; sql/search.sql): a part of
:class:`~media_store.repositories.transcriptions.TranscriptionReads`, so also
``store.replica.transcriptions.search`` (search is the read that most wants a standby).
The query language, the cursor and how hits are placed: :mod:`media_store.words.search`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from media_store.db.queries import Query, query
from media_store.models import arguments
from media_store.models.inputs import checked_job_types
from media_store.models.schemas import JobType
from media_store.repositories.base import Repository
from media_store.words.search import (
    MAX_LIMIT,
    Lexicon,
    SearchHit,
    SearchPage,
    Terms,
    decode_cursor,
    encode_cursor,
    hit_of,
    marked_words,
    parse_query,
)
from media_store.words.segments import (
    WORD_COLUMNS,
    split_words,
    unpack_floats,
    unpack_speakers,
)
from media_store.words.timestamps import MAX_SPEAKER_LENGTH

# The lexemes of the words hits are placed with, read once per process (see Lexicon).
_LEXICON = Lexicon()

# A language as given: a code ('pt-BR') or a text search configuration's name ('portuguese').
MAX_LANGUAGE_LENGTH = 63

_UUID = uuid.UUID
_SEARCH = query(
    "search_word_segments",
    returns=[
        ("job_id", _UUID),
        ("transcription_id", _UUID),
        ("seq", int),
        ("rank", float),
        ("config", str),
        ("query", str),
        # A segment's columns but its confidences, which a hit does not show.
        *(column for column in WORD_COLUMNS if column[0] != "confidences"),
    ],
    params=(
        list[str],
        list[str],
        str | None,
        _UUID | None,
        str | None,
        str | None,
        float | None,
        _UUID | None,
        _UUID | None,
        int | None,
        int,
    ),
)


_LEXEMES = query(
    "search_lexemes",
    returns=[("i", int), ("lexemes", list[str])],
    params=(list[str], list[str]),
)

# The writers' statements (TranscriptionRepository's), beside the reads of the same file.
CONFIGS = query(
    "search_configs",
    returns=[("i", int), ("config", str), ("analysable", bool)],
    params=(list[str | None],),
)
POSITIONS = query(
    "search_word_positions",
    returns=[("i", int), ("lexeme", str), ("positions", list[int])],
    params=(list[str], list[str]),
)


class TranscriptionSearch(Repository):
    """Full-text search over every transcription's words."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (_SEARCH, _LEXEMES)

    async def search(
        self,
        query: str,
        *,
        job_type: JobType | str | None = None,
        language: str | None = None,
        job_id: uuid.UUID | None = None,
        speaker: str | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> SearchPage:
        """The places ``query`` was said, best first (:class:`SearchHit`: the transcription
        and job, the matched words' exact start and end, the speaker, a snippet), a page of
        at most ``limit``, and the cursor of the next page (``after=page.next``).

        ``query``: words, ``"phrases"`` and ``prefix*`` terms, all required (see
        :mod:`media_store.words.search`), matched with the stemming of each transcription's
        language where PostgreSQL has it. Filters: ``job_type``, ``language`` (a code: ``en``
        also finds ``en-US``), ``job_id``, ``speaker`` (a hit's first matched word is theirs).
        One hit per segment of up to 256 words, ranked by ts_rank; a phrase split across two
        segments is not found. Raises :class:`ValidationError` before any SQL on bad input.
        """
        kinds, texts = parse_query(query)
        types = checked_job_types(None if job_type is None else [job_type])
        wanted_job = None if job_id is None else arguments.identifier("job_id", job_id)
        count = arguments.bounded_int("limit", limit, 1, MAX_LIMIT)
        if language is not None:
            language = arguments.name("language", language, MAX_LANGUAGE_LENGTH)
        if speaker is not None:
            speaker = arguments.name("speaker", speaker, MAX_SPEAKER_LENGTH)
        cursor: tuple[Any, ...] = (None,) * 4 if after is None else decode_cursor(after)
        rows = await self._fetch(
            _SEARCH,
            kinds,
            texts,
            None if types is None else types[0],
            wanted_job,
            language,
            speaker,
            *cursor,
            count,
        )
        # Each segment's words only (no times yet: most of a segment's words are no hit's).
        segment_words = [split_words(row["words"], row["word_lengths"]) for row in rows]
        term_texts = Terms.texts(kinds, texts)
        seen: dict[str, list[str]] = {}
        for row, words in zip(rows, segment_words, strict=True):
            seen.setdefault(row["config"], list(term_texts)).extend(words)
        views = await self._learn(seen)
        hits: list[SearchHit] = []
        matching: dict[str, set[str]] = {}
        terms: dict[str, Terms] = {}
        for config, words_seen in seen.items():
            lexemes = views[config]
            terms[config] = Terms(kinds, texts, {t: lexemes[t] for t in term_texts})
            matching[config] = terms[config].matching(set(words_seen), lexemes)
        for row, words in zip(rows, segment_words, strict=True):
            config = row["config"]
            lexemes, matched = views[config], matching[config]
            marked = marked_words(words, matched)
            runs = terms[config].occurrences(marked, {i: lexemes[words[i]] for i in marked})
            if not runs:
                continue
            speakers = row["speakers"]
            hit = hit_of(
                row["job_id"],
                row["transcription_id"],
                row["rank"],
                words,
                unpack_floats(row["starts"]),
                unpack_floats(row["ends"]),
                None if speakers is None else unpack_speakers(speakers),
                runs,
                speaker,
            )
            if hit is not None:
                hits.append(hit)
        following = None
        if len(rows) == count:
            last = rows[-1]
            following = encode_cursor(
                (last["rank"], last["job_id"], last["transcription_id"], last["seq"])
            )
        return SearchPage(hits=hits, next=following)

    async def _learn(self, seen: dict[str, list[str]]) -> dict[str, Mapping[str, frozenset[str]]]:
        """The lexemes of the words ``seen`` in each configuration (repeats and all): those
        :data:`_LEXICON` does not know yet read in one statement and added to it."""
        before = {config: _LEXICON.of(config) for config in seen}
        generation = _LEXICON.generation
        configs: list[str] = []
        missing: list[str] = []
        for config, words in seen.items():
            unknown = _LEXICON.missing(config, words)
            configs += [config] * len(unknown)
            missing += unknown
        if not missing:
            return before
        rows = await self._fetch(_LEXEMES, configs, missing)  # in input order
        fetched: dict[str, dict[str, frozenset[str]]] = {}
        for config, word, row in zip(configs, missing, rows, strict=True):
            fetched.setdefault(config, {})[word] = frozenset(row["lexemes"])
        for config, found in fetched.items():
            _LEXICON.add(config, found.keys(), found.values())
        return _LEXICON.views(before, fetched, generation)
