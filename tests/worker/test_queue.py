"""The jobs table as a work queue: claims, leases, heartbeats, guarded writes, reclaiming."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from media_store import (
    Dsn,
    Job,
    JobNotFound,
    JobStatus,
    LeaseLost,
    Settings,
    Store,
    ValidationError,
    migrate,
)
from media_store.db.queries import QUERIES
from media_store.repositories.jobs import MANUAL_HOLDER


async def add_jobs(store: Store, count: int, job_type: str = "audio") -> list[Job]:
    return [
        await store.jobs.create({"job_type": job_type, "media_url": f"https://x/{i}"})
        for i in range(count)
    ]


async def job(store: Store, job_id: uuid.UUID) -> Job:
    found = await store.jobs.get_by_id(job_id)
    assert found is not None
    return found


async def test_claim_takes_oldest_first_under_a_lease(store: Store) -> None:
    created = await add_jobs(store, 5)
    claimed = await store.jobs.claim("w1", limit=3, lease=timedelta(seconds=30))
    assert [j.id for j in claimed] == [j.id for j in created[:3]]
    for j in claimed:
        assert j.status is JobStatus.PROCESSING
        assert j.locked_by == "w1"
        assert j.attempts == 1
        assert j.started_at is not None and j.locked_until is not None
        assert j.heartbeat_at == j.started_at
        lease = (j.locked_until - j.started_at).total_seconds()
        assert 29.9 < lease <= 30.0
    # The next claim never returns a job someone holds.
    second = await store.jobs.claim("w2", limit=10)
    assert [j.id for j in second] == [j.id for j in created[3:]]
    assert await store.jobs.claim("w3", limit=10) == []


async def test_claim_filters_by_job_type(store: Store) -> None:
    audio = await add_jobs(store, 2, "audio")
    video = await add_jobs(store, 2, "video")
    document = await add_jobs(store, 1, "document")
    assert [j.id for j in await store.jobs.claim("w", ["video"], limit=5)] == [j.id for j in video]
    both = await store.jobs.claim("w", ["document", "audio"], limit=5)
    assert [j.id for j in both] == [j.id for j in audio + document]
    assert await store.jobs.claim("w", "audio", limit=5) == []


async def test_concurrent_claims_on_separate_connections_never_share_a_job(
    store: Store, settings: Settings
) -> None:
    created = await add_jobs(store, 60)
    stores = [await Store.open(settings=settings) for _ in range(6)]
    try:

        async def drain(s: Store, name: str) -> list[uuid.UUID]:
            got: list[uuid.UUID] = []
            while batch := await s.jobs.claim(name, limit=4):
                got.extend(j.id for j in batch)
            return got

        results = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate(stores)))
    finally:
        for s in stores:
            await s.close()
    everything = [job_id for ids in results for job_id in ids]
    assert sorted(everything) == sorted(j.id for j in created)
    assert len(set(everything)) == len(everything)


async def test_heartbeat_extends_held_leases_and_reports_lost_ones(store: Store) -> None:
    a, b, c = await add_jobs(store, 3)
    await store.jobs.claim("w1", limit=2, lease=5)
    await store.jobs.claim("w2", limit=1, lease=5)
    before = await job(store, a.id)

    beat = await store.jobs.heartbeat("w1", [a.id, b.id, c.id, uuid.uuid4()], lease=60)

    assert beat.extended == [a.id, b.id]
    assert len(beat.lost) == 2 and c.id in beat.lost
    after = await job(store, a.id)
    assert after.locked_until is not None and before.locked_until is not None
    assert after.locked_until > before.locked_until
    assert after.heartbeat_at is not None and after.heartbeat_at > after.started_at  # type: ignore[operator]
    assert (await job(store, c.id)).locked_by == "w2"  # untouched


async def test_complete_stores_result_and_database_timing(store: Store) -> None:
    (created,) = await add_jobs(store, 1)
    (claimed,) = await store.jobs.claim("w1")
    await asyncio.sleep(0.02)
    done = await store.jobs.complete(created.id, "w1", {"words": 3})
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"words": 3}
    assert done.locked_by == "w1" and done.locked_until is None
    assert done.completed_at is not None and claimed.started_at is not None
    elapsed_ms = (done.completed_at - claimed.started_at).total_seconds() * 1000
    assert done.processing_time_ms is not None and done.processing_time_ms >= 20
    assert abs(done.processing_time_ms - elapsed_ms) <= 1


async def test_writes_without_the_lease_raise_lease_lost_and_change_nothing(
    store: Store,
) -> None:
    (created,) = await add_jobs(store, 1)
    await store.jobs.claim("w1")
    before = await job(store, created.id)

    with pytest.raises(LeaseLost) as lost:
        await store.jobs.complete(created.id, "w2", {"stolen": True})
    assert (lost.value.job_id, lost.value.worker_id) == (created.id, "w2")
    with pytest.raises(LeaseLost):
        await store.jobs.fail(created.id, "w2", "nope")
    assert await store.jobs.release("w2", [created.id]) == []
    assert await job(store, created.id) == before

    await store.jobs.complete(created.id, "w1")
    finished = await job(store, created.id)
    with pytest.raises(LeaseLost):  # finishing twice: the lease ended with the first
        await store.jobs.complete(created.id, "w1", {"again": True})
    assert await job(store, created.id) == finished


async def test_complete_many_completes_held_jobs_and_reports_lost_ones(store: Store) -> None:
    a, b, c = await add_jobs(store, 3)
    await store.jobs.claim("w1", limit=2)
    await store.jobs.claim("w2", limit=1)
    theirs = await job(store, c.id)
    missing = uuid.uuid4()

    outcome = await store.jobs.complete_many(
        "w1", {b.id: {"n": 2}, a.id: None, c.id: {"stolen": True}, missing: {}}
    )

    assert outcome.completed == [b.id, a.id]
    assert outcome.lost == [c.id, missing]
    first, second = await job(store, a.id), await job(store, b.id)
    assert (first.status, first.result) == (JobStatus.COMPLETED, None)
    assert (second.status, second.result) == (JobStatus.COMPLETED, {"n": 2})
    assert second.processing_time_ms is not None and second.completed_at is not None
    assert await job(store, c.id) == theirs
    with pytest.raises(ValidationError):
        await store.jobs.complete_many("w2", {c.id: {"x": float("inf")}})
    assert await job(store, c.id) == theirs


async def test_writes_on_a_missing_job_raise_job_not_found(store: Store) -> None:
    missing = uuid.uuid4()
    with pytest.raises(JobNotFound):
        await store.jobs.complete(missing, "w1")
    with pytest.raises(JobNotFound):
        await store.jobs.fail(missing, "w1", "gone")


async def test_retryable_failure_returns_to_pending_until_attempts_run_out(store: Store) -> None:
    (created,) = await add_jobs(store, 1)
    assert created.max_attempts == 3
    for attempt in (1, 2):
        (claimed,) = await store.jobs.claim("w1")
        assert claimed.attempts == attempt
        retried = await store.jobs.fail(created.id, "w1", f"boom {attempt}", retry=True)
        assert retried.status is JobStatus.PENDING
        assert retried.error == f"boom {attempt}"
        assert (retried.locked_by, retried.locked_until, retried.started_at) == (None, None, None)
        assert retried.completed_at is None
    (claimed,) = await store.jobs.claim("w2")
    assert claimed.attempts == 3
    final = await store.jobs.fail(created.id, "w2", "boom 3", retry=True)
    assert final.status is JobStatus.FAILED
    assert final.error == "boom 3"
    assert final.attempts == 3 and final.locked_by == "w2"
    assert final.completed_at is not None and final.processing_time_ms is not None
    assert await store.jobs.claim("w1") == []


async def test_failure_without_retry_is_final_at_once(store: Store) -> None:
    (created,) = await add_jobs(store, 1)
    await store.jobs.claim("w1")
    failed = await store.jobs.fail(created.id, "w1", "corrupt file", retry=False)
    assert failed.status is JobStatus.FAILED and failed.attempts == 1


async def test_retry_backoff_keeps_the_job_from_claims_until_due(store: Store) -> None:
    first, second = await add_jobs(store, 2)
    await store.jobs.claim("w1")
    backed_off = await store.jobs.fail(first.id, "w1", "rate limited", retry_in=3600)
    assert backed_off.status is JobStatus.PENDING and backed_off.run_after is not None
    assert [j.id for j in await store.jobs.claim("w1", limit=5)] == [second.id]
    # An operator requeue clears the backoff: claimable at once.
    async with store.connection() as repos:
        await repos.executor.execute(
            "UPDATE jobs SET run_after = now() - interval '1 second' WHERE id = $1", first.id
        )
    assert [j.id for j in await store.jobs.claim("w1")] == [first.id]


async def test_a_claim_walks_priorities_past_locked_and_scheduled_levels(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """The claim reads one priority at a time (migrations/0013): a level whose jobs are all
    scheduled for later is passed over, one whose due jobs another claimer holds locked is
    skipped (SKIP LOCKED), and a claim fills its limit across levels in claim order."""
    jobs = store.jobs
    tomorrow = "now() + interval '1 day'"
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, priority, run_after, created_at)"
        f" SELECT 'audio', 'later-' || g, 90, {tomorrow}, now() - interval '1 hour'"
        " FROM generate_series(1, 50) AS g"
    )
    locked = await jobs.create({"job_type": "audio", "media_url": "locked", "priority": 50})
    top = [
        await jobs.create({"job_type": "audio", "media_url": f"ten-{i}", "priority": 10})
        for i in range(2)
    ]
    # Due a minute ago at priority 0: ahead of the priority-0 jobs created since, behind none.
    scheduled = await raw.fetchval(
        "INSERT INTO jobs (job_type, media_url, run_after, created_at)"
        " VALUES ('audio', 'was-scheduled', now() - interval '1 minute', now() - interval '1 day')"
        " RETURNING id"
    )
    zero = [await jobs.create({"job_type": "audio", "media_url": f"zero-{i}"}) for i in range(3)]

    async with raw.transaction():  # another claimer holds the priority-50 job
        await raw.execute("SELECT FROM jobs WHERE id = $1 FOR UPDATE", locked.id)
        taken = await jobs.claim("w", ["audio"], limit=4)
        assert [j.id for j in taken] == [top[0].id, top[1].id, scheduled, zero[0].id]
        taken = await jobs.claim("w", limit=4)
        assert [j.id for j in taken] == [zero[1].id, zero[2].id]
    assert [j.id for j in await jobs.claim("w", limit=4)] == [locked.id]
    assert await jobs.claim("w", limit=4) == []
    assert await raw.fetchval("SELECT count(*) FROM jobs WHERE status = 'pending'") == 50


async def expire(store: Store, job_id: uuid.UUID) -> None:
    """Move a lease's expiry into the past, as waiting for it would."""
    async with store.connection() as repos:
        await repos.executor.execute(
            "UPDATE jobs SET locked_until = clock_timestamp() - interval '1 second' WHERE id = $1",
            job_id,
        )


