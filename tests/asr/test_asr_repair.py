"""Repair policies: strict by default, every policy on every quirk the engines emit, each
reporting what it changed; the repaired words are what the store then holds."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_store import Store, ValidationError
from media_store.asr import Repair, repair, words_from
from media_store.asr.repair import fix_inverted, fix_order, fix_untimed, sound
from tests.support.asr import bits, load, new_job, rows, store_and_read


def quirk(name: str) -> list[Any]:
    return list(words_from("auto", load(name)))


BACKWARDS = "openai-whisper-backwards.json"  # " was" and " Right." start 20 ms early
UNTIMED = "whisperx-untimed.json"  # "1990,", "95%" and "2001." have no times
GARBLED = "whisper-cpp-garbled.json"  # " people" ends a minute before it starts


def w(word: str, start: float | None, end: float | None) -> dict[str, Any]:
    return {"word": word, "start": start, "end": end, "confidence": None, "speaker": None}


# --- strict by default --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            BACKWARDS,
            r"word 3 \(' was', start 3\.64, end 3\.9\) starts before the word before it "
            r"\(start 3\.66\); 2 such word\(s\), at 3, 5\. Nothing was stored\. "
            r"Stable-sort the words by start \(order='sort', --order sort\)\.",
        ),
        (
            UNTIMED,
            r"word 2 \('1990,', start None, end None\) has no start or end time; 3 such "
            r"word\(s\), at 2, 3, 6\. .*untimed='drop'.*untimed='interpolate'",
        ),
        (
            GARBLED,
            r"word 1 \(' people', start 70\.4, end 10\.4\) ends before it starts; 1 such "
            r"word\(s\), at 1\. .*inverted='drop'.*inverted='clamp'",
        ),
    ],
    ids=["order", "untimed", "inverted"],
)
def test_by_default_each_quirk_is_refused_naming_the_word_and_the_policy(
    name: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        repair(quirk(name))


def test_words_without_problems_come_back_unchanged_and_unreported() -> None:
    words = quirk("whisperx.json")
    fixed, reports = repair(words, order="sort", inverted="clamp", untimed="interpolate")
    assert reports == []
    assert all(a is b for a, b in zip(fixed, words, strict=True))


# --- order ------------------------------------------------------------------------------------


def test_sort_puts_backwards_starts_in_order_and_reports_them() -> None:
    words = quirk(BACKWARDS)
    given = copy.deepcopy(words)
    fixed, report = fix_order(words, "sort")
    assert [x["word"] for x in fixed] == [" I", " mean,", " was", " it", " Right.", " fine."]
    assert report == Repair("order", "sort", 2, (3, 5))
    assert str(report) == "order: sorted 2 (at 3, 5)"
    assert words == given  # pure: the input is as it was


def test_sort_is_stable_for_equal_starts() -> None:
    words = [w("a", 1.0, 1.2), w("b", 1.0, 1.1), w("c", 0.5, 0.9), w("d", 1.0, 1.0)]
    fixed, report = fix_order(words, "sort")
    assert [x["word"] for x in fixed] == ["c", "a", "b", "d"]
    assert report.count == 1 and report.first == (2,)


# --- a word ending before it starts ---------------------------------------------------------------


def test_drop_removes_the_garbled_word_and_the_rest_is_in_order() -> None:
    fixed, reports = repair(quirk(GARBLED), inverted="drop")
    assert [x["word"] for x in fixed] == [" the", " of", " Ireland"]
    assert reports == [Repair("inverted", "drop", 1, (1,))]


def test_clamp_sets_end_to_start_and_the_order_then_needs_its_own_policy() -> None:
    fixed, report = fix_inverted(quirk(GARBLED), "clamp")
    assert rows(fixed)[1] == (" people", 70.4, 70.4, 0.42, None)
    assert report == Repair("inverted", "clamp", 1, (1,))
    with pytest.raises(ValidationError, match=r"word 2 \(' of'.*order='sort'"):
        repair(quirk(GARBLED), inverted="clamp")
    both, reports = repair(quirk(GARBLED), inverted="clamp", order="sort")
    assert [x["word"] for x in both] == [" the", " of", " Ireland", " people"]
    assert reports == [Repair("inverted", "clamp", 1, (1,)), Repair("order", "sort", 1, (2,))]


# --- words without times --------------------------------------------------------------------------


def test_drop_removes_untimed_words() -> None:
    fixed, report = fix_untimed(quirk(UNTIMED), "drop")
    assert [x["word"] for x in fixed] == ["Founded", "in", "sold", "in"]
    assert report == Repair("untimed", "drop", 3, (2, 3, 6))


def test_interpolate_shares_the_gap_between_neighbours() -> None:
    fixed, report = fix_untimed(quirk(UNTIMED), "interpolate")
    # "in" ends at 0.6, "sold" starts at 1.4: two untimed words share [0.6, 1.4].
    # "2001." has no timed word after it: zero-length at the previous end, 1.8.
    assert rows(fixed) == [
        ("Founded", 0.1, 0.5, 0.9, "SPEAKER_00"),
        ("in", 0.52, 0.6, 0.8, "SPEAKER_00"),
        ("1990,", 0.6, 0.6 + (1.4 - 0.6) / 2, None, "SPEAKER_00"),
        ("95%", 0.6 + (1.4 - 0.6) / 2, 1.4, None, None),
        ("sold", 1.4, 1.7, 0.88, "SPEAKER_00"),
        ("in", 1.72, 1.8, 0.9, "SPEAKER_00"),
        ("2001.", 1.8, 1.8, None, "SPEAKER_00"),
    ]
    assert report == Repair("untimed", "interpolate", 3, (2, 3, 6))


def test_interpolate_before_the_first_timed_word_starts_at_zero() -> None:
    fixed, _ = fix_untimed(
        [w("1", None, None), w("2", None, None), w("go", 1.0, 1.5)], "interpolate"
    )
    assert [(x["start"], x["end"]) for x in fixed[:2]] == [(0.0, 0.5), (0.5, 1.0)]


def test_interpolate_never_puts_a_start_after_the_next_start() -> None:
    # whisperX overlaps: the next word starts before the previous one ends.
    words = [w("a", 1.0, 2.0), w("5", None, None), w("b", 1.5, 2.2)]
    fixed, _ = fix_untimed(words, "interpolate")
    assert (fixed[1]["start"], fixed[1]["end"]) == (1.5, 1.5)
    assert fix_order(fixed)[1].count == 0


def test_interpolate_with_no_timed_word_at_all_is_refused() -> None:
    with pytest.raises(ValidationError, match="nothing to interpolate between"):
        fix_untimed([w("1", None, None)], "interpolate")


def test_sorting_untimed_words_asks_for_an_untimed_policy_first() -> None:
    with pytest.raises(ValidationError, match=r"Apply an untimed policy first"):
        fix_order(quirk(UNTIMED), "sort")


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValidationError, match="order policy must be one of refuse, sort"):
        repair([], order="shuffle")  # type: ignore[arg-type]


def test_reports_list_at_most_five_indexes() -> None:
    words = [w(str(i), None, None) for i in range(8)] + [w("x", 1.0, 1.0)]
    _, report = fix_untimed(words, "drop")
    assert report.count == 8 and report.first == (0, 1, 2, 3, 4)
    assert str(report) == "untimed: dropped 8 (at 0, 1, 2, 3, 4, ...)"


# --- every policy on every quirk, through a real Store ------------------------------------------

CASES = [
    (BACKWARDS, {"order": "sort"}),
    (UNTIMED, {"untimed": "drop"}),
    (UNTIMED, {"untimed": "interpolate"}),
    (GARBLED, {"inverted": "drop"}),
    (GARBLED, {"inverted": "clamp", "order": "sort"}),
]


@pytest.mark.parametrize(("name", "policies"), CASES, ids=lambda c: str(c))
async def test_repaired_words_are_stored_exactly(
    store: Store, name: str, policies: dict[str, Any]
) -> None:
    fixed, reports = repair(quirk(name), **policies)
    assert reports
    stored = await store_and_read(store, await new_job(store), iter(fixed))
    assert bits(stored) == bits(rows(fixed))


@pytest.mark.parametrize("name", [BACKWARDS, UNTIMED, GARBLED])
async def test_unrepaired_quirks_are_refused_by_the_store_too(store: Store, name: str) -> None:
    job = await new_job(store)
    with pytest.raises(ValidationError):
        await store_and_read(store, job, words_from("auto", load(name)))
    assert await store.transcriptions.list_for_job(job.id) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 1.5, float("nan")])),
            st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 2.0])),
        ),
        max_size=6,
    )
)
def test_the_column_wise_check_lets_through_only_what_the_three_checks_pass(
    times: list[tuple[float | None, float | None]],
) -> None:
    words = [{"word": "w", "start": s, "end": e} for s, e in times]
    try:
        for check in (fix_inverted, fix_untimed, fix_order):
            check(words)  # all refuse by default
        clean = True
    except ValidationError:
        clean = False
    timed = all(s is not None and e is not None for s, e in times)
    if timed and sound([s for s, _ in times], [e for _, e in times]):
        assert clean
    if clean:
        assert repair(words) == (words, [])
