"""Helpers shared by the ASR tests (no tests here): fixtures on disk, bit-exact comparison."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from media_store import Job, Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asr"

Row = tuple[str, float, float, float | None, str | None]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def rows(words: Iterable[Any]) -> list[Row]:
    """Words (dicts or WordTimestamp models) as comparable tuples."""
    out: list[Row] = []
    for w in words:
        if isinstance(w, Mapping):
            out.append((w["word"], w["start"], w["end"], w["confidence"], w["speaker"]))
        else:
            out.append((w.word, w.start, w.end, w.confidence, w.speaker))
    return out


def bits(rows_: Sequence[Row]) -> list[tuple[str, str, str, str | None, str | None, list[type]]]:
    """Each value exactly: floats as their hex (every bit, and the sign of zero), plus the
    types, so an np.float64 that merely equals a float is told apart."""
    return [
        (
            word,
            float(start).hex(),
            float(end).hex(),
            None if confidence is None else float(confidence).hex(),
            speaker,
            [type(start), type(end), type(confidence)],
        )
        for word, start, end, confidence, speaker in rows_
    ]


async def new_job(store: Store) -> Job:
    return await store.jobs.create({"job_type": "audio", "media_url": "file:///call.wav"})


async def store_and_read(store: Store, job: Job, words: Iterable[Any]) -> list[Row]:
    """Stream ``words`` into a new transcription and read them back from the database."""
    created, count = await store.transcriptions.create_streamed(
        {"job_id": job.id, "provider": "asr-test", "text_content": "..."}, words
    )
    stored = await store.transcriptions.words(created.id)
    assert len(stored) == count
    return rows(stored)
