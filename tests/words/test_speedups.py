"""The compiled reader of word dicts (media_store/_speedups.c) against its Python original.

``validate_words`` takes the compiled path for a list of dicts; the Python path is the
reference. Every input here goes both ways, and both must give the same columns (values and
types), the same packed bytes (what the segments store), or the same error naming the same
word: on generated words (valid and broken in every way the rules name) and on the cases
each rule has at its edge.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_store.errors import ValidationError
from media_store.words import documents as documents_module
from media_store.words import search as search_module
from media_store.words import timestamps
from media_store.words.documents import Analyses as AnalysesCache
from media_store.words.documents import Analysis, quoted, segment_documents
from media_store.words.segments import (
    pack_confidences,
    pack_floats,
    pack_lengths,
    segment_records,
)
from media_store.words.timestamps import Words, validate_words

pytestmark = pytest.mark.skipif(
    timestamps._columns is None, reason="media_store._speedups is not compiled in this install"
)


@contextmanager
def python_only() -> Iterator[None]:
    compiled = timestamps._columns, timestamps._check_columns
    timestamps._columns = timestamps._check_columns = None
    try:
        yield
    finally:
        timestamps._columns, timestamps._check_columns = compiled


def outcome(items: Any, **options: Any) -> tuple[Any, ...]:
    """What ``validate_words`` makes of ``items``: the columns with each value's type and the
    segments' rows (the packed bytes, the speakers coded), or the error's message and
    location."""
    try:
        words = validate_words(items, **options)
    except ValidationError as exc:
        return ("refused", str(exc), exc.errors)
    records = list(segment_records(JOB, TRANSCRIPTION, 0, words))
    if words.packed is not None:  # the compiled reader packed them: the same bytes
        assert words.packed[:4] == (
            pack_lengths(words.words),
            pack_floats(words.starts),
            pack_floats(words.ends),
            pack_confidences(words.confidences),
        )
        plain = Words.trusted(
            words.words, words.starts, words.ends, words.confidences, words.speakers
        )
        assert records == list(segment_records(JOB, TRANSCRIPTION, 0, plain))
    columns = (words.words, words.starts, words.ends, words.confidences, words.speakers)
    return (
        "stored",
        columns,
        [None if c is None else list(map(type, c)) for c in columns],
        records,
    )


JOB, TRANSCRIPTION = uuid.uuid4(), uuid.uuid4()


def both_ways(items: Any, **options: Any) -> tuple[Any, ...]:
    compiled = outcome(items, **options)
    with python_only():
        python = outcome(items, **options)
    assert compiled == python
    return compiled


def word(i: int, **changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"word": f" w{i}", "start": i * 0.5, "end": i * 0.5 + 0.25}
    value.update(confidence=0.9, speaker="A")
    value.update(changes)
    return {key: v for key, v in value.items() if v is not MISSING}


MISSING: Any = object()


def with_word(index: int, **changes: Any) -> list[dict[str, Any]]:
    words = [word(i) for i in range(5)]
    words[index] = word(index, **changes)
    return words


EDGES = {
    "valid": [word(i) for i in range(5)],
    "ints become floats": with_word(2, start=1, end=2, confidence=1),
    "zero": with_word(0, start=0, end=0.0, confidence=0),
    "negative zero": with_word(0, start=-0.0),
    "negative start": with_word(0, start=-0.01),
    "ends before it starts": with_word(3, end=1.0),
    "out of order": with_word(3, start=0.2, end=0.3),
    "same start twice": with_word(3, start=1.0, end=1.1),
    "NaN start": with_word(1, start=math.nan),
    "infinite end": with_word(1, end=math.inf),
    "int too large for a float": with_word(4, end=2**1100),
    "large int": with_word(4, end=10**300),
    "bool start": with_word(0, start=False),
    "bool confidence": with_word(1, confidence=True),
    "string start": with_word(1, start="1.0"),
    "numpy float": with_word(2, start=np.float64(1.0), end=np.float32(1.5)),
    "numpy int": with_word(2, start=np.int64(1)),
    "Decimal": with_word(2, start=Decimal("1.0")),
    "Fraction": with_word(2, confidence=Fraction(1, 3)),
    "confidence above 1": with_word(2, confidence=1.0000001),
    "confidence below 0": with_word(2, confidence=-0.0001),
    "NaN confidence": with_word(2, confidence=math.nan),
    "no confidence": with_word(2, confidence=MISSING),
    "confidence None": with_word(2, confidence=None),
    "probability, no confidence": with_word(2, confidence=MISSING, probability=0.5),
    "score with confidence None": with_word(2, confidence=None, score=0.5),
    "conf and confidence": with_word(2, conf=0.1),
    "text, no word": with_word(1, word=MISSING, text="x"),
    "no word": with_word(1, word=MISSING),
    "no start": with_word(1, start=MISSING),
    "no end": with_word(4, end=MISSING),
    "word not a string": with_word(1, word=7),
    "word a str subclass": with_word(1, word=type("S", (str,), {})("x")),
    "NUL in a word": with_word(1, word="a\x00b"),
    "NUL in a wide word": with_word(1, word="日\x00本"),
    "lone surrogate": with_word(1, word="a\ud800"),
    "lone surrogate, 4-byte kind": with_word(1, word="😀\udfff"),
    "emoji": with_word(1, word=" 😀🎉,"),
    "no speaker": with_word(1, speaker=MISSING),
    "speaker None everywhere": [word(i, speaker=None) for i in range(5)],
    "no speakers at all": [word(i, speaker=MISSING) for i in range(5)],
    "speaker of 50": with_word(1, speaker="é" * 50),
    "speaker of 51": with_word(1, speaker="é" * 51),
    "speaker not a string": with_word(1, speaker=3),
    "speaker with NUL": with_word(1, speaker="A\x00"),
    "speaker with a surrogate": with_word(1, speaker="\udc00"),
    "an OrderedDict": [word(0), OrderedDict(word(1)), word(2)],
    "not a mapping": [word(0), ("x", 1.0, 2.0)],
    "empty": [],
    "extra keys": with_word(1, id=1, tokens=[1, 2], probability=0.3),
    # Speakers are coded in sorted order (code points), None last, a byte a word.
    "speakers sorted": [word(i, speaker=s) for i, s in enumerate(["z", "é", None, "Z", "a"])],
    "256 speakers": [word(i, speaker=f"S{i}") for i in range(256)],
    "255 speakers and None": [word(i, speaker=None if i == 7 else f"S{i}") for i in range(256)],
    "257 speakers": [word(i, speaker=f"S{i}") for i in range(600)],
    "segments without speakers": [word(i, speaker="A" if i > 300 else None) for i in range(600)],
}


@pytest.mark.parametrize("items", list(EDGES.values()), ids=list(EDGES))
def test_every_rule_at_its_edge_decides_the_same(items: list[Any]) -> None:
    both_ways(items)


def test_the_words_around_decide_the_same() -> None:
    """``after`` (the word before a chunk) and ``max_end`` (the media's end), and ``offset``
    in the messages."""
    items = [word(i) for i in range(5)]
    for options in (
        {"after": 0.0},
        {"after": 0.1, "offset": 7},
        {"max_end": 2.25},
        {"max_end": 2.24, "offset": 3},
    ):
        both_ways(items, **options)
    assert both_ways(items, after=0.1)[0] == "refused"
    assert both_ways(items, max_end=2.24)[0] == "refused"


def test_a_refused_word_is_named_as_the_python_path_names_it() -> None:
    _, message, errors = both_ways(with_word(3, start=0.2, end=0.3))
    assert errors == [{"loc": (3, "start"), "msg": "starts (0.2) before the previous word (1.0)"}]
    assert "word 3 (start)" in message


def test_floats_given_are_kept_not_copied() -> None:
    items = [word(i) for i in range(3)]
    words = validate_words(items)
    assert words.packed is not None
    assert all(a is b["start"] for a, b in zip(words.starts, items, strict=True))
    assert all(a is b["word"] for a, b in zip(words.words, items, strict=True))


def test_a_words_given_back_is_checked_again_in_columns() -> None:
    words = Words([word(i) for i in range(3)])
    again = validate_words(words)
    assert again == words
    assert again.packed is not None
    assert again.words is not words.words  # new lists: the caller's stay theirs


def as_columns(items: list[Any]) -> Words:
    """``items`` as the columns an importer's decoder makes (no check: Words.trusted)."""
    values = [item if isinstance(item, dict) else {} for item in items]

    def pick(key: str) -> list[Any]:
        return [v.get(key) for v in values]

    speakers = pick("speaker")
    return Words.trusted(
        pick("word"),
        pick("start"),
        pick("end"),
        pick("confidence"),
        speakers if any(s is not None for s in speakers) else None,
    )


@pytest.mark.parametrize("items", list(EDGES.values()), ids=list(EDGES))
def test_words_in_columns_decide_the_same(items: list[Any]) -> None:
    both_ways(as_columns(items))


NUMBERS = st.one_of(
    st.floats(min_value=0, max_value=100),
    st.floats(),
    st.integers(min_value=-2, max_value=100),
    st.sampled_from([2**1100, 10**300, True, False, "1", None, Decimal("0.5"), np.float64(2.5)]),
)
TEXTS = st.one_of(
    st.text(max_size=6),
    st.text(st.sampled_from("ab 日😀,.\x00\ud800\udfff"), max_size=6),
    st.sampled_from([None, 5, b"x"]),
)


@st.composite
def word_dicts(draw: st.DrawFn) -> dict[str, Any]:
    names = ["word", "start", "end", "confidence", "speaker", "probability", "text"]
    keys = draw(st.sets(st.sampled_from(names)))
    value: dict[str, Any] = {}
    for key in sorted(keys):
        if key in ("word", "speaker", "text"):
            value[key] = draw(TEXTS)
        else:
            value[key] = draw(NUMBERS)
    return value


@st.composite
def ordered_words(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mostly valid words in order (so that a list gets far), a few broken anywhere."""
    n = draw(st.integers(min_value=0, max_value=30))
    t = 0.0
    words: list[dict[str, Any]] = []
    for i in range(n):
        t += draw(st.sampled_from([0.0, 0.25, 1.0]))
        value: dict[str, Any] = {"word": f" w{i}", "start": t, "end": t + 0.2}
        if draw(st.booleans()):
            value["confidence"] = draw(st.sampled_from([0.0, 0.5, 1, None]))
        if draw(st.booleans()):
            value["speaker"] = draw(st.sampled_from(["A", "B", None, "日本"]))
        words.append(value)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        if words:
            words[draw(st.integers(min_value=0, max_value=len(words) - 1))] = draw(word_dicts())
    return words


@settings(max_examples=400, deadline=None)
@given(ordered_words())
def test_generated_words_decide_the_same(items: list[dict[str, Any]]) -> None:
    both_ways(items)


@settings(max_examples=200, deadline=None)
@given(st.lists(word_dicts(), max_size=4))
def test_arbitrary_dicts_decide_the_same(items: list[dict[str, Any]]) -> None:
    both_ways(items)
    both_ways(as_columns(items))


@settings(max_examples=300, deadline=None)
@given(ordered_words())
def test_generated_columns_decide_the_same(items: list[dict[str, Any]]) -> None:
    both_ways(as_columns(items))


# --- search documents -------------------------------------------------------------------------

ENTRY = re.compile(r"'((?:[^']|'')*)':([0-9,]+)")


def positions(literal: str | None) -> dict[str, list[int]] | None:
    """A tsvector literal as each lexeme's positions (what the server reads it as)."""
    if literal is None:
        return None
    found: dict[str, list[int]] = {}
    for lexeme, at in ENTRY.findall(literal):
        found.setdefault(lexeme, []).extend(map(int, at.split(",")))
    return {lexeme: sorted(at) for lexeme, at in found.items()}


def documents_both_ways(words: list[str], step: int, analyses: dict[str, Any]) -> list[Any]:
    compiled = documents_module._compiled
    assert compiled is not None
    made = compiled(words, step, analyses)
    assert made is not None
    documents_module._compiled = None
    try:
        python = segment_documents(words, step, analyses)
    finally:
        documents_module._compiled = compiled
    assert [positions(d) for d in made] == [positions(d) for d in python]
    for literal in made:  # grouped: each lexeme once, in byte order of the quoted lexemes
        if literal is not None:
            prefixes = [entry.split(":")[0].encode() for entry in literal.split(" ")]
            assert prefixes == sorted(set(prefixes), key=lambda p: p + b":")
    return made


LEXEMES = st.text(st.sampled_from("ab'\\é日-"), min_size=1, max_size=3).map(quoted)


@st.composite
def analysis(draw: st.DrawFn) -> Analysis | None:
    kind = draw(st.sampled_from(["none", "stop", "nothing", "single", "several"]))
    leads = draw(st.booleans()) if draw(st.integers(0, 4)) == 0 else True
    if kind == "none":
        return None
    if kind == "stop":
        return Analysis((), 1, "", leads)
    if kind == "nothing":
        return Analysis((), 0, "" if draw(st.booleans()) else None, leads)
    if kind == "single":
        prefix = draw(LEXEMES) + ":"
        return Analysis(((prefix, 0),), 1, prefix, leads)
    span = draw(st.sampled_from([1, 2, 3, 40, 3000]))
    offsets = draw(st.lists(st.integers(0, span - 1), min_size=1, max_size=4))
    entries = sorted((at, draw(LEXEMES) + ":") for at in offsets)
    return Analysis(tuple((p, at) for at, p in entries), span, None, leads)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=3), analysis(), min_size=1, max_size=12),
    st.data(),
)
def test_generated_documents_read_the_same(analyses: dict[str, Any], data: st.DataObject) -> None:
    vocabulary = sorted(analyses)
    words = data.draw(st.lists(st.sampled_from(vocabulary), max_size=600))
    step = data.draw(st.sampled_from([1, 7, 256]))
    documents_both_ways(words, step, analyses)