async def test_reclaim_returns_expired_jobs_to_pending_or_fails_them(store: Store) -> None:
    fresh, expired, exhausted = await add_jobs(store, 3)
    async with store.connection() as repos:
        await repos.executor.execute("UPDATE jobs SET max_attempts = 1 WHERE id = $1", exhausted.id)
    await store.jobs.claim("w1", limit=3, lease=60)
    await expire(store, expired.id)
    await expire(store, exhausted.id)

    reclaimed = {j.id: j for j in await store.jobs.reclaim_expired()}

    assert set(reclaimed) == {expired.id, exhausted.id}
    back = reclaimed[expired.id]
    assert back.status is JobStatus.PENDING and back.locked_by is None and back.attempts == 1
    assert back.error is not None and "lease of w1 expired" in back.error
    dead = reclaimed[exhausted.id]
    assert dead.status is JobStatus.FAILED and dead.completed_at is not None
    assert dead.error is not None and "w1" in dead.error
    assert (await job(store, fresh.id)).locked_by == "w1"
    assert await store.jobs.reclaim_expired() == []
    with pytest.raises(LeaseLost):
        await store.jobs.complete(expired.id, "w1")
    (again,) = await store.jobs.claim("w2")
    assert again.id == expired.id and again.attempts == 2


async def test_concurrent_reclaims_take_each_expired_job_once(
    store: Store, settings: Settings
) -> None:
    created = await add_jobs(store, 30)
    await store.jobs.claim("w1", limit=30, lease=60)
    async with store.connection() as repos:
        await repos.executor.execute("UPDATE jobs SET locked_until = now() - interval '1 s'")
    stores = [await Store.open(settings=settings) for _ in range(4)]
    try:
        results = await asyncio.gather(*(s.jobs.reclaim_expired() for s in stores))
    finally:
        for s in stores:
            await s.close()
    ids = [j.id for batch in results for j in batch]
    assert sorted(ids) == sorted(j.id for j in created)


