"""Speaker turns and caption cues from words (media_store.words.captions), without a database:
the rules as properties over generated transcripts, the SRT and WebVTT text read back by
maintained subtitle parsers (pysubs2, webvtt-py), and ffmpeg converting the files."""

from __future__ import annotations

import html
import io
import shutil
import subprocess
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pysubs2
import pytest
import webvtt
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from media_store import ValidationError, Words
from media_store.words.captions import (
    CaptionRules,
    Cue,
    CueBuilder,
    TurnBuilder,
    build_cues,
    build_turns,
    format_cues,
    join_words,
    timestamp,
)

# Word texts: Latin with accents, CJK, an emoji, digits and punctuation. No '<', '>', '{' or
# '}' in what is read back as SRT (pysubs2 takes them for markup); '&', '<' and '>' are
# escaped in WebVTT and tested there.
PLAIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789éßüçø中文字😀,.!?'-"
MARKUP = PLAIN + "&<>"


@dataclass
class Transcript:
    words: Words
    bodies: list[str]  # each word's text as shown (its leading space stripped)
    verbatim: bool


def transcripts(alphabet: str = PLAIN, *, max_words: int = 40) -> st.SearchStrategy[Transcript]:
    @st.composite
    def build(draw: st.DrawFn) -> Transcript:
        verbatim = draw(st.booleans())
        count = draw(st.integers(0, max_words))
        speakers = draw(st.lists(st.sampled_from(["A", "B", "Ann Lee"]) | st.none(), min_size=1))
        words: list[dict[str, Any]] = []
        bodies: list[str] = []
        t = draw(st.floats(0, 5000))
        for i in range(count):
            body = draw(
                st.text(alphabet, min_size=1, max_size=8)
                | st.text(alphabet, min_size=40, max_size=60)  # longer than a line
            )
            glued = verbatim and i > 0 and draw(st.integers(0, 5)) == 0
            t += draw(st.sampled_from([0.0, 0.0005, 0.1, 0.3, 2.5]))  # same ms, pauses
            words.append(
                {
                    "word": body if glued or not verbatim else " " + body,
                    "start": t,
                    "end": t + draw(st.sampled_from([0.0, 0.2, 0.5, 9.0])),  # 9 s: too long
                    "speaker": draw(st.sampled_from(speakers)),
                }
            )
            bodies.append(body)
        return Transcript(Words(words), bodies, verbatim)

    return build()


RULES = st.tuples(
    st.integers(1, 50),  # max_chars
    st.integers(1, 3),  # max_lines
    st.sampled_from([0.001, 0.5, 3.0, 7.0]),  # max_duration
    st.sampled_from([0.0, 0.4, 0.833]),  # min_duration, up to max_duration
    st.none() | st.sampled_from([0.0, 1.0]),  # max_gap
    st.booleans(),  # split_on_speaker
).map(lambda r: CaptionRules(r[0], r[1], r[2], min(r[3], r[2]), r[4], r[5]))


def cue_words(cues: list[Cue], words: Words) -> list[Words]:
    """The words each cue shows, in order (by its word_count)."""
    parts, at = [], 0
    for cue in cues:
        parts.append(words[at : at + cue.word_count])
        at += cue.word_count
    assert at == len(words)
    return parts


def assert_shows_every_word_once_in_order(texts: list[str], transcript: Transcript) -> None:
    if transcript.verbatim:
        # A word stuck to the one before shares its token: compare the characters.
        assert "".join(texts).replace(" ", "").replace("\n", "") == "".join(transcript.bodies)
    else:
        assert " ".join(texts).split() == transcript.bodies


def assert_keeps_the_rules(cues: list[Cue], rules: CaptionRules, transcript: Transcript) -> None:
    longer = {body for body in transcript.bodies if len(body) > rules.max_chars}
    previous_end = 0
    for cue, words in zip(cues, cue_words(cues, transcript.words), strict=True):
        assert 1 <= len(cue.lines) <= rules.max_lines
        for line in cue.lines:
            assert len(line) <= rules.max_chars or line in longer, (line, rules)
            assert line == line.strip() and "\n" not in line and line
        assert previous_end <= cue.start_ms < cue.end_ms
        assert cue.end_ms - cue.start_ms <= round(rules.max_duration * 1000)
        assert cue.start_ms >= round(words.starts[0] * 1000)
        previous_end = cue.end_ms
        speakers = set(words.speakers or [None])
        if rules.split_on_speaker:
            assert speakers == {cue.speaker} and not cue.mixed
        else:
            assert cue.mixed == (len(speakers) > 1)
    for cue, following in pairwise(cues):
        # At least min_duration, unless the next cue starts before that.
        shortest = min(round(rules.min_duration * 1000), following.start_ms - cue.start_ms)
        assert cue.end_ms - cue.start_ms >= shortest