@pytest.mark.parametrize(
    ("repeat", "made"),
    [(255, True), (256, False)],  # to_tsvector keeps 255 positions of a lexeme
)
def test_a_lexeme_past_its_positions_is_the_servers(repeat: int, made: bool) -> None:
    a = Analysis((("'a':", 0),), 1, "'a':", True)
    b = Analysis((("'b':", 0),), 1, "'b':", True)
    words = ["a"] * repeat + ["b"] * (256 - repeat)
    [document] = documents_both_ways(words, 256, {"a": a, "b": b})
    assert (document is not None) is made


def test_an_analysis_of_another_shape_goes_to_the_python_path() -> None:
    compiled = documents_module._compiled
    assert compiled is not None
    assert compiled(["x"], 256, {"x": ("not", "an", "analysis")}) is None
    assert compiled(("x",), 256, {}) is None  # type: ignore[arg-type]  # a tuple: Python path
    with pytest.raises(KeyError):
        compiled(["x"], 256, {})


# --- the words a process has not analysed yet ----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", " b", "c,", "日", "😀", "a "]), max_size=40),
    st.sets(st.sampled_from(["a", " b", "日", "x"])),
)
def test_unknown_words_are_the_python_paths(words: list[str], known: set[str]) -> None:
    analyses = AnalysesCache()
    analyses.add("simple", dict.fromkeys(known))
    compiled = analyses.missing("simple", words)
    expected = [w for w in dict.fromkeys(words) if w not in known]
    assert compiled == expected
    distinct = set(words)  # not a list: the Python path
    assert analyses.missing("simple", distinct) == [w for w in distinct if w not in known]
    assert search_module._unknown_words is not None


