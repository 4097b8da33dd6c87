"""The API side: requests/s of the example service's job read and word-window read
(examples/api.py on media_store.fastapi) next to the same two endpoints written on the plan's
design, its ``get_session`` dependency (commit on success, roll back on error) and its ORM.

Contenders, in one process, taking turns (their order rotating each round):
- example: ``GET /jobs/{id}`` and ``GET /transcriptions/{id}/words?t0&t1`` of examples/api.py
  as they are (the Store's pool, the library's models as response models);
- plan: the same two endpoints on the plan's ``database.py`` as written (its engine settings,
  ``pool_pre_ping`` included, its ``get_session``, its repository's ``get_by_id``, its
  ``JobResponse`` read from attributes); the plan keeps a transcription's words in one JSONB
  array, so its window endpoint loads the transcription and filters the words in Python;
- library: the same two reads as plain ``store`` calls, no HTTP: what the HTTP layer adds.

Requests go through httpx's in-process ASGI transport (no socket), ``concurrency`` requests in
flight, each answer checked for 200. Each design reads its own database holding the same rows:
2,000 jobs, and one diarized 3.1-hour transcript of 40,000 words (windows of 60 s, at the same
random places for every contender).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from benchmarks.common import Timer, fresh_database, median, print_table, write_results
from benchmarks.plan_orm import Base, PlanJob, PlanTranscription
from examples.api import create_app
from media_store import Dsn, JobStatus, JobType, Settings, Store
from media_store.contrib.fastapi import STATE_KEY

POOL_SIZE = 10
ROUNDS = 3  # a multiple of the 3 contenders: each runs in each position equally
JOBS = 2_000
WORDS = 40_000
HOURS = 3.1
WINDOW_S = 60.0
REQUESTS = {"job read": 1_000, "window read": 200}
CONCURRENCY = (1, 10)

Call = Callable[[int], Awaitable[None]]


def diarized_words(n: int, hours: float, seed: int) -> list[dict[str, Any]]:
    """``n`` words spread over ``hours``, two speakers taking turns of 1-40 words."""
    rng = random.Random(seed)
    step = hours * 3600 / n
    words: list[dict[str, Any]] = []
    speaker, turn = 0, rng.randint(1, 40)
    for i in range(n):
        if turn == 0:
            speaker, turn = 1 - speaker, rng.randint(1, 40)
        turn -= 1
        start = round(i * step + rng.uniform(0, step / 3), 2)
        words.append(
            {
                "word": rng.choice(("so", "the", "analysis", "café", "東京", "frame", "yes")),
                "start": start,
                "end": round(start + rng.uniform(0.08, step / 2), 2),
                "confidence": round(rng.uniform(0.4, 1.0), 4),
                "speaker": f"SPEAKER_{speaker:02d}",
            }
        )
    return words


# --- the plan's design ---------------------------------------------------------------------------


class PlanJobResponse(BaseModel):
    """The plan's ``JobResponse`` (schemas.py), read from the ORM object's attributes."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    job_type: JobType
    status: JobStatus
    media_url: str
    prompt: str | None
    parameters: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    processing_time_ms: int | None


def plan_app(url: str) -> tuple[FastAPI, Callable[[], Awaitable[None]]]:
    """The two endpoints on the plan's database.py; returns the app and its engine's dispose."""
    engine = create_async_engine(  # the plan's settings, as written
        url.replace("postgresql://", "postgresql+asyncpg://", 1),
        echo=False,
        pool_size=POOL_SIZE,
        max_overflow=20,
        pool_pre_ping=True,
        pool_recycle=3600,
    )
    async_session_factory = async_sessionmaker(
        engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
    )

    async def get_session() -> AsyncIterator[AsyncSession]:
        """The plan's dependency: commit on success, roll back on error."""
        async with async_session_factory() as session:
            try:
                yield session
                await session.commit()
            except Exception:
                await session.rollback()
                raise
            finally:
                await session.close()

    app = FastAPI()

    @app.get("/jobs/{job_id}", response_model=PlanJobResponse)
    async def read_job(
        job_id: uuid.UUID,
        session: AsyncSession = Depends(get_session),  # noqa: B008 - the plan's style
    ) -> Any:
        # the plan's JobRepository.get_by_id
        result = await session.execute(select(PlanJob).where(PlanJob.id == job_id))
        job = result.scalar_one_or_none()
        if job is None:
            raise HTTPException(status_code=404, detail="job not found")
        return job

    @app.get("/transcriptions/{transcription_id}/words")
    async def words_between(
        transcription_id: uuid.UUID,
        t0: float,
        t1: float,
        session: AsyncSession = Depends(get_session),  # noqa: B008
    ) -> list[dict[str, Any]]:
        transcription = await session.get(PlanTranscription, transcription_id)
        if transcription is None:
            raise HTTPException(status_code=404, detail="transcription not found")
        return [w for w in transcription.word_timestamps if t0 <= w["start"] < t1]

    return app, engine.dispose


async def seed_plan(url: str, jobs: list[uuid.UUID], words: list[dict[str, Any]]) -> uuid.UUID:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session, session.begin():
            session.add_all(
                PlanJob(id=job_id, job_type="video", media_url=f"https://x/{i}.mp4")
                for i, job_id in enumerate(jobs)
            )
            transcription = PlanTranscription(
                job_id=jobs[0], provider="whisper", text_content="...", word_timestamps=words
            )
            session.add(transcription)
        return transcription.id
    finally:
        await engine.dispose()


