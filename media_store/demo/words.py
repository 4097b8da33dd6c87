"""``make demo``: a long recording transcribed in two streamed batches, then a time window and
a search."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

from media_store import JobStatus, JobType, Store
from media_store.demo.output import heading, row

_VOCABULARY = [
    "so",
    "the",
    "model",
    "then",
    "reads",
    "every",
    "frame",
    "and",
    "we",
    "compare",
    "what",
    "it",
    "finds",
]


async def _asr_batch(first: int, count: int, start: float) -> AsyncIterator[dict[str, Any]]:
    """What a streaming ASR yields for one chunk of audio: one word at a time."""
    rng = random.Random(first)
    t = start
    for i in range(first, first + count):
        duration = rng.uniform(0.12, 0.5)
        yield {
            "word": _VOCABULARY[i % len(_VOCABULARY)],
            "start": round(t, 2),
            "end": round(t + duration, 2),
            "confidence": round(rng.uniform(0.6, 1.0), 3),
            "speaker": "S1" if (i // 40) % 2 == 0 else "S2",
        }
        t += duration + rng.uniform(0.02, 0.15)


async def demo_words(store: Store) -> uuid.UUID:
    """Create a transcription, append two streamed batches of synthetic words (the second
    continues where the first stopped), then print the words of a 4-second window that
    spans both batches and where a phrase was said. Returns the id of the job, completed."""
    heading("2. Word timestamps: two streamed batches, then a time window")
    # As in section 1, the job is created and completed in one transaction: nobody else ever
    # sees it pending.
    async with store.transaction() as tx:
        job = await tx.jobs.create(
            {
                "job_type": JobType.AUDIO,
                "media_url": "https://example.com/lecture.mp3",
                "parameters": {"demo": True},
            }
        )
        await tx.jobs.start_processing(job.id)
        transcription = await tx.transcriptions.create(
            {"job_id": job.id, "provider": "whisper-stream", "text_content": "(streamed)"}
        )
        first = await tx.transcriptions.append_words(transcription.id, _asr_batch(0, 2000, 0.0))
        resume = (await tx.transcriptions.words(transcription.id)).starts[-1]
        second = await tx.transcriptions.append_words(
            transcription.id, _asr_batch(2000, 1500, resume + 0.3)
        )
        await tx.jobs.update_status(job.id, JobStatus.COMPLETED, result={"words": first + second})

    total = await store.transcriptions.count_words(transcription.id)
    row("appended", f"{first} + {second} words, {total} stored")
    t0 = round(resume - 2.0, 1)
    t1 = t0 + 4.0
    window = await store.transcriptions.words_between(transcription.id, t0, t1)
    row("window", f"{t0:.1f} s <= start < {t1:.1f} s: {len(window)} words")
    for word in window:
        print(
            f"    {word.start:7.2f} - {word.end:7.2f} s  {word.speaker}  {word.word:<8}"
            f"  confidence {word.confidence:.2f}"
        )
    # Where a phrase was said, to the word (only this demo's job: a real database may hold
    # other transcriptions).
    page = await store.transcriptions.search('"compare what"', job_id=job.id, limit=3)
    row("search", '"compare what": the first hits, best first, each to the word')
    for hit in page.hits:
        print(f"    {hit.start:7.2f} - {hit.end:7.2f} s  {hit.speaker}  {hit.snippet}")
    return job.id