# --- the readers: a segment's words, and the words a search hit is placed on -------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(st.sampled_from("ab ,日😀\x85"), max_size=5), max_size=30),
    st.data(),
)
def test_split_words_is_the_python_paths(words: list[str], data: st.DataObject) -> None:
    from media_store.words import segments

    text, lengths = "".join(words), pack_lengths(words)
    lo = data.draw(st.integers(0, len(words)))
    hi = data.draw(st.integers(lo, len(words)))
    compiled = segments._compiled_split
    assert compiled is not None
    assert segments._split(text, lengths, lo, hi) == words[lo:hi]
    segments._compiled_split = None
    try:
        assert segments._split(text, lengths, lo, hi) == words[lo:hi]
    finally:
        segments._compiled_split = compiled
    # Lengths that do not fit the text (past its end, negative): the Python path decides.
    assert compiled(text, lengths + pack_lengths(["x"]), 0, len(words) + 1) is None
    assert compiled(text, b"\xff\xff\xff\xff", 0, 1) is None
    assert compiled(text, lengths, 0, len(words) + 1) is None  # past the lengths given
    assert compiled(text, lengths, 2**70, 2**70) is None  # not an index


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", " b", "c,", "日", "😀"]), max_size=40),
    st.sets(st.sampled_from(["a", " b", "日", "x"])),
)
def test_marked_words_are_the_python_paths(words: list[str], matched: set[str]) -> None:
    expected = [i for i, word in enumerate(words) if word in matched]
    assert search_module._marked_words is not None
    assert search_module.marked_words(words, matched) == expected
    assert search_module._marked_words(tuple(words), matched) is None  # type: ignore[arg-type]
    # A word not a str (its hash or equality may run Python code): the Python path decides.
    assert search_module._marked_words([*words, 1], matched) is None  # type: ignore[list-item]
    assert search_module.marked_words([*words, 1], matched) == expected  # type: ignore[list-item]


