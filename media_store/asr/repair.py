"""Explicit repair policies for the disorder real recognisers emit. Strict by default.

Three problems, each with its own policy, each off unless asked for:

* words out of start order (openai-whisper starts a word 10-20 ms before the previous
  word's start): ``refuse`` | ``sort`` (a stable sort by start: words with equal starts keep
  their order);
* a word ending before it starts (whisper.cpp's garbled runs): ``refuse`` | ``drop`` |
  ``clamp`` (end = start);
* words without times (whisperX numerals; ``start`` or ``end`` None): ``refuse`` | ``drop``
  | ``interpolate`` (a run of untimed words shares, in equal slots, the gap from the end of
  the timed word before it to the start of the timed word after it; from 0 when none
  before, zero-length at the previous end when none after).

Each function is pure: it takes a sequence of word dicts, leaves it as it was, and returns a
new list (words it does not change are the same dict objects) with a :class:`Repair`
saying what it changed: how many words and the indexes of the first few. ``refuse`` raises
:class:`~media_store.errors.ValidationError` naming the first offending word, how many there
are, and the policy that would store them. :func:`repair` runs all three in the one order
that works (inverted ends, then untimed words, which need sane neighbours, then the order,
which needs every word timed), reporting indexes in the words as given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter, le
from typing import Any, Literal, TypeAlias, get_args

from media_store._compiled import compiled
from media_store.errors import ValidationError

OrderPolicy: TypeAlias = Literal["refuse", "sort"]
InvertedPolicy: TypeAlias = Literal["refuse", "drop", "clamp"]
UntimedPolicy: TypeAlias = Literal["refuse", "drop", "interpolate"]

ORDER_POLICIES: tuple[str, ...] = get_args(OrderPolicy)
INVERTED_POLICIES: tuple[str, ...] = get_args(InvertedPolicy)
UNTIMED_POLICIES: tuple[str, ...] = get_args(UntimedPolicy)

# The compiled sound() of two lists of floats, or None (media_store/_speedups.c).
_sound_times: Callable[[Sequence[Any], Sequence[Any]], bool | None] | None = compiled("sound_times")

# How many indexes a report or a refusal lists.
FIRST_INDEXES = 5

Word: TypeAlias = Mapping[str, Any]
_Words: TypeAlias = Sequence[Word]


@dataclass(frozen=True, slots=True)
class Repair:
    """What one policy changed. ``problem``: ``order``, ``inverted`` or ``untimed``;
    ``action``: the policy applied; ``count``: words changed (sorted: words that started
    before the word before them); ``first``: the indexes of the first of them."""

    problem: str
    action: str
    count: int
    first: tuple[int, ...]

    def __str__(self) -> str:
        verb = {"sort": "sorted", "drop": "dropped", "clamp": "clamped", "interpolate": "timed"}
        shown = ", ".join(map(str, self.first)) + (", ..." if self.count > len(self.first) else "")
        return f"{self.problem}: {verb.get(self.action, self.action)} {self.count} (at {shown})"


def _report(problem: str, action: str, changed: Sequence[int], origin: Sequence[int]) -> Repair:
    return Repair(problem, action, len(changed), tuple(origin[i] for i in changed[:FIRST_INDEXES]))


def _refuse(
    words: _Words, changed: list[int], origin: Sequence[int], field: str, problem: str, fix: str
) -> ValidationError:
    index = changed[0]
    word = words[index]
    first = ", ".join(str(origin[i]) for i in changed[:FIRST_INDEXES])
    return ValidationError(
        f"word {origin[index]} ({word.get('word')!r}, start {word.get('start')}, end "
        f"{word.get('end')}) {problem}; {len(changed)} such word(s), at {first}"
        f"{', ...' if len(changed) > FIRST_INDEXES else ''}. Nothing was stored. {fix}",
        [{"loc": (origin[index], field), "msg": problem}],
    )


def _check(name: str, policy: str, allowed: tuple[str, ...]) -> None:
    if policy not in allowed:
        raise ValidationError(f"{name} policy must be one of {', '.join(allowed)}, got {policy!r}")


def _timed(word: Mapping[str, Any]) -> bool:
    return word.get("start") is not None and word.get("end") is not None


@dataclass(frozen=True, slots=True)
class _Found:
    """The words one check found at fault, before its policy acts on them."""

    problem: str  # the policy's name: order, inverted, untimed
    bad: list[int]  # positions in the words the check was given
    field: str  # the field a refusal names
    says: str  # what is wrong with such a word
    fix: str  # which policy would store them


def _triage(found: _Found, policy: str, words: _Words, origin: Sequence[int]) -> Repair | None:
    """None when nothing is at fault; raises for ``refuse``; otherwise the report of what the
    policy is about to change."""
    if not found.bad:
        return None
    if policy == "refuse":
        raise _refuse(words, found.bad, origin, found.field, found.says, found.fix)
    return _report(found.problem, policy, found.bad, origin)


def _dropped(
    words: _Words, origin: Sequence[int], bad: list[int], report: Repair
) -> tuple[list[Word], Sequence[int], Repair]:
    skip = set(bad)
    keep = [i for i in range(len(words)) if i not in skip]
    return [words[i] for i in keep], [origin[i] for i in keep], report


def _unchanged(
    words: _Words, origin: Sequence[int], problem: str, policy: str
) -> tuple[list[Word], Sequence[int], Repair]:
    return list(words), origin, Repair(problem, policy, 0, ())


# --- a word ending before it starts -------------------------------------------------------------


def fix_inverted(words: _Words, policy: InvertedPolicy = "refuse") -> tuple[list[Word], Repair]:
    """Words whose end is before their start (untimed words are left alone)."""
    fixed, _, report = _inverted(words, range(len(words)), policy)
    return fixed, report


def _inverted(
    words: _Words, origin: Sequence[int], policy: str
) -> tuple[list[Word], Sequence[int], Repair]:
    _check("inverted", policy, INVERTED_POLICIES)
    bad = [
        i
        for i, w in enumerate(words)
        if _timed(w) and w["end"] < w["start"]  # a NaN compares False: the store refuses it
    ]
    found = _Found(
        "inverted",
        bad,
        "end",
        "ends before it starts",
        "Drop such words (inverted='drop', --inverted drop) or set their end to their start "
        "(inverted='clamp', --inverted clamp).",
    )
    report = _triage(found, policy, words, origin)
    if report is None:
        return _unchanged(words, origin, "inverted", policy)
    if policy == "drop":
        return _dropped(words, origin, bad, report)
    fixed = list(words)
    for i in bad:
        fixed[i] = {**words[i], "end": words[i]["start"]}
    return fixed, origin, report


# --- words without times ------------------------------------------------------------------------


def fix_untimed(words: _Words, policy: UntimedPolicy = "refuse") -> tuple[list[Word], Repair]:
    """Words with no ``start`` or no ``end`` (None or absent)."""
    fixed, _, report = _untimed(words, range(len(words)), policy)
    return fixed, report


def _untimed(
    words: _Words, origin: Sequence[int], policy: str
) -> tuple[list[Word], Sequence[int], Repair]:
    _check("untimed", policy, UNTIMED_POLICIES)
    bad = [i for i, w in enumerate(words) if not _timed(w)]
    found = _Found(
        "untimed",
        bad,
        "start",
        "has no start or end time",
        "Drop such words (untimed='drop', --untimed drop) or give them times between their "
        "neighbours (untimed='interpolate', --untimed interpolate).",
    )
    report = _triage(found, policy, words, origin)
    if report is None:
        return _unchanged(words, origin, "untimed", policy)
    if policy == "drop":
        return _dropped(words, origin, bad, report)
    if len(bad) == len(words):
        raise ValidationError(
            "no word has times: there is nothing to interpolate between; drop them "
            "(untimed='drop', --untimed drop) or get timed output from the engine",
            [{"loc": (origin[0], "start"), "msg": "no timed word"}],
        )
    fixed = list(words)
    for first, last in _runs(bad):
        _fill(fixed, first, last)
    return fixed, origin, report


def _runs(indexes: list[int]) -> Iterator[tuple[int, int]]:
    """The runs of consecutive indexes in ``indexes`` (sorted), as (first, last) pairs."""
    first = previous = indexes[0]
    for index in indexes[1:]:
        if index != previous + 1:
            yield first, previous
            first = index
        previous = index
    yield first, previous


def _fill(words: list[Word], first: int, last: int) -> None:
    """Times for the untimed words ``first..last`` (inclusive), between their neighbours."""
    before = words[first - 1] if first > 0 else None
    after = words[last + 1] if last + 1 < len(words) else None
    if before is None:
        assert after is not None  # not every word is untimed
        low = 0.0
        high = max(low, after["start"])
    else:
        # From the previous end, but never past the next start (whisperX overlaps words),
        # nor before the previous start: the starts stay in order.
        low = max(before["end"], before["start"])
        if after is not None:
            low = max(before["start"], min(low, after["start"]))
        high = low if after is None else max(low, after["start"])
    count = last - first + 1
    step = (high - low) / count
    for n, i in enumerate(range(first, last + 1)):
        start = low + step * n
        end = high if n + 1 == count else low + step * (n + 1)
        words[i] = {**words[i], "start": start, "end": end}


# --- words out of start order -------------------------------------------------------------------


def fix_order(words: _Words, policy: OrderPolicy = "refuse") -> tuple[list[Word], Repair]:
    """Words that start before the word before them. Every word must be timed."""
    fixed, _, report = _order(words, range(len(words)), policy)
    return fixed, report


def _order(
    words: _Words, origin: Sequence[int], policy: str
) -> tuple[list[Word], Sequence[int], Repair]:
    _check("order", policy, ORDER_POLICIES)
    untimed = [i for i, w in enumerate(words) if w.get("start") is None]
    if untimed:
        raise _refuse(
            words,
            untimed,
            origin,
            "start",
            "has no start time, so it has no place in start order",
            "Apply an untimed policy first (untimed='drop' or 'interpolate').",
        )
    starts = [w["start"] for w in words]
    bad = [i for i in range(1, len(starts)) if starts[i] < starts[i - 1]]
    found = _Found(
        "order",
        bad,
        "start",
        f"starts before the word before it (start {starts[bad[0] - 1]})" if bad else "",
        "Stable-sort the words by start (order='sort', --order sort).",
    )
    report = _triage(found, policy, words, origin)
    if report is None:
        return _unchanged(words, origin, "order", policy)
    # sorted() is stable: words with equal starts keep the engine's order.
    permutation = sorted(range(len(words)), key=starts.__getitem__)
    return ([words[i] for i in permutation], [origin[i] for i in permutation], report)


# --- all three ------------------------------------------------------------------------------------

_START, _END = itemgetter("start"), itemgetter("end")


def _sound(words: _Words) -> bool:
    """True when no policy has anything to do: every word timed, none ending before it
    starts, starts in order. Checked column-wise (maps in C), what recognisers' output
    nearly always is; False sends the words through the three checks, which name what
    is wrong. A NaN or an incomparable value compares False here: the checks decide."""
    try:
        starts = list(map(_START, words))
        ends = list(map(_END, words))
        return None not in starts and None not in ends and sound(starts, ends)
    except (KeyError, TypeError):
        return False


def sound(starts: Sequence[Any], ends: Sequence[Any]) -> bool:
    """True when words with these (timed) starts and ends give no policy anything to do:
    none ends before it starts, the starts are in order. False for a NaN or values that do
    not compare: then :func:`repair` decides, naming what is wrong."""
    if _sound_times is not None:  # lists of floats, in one compiled pass
        answer = _sound_times(starts, ends)
        if answer is not None:
            return answer
    try:
        return all(map(le, starts, ends)) and all(map(le, starts, islice(starts, 1, None)))
    except TypeError:
        return False


def repair(
    words: _Words,
    *,
    order: OrderPolicy = "refuse",
    inverted: InvertedPolicy = "refuse",
    untimed: UntimedPolicy = "refuse",
) -> tuple[list[Word], list[Repair]]:
    """Apply the three policies (inverted, then untimed, then order) and return the words
    with the reports of the policies that changed something; indexes in the reports are
    positions in ``words``. All ``refuse`` (the default): the words come back unchanged, or
    :class:`ValidationError` names the first problem and the policy that would fix it."""
    _check("inverted", inverted, INVERTED_POLICIES)
    _check("untimed", untimed, UNTIMED_POLICIES)
    _check("order", order, ORDER_POLICIES)
    if _sound(words):
        return list(words), []
    origin: Sequence[int] = range(len(words))
    reports = []
    current: _Words = words
    for step, policy in ((_inverted, inverted), (_untimed, untimed), (_order, order)):
        current, origin, report = step(current, origin, policy)
        if report.count:
            reports.append(report)
    return list(current), reports


__all__ = [
    "INVERTED_POLICIES",
    "ORDER_POLICIES",
    "UNTIMED_POLICIES",
    "InvertedPolicy",
    "OrderPolicy",
    "Repair",
    "UntimedPolicy",
    "fix_inverted",
    "fix_order",
    "fix_untimed",
    "repair",
    "sound",
]
