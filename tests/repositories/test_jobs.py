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


# The listings by time, any status: one ordered range of jobs_status_created_at_idx per status,
# merged (migrations/0012 dropped the index on (created_at, id) alone).
TIME_LISTINGS = ("get_all_jobs", "list_jobs_of_type")


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a plan in EXPLAIN (FORMAT JSON) form, the root first."""
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(plan_nodes(child))
    return nodes


async def explain(conn: Any, sql: str, *args: object) -> dict[str, Any]:
    """The plan of ``sql`` with ``args`` (a custom plan, as the first runs of a prepared
    statement get), on a connection of the store (its codecs decode the JSON)."""
    plan: dict[str, Any] = (await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))[0]["Plan"]
    return plan


async def fill_jobs(conn: Any, finished: int, pending: int) -> None:
    """``finished`` jobs in the three finished statuses and ``pending`` newer pending ones, on a
    table autovacuum leaves alone: it stays never analyzed until the test analyzes it."""
    await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    await conn.execute(
        "INSERT INTO jobs (job_type, media_url, status, created_at, completed_at)"
        " SELECT (ARRAY['audio', 'video'])[1 + g % 2], 'https://x/' || g,"
        " (ARRAY['completed', 'failed', 'cancelled'])[1 + g % 3],"
        " now() - interval '1 day' - g * interval '1 second', now()"
        " FROM generate_series(1, $1::int) AS g",
        finished,
    )
    await conn.execute(
        "INSERT INTO jobs (job_type, media_url, created_at)"
        " SELECT 'document', 'https://y/' || g, now() - g * interval '1 second'"
        " FROM generate_series(1, $1::int) AS g",
        pending,
    )


async def test_time_listings_merge_the_status_ranges_in_every_table_state(store: Store) -> None:
    # Without jobs_created_at_idx a listing by time must not read or sort the table: each
    # status's range of jobs_status_created_at_idx in order, merged, stopped at the page,
    # whether the table was analyzed or not (before: a sort of every status's jobs).
    from media_store.db.queries import QUERIES

    async with store.connection() as repos:
        conn = repos.executor
        await fill_jobs(conn, 200_000, 20_000)
        middle = await conn.fetchrow(
            "SELECT created_at, id FROM jobs WHERE status = 'failed'"
            " ORDER BY created_at DESC, id DESC OFFSET 30000 LIMIT 1"
        )
        assert middle is not None
        calls: list[tuple[str, tuple[object, ...]]] = [
            ("get_all_jobs", (100, 0)),
            ("get_all_jobs", (100, 50_000)),
            ("get_all_jobs", (10_000, 0)),
            # list_jobs_of_type with no type: the keyset page of list_jobs(after=...)
            ("list_jobs_of_type", (None, middle["created_at"], middle["id"], 100)),
            ("list_jobs_of_type", (None, middle["created_at"], middle["id"], 10_000)),
            ("list_jobs_of_type", ("video", middle["created_at"], middle["id"], 100)),
        ]
        for state in ("never analyzed", "analyzed"):
            if state == "analyzed":
                await conn.execute("ANALYZE jobs")
            analyzed = await conn.fetchval(
                "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL"
                " FROM pg_stat_user_tables WHERE relname = 'jobs'"
            )
            assert analyzed == (state == "analyzed")
            for name, args in calls:
                plan = await explain(conn, QUERIES[name].sql, *args)
                check_merged(plan, (state, "custom", name, args))
                # and as a prepared statement runs once it settles on a generic plan
                await conn.execute("SET plan_cache_mode = force_generic_plan")
                await conn.execute(f"PREPARE listing AS {QUERIES[name].sql}")
                # EXECUTE takes no parameters: its arguments as literals, quoted by the server
                values = [
                    await conn.fetchval(
                        "SELECT quote_nullable($1::text)", None if a is None else str(a)
                    )
                    for a in args
                ]
                plan = await explain(conn, f"EXECUTE listing({', '.join(values)})")
                await conn.execute("DEALLOCATE listing")
                await conn.execute("RESET plan_cache_mode")
                check_merged(plan, (state, "generic", name, args))


def check_merged(plan: dict[str, Any], where: tuple[object, ...]) -> None:
    """``plan`` is a page (Limit) of five backward range scans of jobs_status_created_at_idx,
    merged in order: nothing read or sorted beyond them."""
    nodes = plan_nodes(plan)
    kinds = {n["Node Type"] for n in nodes}
    where = (*where, kinds)
    assert plan["Node Type"] == "Limit", where
    merged = [c for c in plan["Plans"] if c["Parent Relationship"] == "Outer"]
    assert merged[0]["Node Type"] == "Merge Append", where
    assert not kinds & {"Seq Scan", "Sort", "Incremental Sort", "Bitmap Heap Scan"}, where
    scans = [n for n in nodes if n.get("Relation Name") == "jobs"]
    assert len(scans) == 5, where
    assert all(
        n["Node Type"] in ("Index Scan", "Index Only Scan")
        and n["Index Name"] == "jobs_status_created_at_idx"
        and n["Scan Direction"] == "Backward"
        for n in scans
    ), where


async def test_time_listings_read_every_status_the_database_allows(store: Store) -> None:
    # A status added to jobs_status_check without its range in these queries would vanish
    # from every listing by time.
    import re

    from media_store.db.queries import QUERIES

    async with store.connection() as repos:
        check = await repos.executor.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conname = 'jobs_status_check' AND conrelid = 'jobs'::regclass"
        )
    allowed = set(re.findall(r"'([^']+)'", check))
    assert allowed == {s.value for s in JobStatus}
    for name in TIME_LISTINGS:
        ranges = re.findall(r"WHERE status = '([^']+)'", QUERIES[name].sql)
        assert sorted(ranges) == sorted(allowed), name  # each status once


async def test_time_listings_return_the_order_of_a_sort_of_every_job(store: Store) -> None:
    # The merged ranges give exactly what ORDER BY created_at DESC, id DESC over the whole
    # table gives: every status, ties on created_at broken by id, pages without gaps.
    async with store.connection() as repos:
        conn = repos.executor
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url, status, created_at, started_at,"
            " completed_at, locked_by, locked_until)"
            " SELECT (ARRAY['audio', 'video', 'document'])[1 + g % 3], 'https://x/' || g, s,"
            " at, CASE WHEN s <> 'pending' THEN at END,"
            " CASE WHEN s IN ('completed', 'failed', 'cancelled') THEN at END,"
            " CASE WHEN s = 'processing' THEN 'w' END,"
            " CASE WHEN s = 'processing' THEN now() + interval '1 hour' END"
            " FROM generate_series(1, 500) AS g,"
            " LATERAL (SELECT (ARRAY['pending', 'processing', 'completed', 'failed',"
            " 'cancelled'])[1 + (g * 7) % 5] AS s,"
            " timestamptz '2026-01-01' + (g % 40) * interval '1 second' AS at) AS v"
        )
        expected = [
            r["id"]
            for r in await conn.fetch("SELECT id FROM jobs ORDER BY created_at DESC, id DESC")
        ]
        videos = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM jobs WHERE job_type = 'video' ORDER BY created_at DESC, id DESC"
            )
        ]
    assert [j.id for j in await store.jobs.get_all(limit=1000)] == expected
    by_offset = [j.id for o in range(0, 500, 70) for j in await store.jobs.get_all(70, o)]
    assert by_offset == expected
    for kind, wanted in ((None, expected), (JobType.VIDEO, videos)):
        seen: list[uuid.UUID] = []
        page = await store.jobs.list_jobs(limit=33, job_type=kind)
        seen += [j.id for j in page.jobs]
        while page.next is not None:
            page = await store.jobs.list_jobs(page.next, limit=33, job_type=kind)
            seen += [j.id for j in page.jobs]
        assert seen == wanted, kind


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