@given(transcripts(), RULES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_cues_show_every_word_once_in_order_within_the_limits(
    transcript: Transcript, rules: CaptionRules
) -> None:
    cues = build_cues(transcript.words, rules)
    assert sum(cue.word_count for cue in cues) == len(transcript.words)
    assert_shows_every_word_once_in_order([cue.text for cue in cues], transcript)
    assert_keeps_the_rules(cues, rules, transcript)


@given(transcripts(), RULES, st.lists(st.integers(0, 80), max_size=6))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_cues_and_turns_come_out_the_same_whatever_the_windows(
    transcript: Transcript, rules: CaptionRules, cuts: list[int]
) -> None:
    words = transcript.words
    bounds = [0, *sorted(min(cut, len(words)) for cut in cuts), len(words)]
    cue_builder, turn_builder = CueBuilder(rules), TurnBuilder(min_gap=0.2)
    cues, turns = [], []
    for lo, hi in pairwise(bounds):
        cues += cue_builder.feed(words[lo:hi])
        turns += turn_builder.feed(words[lo:hi])
    assert cues + cue_builder.finish() == build_cues(words, rules)
    assert turns + turn_builder.finish() == build_turns(words, min_gap=0.2)


@given(transcripts(), st.none() | st.sampled_from([0.0, 0.2, 1.0]))
@settings(max_examples=80, deadline=None)
def test_turns_are_runs_of_one_speaker_cut_at_pauses_longer_than_min_gap(
    transcript: Transcript, min_gap: float | None
) -> None:
    words = transcript.words
    turns = build_turns(words, min_gap=min_gap)
    assert sum(turn.word_count for turn in turns) == len(words)
    assert_shows_every_word_once_in_order([turn.text for turn in turns], transcript)
    at = 0
    for turn in turns:
        part = words[at : at + turn.word_count]
        at += turn.word_count
        assert set(part.speakers or [None]) == {turn.speaker}
        assert (turn.start, turn.end) == (part.starts[0], max(part.ends))
        if min_gap is not None:  # no pause inside longer than min_gap
            for i in range(1, len(part)):
                assert part.starts[i] - max(part.ends[:i]) <= min_gap
    for turn, following in pairwise(turns):
        assert turn.speaker != following.speaker or (
            min_gap is not None and following.start - turn.end > min_gap
        )


# --- joining --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "text"),
    [
        ([" Hello", " world"], "Hello world"),  # Whisper: the space leads the word
        (["Hello", "world"], "Hello world"),  # most engines: bare words
        ([" I", " don", "'t", " know."], "I don't know."),  # a word stuck to the one before
        ([" 我", "们", "好"], "我们好"),  # whisper's unspaced CJK
        (["New  York", "\tcity\n"], "New York city"),  # whitespace runs: one space
        ([" a", " ", "b"], "a b"),  # a blank word spaces off the next
        ([" a ", "b"], "a b"),  # so does a trailing space
        ([], ""),
    ],
)
def test_words_are_joined_as_they_were_stored(words: list[str], text: str) -> None:
    assert join_words(words) == text


def test_turns_keep_whisper_spaces_and_bare_words_alike() -> None:
    whisper = Words(
        [
            {"word": " Hello", "start": 0.0, "end": 0.4, "speaker": "A"},
            {"word": " world.", "start": 0.5, "end": 0.9, "speaker": "A"},
            {"word": " Hi", "start": 3.0, "end": 3.2, "speaker": "A"},
            {"word": " there", "start": 3.3, "end": 3.6, "speaker": "B"},
        ]
    )
    bare = Words([{**w.model_dump(), "word": w.word.strip()} for w in whisper])
    for words in (whisper, bare):
        assert [(t.speaker, t.text) for t in build_turns(words)] == [
            ("A", "Hello world. Hi"),
            ("B", "there"),
        ]
        # a pause of 2.1 s > min_gap: A's words make two turns
        split = build_turns(words, min_gap=2.0)
        assert [(t.speaker, t.start, t.end, t.text, t.word_count) for t in split] == [
            ("A", 0.0, 0.9, "Hello world.", 2),
            ("A", 3.0, 3.2, "Hi", 1),
            ("B", 3.3, 3.6, "there", 1),
        ]


