"""Search documents made by the writer (migrations/0016's ``transcription_word_search``):
each segment's ``tsvector`` put together from its words' own lexemes, as
``to_tsvector(config, words joined by spaces)`` would make it, without the server parsing
the text again.

Why: ``to_tsvector`` spends ~650 ns a word on the server, ~530 of them in the default parser,
more than the writing of the word itself (docs/words.md, "What the search index costs"). A
transcript's words repeat (a 10,000-word transcript holds a few thousand distinct ones), so
each distinct word is parsed once a process instead (:class:`Analyses`, read with
``search_word_positions``), and a segment's document is its words' lexemes at their
positions, sent as a tsvector literal that the server only reads.

Why it is the same document: the default parser never makes a token across a space, except an
HTML/XML tag (``<a href="x y">``): parsing the words joined by spaces gives each word's tokens
in turn, every token (a stop word too) taking the next position. So a word's lexemes at their
positions within the word (``to_tsvector(config, word || ' 0')``: the sentinel ``0``, which
every configuration that maps ``uint`` to ``simple`` keeps, holds the position after the
word's last token) shifted by the positions the words before it took give the segment's
document. A word holding ``<`` (a tag may begin there) leaves its segment to the server, as
do a segment past the position limit (16,383) and a lexeme past 255 positions (where
``to_tsvector`` drops positions); so does a configuration that does not keep the sentinel.
tests/words/test_documents.py compares both ways on generated and adversarial words.

A word's lexemes depend only on its configuration's dictionaries: after changing those (which
also calls for the documents to be made again), restart the writers. The same holds for the
configuration of each language, which a process also keeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

from media_store._compiled import compiled
from media_store.words.search import ConfigWords

# The compiled segment_documents, or None.
_compiled: Callable[[list[str], int, Mapping[str, Any]], list[str | None] | None] | None = compiled(
    "segment_documents"
)

# Words whose lexemes a process keeps, in all configurations (see Analyses).
ANALYSED_WORDS: Final = 100_000
# The words, and their characters, parsed in one call (see analysis_chunks).
CHUNK_WORDS: Final = 200
CHUNK_CHARS: Final = 4_000
# PostgreSQL's limits (tsearch/ts_type.h): positions above MAXENTRYPOS - 1 are clamped, a
# lexeme keeps at most MAXNUMPOS - 1 of them in to_tsvector.
MAX_POSITION: Final = (1 << 14) - 1
MAX_POSITIONS: Final = 255
# What a word must not hold for its document to be made here (a tag may span words).
UNSAFE: Final = "<"


class Analysis(NamedTuple):
    """A word's lexemes, each as a tsvector literal begins it (``'lexeme':``) with its position
    within the word (0 for its first token); ``span``: the positions the word takes;
    ``single``, for a word with one lexeme taking one position or with none taking at most
    one (most words: the fast path of :func:`segment_documents`): that lexeme, or ``""`` (a
    stop word, punctuation); None for the others; ``leads``: whether the
    parser reads the word the same at the start of a text (not so for a word beginning with
    '~'): a segment it begins is the server's otherwise."""

    entries: tuple[tuple[str, int], ...]
    span: int
    single: str | None
    leads: bool


def quoted(lexeme: str) -> str:
    """``lexeme`` as a tsvector literal quotes it."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def analysis_chunks(
    words: Iterable[str], *, alone: bool = False
) -> tuple[list[list[str]], list[str]]:
    """``words`` (distinct) cut into the chunks ``search_word_positions`` parses in one call
    each (the parser's cost a call is paid once a chunk, not once a word), and the chunks'
    texts: the words between sentinels (``0 w1 0 w2 0``), each word then read as inside a
    text. A chunk holds at most :data:`CHUNK_WORDS` words and :data:`CHUNK_CHARS` characters,
    so that no position reaches the limit and the sentinel keeps all its positions; a word
    that could itself give the lexeme ``0`` is a chunk alone. A word holding ``<`` is in
    none (the server parses its segments). ``alone``: each word a chunk (the words of a chunk
    that failed as a whole, see :func:`analyses_of`, tried again)."""
    chunks: list[list[str]] = []
    chunk: list[str] = []
    size = 0
    for word in words:
        if UNSAFE in word:
            continue
        if alone or "0" in word:
            chunks.append([word])
            continue
        if chunk and (len(chunk) == CHUNK_WORDS or size + len(word) > CHUNK_CHARS):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(word)
        size += len(word)
    if chunk:
        chunks.append(chunk)
    return chunks, ["0 " + " 0 ".join(chunk) + " 0" for chunk in chunks]


def analyses_of(
    chunks: Sequence[Sequence[str]], rows: Iterable[tuple[int, str, list[int]]]
) -> list[list[Analysis | None]]:
    """The analysis of each word of each of ``chunks`` (in their order) from ``rows`` as
    ``search_word_positions`` returns them for the chunks' texts (the chunk's index from 1, a
    lexeme, its positions).
    None: a word whose segments the server must parse (the chunk's positions were cut at a
    limit, or the sentinels are not where they belong: a chunk of several words then fails as
    a whole, and its words are worth trying alone)."""
    found: dict[int, list[tuple[str, list[int]]]] = {}
    for i, lexeme, positions in rows:
        found.setdefault(i, []).append((lexeme, positions))
    out: list[list[Analysis | None]] = []
    for i, chunk in enumerate(chunks, 1):
        lexemes = found.get(i, [])
        top = max((max(at) for _, at in lexemes), default=0)
        if len(chunk) == 1:
            bounds = [1, top]  # a word alone: its own '0's are between the sentinels
        else:
            bounds = next((sorted(at) for lexeme, at in lexemes if lexeme == "0"), [])
        if (
            len(bounds) != len(chunk) + 1
            or bounds[0] != 1
            or bounds[-1] != top
            or top >= MAX_POSITION
            or any(len(at) >= MAX_POSITIONS for _, at in lexemes)
        ):
            out.append([None] * len(chunk))
            continue
        # The word of each position: word k from its sentinel (bounds[k]) to the next.
        owner: list[int] = [0]
        for k in range(len(chunk)):
            owner += [k] * (bounds[k + 1] - bounds[k])
        owner.append(len(chunk))  # the last sentinel
        tokens: list[list[tuple[int, str]]] = [[] for _ in chunk]
        for lexeme, positions in lexemes:
            prefix = quoted(lexeme) + ":"
            for at in positions:
                k = owner[at]
                if bounds[k] != at:  # not a sentinel's own position
                    tokens[k].append((at - bounds[k] - 1, prefix))
        made: list[Analysis | None] = []
        for k, word in enumerate(chunk):
            mine = tokens[k]
            span = bounds[k + 1] - bounds[k] - 1
            if span <= 1 and not mine:
                made.append(Analysis((), span, "", _leads(word)))
            elif len(mine) == 1 and span == 1 and mine[0][0] == 0:
                prefix = mine[0][1]
                made.append(Analysis(((prefix, 0),), 1, prefix, _leads(word)))
            else:
                mine.sort()
                entries = tuple((prefix, at) for at, prefix in mine)
                made.append(Analysis(entries, span, None, _leads(word)))
        out.append(made)
    return out


def _leads(word: str) -> bool:
    """Whether the parser surely reads ``word`` at the start of a text as inside one: it
    begins (after spaces) with a letter or digit. Not so for some others (``~the``: 'the'
    inside a text, '~the' at its start); a segment such a word begins is the server's."""
    return word.lstrip()[:1].isalnum()