async def test_heartbeating_job_is_kept_and_silent_one_reclaimed(store: Store) -> None:
    kept, silent = await add_jobs(store, 2)
    await store.jobs.claim("w1", limit=2, lease=2)
    reclaimed: list[uuid.UUID] = []

    async def beat_and_reclaim() -> None:
        beat = await store.jobs.heartbeat("w1", [kept.id], lease=2)
        assert beat.lost == []
        reclaimed.extend(j.id for j in await store.jobs.reclaim_expired())
        await asyncio.sleep(0.2)

    async with asyncio.timeout(30):
        while silent.id not in reclaimed:
            await beat_and_reclaim()
        # Both leases began together, so the beating job's first lease is over too; keep going
        # for more than another lease length: it must survive on heartbeats alone.
        for _ in range(12):
            await beat_and_reclaim()

    assert reclaimed == [silent.id]
    held = await job(store, kept.id)
    assert held.status is JobStatus.PROCESSING and held.locked_by == "w1"
    assert (await store.jobs.complete(kept.id, "w1")).attempts == 1


async def test_release_gives_jobs_back_without_counting_the_attempt(store: Store) -> None:
    a, b = await add_jobs(store, 2)
    await store.jobs.claim("w1", limit=2)
    assert await store.jobs.release("w1", [b.id, a.id]) == [b.id, a.id]
    again = await store.jobs.claim("w2", limit=2)
    assert [(j.id, j.attempts) for j in again] == [(a.id, 1), (b.id, 1)]