# --- the importer's test of words written with their leading space ------------------------------

SPACES = st.sampled_from([" ", "\t", "\n", "\x1c", "\x85", "\xa0", "\u2003", "\u3000"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(SPACES | st.sampled_from("ab日😀"), max_size=4), max_size=12))
def test_leading_spaces_count_as_the_expression_does(texts: list[str]) -> None:
    from media_store.cli import importer

    counted = importer._leading_spaces
    assert counted is not None
    assert counted(texts) == len(importer._SPACED.findall("\x00".join(texts)))
    compiled = importer._joined(texts)
    importer._leading_spaces = None
    try:
        python = importer._joined(texts)
    finally:
        importer._leading_spaces = counted
    assert compiled == python
    assert counted([" a", 3]) is None  # not all str: the Python path


class MadeOnDemand(dict[str, Any]):
    """A mapping whose values are made at each lookup (and released after): the compiled
    documents must hold what they keep of them."""

    def __getitem__(self, word: str) -> Analysis:
        prefix = quoted(word.strip()) + ":"
        return Analysis(((prefix, 0),), 1, prefix, True)


@pytest.mark.parametrize(
    ("words", "analyses"),
    [
        # A span past every position, and one past a C long: the rest is the server's.
        (["a", "b"], {"a": Analysis((), 2**63 - 1, "", True), "b": Analysis((), 1, "'b':", True)}),
        (["a", "b"], {"a": Analysis((), 2**70, "", True), "b": Analysis((), 1, "'b':", True)}),
        # A lexeme UTF-8 cannot hold, a truthy lead that is no bool.
        (["a"], {"a": Analysis((), 1, "'\ud800':", True)}),
        (["a"], {"a": Analysis((), 1, "'a':", 1)}),  # type: ignore[arg-type]
        ([f"w{i % 40}" for i in range(600)], MadeOnDemand()),
    ],
    ids=["span past the positions", "span past a long", "surrogate", "lead 1", "made on demand"],
)
def test_odd_analyses_give_the_python_paths_documents(words: list[str], analyses: Any) -> None:
    compiled = documents_module._compiled
    assert compiled is not None
    made = compiled(words, 256, analyses)
    documents_module._compiled = None
    try:
        python = segment_documents(words, 256, analyses)
    finally:
        documents_module._compiled = compiled
    if made is not None:
        assert [positions(d) for d in made] == [positions(d) for d in python]


def test_a_negative_offset_is_left_to_the_python_path() -> None:
    compiled = documents_module._compiled
    assert compiled is not None
    odd = Analysis(tuple(("'a':", -(10**15) - k) for k in range(40)), 1, None, True)
    assert compiled(["w"], 256, {"w": odd}) is None


def test_the_compiled_documents_write_every_position_in_decimal() -> None:
    # Every position a document can hold (1 to 16,383), written by the compiled path's own
    # digits (no printf): one word whose analysis puts its lexeme that far into its segment.
    compiled = documents_module._compiled
    assert compiled is not None
    for position in range(1, 2**14):
        analysis = ((("'w':", position - 1),), 1, None, True)
        assert compiled(["w"], 1, {"w": analysis}) == [f"'w':{position}"]