class Analyses(ConfigWords[Analysis | None]):
    """The analyses of words, per text search configuration, bounded by
    :data:`ANALYSED_WORDS` (see :class:`~media_store.words.search.ConfigWords`)."""

    __slots__ = ()

    def limit(self) -> int:
        return ANALYSED_WORDS

    def add(self, config: str, analysed: Mapping[str, Analysis | None]) -> None:
        self._store(config, analysed.items())


def segment_documents(
    words: Sequence[str], segment_words: int, analyses: Mapping[str, Analysis | None]
) -> list[str | None]:
    """The tsvector literal of each segment of ``words`` (cut every ``segment_words``, at most
    256: see _crowded), made
    from the words' ``analyses``; None for a segment whose document the server must make.

    Here a lexeme is written once for each of its positions (``'a':1 'b':2 'a':3``): the
    server merges them as it reads the literal, which costs it less than grouping them costs
    in Python. The compiled path (media_store/_speedups.c), where built, writes the same
    document grouped and in the server's order (``'a':1,3 'b':2``), which halves the server's
    reading of it (measured: 1.1 ms to 0.5 ms for the 39 documents of 10,000 words)."""
    if not 0 < segment_words <= MAX_POSITIONS + 1:
        raise ValueError(f"segment_words must be 1 to {MAX_POSITIONS + 1}, got {segment_words}")
    if _compiled is not None and type(words) is list:
        compiled = _compiled(words, segment_words, analyses)
        if compiled is not None:
            return compiled
    documents: list[str | None] = []
    for lo in range(0, len(words), segment_words):
        segment = words[lo : lo + segment_words]
        made, multiple = _document(segment, analyses)
        if made is not None and len(made) > MAX_POSITIONS and _crowded(segment, analyses, multiple):
            made = None
        documents.append(None if made is None else " ".join(made))
    return documents


def _document(
    segment: Sequence[str], analyses: Mapping[str, Analysis | None]
) -> tuple[list[str] | None, bool]:
    """The entries of ``segment``'s document (None if a word of it must be parsed by the
    server or its positions pass the limit), and whether a word has several lexemes."""
    multiple = False
    out: list[str] = []
    add = out.append
    at = 1
    lead = analyses[segment[0]]
    if lead is None or not lead.leads:
        return None, multiple
    try:
        for word in segment:
            analysis = analyses[word]
            if analysis is None:
                return None, multiple
            single = analysis.single
            if single is not None:
                if single:
                    add(single + _POSITIONS[at])
                at += analysis.span
            else:
                multiple = True
                for lexeme, offset in analysis.entries:
                    add(lexeme + _POSITIONS[at + offset])
                at += analysis.span
    except IndexError:  # a position past MAX_POSITION
        return None, multiple
    return out, multiple


def _crowded(
    segment: Sequence[str], analyses: Mapping[str, Analysis | None], multiple: bool
) -> bool:
    """Whether a lexeme of ``segment`` takes more positions than to_tsvector keeps (255);
    ``multiple``: whether a word of it has several lexemes."""
    found: Iterator[Analysis] = map(analyses.__getitem__, segment)  # type: ignore[arg-type]
    if not multiple:
        # One lexeme a word: 256 positions of one lexeme need every word to have that one,
        # which the first word that differs rules out (mostly the second).
        first = next(found).single
        return all(a.single == first for a in found)
    counts = Counter(lexeme for a in found for lexeme, _ in a.entries)
    return max(counts.values()) > MAX_POSITIONS


# Each position as text, up to MAX_POSITION: one past it raises IndexError (that segment is
# the server's).
_POSITIONS: Final = tuple(str(i) for i in range(MAX_POSITION + 1))
