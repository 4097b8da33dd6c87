"""Retention: jobs.purge deletes finished jobs only, with what they produced, in batches; a dry
run counts first; a purge beside running workers loses nothing it should keep."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest

from media_store import Job, JobStatus, Store, ValidationError
from media_store.worker.runner import JobResult, run_worker

TABLES = (
    "jobs",
    "media_assets",
    "transcriptions",
    "transcription_word_segments",
    "analysis_results",
    "job_cancel_requests",
)


async def counts(raw: asyncpg.Connection[asyncpg.Record]) -> dict[str, int]:
    return {table: await raw.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}


async def with_children(store: Store, words: int = 3) -> Job:
    """A job with one asset, one transcription of ``words`` words and one analysis result."""
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a.mp3"})
    await store.media_assets.create(
        {"job_id": job.id, "asset_type": "original", "file_path": "/m/a.mp3"}
    )
    await store.transcriptions.create(
        {
            "job_id": job.id,
            "provider": "whisper",
            "text_content": "hi",
            "word_timestamps": [
                {"word": f"w{i}", "start": float(i), "end": i + 0.5} for i in range(words)
            ],
        }
    )
    await store.analysis_results.create({"job_id": job.id, "analysis_type": "summary"})
    return job


async def finish(store: Store, job: Job, status: JobStatus) -> None:
    if status is JobStatus.CANCELLED:
        await store.jobs.cancel(job.id)
        return
    [held] = await store.jobs.claim("w", limit=1)
    assert held.id == job.id
    if status is JobStatus.COMPLETED:
        await store.jobs.complete(job.id, "w", {"ok": True})
    else:
        await store.jobs.fail(job.id, "w", "broken", retry=False)


async def age(raw: asyncpg.Connection[asyncpg.Record], job_ids: list[uuid.UUID], days: int) -> None:
    await raw.execute(
        "UPDATE jobs SET completed_at = completed_at - make_interval(days => $2)"
        " WHERE id = any($1::uuid[])",
        job_ids,
        days,
    )


async def test_purge_deletes_old_finished_jobs_with_everything_they_produced(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    old = []
    for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        job = await with_children(store, words=300)  # two segments of words each
        await finish(store, job, status)
        old.append(job.id)
    await age(raw, old, 40)
    recent = await with_children(store)
    await finish(store, recent, JobStatus.COMPLETED)
    pending = await with_children(store)
    processing = await with_children(store)
    await store.jobs.start_processing(processing.id)
    # A processing job cancelled long ago, with its holder's record of it.
    running = await store.jobs.create({"job_type": "video", "media_url": "s3://b/v"})
    await store.jobs.start_processing(running.id, worker_id="w9")
    await store.jobs.cancel(running.id)
    assert (await store.jobs.heartbeat("w9", [running.id])).cancelled == [running.id]  # told
    await age(raw, [running.id], 40)
    before = await counts(raw)

    purged = await store.jobs.purge(timedelta(days=30))

    assert (purged.jobs, purged.media_assets, purged.transcriptions) == (4, 3, 3)
    assert (purged.word_segments, purged.words, purged.analysis_results) == (6, 900, 3)
    assert purged.by_status == {
        JobStatus.COMPLETED: 1,
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 2,
    }
    assert not purged.dry_run
    after = await counts(raw)
    assert after == {
        "jobs": before["jobs"] - 4,
        "media_assets": before["media_assets"] - 3,
        "transcriptions": before["transcriptions"] - 3,
        "transcription_word_segments": before["transcription_word_segments"] - 6,
        "analysis_results": before["analysis_results"] - 3,
        "job_cancel_requests": 0,
    }
    left = {row["id"] for row in await raw.fetch("SELECT id FROM jobs")}
    assert left == {recent.id, pending.id, processing.id}


async def test_a_dry_run_counts_what_a_purge_then_deletes_and_deletes_nothing(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    ids = []
    for _ in range(5):
        job = await with_children(store)
        await finish(store, job, JobStatus.COMPLETED)
        ids.append(job.id)
    await age(raw, ids, 2)
    before = await counts(raw)

    dry = await store.jobs.purge(86_400, ["completed"], dry_run=True, batch=2)

    assert await counts(raw) == before
    assert dry.dry_run and (dry.jobs, dry.media_assets, dry.words) == (5, 5, 15)
    assert dry.batches == 3  # 2 + 2 + 1
    done = await store.jobs.purge(86_400, ["completed"], batch=2)
    assert (done.jobs, done.media_assets, done.transcriptions, done.word_segments) == (
        dry.jobs,
        dry.media_assets,
        dry.transcriptions,
        dry.word_segments,
    )
    assert (done.words, done.analysis_results, done.batches) == (dry.words, 5, 3)
    assert (await counts(raw))["jobs"] == 0


async def test_only_the_statuses_named_are_purged(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    done = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a"})
    await finish(store, done, JobStatus.COMPLETED)
    failed = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/b"})
    await finish(store, failed, JobStatus.FAILED)

    purged = await store.jobs.purge(0, statuses=[JobStatus.FAILED])

    assert purged.by_status == {JobStatus.FAILED: 1}
    assert [row["id"] for row in await raw.fetch("SELECT id FROM jobs")] == [done.id]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"statuses": ["pending"]}, "never purged"),
        ({"statuses": ["completed", "processing"]}, "never purged"),
        ({"statuses": "pending"}, "never purged"),
        ({"statuses": ["finished"]}, "unknown job status"),
        ({"statuses": []}, "at least one"),
        ({"statuses": 3}, "statuses"),
        ({"older_than": -1}, "older_than"),
        ({"older_than": "30d"}, "older_than"),
        ({"older_than": float("nan")}, "older_than"),
        ({"batch": 0}, "batch"),
        ({"dry_run": "no"}, "dry_run"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_deleted(
    store: Store, raw: asyncpg.Connection[asyncpg.Record], kwargs: dict[str, object], message: str
) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a"})
    await finish(store, job, JobStatus.COMPLETED)
    arguments: dict[str, object] = {"older_than": 0, **kwargs}
    before = await counts(raw)

    with pytest.raises(ValidationError, match=message):
        await store.jobs.purge(**arguments)  # type: ignore[arg-type]

    assert await counts(raw) == before


async def test_purge_beside_running_workers_loses_nothing_it_should_keep(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    # 600 jobs finished 2 days ago (with children), purged in batches of 25 while 3 workers
    # process 300 new jobs, each writing an analysis result before it completes.
    await raw.execute(
        """
        WITH made AS (
            INSERT INTO jobs (job_type, media_url)
            SELECT 'audio', 'old://' || g FROM generate_series(1, 600) AS g
            RETURNING id
        )
        INSERT INTO analysis_results (job_id, analysis_type) SELECT id, 'old' FROM made
        """
    )
    await raw.execute(
        "UPDATE jobs SET status = 'processing', locked_by = 'old', started_at = clock_timestamp(),"
        " locked_until = clock_timestamp() + interval '1 minute'"
    )
    await raw.execute(
        "UPDATE jobs SET status = 'completed', locked_until = NULL,"
        " completed_at = clock_timestamp() - interval '2 days'"
    )
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url) SELECT 'video', 'new://' || g"
        " FROM generate_series(1, 300) AS g"
    )

    async def handler(job: Job) -> JobResult:
        await store.analysis_results.create({"job_id": job.id, "analysis_type": "new"})
        await asyncio.sleep(0.002)
        return {"ok": True}

    workers = [
        asyncio.create_task(
            run_worker(store, handler, job_types=["video"], batch=5, burst=True, poll_interval=0.05)
        )
        for _ in range(2)
    ]
    purged = await store.jobs.purge(timedelta(days=1), batch=25)
    stats = await asyncio.gather(*workers)

    assert purged.jobs == 600 and purged.analysis_results == 600
    assert purged.batches == 24 + 1 + 2  # full batches, the empty last one, one per other status
    assert sum(s.completed for s in stats) == 300
    rows = await raw.fetch(
        "SELECT j.status, count(DISTINCT j.id) AS jobs, count(r.id) AS results"
        " FROM jobs AS j LEFT JOIN analysis_results AS r ON r.job_id = j.id GROUP BY j.status"
    )
    assert [(r["status"], r["jobs"], r["results"]) for r in rows] == [("completed", 300, 300)]
    assert await raw.fetchval("SELECT count(*) FROM jobs WHERE media_url LIKE 'old://%'") == 0