# --- the cue rules, one by one ---------------------------------------------------------------


def words_of(*spoken: tuple[str, float, float] | tuple[str, float, float, str]) -> Words:
    return Words(
        [
            {"word": w[0], "start": w[1], "end": w[2], "speaker": w[3] if len(w) > 3 else None}
            for w in spoken
        ]
    )


def test_lines_break_at_word_boundaries_and_come_out_balanced() -> None:
    text = "the quick brown fox jumps over the lazy dog and runs"
    words = Words(
        [{"word": w, "start": i * 0.3, "end": i * 0.3 + 0.2} for i, w in enumerate(text.split())]
    )
    (cue,) = build_cues(words, CaptionRules(max_chars=42))
    assert cue.lines == ("the quick brown fox jumps", "over the lazy dog and runs")


def test_a_word_longer_than_a_line_takes_a_line_of_its_own() -> None:
    long = "Donaudampfschifffahrtsgesellschaftskapitän"  # 42
    words = words_of(("a", 0, 0.1), (long, 0.2, 0.9), ("b", 1.0, 1.1))
    cues = build_cues(words, CaptionRules(max_chars=10, max_lines=3))
    assert [cue.lines for cue in cues] == [("a", long, "b")]


def test_a_cue_never_spans_a_change_of_speaker_unless_asked() -> None:
    words = words_of(("yes", 0, 0.3, "A"), ("no", 0.4, 0.6, "B"))
    split = build_cues(words)
    assert [(c.speaker, c.text) for c in split] == [("A", "yes"), ("B", "no")]
    (mixed,) = build_cues(words, CaptionRules(split_on_speaker=False))
    assert (mixed.text, mixed.speaker, mixed.mixed) == ("yes no", None, True)


def test_cue_times_clamp_to_max_duration_stretch_to_min_duration_and_never_overlap() -> None:
    words = words_of(
        ("long", 0.0, 12.0),  # longer than max_duration: shown 7 s
        ("quick", 12.0, 12.1),  # stretched to 0.833 s, the next cue is late enough
        ("then", 13.0, 13.2),  # stretched only up to the next cue's start
        ("now", 13.8, 14.0),
    )
    cues = build_cues(words, CaptionRules(max_gap=0.5))
    assert [(c.start_ms, c.end_ms, c.text) for c in cues] == [
        (0, 7000, "long"),
        (12000, 12833, "quick"),
        (13000, 13800, "then"),
        (13800, 14633, "now"),
    ]


def test_cues_starting_on_the_same_millisecond_get_a_millisecond_each() -> None:
    words = words_of(("a", 1.0, 1.0, "A"), ("b", 1.0, 1.0, "B"), ("c", 1.0, 1.5, "C"))
    assert [(c.start_ms, c.end_ms) for c in build_cues(words)] == [
        (1000, 1001),
        (1001, 1002),
        (1002, 1835),  # min_duration from where it really starts
    ]


def test_a_pause_longer_than_max_gap_ends_the_cue() -> None:
    words = words_of(("one", 0, 0.3), ("two", 2.0, 2.3))
    assert [c.text for c in build_cues(words)] == ["one", "two"]
    assert [c.text for c in build_cues(words, CaptionRules(max_gap=None))] == ["one two"]


def test_a_cue_does_not_end_inside_a_word_stuck_to_the_one_before() -> None:
    words = words_of((" I", 0, 0.1), (" don", 0.2, 0.3), ("'t", 0.3, 0.4), (" go", 0.5, 0.6))
    cues = build_cues(words, CaptionRules(max_chars=5, max_lines=1))
    assert [c.text for c in cues] == ["I", "don't", "go"]


