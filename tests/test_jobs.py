"""The plan's JobRepository operations, done right, on a real database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC
from typing import Any

import pytest

from media_store import (
    InvalidTransition,
    Job,
    JobCursor,
    JobNotFound,
    JobStatus,
    JobType,
    Store,
    ValidationError,
)


async def new_job(store: Store, **overrides: object) -> Job:
    data: dict[str, object] = {"job_type": "video", "media_url": "https://example.com/v.mp4"}
    data.update(overrides)
    return await store.jobs.create(data)


async def test_create_returns_pending_job_with_database_defaults(store: Store) -> None:
    job = await new_job(store, prompt="Describe", parameters={"fps": 2, "tags": ["a"]})
    assert job.status is JobStatus.PENDING
    assert job.job_type is JobType.VIDEO
    assert job.parameters == {"fps": 2, "tags": ["a"]}
    assert job.prompt == "Describe"
    assert (job.result, job.error, job.started_at, job.completed_at) == (None, None, None, None)
    assert job.created_at.tzinfo is not None
    assert job.created_at.utcoffset() == UTC.utcoffset(None)
    assert job.updated_at >= job.created_at


async def test_create_accepts_model_and_defaults_parameters_to_empty_object(store: Store) -> None:
    from media_store import JobCreate

    job = await store.jobs.create(JobCreate(job_type=JobType.DOCUMENT, media_url="s3://b/d.pdf"))
    assert job.parameters == {}
    assert (job.attempts, job.max_attempts) == (0, 3)
    once = await store.jobs.create(
        JobCreate(job_type=JobType.AUDIO, media_url="s3://b/a.mp3", max_attempts=1)
    )
    assert once.max_attempts == 1
    assert job.job_type is JobType.DOCUMENT


async def test_get_by_id_returns_the_job_or_none(store: Store) -> None:
    job = await new_job(store)
    assert await store.jobs.get_by_id(job.id) == job
    assert await store.jobs.get_by_id(uuid.uuid4()) is None


async def test_get_by_status_newest_first_with_limit(store: Store) -> None:
    created = [await new_job(store, media_url=f"https://x/{i}") for i in range(5)]
    await store.jobs.start_processing(created[1].id)
    pending = await store.jobs.get_by_status(JobStatus.PENDING)
    assert [j.id for j in pending] == [created[i].id for i in (4, 3, 2, 0)]
    assert [j.id for j in await store.jobs.get_by_status("pending", limit=2)] == [
        created[4].id,
        created[3].id,
    ]
    assert [j.id for j in await store.jobs.get_by_status("processing")] == [created[1].id]
    assert await store.jobs.get_by_status("failed") == []


async def test_get_by_status_rejects_unknown_status_and_bad_limit(store: Store) -> None:
    with pytest.raises(ValidationError, match="unknown job status"):
        await store.jobs.get_by_status("done")
    with pytest.raises(ValidationError, match="limit"):
        await store.jobs.get_by_status("pending", limit=0)


async def test_get_all_pages_newest_first_by_offset(store: Store) -> None:
    created = [await new_job(store, media_url=f"https://x/{i}") for i in range(7)]
    newest_first = [j.id for j in reversed(created)]
    first = await store.jobs.get_all(limit=3)
    second = await store.jobs.get_all(limit=3, offset=3)
    third = await store.jobs.get_all(limit=3, offset=6)
    assert [j.id for j in first + second + third] == newest_first
    with pytest.raises(ValidationError):
        await store.jobs.get_all(offset=-1)


async def test_list_jobs_keyset_pages_cover_every_job_once(store: Store) -> None:
    created = [await new_job(store, media_url=f"https://x/{i}") for i in range(10)]
    seen: list[uuid.UUID] = []
    page = await store.jobs.list_jobs(limit=4)
    pages = 1
    seen.extend(j.id for j in page.jobs)
    while page.next is not None:
        # the cursor survives a round trip through its opaque string form
        page = await store.jobs.list_jobs(after=page.next.encode(), limit=4)
        pages += 1
        seen.extend(j.id for j in page.jobs)
    assert seen == [j.id for j in reversed(created)]
    assert pages == 3


async def test_list_jobs_rejects_a_forged_cursor(store: Store) -> None:
    with pytest.raises(ValidationError, match="cursor"):
        await store.jobs.list_jobs(after="not-a-cursor")
    job = await new_job(store)
    cursor = JobCursor(created_at=job.created_at, id=job.id)
    assert JobCursor.decode(cursor.encode()) == cursor


async def test_list_jobs_after_uses_an_index_range_scan(store: Store) -> None:
    # Keyset pagination stays fast deep into a large table because it seeks, not skips.
    async with store.connection() as repos:
        conn = repos.executor
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url, created_at) "
            "SELECT 'audio', 'https://x/' || g, now() - g * interval '1 second' "
            "FROM generate_series(1, 20000) AS g"
        )
        await conn.execute("ANALYZE jobs")
        jobs = await store.jobs.get_all(limit=1, offset=15000)
        from media_store.queries import QUERIES

        lines = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN " + QUERIES["list_jobs_after"].sql, jobs[0].created_at, jobs[0].id, 100
            )
        )
    assert "Index" in lines and "jobs_created_at_idx" in lines, lines
    assert "Seq Scan" not in lines, lines
    page = await store.jobs.list_jobs(after=JobCursor(jobs[0].created_at, jobs[0].id), limit=100)
    assert len(page.jobs) == 100
    assert all((j.created_at, j.id) < (jobs[0].created_at, jobs[0].id) for j in page.jobs)


async def test_start_processing_sets_started_at_from_database_clock(store: Store) -> None:
    job = await new_job(store)
    started = await store.jobs.start_processing(job.id)
    assert started.status is JobStatus.PROCESSING
    assert started.started_at is not None and started.started_at >= job.created_at
    assert started.updated_at > job.updated_at


async def test_start_processing_is_atomic_under_concurrency(store: Store) -> None:
    job = await new_job(store)
    outcomes = await asyncio.gather(
        *(store.jobs.start_processing(job.id) for _ in range(8)), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, Job)]
    losers = [o for o in outcomes if isinstance(o, InvalidTransition)]
    assert len(winners) == 1
    assert len(losers) == 7
    assert all(e.current == "processing" for e in losers)


async def test_start_processing_unknown_job_raises_job_not_found(store: Store) -> None:
    missing = uuid.uuid4()
    with pytest.raises(JobNotFound) as info:
        await store.jobs.start_processing(missing)
    assert info.value.job_id == missing


async def test_update_status_stores_explicit_falsy_values(store: Store) -> None:
    job = await new_job(store)
    await store.jobs.start_processing(job.id)
    done = await store.jobs.update_status(
        job.id, JobStatus.COMPLETED, error="", result={}, processing_time_ms=0
    )
    assert done.error == ""
    assert done.result == {}
    assert done.processing_time_ms == 0
    assert await store.jobs.get_by_id(job.id) == done


async def test_update_status_times_come_from_the_database_clock(store: Store) -> None:
    job = await new_job(store)
    started = await store.jobs.start_processing(job.id)
    await asyncio.sleep(0.02)
    done = await store.jobs.update_status(job.id, "completed", result={"ok": True})
    assert done.completed_at is not None and started.started_at is not None
    assert done.completed_at > started.started_at
    assert done.processing_time_ms is not None and done.processing_time_ms >= 20
    elapsed = (done.completed_at - started.started_at).total_seconds() * 1000
    assert abs(done.processing_time_ms - elapsed) <= 1
    assert done.result == {"ok": True}


async def test_update_status_leaves_omitted_values_and_none_clears(store: Store) -> None:
    job = await new_job(store)
    await store.jobs.start_processing(job.id)
    failed = await store.jobs.update_status(job.id, "failed", error="decoder crashed")
    assert failed.error == "decoder crashed"
    requeued = await store.jobs.update_status(job.id, "pending")
    assert requeued.error == "decoder crashed"  # omitted: kept
    assert requeued.completed_at is None and requeued.started_at is None
    await store.jobs.start_processing(job.id)
    done = await store.jobs.update_status(job.id, "completed", error=None)
    assert done.error is None  # explicit None: stored as NULL


ALLOWED = [
    ("pending", "processing"),
    ("processing", "completed"),
    ("processing", "failed"),
    ("processing", "pending"),
    ("failed", "pending"),
    ("pending", "cancelled"),
    ("processing", "cancelled"),
]
STATUSES = ["pending", "processing", "completed", "failed", "cancelled"]
REFUSED = [(a, b) for a in STATUSES for b in STATUSES if (a, b) not in ALLOWED]


async def job_in(store: Store, status: str) -> Job:
    job = await new_job(store)
    if status == "pending":
        return job
    moved = await store.jobs.start_processing(job.id)
    if status == "processing":
        return moved
    return await store.jobs.update_status(job.id, status)


@pytest.mark.parametrize(("current", "target"), ALLOWED)
async def test_allowed_transition(store: Store, current: str, target: str) -> None:
    job = await job_in(store, current)
    moved = await store.jobs.update_status(job.id, target)
    assert moved.status == target
    assert (moved.completed_at is not None) == (target in ("completed", "failed", "cancelled"))


@pytest.mark.parametrize(("current", "target"), REFUSED)
async def test_refused_transition_raises_and_changes_nothing(
    store: Store, current: str, target: str
) -> None:
    job = await job_in(store, current)
    before = await store.jobs.get_by_id(job.id)
    # update_status(..., "cancelled") is jobs.cancel, which takes no outcome values.
    extra: dict[str, Any] = {} if target == "cancelled" else {"error": "x", "result": {"a": 1}}
    with pytest.raises(InvalidTransition) as info:
        await store.jobs.update_status(job.id, target, **extra)
    assert (info.value.current, info.value.target) == (current, target)
    assert await store.jobs.get_by_id(job.id) == before


async def test_update_status_of_missing_job_raises_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.jobs.update_status(uuid.uuid4(), "completed")


async def test_update_status_validates_before_sql(store: Store) -> None:
    job = await job_in(store, "processing")
    with pytest.raises(ValidationError):
        await store.jobs.update_status(job.id, "completed", processing_time_ms=-1)
    with pytest.raises(ValidationError):
        await store.jobs.update_status(job.id, "completed", result={"x": float("nan")})
    with pytest.raises(ValidationError):
        await store.jobs.update_status(job.id, "completed", error="nul\x00")
    with pytest.raises(ValidationError):
        await store.jobs.update_status(job.id, "archived")
    assert (await store.jobs.get_by_id(job.id)) == job


async def test_delete_returns_true_then_false(store: Store) -> None:
    job = await new_job(store)
    assert await store.jobs.delete(job.id) is True
    assert await store.jobs.delete(job.id) is False
    assert await store.jobs.get_by_id(job.id) is None


async def test_count_by_status_includes_zero_counts(store: Store) -> None:
    assert await store.jobs.count_by_status() == dict.fromkeys(JobStatus, 0)
    await new_job(store)
    await new_job(store)
    await job_in(store, "failed")
    counts = await store.jobs.count_by_status()
    assert counts == {
        JobStatus.PENDING: 2,
        JobStatus.PROCESSING: 0,
        JobStatus.COMPLETED: 0,
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 0,
    }


@pytest.mark.parametrize("shape", ["list", "dict"])
async def test_a_job_type_nested_thousands_deep_is_refused_before_sql(
    store: Store, shape: str
) -> None:
    value: object = "audio"
    for _ in range(10_000):
        value = [value] if shape == "list" else {"a": value}
    with pytest.raises(ValidationError, match="job_type: Value error, must be text"):
        await store.jobs.create({"job_type": value, "media_url": "s3://b/a"})
    assert await store.jobs.count_by_status() == dict.fromkeys(JobStatus, 0)