# --- the runs ------------------------------------------------------------------------------------


def over_http(client: httpx.AsyncClient, paths: list[str]) -> Call:
    async def call(i: int) -> None:
        response = await client.get(paths[i % len(paths)])
        assert response.status_code == 200, response.text

    return call


async def run(call: Call, requests: int, concurrency: int) -> float:
    """Requests per second with ``concurrency`` tasks sharing ``requests`` calls."""
    counter = iter(range(requests))

    async def task() -> None:
        for i in counter:
            await call(i)

    with Timer() as t:
        await asyncio.gather(*(task() for _ in range(concurrency)))
    return requests / t.elapsed


async def main(server_url: str) -> None:
    words = diarized_words(WORDS, HOURS, seed=7)
    rng = random.Random(11)
    starts = [round(rng.uniform(0, HOURS * 3600 - WINDOW_S), 2) for _ in range(500)]
    async with (
        fresh_database(server_url) as ours,
        fresh_database(server_url, migrated=False) as theirs,
    ):
        settings = Settings(dsn=Dsn(ours), min_size=POOL_SIZE, max_size=POOL_SIZE)
        async with await Store.open(settings=settings) as seeding:
            job_ids = [
                (
                    await seeding.jobs.create(
                        {"job_type": "video", "media_url": f"https://x/{i}.mp4"}
                    )
                ).id
                for i in range(JOBS)
            ]
            ours_tid = (
                await seeding.transcriptions.create(
                    {
                        "job_id": job_ids[0],
                        "provider": "whisper",
                        "text_content": "...",
                        "word_timestamps": words,
                    }
                )
            ).id
        theirs_tid = await seed_plan(theirs, job_ids, words)
        for url in (ours, theirs):  # both planned on fresh statistics
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("VACUUM ANALYZE")
            finally:
                await conn.close()
        shuffled = random.Random(5).sample(job_ids, len(job_ids))

        example = create_app(settings)
        plan, dispose = plan_app(theirs)
        async with example.router.lifespan_context(example):
            store: Store = getattr(example.state, STATE_KEY)
            async with (
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=example), base_url="http://example"
                ) as example_client,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=plan), base_url="http://plan"
                ) as plan_client,
            ):

                def windows(tid: uuid.UUID) -> list[str]:
                    return [
                        f"/transcriptions/{tid}/words?t0={t0}&t1={t0 + WINDOW_S}" for t0 in starts
                    ]

                async def library_job(i: int) -> None:
                    assert await store.jobs.get_by_id(shuffled[i % len(shuffled)]) is not None

                async def library_window(i: int) -> None:
                    t0 = starts[i % len(starts)]
                    assert len(
                        await store.transcriptions.words_between(ours_tid, t0, t0 + WINDOW_S)
                    )

                contenders: dict[str, dict[str, Call]] = {
                    "job read": {
                        "example": over_http(example_client, [f"/jobs/{j}" for j in shuffled]),
                        "plan": over_http(plan_client, [f"/jobs/{j}" for j in shuffled]),
                        "library": library_job,
                    },
                    "window read": {
                        "example": over_http(example_client, windows(ours_tid)),
                        "plan": over_http(plan_client, windows(theirs_tid)),
                        "library": library_window,
                    },
                }
                try:
                    results = await measure(contenders)
                finally:
                    await dispose()
    report(results, len(words_in_window(words, starts[0])))


def words_in_window(words: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    return [w for w in words if t0 <= w["start"] < t0 + WINDOW_S]


async def measure(
    contenders: dict[str, dict[str, Call]],
) -> dict[str, dict[int, dict[str, float]]]:
    results: dict[str, dict[int, dict[str, float]]] = {}
    for endpoint, calls in contenders.items():
        for call in calls.values():  # warm up pools, caches and the server's plans
            await run(call, 100, 10)
        results[endpoint] = {}
        for concurrency in CONCURRENCY:
            samples: dict[str, list[float]] = {name: [] for name in calls}
            names = list(calls)
            for round_no in range(ROUNDS):
                order = names[round_no % len(names) :] + names[: round_no % len(names)]
                for name in order:
                    samples[name].append(await run(calls[name], REQUESTS[endpoint], concurrency))
            results[endpoint][concurrency] = {name: median(v) for name, v in samples.items()}
    return results


def report(results: dict[str, dict[int, dict[str, float]]], window_words: int) -> None:
    rows = []
    payload: dict[str, Any] = {
        "rounds": ROUNDS,
        "pool_size": POOL_SIZE,
        "jobs": JOBS,
        "transcript": {"words": WORDS, "hours": HOURS, "window_s": WINDOW_S},
        "window_words_example": window_words,
        "endpoints": {},
    }
    for endpoint, by_concurrency in results.items():
        payload["endpoints"][endpoint] = {}
        for concurrency, rates in by_concurrency.items():
            example, plan, library = rates["example"], rates["plan"], rates["library"]
            rows.append(
                [endpoint, concurrency, example, plan, library, example / plan, example / library]
            )
            payload["endpoints"][endpoint][str(concurrency)] = {
                "requests": REQUESTS[endpoint],
                "requests_per_s": rates,
                "example_vs_plan": example / plan,
                "example_vs_library": example / library,
            }
    print_table(
        f"API reads, requests/s (in-process ASGI), median of {ROUNDS} alternating rounds",
        ["endpoint", "conc", "example", "plan", "library", "ex/plan", "ex/library"],
        rows,
    )
    write_results("api", payload)
