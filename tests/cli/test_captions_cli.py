"""``media-store captions``: the real command (a process of its own) on a real database,
its WebVTT on stdout read back by webvtt-py; exit statuses and one-line errors."""

from __future__ import annotations

import html
import io

import webvtt

from media_store import Store
from tests.cli.test_jobs_cli import media_store, one_line_error

WORDS = [
    {"word": " Hello", "start": 0.5, "end": 0.9, "speaker": "Ann"},
    {"word": " there.", "start": 1.0, "end": 1.4, "speaker": "Ann"},
    {"word": " Grüße", "start": 2.0, "end": 2.5, "speaker": "Bo & Co"},
    {"word": " aus", "start": 2.6, "end": 2.8, "speaker": "Bo & Co"},
    {"word": " Zürich.", "start": 2.9, "end": 3.5, "speaker": "Bo & Co"},
]


async def test_captions_writes_the_transcriptions_webvtt_to_stdout(
    store: Store, db_url: str
) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/talk.wav"})
    made = await store.transcriptions.create(
        {"job_id": job.id, "provider": "whisper", "text_content": "-", "word_timestamps": WORDS}
    )
    done = await media_store("captions", str(made.id), "--format", "vtt", url=db_url)
    assert done.returncode == 0, done.stderr
    read = webvtt.from_buffer(io.StringIO(done.stdout)).captions
    assert [(c.start, c.end, html.unescape(c.voice or ""), c.text) for c in read] == [
        ("00:00:00.500", "00:00:01.400", "Ann", "Hello there."),
        ("00:00:02.000", "00:00:03.500", "Bo & Co", "Grüße aus Zürich."),
    ]
    narrow = await media_store(
        "captions", str(made.id), "--max-chars", "6", "--max-lines", "1", url=db_url
    )
    assert narrow.returncode == 0, narrow.stderr
    assert narrow.stdout.startswith("1\n00:00:00,500 --> 00:00:01,000\nHello\n\n2\n")


async def test_captions_of_an_unknown_transcription_exit_1_and_bad_limits_2(
    db_url: str,
) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    await one_line_error(
        await media_store("captions", unknown, url=db_url), 1, "TranscriptionNotFound"
    )
    await one_line_error(
        await media_store("captions", unknown, "--max-chars", "0", url=db_url),
        2,
        "max_chars",
    )