async def test_start_processing_and_update_status_take_a_manual_lease(store: Store) -> None:
    a, b = await add_jobs(store, 2)
    started = await store.jobs.start_processing(a.id)
    assert started.locked_by == MANUAL_HOLDER and started.attempts == 1
    assert started.locked_until is not None and started.started_at is not None
    assert (started.locked_until - started.started_at) == timedelta(hours=1)
    moved = await store.jobs.update_status(b.id, "processing")
    assert moved.locked_by == MANUAL_HOLDER and moved.attempts == 1
    assert moved.locked_until is not None and moved.started_at is not None
    assert timedelta(minutes=59) < moved.locked_until - moved.started_at < timedelta(minutes=61)
    # The manual holder finishes through the guarded path like any worker.
    assert (await store.jobs.complete(a.id, MANUAL_HOLDER)).status is JobStatus.COMPLETED
    back = await store.jobs.update_status(b.id, "pending")
    assert (back.locked_by, back.locked_until, back.heartbeat_at) == (None, None, None)


BAD_CALLS: dict[str, Any] = {
    "empty worker id": lambda s: s.jobs.claim(""),
    "long worker id": lambda s: s.jobs.claim("w" * 201),
    "NUL in worker id": lambda s: s.jobs.claim("w\x00"),
    "limit 0": lambda s: s.jobs.claim("w", limit=0),
    "limit too big": lambda s: s.jobs.claim("w", limit=1001),
    "zero lease": lambda s: s.jobs.claim("w", lease=0),
    "negative lease": lambda s: s.jobs.claim("w", lease=timedelta(seconds=-1)),
    "nan lease": lambda s: s.jobs.claim("w", lease=float("nan")),
    "unknown job type": lambda s: s.jobs.claim("w", ["image"]),
    "no job types": lambda s: s.jobs.claim("w", []),
    "heartbeat lease 0": lambda s: s.jobs.heartbeat("w", [uuid.uuid4()], lease=0),
    "NaN in result": lambda s: s.jobs.complete(uuid.uuid4(), "w", {"x": float("nan")}),
    "result not an object": lambda s: s.jobs.complete(uuid.uuid4(), "w", [1]),
    "NUL in error": lambda s: s.jobs.fail(uuid.uuid4(), "w", "a\x00b"),
    "negative backoff": lambda s: s.jobs.fail(uuid.uuid4(), "w", "e", retry_in=-1),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
async def test_bad_queue_input_is_refused_before_sql(store: Store, call: Any) -> None:
    await add_jobs(store, 2)
    before = await store.jobs.get_all()
    with pytest.raises(ValidationError):
        await call(store)
    assert await store.jobs.get_all() == before


CONSTRAINT_CASES = {
    "processing without a holder": (
        "UPDATE jobs SET status = 'processing', started_at = now(),"
        " locked_until = now() WHERE id = $1",
        "jobs_processing_lease_check",
    ),
    "pending with a holder": (
        "UPDATE jobs SET locked_by = 'w' WHERE id = $1",
        "jobs_unleased_check",
    ),
    "pending with a lease": (
        "UPDATE jobs SET locked_until = now() WHERE id = $1",
        "jobs_unleased_check",
    ),
    "pending with completed_at": (
        "UPDATE jobs SET completed_at = now() WHERE id = $1",
        "jobs_completed_at_check",
    ),
    "max_attempts 0": ("UPDATE jobs SET max_attempts = 0 WHERE id = $1", "jobs_max_attempts_check"),
    "negative attempts": ("UPDATE jobs SET attempts = -1 WHERE id = $1", "jobs_attempts_check"),
}


@pytest.mark.parametrize(("sql", "constraint"), CONSTRAINT_CASES.values(), ids=CONSTRAINT_CASES)
async def test_database_ties_lease_columns_to_the_status(
    raw: asyncpg.Connection[asyncpg.Record], sql: str, constraint: str
) -> None:
    job_id = await raw.fetchval(
        "INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'u') RETURNING id"
    )
    before = await raw.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await raw.execute(sql, job_id)
    assert refused.value.constraint_name == constraint
    assert await raw.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id) == before


