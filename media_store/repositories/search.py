"""Search across transcriptions (migrations/0016; sql/search.sql): a part of
:class:`~media_store.repositories.transcriptions.TranscriptionReads`, so also
``store.replica.transcriptions.search`` (search is the read that most wants a standby).
The query language, the cursor and how hits are placed: :mod:`media_store.words.search`."""

from __future__ import annotations

import logging
import uuid
from typing import Any, ClassVar

from media_store.db.queries import Query, query
from media_store.models import arguments
from media_store.models.inputs import checked_job_types
from media_store.models.schemas import JobType
from media_store.repositories.base import Repository
from media_store.words.search import (
    MAX_LIMIT,
    SearchHit,
    SearchPage,
    Terms,
    decode_cursor,
    encode_cursor,
    hit_of,
    marked_words,
    parse_query,
)
from media_store.words.segments import WORD_COLUMNS, segments_words
from media_store.words.timestamps import MAX_SPEAKER_LENGTH

log = logging.getLogger("media_store.search")

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
        *WORD_COLUMNS,
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


_MARK = query(
    "mark_search_hits",
    returns=[("i", int), ("marked", str)],
    params=(list[str], list[str], list[str]),
)
_LEXEMES = query(
    "search_lexemes",
    returns=[("i", int), ("lexemes", list[str])],
    params=(list[str], list[str]),
)

# The writers' statement (TranscriptionRepository's), beside the reads of the same file.
INDEX_WORDS = query(
    "index_word_segments",
    returns=None,
    params=(list[_UUID], list[_UUID], list[int], list[str]),
)


class TranscriptionSearch(Repository):
    """Full-text search over every transcription's words."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (_SEARCH, _MARK, _LEXEMES)

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
        decoded = [segments_words([row]) for row in rows]
        marks = (
            await self._fetch(
                _MARK,
                [row["config"] for row in rows],
                [row["query"] for row in rows],
                [" ".join(words.words) for words in decoded],
            )
            if rows
            else []
        )
        segments = []
        for row, words, mark in zip(rows, decoded, marks, strict=True):
            marked = marked_words(words.words, mark["marked"])
            if marked is None:
                log.warning(
                    "search: the matched words of segment %d of transcription %s could not"
                    " be placed (a word holds U+E000 or U+E001); the segment is left out",
                    row["seq"],
                    row["transcription_id"],
                )
                continue
            segments.append((row, words, marked))
        hits: list[SearchHit] = []
        if "phrase" in kinds:
            # ts_headline marks a phrase's words wherever they are: keep the runs that spell
            # it, from the lexemes of the terms and of the marked words.
            wanted = {
                (row["config"], text)
                for row, words, marked in segments
                for text in (*Terms.texts(kinds, texts), *(words.words[i] for i in marked))
            }
            lexemes = await self._lexemes(wanted)
            terms = {
                config: Terms(
                    kinds, texts, {t: lexemes[config, t] for t in Terms.texts(kinds, texts)}
                )
                for config in {row["config"] for row, _, _ in segments}
            }
        for row, words, marked in segments:
            if "phrase" in kinds:
                config = row["config"]
                runs = terms[config].occurrences(
                    marked, {i: lexemes[config, words.words[i]] for i in marked}
                )
            else:  # every marked word matches a word or prefix term
                runs = [(i, i) for i in marked]
            hit = hit_of(row["job_id"], row["transcription_id"], row["rank"], words, runs, speaker)
            if hit is not None:
                hits.append(hit)
        following = None
        if len(rows) == count:
            last = rows[-1]
            following = encode_cursor(
                (last["rank"], last["job_id"], last["transcription_id"], last["seq"])
            )
        return SearchPage(hits=hits, next=following)

    async def _lexemes(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], frozenset[str]]:
        """The lexemes of each (configuration, text), in one statement."""
        if not wanted:
            return {}
        pairs = sorted(wanted)
        rows = await self._fetch(_LEXEMES, [c for c, _ in pairs], [t for _, t in pairs])
        return {pairs[row["i"] - 1]: frozenset(row["lexemes"]) for row in rows}