@pytest.mark.parametrize(
    "rules",
    [
        {"max_chars": 0},
        {"max_lines": 0},
        {"max_chars": 2.5},
        {"max_duration": 0},
        {"max_duration": float("nan")},
        {"min_duration": -1},
        {"min_duration": 8.0},
        {"max_gap": -0.1},
        {"split_on_speaker": "yes"},
    ],
)
def test_rules_out_of_range_are_refused(rules: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CaptionRules(**rules)


def test_timestamps_are_exact_and_grow_past_99_hours() -> None:
    assert timestamp(0, ",") == "00:00:00,000"
    assert timestamp(3_723_004, ".") == "01:02:03.004"
    assert timestamp(100 * 3_600_000 + 1, ",") == "100:00:00,001"


# --- the files, read back by subtitle parsers and converted by ffmpeg ------------------------


def check_against_words(
    read: list[tuple[int, int, str]], cues: list[Cue], transcript: Transcript
) -> None:
    """What a parser read equals the cues; and the text shows every word once, in order."""
    assert read == [(c.start_ms, c.end_ms, c.text) for c in cues]
    assert_shows_every_word_once_in_order([text for _, _, text in read], transcript)


@given(transcripts(), RULES)
@settings(max_examples=50, deadline=None)
def test_srt_reads_back_through_pysubs2_as_the_cues(
    transcript: Transcript, rules: CaptionRules
) -> None:
    cues = build_cues(transcript.words, rules)
    # A text line of digits alone is ambiguous in SRT (it reads as the next cue's number):
    # pysubs2 drops it, as other SRT readers may. Such cues are left to the VTT test.
    assume(not any(line.strip().isdigit() for cue in cues for line in cue.lines))
    srt = "".join(format_cues(cues, "srt"))
    events = pysubs2.SSAFile.from_string(srt, format_="srt") if cues else []
    check_against_words([(e.start, e.end, e.plaintext) for e in events], cues, transcript)


def ms(time: str) -> int:
    """``HH:MM:SS.mmm`` as webvtt-py gives it, in milliseconds (its *_in_seconds are whole
    seconds)."""
    hours, minutes, seconds = time.split(":")
    return (int(hours) * 3600 + int(minutes) * 60) * 1000 + round(float(seconds) * 1000)


@given(transcripts(MARKUP), RULES)
@settings(max_examples=50, deadline=None)
def test_vtt_reads_back_through_webvtt_py_with_voices_and_escapes(
    transcript: Transcript, rules: CaptionRules
) -> None:
    cues = build_cues(transcript.words, rules)
    vtt = "".join(format_cues(cues, "vtt"))
    read = webvtt.from_buffer(io.StringIO(vtt)).captions
    check_against_words(
        [(ms(c.start), ms(c.end), html.unescape(c.text)) for c in read],
        cues,
        transcript,
    )
    assert [None if c.voice is None else html.unescape(c.voice) for c in read] == [
        c.speaker for c in cues
    ]


def test_vtt_reads_back_through_pysubs2_too() -> None:
    words = words_of(("Hello", 0, 0.5, "A"), ("there", 3723.0, 3723.5, "B"))
    vtt = "".join(format_cues(build_cues(words), "vtt"))
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.833\n<v A>Hello\n\n")
    events = pysubs2.SSAFile.from_string(vtt, format_="vtt")
    assert [(e.start, e.end, e.plaintext) for e in events] == [
        (0, 833, "Hello"),
        (3_723_000, 3_723_833, "there"),
    ]


FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None, reason="ffmpeg is not installed (apt-get install ffmpeg)"
)


def ffmpeg(source: Path, target: Path) -> None:
    assert FFMPEG is not None
    done = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(source), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


@needs_ffmpeg
def test_ffmpeg_converts_the_files_without_complaint(tmp_path: Path) -> None:
    words = Words(
        [
            {
                "word": f" {w}",
                "start": i * 0.4,
                "end": i * 0.4 + 0.3,
                "speaker": "Zoë & Ann" if (i // 9) % 2 else "S1",
            }
            for i, w in enumerate(("Grüße aus Zürich, 東京 and <everywhere> else! " * 12).split())
        ]
    )
    cues = build_cues(words)
    vtt, srt = tmp_path / "talk.vtt", tmp_path / "talk.srt"
    vtt.write_text("".join(format_cues(cues, "vtt")), encoding="utf-8")
    srt.write_text("".join(format_cues(cues, "srt")), encoding="utf-8")
    ffmpeg(vtt, tmp_path / "from_vtt.srt")
    ffmpeg(srt, tmp_path / "from_srt.vtt")
    ffmpeg(srt, tmp_path / "from_srt.ass")
    ffmpeg(tmp_path / "from_vtt.srt", tmp_path / "from_vtt.ass")
    # What ffmpeg made of the WebVTT holds every cue, with its times, as pysubs2 reads it.
    converted = pysubs2.load(str(tmp_path / "from_vtt.srt"))
    assert [(e.start, e.end) for e in converted] == [(c.start_ms, c.end_ms) for c in cues]
    ass = pysubs2.load(str(tmp_path / "from_srt.ass"))
    assert len(ass) == len(cues)
