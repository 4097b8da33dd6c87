"""Search across transcriptions, the parts that need no database: the query language, the
keyset cursor, and where in a segment the matched words are.

The query language (what :meth:`~media_store.repositories.search.TranscriptionSearch.search`
takes), every term required:

- a word (``budget``): the word, stemmed as the transcription's language stems it
  (``budgets`` finds ``budget``; 'simple' configuration when the language has none);
- a phrase in double quotes (``"interest rates"``): its words in this order, next to each
  other (a stop word inside counts as one word of any kind);
- a prefix (``infla*``): words beginning with it, as typed or as stemmed.

How a hit is placed: the database finds the matching segments (up to 256 words each) through
the index and returns each with its words. Each distinct word's lexemes, as ``to_tsvector``
makes them in the transcription's configuration, are read from the database once per process
(:class:`Lexicon`, a bounded cache: a word's lexemes depend only on the configuration), and
:meth:`Terms.occurrences` keeps the words that match a word or prefix term and the runs that
spell a phrase: a hit's times are its words' own, never the segment's. A word is taken as one
token: a phrase whose words the parser splits further ("e-mail") may be found but not placed,
and such a segment's hit is left out.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

from media_store._compiled import compiled
from media_store.errors import ValidationError
from media_store.models.fields import Row, shown
from media_store.words.captions import join_words

# The compiled ConfigWords.missing, or None.
_unknown_words: Callable[[list[str], dict[str, Any]], list[str]] | None = compiled("unknown_words")
_marked_words: Callable[[list[str], set[str]], list[int] | None] | None = compiled("marked_words")

TermKind: TypeAlias = Literal["word", "phrase", "prefix"]

MAX_QUERY_CHARS: Final = 1_000
MAX_LIMIT: Final = 1_000
# Words of context on each side of a hit's words in its snippet (within its segment).
SNIPPET_WORDS: Final = 8

# A cursor is about 130 characters; a rank is a real (float4).
MAX_CURSOR_CHARS: Final = 256
MAX_RANK: Final = 3.4e38

# Words whose lexemes a process keeps, per text search configuration (:class:`Lexicon`).
LEXICON_WORDS: Final = 50_000


class SearchHit(Row):
    """One place a query matched: in ``transcription_id`` (of job ``job_id``), the words
    ``text`` spoken from ``start`` to ``end`` seconds (the first matched word's start, the
    last one's end) by ``speaker`` (the first matched word's; None when the words have no
    speaker), with ``snippet``, the words around them. ``rank``: ts_rank of the segment
    (of up to 256 words) the hit is in; ``matches``: every occurrence in that segment as
    (start, end), the hit's first. One hit a segment: a query found many times in a minute of
    speech gives one hit listing them."""

    transcription_id: uuid.UUID
    job_id: uuid.UUID
    start: float
    end: float
    speaker: str | None
    text: str
    snippet: str
    rank: float
    matches: list[tuple[float, float]]


class SearchPage(Row):
    """A page of hits, best first, and ``next``: the cursor of the page after it (give it as
    ``after=``), None on the last page."""

    hits: list[SearchHit]
    next: str | None


def parse_query(text: str) -> tuple[list[TermKind], list[str]]:
    """The terms of ``text`` (see the module doc) as (kinds, texts). Raises
    :class:`ValidationError` for a query that is not a string, is blank, longer than
    :data:`MAX_QUERY_CHARS`, holds NUL, or leaves a double quote open."""
    if not isinstance(text, str):
        raise ValidationError(f"query must be a string, got {shown(text)}")
    if len(text) > MAX_QUERY_CHARS:
        raise ValidationError(f"query must be at most {MAX_QUERY_CHARS} characters")
    if "\x00" in text:
        raise ValidationError("query must not contain NUL characters")
    if text.count('"') % 2:
        raise ValidationError(f"query has an unclosed double quote: {shown(text)}")
    kinds: list[TermKind] = []
    texts: list[str] = []
    for i, part in enumerate(text.split('"')):
        if i % 2:  # inside quotes
            if part.strip():
                kinds.append("phrase")
                texts.append(" ".join(part.split()))
            continue
        for word in part.split():
            if word.endswith("*") and word.rstrip("*"):
                kinds.append("prefix")
                texts.append(word.rstrip("*"))
            elif word.strip("*"):
                kinds.append("word")
                texts.append(word)
    if not kinds:
        raise ValidationError(f"query has no words: {shown(text)}")
    return kinds, texts


V = TypeVar("V")


class ConfigWords(Generic[V]):
    """What a process keeps of words, per text search configuration (the database's reading
    of each word, which depends only on the configuration's dictionaries: after changing
    those, restart the process). Bounded: past :meth:`limit` words in all, each configuration
    keeps its newer half, in a new mapping (one taken by :meth:`of` before stays whole: a
    caller reading it is not cut short), and :attr:`generation` counts up."""

    __slots__ = ("_known", "generation")

    def __init__(self) -> None:
        self._known: dict[str, dict[str, V]] = {}
        self.generation = 0

    def limit(self) -> int:
        raise NotImplementedError

    def missing(self, config: str, words: Iterable[str]) -> list[str]:
        """Those of ``words`` not known yet, each once, in the order first given (a list of
        a transcript's words: in one compiled pass where built, no set of them made)."""
        known = self._known.get(config, {})
        if _unknown_words is not None and type(words) is list and type(known) is dict:
            return _unknown_words(words, known)
        return [w for w in dict.fromkeys(words) if w not in known]

    def of(self, config: str) -> Mapping[str, V]:
        """The known words of ``config``."""
        return self._known.get(config, {})

    def views(
        self,
        before: Mapping[str, Mapping[str, V]],
        fetched: Mapping[str, Mapping[str, V]],
        generation: int,
    ) -> dict[str, Mapping[str, V]]:
        """What each configuration of ``before`` (the mappings :meth:`of` gave at
        ``generation``) knows after ``fetched`` was added: the current mappings, or where the
        cache forgot its older half meanwhile, what was known before and what was read."""
        if self.generation == generation:
            return {config: self.of(config) for config in before}
        return {config: {**before[config], **fetched.get(config, {})} for config in before}

    def _store(self, config: str, items: Iterable[tuple[str, V]]) -> None:
        self._known.setdefault(config, {}).update(items)
        if sum(map(len, self._known.values())) > self.limit():
            self._known = {
                name: dict(list(words.items())[len(words) // 2 :])
                for name, words in self._known.items()
            }
            self._forgot()
            self.generation += 1

    def _forgot(self) -> None:
        """Called when the older halves are gone."""


class Lexicon(ConfigWords[frozenset[str]]):
    """The lexemes of words, per text search configuration, as the database makes them
    (``to_tsvector(config, word)``): what places a hit's words. Bounded by
    :data:`LEXICON_WORDS` (see :class:`ConfigWords`); equal lexeme sets are one object."""

    __slots__ = ("_sets",)

    def __init__(self) -> None:
        super().__init__()
        self._sets: dict[frozenset[str], frozenset[str]] = {}

    def limit(self) -> int:
        return LEXICON_WORDS

    def add(self, config: str, words: Iterable[str], lexemes: Iterable[Iterable[str]]) -> None:
        sets = self._sets
        interned = []
        for word, found in zip(words, lexemes, strict=True):
            value = frozenset(found)
            interned.append((word, sets.setdefault(value, value)))
        self._store(config, interned)

    def _forgot(self) -> None:
        self._sets = {}


class Terms:
    """A query's terms with their lexemes in one configuration (from the database:
    ``to_tsvector`` of each word, so stemmed as the documents are)."""

    def __init__(
        self,
        kinds: list[TermKind],
        texts: list[str],
        lexemes: Mapping[str, frozenset[str]],
    ) -> None:
        self.words = [lexemes[t] for k, t in zip(kinds, texts, strict=True) if k == "word"]
        self.prefixes = [
            (t.lower(), *lexemes[t]) for k, t in zip(kinds, texts, strict=True) if k == "prefix"
        ]
        # A phrase's stop words at either end drop out, as phraseto_tsquery drops them; those
        # inside stand for one word of any kind.
        self.phrases = [
            _trimmed([lexemes[word] for word in t.split()])
            for k, t in zip(kinds, texts, strict=True)
            if k == "phrase"
        ]
        self._lexemes = frozenset().union(
            *self.words, *(need for phrase in self.phrases for need in phrase)
        )
        self._prefixes = tuple({p for prefixes in self.prefixes for p in prefixes})

    def matching(self, words: Iterable[str], lexemes: Mapping[str, frozenset[str]]) -> set[str]:
        """Those of ``words`` (distinct) that hold a lexeme of a term (a phrase's words
        included), given each word's ``lexemes``: the words a segment's hit is placed on, each
        such word or run of words then checked by :meth:`occurrences`."""
        wanted, prefixes = self._lexemes, self._prefixes
        found = {word for word in words if not lexemes[word].isdisjoint(wanted)}
        if prefixes:
            found.update(
                word
                for word in words
                if any(lexeme.startswith(prefixes) for lexeme in lexemes[word])
            )
        return found

    @staticmethod
    def texts(kinds: list[TermKind], texts: list[str]) -> list[str]:
        """The texts whose lexemes :class:`Terms` needs: each word and prefix, and each
        word of each phrase."""
        out: list[str] = []
        for kind, text in zip(kinds, texts, strict=True):
            out.extend(text.split() if kind == "phrase" else [text])
        return out

    def occurrences(
        self, marked: list[int], lexemes: Mapping[int, frozenset[str]]
    ) -> list[tuple[int, int]]:
        """The occurrences (first, last word index) among the ``marked`` words of a segment,
        given each marked word's lexemes: a marked word matching a word or prefix term, and
        each run of words matching a phrase (its stop words match any word). Overlapping
        occurrences are one."""
        found: list[tuple[int, int]] = []
        marks = set(marked)
        for i in marked:
            have = lexemes[i]
            if any(have & term for term in self.words) or any(
                lexeme.startswith(prefix)
                for prefixes in self.prefixes
                for prefix in prefixes
                for lexeme in have
            ):
                found.append((i, i))
            for phrase in self.phrases:
                for k, wanted in enumerate(phrase):
                    if not wanted or not have & wanted:
                        continue
                    first = i - k
                    if first >= 0 and all(
                        not need or (first + j in marks and lexemes[first + j] & need)
                        for j, need in enumerate(phrase)
                    ):
                        found.append((first, first + len(phrase) - 1))
        runs: list[tuple[int, int]] = []
        for lo, hi in sorted(set(found)):
            if runs and lo <= runs[-1][1]:
                runs[-1] = (runs[-1][0], max(hi, runs[-1][1]))
            else:
                runs.append((lo, hi))
        return runs


def _trimmed(phrase: list[frozenset[str]]) -> list[frozenset[str]]:
    """``phrase`` without the words that have no lexeme at its ends."""
    lo, hi = 0, len(phrase)
    while lo < hi and not phrase[lo]:
        lo += 1
    while hi > lo and not phrase[hi - 1]:
        hi -= 1
    return phrase[lo:hi]


def marked_words(words: list[str], matched: set[str]) -> list[int]:
    """The indexes of those of a segment's ``words`` that are in ``matched``."""
    if _marked_words is not None:
        marked = _marked_words(words, matched)
        if marked is not None:
            return marked
    return [i for i, word in enumerate(words) if word in matched]


def hit_of(
    job_id: uuid.UUID,
    transcription_id: uuid.UUID,
    rank: float,
    words: list[str],
    starts: list[float],
    ends: list[float],
    speakers: list[str | None] | None,
    runs: list[tuple[int, int]],
    speaker: str | None,
) -> SearchHit | None:
    """The hit of one segment's words (its columns) and their matched ``runs``; with
    ``speaker``, only the runs whose first word is that speaker's (None when none is)."""
    if speaker is not None:
        spoken = speakers or []
        runs = [r for r in runs if r[0] < len(spoken) and spoken[r[0]] == speaker]
    if not runs:
        return None
    first, last = runs[0]
    lo = max(0, first - SNIPPET_WORDS)
    hi = min(len(words), last + 1 + SNIPPET_WORDS)
    return SearchHit(
        transcription_id=transcription_id,
        job_id=job_id,
        start=starts[first],
        end=max(ends[first : last + 1]),
        speaker=None if speakers is None else speakers[first],
        text=join_words(words[first : last + 1]),
        snippet=join_words(words[lo:hi]),
        rank=rank,
        matches=[(starts[a], max(ends[a : b + 1])) for a, b in runs],
    )


# --- the cursor -------------------------------------------------------------------------------

Cursor: TypeAlias = tuple[float, uuid.UUID, uuid.UUID, int]


def encode_cursor(cursor: Cursor) -> str:
    """An opaque, URL-safe cursor for the position after a page's last segment."""
    rank, job_id, transcription_id, seq = cursor
    raw = json.dumps([rank, str(job_id), str(transcription_id), seq], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The position :func:`encode_cursor` wrote. Raises :class:`ValidationError` for
    anything else (any string, however made)."""
    refused = ValidationError(f"after is not a search cursor: {shown(text)}")
    if not isinstance(text, str) or len(text) > MAX_CURSOR_CHARS:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        rank, job_id, transcription_id, seq = json.loads(raw)
        if not (
            type(rank) in (float, int)
            and math.isfinite(rank)
            and abs(rank) <= MAX_RANK
            and type(seq) is int
            and 0 <= seq < 2**31
            and type(job_id) is str
            and type(transcription_id) is str
        ):
            raise ValueError
        return float(rank), uuid.UUID(job_id), uuid.UUID(transcription_id), seq
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise refused from None
