"""jobs.stats: exact figures per job type from small indexes, estimated finished totals, and
plans that never read the whole table (EXPLAIN), analyzed or not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from media_store import JobStatus, JobType, Store
from media_store.db.queries import QUERIES

TYPES = [t.value for t in JobType]


async def test_stats_count_each_figure_per_type_exactly(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    jobs = store.jobs
    for _ in range(3):
        await jobs.create({"job_type": "audio", "media_url": "s3://b/a"})
    video = await jobs.create({"job_type": "video", "media_url": "s3://b/v"})
    # video: one failed with a backoff (pending, not claimable), one failed for good,
    # one processing whose lease ran out, one completed, one cancelled.
    for _ in range(5):
        await jobs.create({"job_type": "video", "media_url": "s3://b/v"})
    claimed = await jobs.claim("w", ["video"], limit=6)
    assert claimed[0].id == video.id
    await jobs.fail(claimed[0].id, "w", "later", retry=True, retry_in=3600)
    await jobs.fail(claimed[1].id, "w", "broken", retry=False)
    await raw.execute(
        "UPDATE jobs SET locked_until = clock_timestamp() - interval '1 second' WHERE id = $1",
        claimed[2].id,
    )
    await jobs.complete(claimed[3].id, "w", None)
    await jobs.cancel(claimed[4].id)
    # An old failure: not in the last hour.
    await raw.execute(
        "UPDATE jobs SET completed_at = completed_at - interval '2 hours' WHERE id = $1",
        claimed[1].id,
    )
    await jobs.fail(claimed[5].id, "w", "broken", retry=False)

    stats = await jobs.stats()

    by_type = {s.job_type: s for s in stats.types}
    assert list(by_type) == list(JobType)
    audio, video_stats, document = (
        by_type[JobType.AUDIO],
        by_type[JobType.VIDEO],
        by_type[JobType.DOCUMENT],
    )
    assert (audio.pending, audio.claimable, audio.processing) == (3, 3, 0)
    assert audio.oldest_pending_s is not None and audio.oldest_pending_s >= 0
    assert (video_stats.pending, video_stats.claimable) == (1, 0)  # the backoff
    assert (video_stats.processing, video_stats.expired_leases) == (1, 1)
    assert (video_stats.failed_last_hour, video_stats.cancelled_last_hour) == (1, 1)
    assert video_stats.completed_last_minute == 1
    assert (document.pending, document.oldest_pending_s, document.processing) == (0, None, 0)
    total = stats.total
    assert total.job_type is None
    assert (total.pending, total.claimable, total.processing, total.expired_leases) == (4, 3, 1, 1)
    assert (total.failed_last_hour, total.cancelled_last_hour, total.completed_last_minute) == (
        1,
        1,
        1,
    )
    assert total.oldest_pending_s == audio.oldest_pending_s
    assert total.at.tzinfo is not None and abs(total.at - datetime.now(UTC)).total_seconds() < 60
    # Never analyzed: the finished totals are unknown rather than wrong.
    assert (total.completed_estimate, total.failed_estimate, total.cancelled_estimate) == (
        None,
        None,
        None,
    )
    assert all(s.completed_estimate is None for s in stats.types)


async def fill(raw: asyncpg.Connection[asyncpg.Record], finished: int, pending: int) -> None:
    """``finished`` finished jobs (completed, every 20th failed, every 50th cancelled) over the
    last day, and ``pending`` pending ones."""
    await raw.execute(
        """
        INSERT INTO jobs (job_type, status, media_url, started_at, completed_at, locked_by)
        SELECT (ARRAY['video', 'audio', 'document'])[1 + g % 3],
               CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 50 = 1 THEN 'cancelled'
                    ELSE 'completed' END,
               'https://x/' || g, clock_timestamp() - interval '2 days',
               clock_timestamp() - (g % 86400) * interval '1 second', 'w'
        FROM generate_series(1, $1::int) AS g
        """,
        finished,
    )
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url) SELECT 'audio', 'https://p/' || g"
        " FROM generate_series(1, $1::int) AS g",
        pending,
    )


async def plan(raw: asyncpg.Connection[asyncpg.Record], name: str, *args: object) -> str:
    rows = await raw.fetch("EXPLAIN " + QUERIES[name].sql, *args)
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("analyzed", [False, True], ids=["never analyzed", "analyzed"])
async def test_stats_read_small_indexes_only_never_the_finished_jobs(
    store: Store, raw: asyncpg.Connection[asyncpg.Record], analyzed: bool
) -> None:
    await fill(raw, finished=60_000, pending=500)
    if analyzed:
        await raw.execute("VACUUM ANALYZE jobs")

    shown = await plan(raw, "get_job_stats", TYPES)

    assert "Seq Scan on jobs" not in shown, shown
    assert "jobs_claim_type_idx" in shown  # pending, oldest pending
    assert "jobs_delayed_idx" in shown  # not claimable yet
    assert "jobs_finished_idx" in shown  # failed / cancelled / completed lately
    assert "jobs_status_created_at_idx" in shown  # processing, expired leases
    if analyzed:  # the recent finished jobs: from the index alone
        assert "Index Only Scan using jobs_finished_idx" in shown, shown
    stats = await store.jobs.stats()
    assert stats.total.pending == 500
    if analyzed:
        real = {
            row["status"]: row["n"]
            for row in await raw.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        }
        for status, estimate in (
            ("completed", stats.total.completed_estimate),
            ("failed", stats.total.failed_estimate),
            ("cancelled", stats.total.cancelled_estimate),
        ):
            assert estimate is not None and abs(estimate - real[status]) <= 0.1 * real[status]
    else:
        assert stats.total.completed_estimate is None


@pytest.mark.parametrize("analyzed", [False, True], ids=["never analyzed", "analyzed"])
async def test_a_purge_batch_reads_its_batch_not_every_finished_job(
    raw: asyncpg.Connection[asyncpg.Record], analyzed: bool
) -> None:
    await fill(raw, finished=60_000, pending=500)
    if analyzed:
        await raw.execute("VACUUM ANALYZE jobs")
    start = (datetime(1, 1, 1, tzinfo=UTC), uuid.UUID(int=0))
    counters = (
        "SELECT seq_scan, idx_scan, idx_tup_fetch FROM pg_stat_xact_user_tables"
        " WHERE relname = 'jobs'"
    )
    for lock in (False, True):
        async with raw.transaction():
            before = await raw.fetchrow(counters)
            walked = await raw.fetchval(
                "SELECT count(*) FROM media_store_finished_jobs("
                "'completed', clock_timestamp(), $1, $2, 100, $3)",
                *start,
                lock,
            )
            after = await raw.fetchrow(counters)
        assert walked == 100 and before is not None and after is not None
        read = {key: after[key] - before[key] for key in ("seq_scan", "idx_scan", "idx_tup_fetch")}
        # One ordered range scan stopped after the batch, not a bitmap of all ~56,000.
        assert read["seq_scan"] == 0 and read["idx_scan"] == 1, read
        assert read["idx_tup_fetch"] <= 110, read


@pytest.mark.parametrize("analyzed", [False, True], ids=["never analyzed", "analyzed"])
async def test_a_filtered_listing_walks_an_index_range(
    raw: asyncpg.Connection[asyncpg.Record], analyzed: bool
) -> None:
    await fill(raw, finished=60_000, pending=500)
    if analyzed:
        await raw.execute("VACUUM ANALYZE jobs")

    listing = await plan(
        raw,
        "list_jobs_in_status",
        "failed",
        None,
        datetime(9999, 12, 31, tzinfo=UTC),
        uuid.UUID(int=(1 << 128) - 1),
        50,
    )

    assert "Seq Scan on jobs" not in listing and "jobs_status_created_at_idx" in listing, listing
    if analyzed:  # never analyzed, the planner guesses a handful of rows and sorts them
        assert "Sort" not in listing, listing


async def test_the_status_enum_and_the_stats_know_every_status(store: Store) -> None:
    assert {s.value for s in JobStatus} == {
        "pending",
        "processing",
        "completed",
        "failed",
        "cancelled",
    }
    assert (await store.jobs.count_by_status())[JobStatus.CANCELLED] == 0


async def test_the_oldest_pending_age_counts_only_jobs_due_now(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    later = await store.jobs.create(
        {
            "job_type": "audio",
            "media_url": "s3://b/later",
            "run_after": datetime.now(UTC) + timedelta(hours=1),
        }
    )
    backing_off = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/retry"})
    [held] = await store.jobs.claim("w", limit=1)
    assert held.id == backing_off.id
    await store.jobs.fail(held.id, "w", "later", retry=True, retry_in=3600)
    # Both were created a day ago: an old backlog, were they due.
    await raw.execute(
        "UPDATE jobs SET created_at = created_at - interval '1 day' WHERE id = any($1::uuid[])",
        [later.id, backing_off.id],
    )

    audio = next(s for s in (await store.jobs.stats()).types if s.job_type == "audio")
    assert (audio.pending, audio.claimable, audio.oldest_pending_s) == (2, 0, None)

    due = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/now"})
    await raw.execute(
        "UPDATE jobs SET created_at = created_at - interval '5 minutes' WHERE id = $1", due.id
    )
    stats = await store.jobs.stats()
    audio = next(s for s in stats.types if s.job_type == "audio")
    assert audio.oldest_pending_s is not None and 300 <= audio.oldest_pending_s < 3600
    assert stats.total.oldest_pending_s == audio.oldest_pending_s


async def generic_plan(raw: asyncpg.Connection[asyncpg.Record], name: str, *args: object) -> str:
    """The plan a prepared statement settles on after its custom plans (plan_cache_mode
    force_generic_plan): parameters unknown, as asyncpg's statement cache meets them."""
    async with raw.transaction():
        await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        rows = await raw.fetch("EXPLAIN " + QUERIES[name].sql, *args)
    return "\n".join(row[0] for row in rows)


