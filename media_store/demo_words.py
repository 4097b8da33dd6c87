"""``make demo``: a long recording transcribed in two streamed batches, then a time window."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

from media_store.models import JobType
from media_store.store import Store

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


async def demo_words(store: Store) -> None:
    """Create a transcription, append two streamed batches of synthetic words (the second
    continues where the first stopped), then print the words of a 10-second window."""
    print("\n== word timestamps: two streamed batches, then a time window ==")
    job = await store.jobs.create(
        {"job_type": JobType.AUDIO, "media_url": "https://example.com/lecture.mp3"}
    )
    transcription = await store.transcriptions.create(
        {"job_id": job.id, "provider": "whisper-stream", "text_content": "(streamed)"}
    )
    first = await store.transcriptions.append_words(transcription.id, _asr_batch(0, 2000, 0.0))
    stored = await store.transcriptions.words(transcription.id)
    resume = stored.starts[-1]
    second = await store.transcriptions.append_words(
        transcription.id, _asr_batch(2000, 1500, resume + 0.3)
    )
    total = await store.transcriptions.count_words(transcription.id)
    print(f"  appended {first} + {second} words; {total} stored, up to {resume:.1f}s and beyond")
    t0 = round(resume - 5.0, 1)
    window = await store.transcriptions.words_between(transcription.id, t0, t0 + 10.0)
    print(f"  words with {t0}s <= start < {t0 + 10.0}s ({len(window)} of {total}):")
    for word in window:
        print(
            f"    {word.start:8.2f}-{word.end:8.2f}s  {word.speaker}  {word.word:<8} "
            f"({word.confidence:.2f})"
        )