async def test_0002_repairs_0001_rows_and_its_rollback_keeps_them(empty_db_url: str) -> None:
    dsn = Dsn(empty_db_url)
    ids = migrate.migration_ids()
    first, leases = ids[0], next(i for i in ids if i.startswith("0002_"))
    migrate.apply(dsn, target=first)
    conn = await asyncpg.connect(empty_db_url)
    try:
        # What 0001 allowed: a processing job with no holder, a completed one with no
        # completed_at, a pending one with a completed_at.
        await conn.execute(
            "INSERT INTO jobs (job_type, status, media_url, started_at, completed_at) VALUES"
            " ('audio', 'processing', 'u1', NULL, NULL),"
            " ('audio', 'completed', 'u2', now(), NULL),"
            " ('audio', 'pending', 'u3', NULL, now()),"
            " ('video', 'pending', 'u4', NULL, NULL)"
        )
        migrate.apply(dsn, target=leases)
        rows = {
            r["media_url"]: r
            for r in await conn.fetch(
                "SELECT media_url, status, locked_by, locked_until, started_at, completed_at,"
                " attempts FROM jobs"
            )
        }
        assert len(rows) == 4
        orphan = rows["u1"]
        assert orphan["status"] == "processing" and orphan["locked_by"] is not None
        assert orphan["started_at"] is not None and orphan["attempts"] == 1
        assert rows["u2"]["completed_at"] is not None
        assert rows["u3"]["completed_at"] is None
        # The orphan's lease is already over: the first reclaim hands it back. (The library
        # reads the columns of the latest schema: the rows are migrated on first.)
        migrate.apply(dsn)
        store = await Store.open(settings=Settings(dsn=dsn, min_size=1, max_size=2))
        try:
            [reclaimed] = await store.jobs.reclaim_expired()
            assert reclaimed.status is JobStatus.PENDING
        finally:
            await store.close()

        later = ids[ids.index(leases) :]
        assert migrate.rollback(dsn, count=len(later)) == later[::-1]
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 4
    finally:
        await conn.close()


async def test_reclaim_and_claim_read_indexes_on_a_large_table(store: Store) -> None:
    # The claim's own plans, in every table state: tests/repositories/test_claim_plan.py.
    async with store.connection() as repos:
        conn = repos.executor
        await conn.execute(
            "INSERT INTO jobs (job_type, status, media_url, created_at, started_at,"
            " completed_at, attempts, locked_by)"
            " SELECT CASE WHEN g % 100 = 0 THEN 'document' WHEN g % 2 = 0 THEN 'video'"
            " ELSE 'audio' END, 'completed', 'u' || g,"
            " now() - interval '1 day' + g * interval '1 ms', now(), now(), 1, 'w'"
            " FROM generate_series(1, 100000) AS g"
        )
        # Created in the past: a job is runnable from its creation (migrations/0007).
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url, created_at)"
            " SELECT CASE WHEN g % 100 = 0 THEN 'document' ELSE 'audio' END, 'p' || g,"
            " now() - interval '1 minute' + g * interval '1 ms' FROM generate_series(1, 10000) AS g"
        )
        await conn.execute("ANALYZE jobs")
        rows = await conn.fetch("EXPLAIN " + QUERIES["reclaim_expired_jobs"].sql)
        reclaim = "\n".join(r[0] for r in rows)
    # Expired leases are looked for among the processing jobs only (jobs_status_created_at_idx).
    assert "jobs_status_created_at_idx" in reclaim and "Seq Scan" not in reclaim, reclaim
    claimed = await store.jobs.claim("w", limit=10)
    assert [j.media_url for j in claimed] == [f"p{g}" for g in range(1, 11)]
    documents = await store.jobs.claim("w", ["document"], limit=10)
    assert [j.media_url for j in documents] == [f"p{100 * k}" for k in range(1, 11)]
