"""Turns and captions of a 3-hour transcript, read a window of words at a time, beside reading
its words whole.

One transcript of 30,000 Whisper-style words (3 h at 2.8 words a second; four speakers taking
turns of 5 to 60 words; Latin with accents, CJK and an emoji among the words; a pause every
40 words), stored once on a fresh database. Contenders, rotating each round, medians of
rounds:

- ``words(id)``: every word in one read, decoded into ``Words`` (the baseline, ratio 1.00);
- ``turns(id)``: the speaker turns, streamed (windows of ~2,048 words);
- ``captions(id, "srt")`` and ``captions(id, "vtt")``: the subtitle file, streamed a cue at a
  time, joined into one string as a client receiving it would.

Ratios are each contender's time over ``words(id)``'s: what turning the words into turns or
cues, window by window, costs over reading them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.common import Timer, fresh_database, median, print_table, write_results
from media_store import Dsn, Settings, Store

WORDS = 30_000
ROUNDS = 7
TEXTS = ["the", "Grüße", "analysis", "東京", "of", "naïve", "data", "😀", "and", "café", "so"]


def transcript(seed: int = 23) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words, t, speaker, left = [], 0.0, 0, 0
    for i in range(WORDS):
        if left == 0:
            speaker, left = (speaker + rng.randint(1, 3)) % 4, rng.randint(5, 60)
        left -= 1
        t += rng.uniform(0.2, 0.5) + (1.8 if i % 40 == 39 else 0.0)
        words.append(
            {
                "word": " " + rng.choice(TEXTS),
                "start": round(t, 3),
                "end": round(t + rng.uniform(0.1, 0.3), 3),
                "confidence": round(rng.random(), 3),
                "speaker": f"SPEAKER_{speaker:02d}",
            }
        )
    return words


async def main(server_url: str) -> None:
    async with fresh_database(server_url) as url:
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=2))
        try:
            job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/3h.wav"})
            words = transcript()
            made = await store.transcriptions.create(
                {
                    "job_id": job.id,
                    "provider": "whisper",
                    "text_content": "-",
                    "word_timestamps": words,
                }
            )
            tid = made.id
            reads = store.transcriptions

            async def whole() -> int:
                return len(await reads.words(tid))

            async def turns() -> int:
                return sum([1 async for _ in reads.turns(tid)])

            async def srt() -> int:
                return len("".join([chunk async for chunk in reads.captions(tid, "srt")]))

            async def vtt() -> int:
                return len("".join([chunk async for chunk in reads.captions(tid, "vtt")]))

            contenders: dict[str, Callable[[], Awaitable[int]]] = {
                "words(id), whole": whole,
                "turns(id)": turns,
                'captions(id, "srt")': srt,
                'captions(id, "vtt")': vtt,
            }
            sizes = {name: await run() for name, run in contenders.items()}  # warm up
            times: dict[str, list[float]] = {name: [] for name in contenders}
            names = list(contenders)
            for round_ in range(ROUNDS):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    with Timer() as timer:
                        await contenders[name]()
                    times[name].append(timer.elapsed)
        finally:
            await store.close()
    base = median(times["words(id), whole"])
    results = {
        name: {
            "median_s": median(times[name]),
            "ratio_to_words": median(times[name]) / base,
            "output": sizes[name],
        }
        for name in contenders
    }
    print_table(
        f"turns and captions of a 3-hour transcript ({WORDS:,} words), medians of {ROUNDS}",
        ["contender", "ms", "× words(id)", "output"],
        [
            [name, r["median_s"] * 1000, r["ratio_to_words"], r["output"]]
            for name, r in results.items()
        ],
    )
    write_results(
        "captions",
        {
            "words": WORDS,
            "rounds": ROUNDS,
            "results": results,
            "output": "words, turns, characters of the file",
        },
    )