STATS_STATES = ["never analyzed", "analyzed", "analyzed, then 5% changed", "vacuumed"]


@pytest.mark.parametrize("state", STATS_STATES)
async def test_stats_stay_index_served_in_every_table_state_custom_or_generic(
    raw: asyncpg.Connection[asyncpg.Record], state: str
) -> None:
    """Autoanalyze runs far more often than autovacuum: after an ANALYZE the table is not
    all-visible, and a time bound the planner cannot see (a clock read in a CTE) was priced at
    a third of the finished jobs, so the recent completions were counted by a Seq Scan."""
    await raw.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
    await fill(raw, finished=100_000, pending=2_000)
    if state != "never analyzed":
        await raw.execute("VACUUM ANALYZE jobs" if state == "vacuumed" else "ANALYZE jobs")
    if state == "analyzed, then 5% changed":
        await raw.execute(
            "UPDATE jobs SET completed_at = clock_timestamp() - interval '10 seconds'"
            " WHERE id IN (SELECT id FROM jobs WHERE status = 'completed' LIMIT 5100)"
        )

    for shown in (
        await plan(raw, "get_job_stats", TYPES),
        await generic_plan(raw, "get_job_stats", TYPES),
    ):
        assert "Seq Scan on jobs" not in shown, shown
        assert shown.count("jobs_finished_idx") >= 3, shown  # the three recent ranges


async def test_the_oldest_pending_age_counts_from_when_a_job_became_due(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    """A job scheduled six hours after its creation, due a minute ago, has waited a minute."""
    await raw.execute(
        "INSERT INTO jobs (job_type, media_url, created_at, run_after)"
        " VALUES ('audio', 's3://b/s', now() - interval '6 hours', now() - interval '1 minute')"
    )
    audio = next(s for s in (await store.jobs.stats()).types if s.job_type == "audio")
    assert audio.oldest_pending_s is not None and 60 <= audio.oldest_pending_s < 120, audio
    assert (audio.pending, audio.claimable) == (1, 1)


async def test_claimable_counts_the_pending_jobs_due_now(store: Store) -> None:
    """claimable leaves out every pending job whose run_after is ahead: a retry's backoff and
    a start scheduled for later alike."""
    await store.jobs.create({"job_type": "audio", "media_url": "s3://b/now"})
    await store.jobs.create(
        {
            "job_type": "audio",
            "media_url": "s3://b/later",
            "run_after": datetime.now(UTC) + timedelta(hours=6),
        }
    )
    audio = next(s for s in (await store.jobs.stats()).types if s.job_type == "audio")
    assert (audio.pending, audio.claimable) == (2, 1)
