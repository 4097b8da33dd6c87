"""``store.transcriptions.turns`` and ``captions`` on a real database: read a window of words
at a time (every word once, however the windows fall, across silences), equal to the pure
builders over the whole transcript, refusing bad arguments before any SQL, on the replica
view too."""

from __future__ import annotations

import uuid
from itertools import pairwise
from typing import Any

import pysubs2
import pytest

from media_store import Store, TranscriptionNotFound, ValidationError, Words
from media_store.repositories import transcriptions as transcriptions_module
from media_store.words.captions import CaptionRules, build_cues, build_turns, format_cues

SPEAKERS = ["Ann", "Bo", "Zoë"]


def spoken(count: int, *, silence_at: int | None = None) -> list[dict[str, Any]]:
    """``count`` Whisper-style words, three speakers taking turns, some Unicode; with
    ``silence_at``, a silence of a day before that word."""
    words, t = [], 0.0
    for i in range(count):
        t += 0.35 + (86_400.0 if i == silence_at else 0.0) + (1.0 if i % 50 == 49 else 0.0)
        text = ["Grüße", "hello", "東京", "world,", "and", "so", "on."][i % 7]
        words.append(
            {"word": f" {text}", "start": t, "end": t + 0.3, "speaker": SPEAKERS[(i // 23) % 3]}
        )
    return words


async def stored(store: Store, words: list[dict[str, Any]]) -> uuid.UUID:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/talk.wav"})
    made = await store.transcriptions.create(
        {"job_id": job.id, "provider": "whisper", "text_content": "-", "word_timestamps": words}
    )
    return made.id


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows of about 100 words, starting 5 s wide: many windows on a small transcript."""
    monkeypatch.setattr(transcriptions_module, "WINDOW_WORDS", 100)
    monkeypatch.setattr(transcriptions_module, "WINDOW_SECONDS", 5.0)


@pytest.mark.usefixtures("small_windows")
async def test_words_are_read_in_windows_every_word_once_across_silences(store: Store) -> None:
    words = spoken(3_000, silence_at=1_700)  # a day of silence
    transcription_id = await stored(store, words)
    windows = [w async for w in store.transcriptions._windows(transcription_id)]
    assert Words([w for window in windows for w in window]) == words

    # A silence of 200 s (the windows hold ~100 words, ~35 s): they double over it, and the
    # one that finds speech again holds less than the silence's length of it.
    words = spoken(3_000)
    for word in words[1_700:]:
        word["start"] += 200.0
        word["end"] += 200.0
    transcription_id = await stored(store, words)
    windows = [w async for w in store.transcriptions._windows(transcription_id)]
    assert Words([w for window in windows for w in window]) == words
    assert len(windows) > 20
    assert max(map(len, windows)) < 600  # never the transcript whole


@pytest.mark.usefixtures("small_windows")
async def test_turns_and_captions_equal_the_builders_over_the_whole_transcript(
    store: Store,
) -> None:
    transcription_id = await stored(store, spoken(3_000, silence_at=1_000))
    words = await store.transcriptions.words(transcription_id)

    turns = [t async for t in store.transcriptions.turns(transcription_id)]
    assert turns == build_turns(words)
    assert [t.speaker for t in turns[:4]] == ["Ann", "Bo", "Zoë", "Ann"]
    assert turns[0].text.startswith("Grüße hello 東京 world, and so on. Grüße")
    paused = [t async for t in store.transcriptions.turns(transcription_id, min_gap=0.5)]
    assert paused == build_turns(words, min_gap=0.5)
    assert len(paused) > len(turns)

    for format in ("srt", "vtt"):
        chunks = [c async for c in store.transcriptions.captions(transcription_id, format)]
        assert "".join(chunks) == "".join(format_cues(build_cues(words), format))
    narrow = store.transcriptions.captions(
        transcription_id, "srt", max_chars=20, max_lines=1, split_on_speaker=False
    )
    rules = CaptionRules(max_chars=20, max_lines=1, split_on_speaker=False)
    assert "".join([c async for c in narrow]) == "".join(
        format_cues(build_cues(words, rules), "srt")
    )


async def test_captions_read_back_as_the_words(store: Store) -> None:
    words = spoken(1_200)
    transcription_id = await stored(store, words)
    srt = "".join([c async for c in store.transcriptions.captions(transcription_id)])
    events = pysubs2.SSAFile.from_string(srt, format_="srt")
    shown = " ".join(e.plaintext for e in events).split()
    assert shown == [w["word"].strip() for w in words]
    assert all(a.end <= b.start for a, b in pairwise(events))
    vtt = "".join([c async for c in store.transcriptions.captions(transcription_id, "vtt")])
    assert vtt.startswith("WEBVTT\n\n00:00:00.350 --> ")
    assert all(f"<v {speaker}>" in vtt for speaker in SPEAKERS)


async def test_an_empty_transcription_has_no_turns_and_an_empty_caption_file(
    store: Store,
) -> None:
    transcription_id = await stored(store, [])
    assert [t async for t in store.transcriptions.turns(transcription_id)] == []
    assert [c async for c in store.transcriptions.captions(transcription_id)] == []
    vtt = [c async for c in store.transcriptions.captions(transcription_id, "vtt")]
    assert vtt == ["WEBVTT\n\n"]


async def test_an_unknown_transcription_raises_not_found_at_the_first_item(
    store: Store,
) -> None:
    turns = store.transcriptions.turns(uuid.uuid4())  # nothing read yet
    with pytest.raises(TranscriptionNotFound):
        await anext(turns)
    with pytest.raises(TranscriptionNotFound):
        await anext(store.transcriptions.captions(uuid.uuid4(), "srt"))


@pytest.mark.parametrize(
    "call",
    [
        {"min_gap": -1.0},
        {"format": "ass"},
        {"max_chars": 0},
        {"max_duration": float("inf")},
        {"min_duration": 9.0},
    ],
)
async def test_bad_arguments_are_refused_when_called(store: Store, call: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        if "min_gap" in call:
            store.transcriptions.turns(uuid.uuid4(), **call)
        else:
            store.transcriptions.captions(uuid.uuid4(), **call)
    with pytest.raises(ValidationError):
        store.transcriptions.turns("not a uuid")  # type: ignore[arg-type]


async def test_the_replica_view_gives_turns_and_captions_too(store: Store) -> None:
    transcription_id = await stored(store, spoken(300))
    on_primary = [t async for t in store.transcriptions.turns(transcription_id)]
    assert [t async for t in store.replica.transcriptions.turns(transcription_id)] == on_primary
    async with store.replica.transaction() as snapshot:
        vtt = [c async for c in snapshot.transcriptions.captions(transcription_id, "vtt")]
    assert "".join(vtt) == "".join(
        [c async for c in store.transcriptions.captions(transcription_id, "vtt")]
    )
