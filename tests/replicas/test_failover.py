"""Failover on real streaming replication: the primary dies (immediate shutdown: a crash), the
synchronous standby is promoted, and workers and callers whose URL lists both hosts with
``target_session_attrs=read-write`` carry on against the new primary by themselves.

What must hold: every job whose creation was acknowledged exists afterwards and completes
(synchronous replication: a commit is acknowledged once the standby has it), no handler runs
twice (the lease outlasts the outage), and every error a caller meets in between is a
media_store error (DatabaseUnavailable).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from media_store import DatabaseUnavailable, Dsn, Job, MediaStoreError, Settings, Store, migrate
from media_store.worker.runner import JobResult, WorkerStats, run_worker
from tests.support.replication_pg import primary_and_standby, promote, wait_replayed

WAIT = 45.0  # the longest any wait below may take before the test fails
WORKERS = 2
LEASE = 8.0  # longer than the outage: no job's lease expires, none runs twice


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110 - polling the database: no event
            await asyncio.sleep(0.02)


async def test_workers_and_callers_follow_a_promoted_standby(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL, logger="media_store")  # the outage logs, on purpose
    with primary_and_standby(synchronous=True) as (primary, standby):
        migrate.apply(Dsn(primary.url()))
        await wait_replayed(primary.url(), standby.url())
        both = (
            f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
            "?target_session_attrs=read-write"
        )
        settings = Settings(dsn=Dsn(both), min_size=1, max_size=3, connect_timeout=2.0)
        runs: Counter[uuid.UUID] = Counter()
        created: list[uuid.UUID] = []
        errors: list[MediaStoreError] = []
        stop = asyncio.Event()
        stop_creating = asyncio.Event()

        async def handler(job: Job) -> JobResult:
            runs[job.id] += 1
            await asyncio.sleep(0.01)
            return {"ran": runs[job.id]}

        async def create_loop(store: Store) -> None:
            i = 0
            while not stop_creating.is_set():
                i += 1
                try:
                    job = await store.jobs.create(
                        {"job_type": "audio", "media_url": f"https://x/{i}"}
                    )
                except MediaStoreError as exc:  # anything else fails the test
                    errors.append(exc)
                    await asyncio.sleep(0.05)
                else:
                    created.append(job.id)
                    await asyncio.sleep(0.01)

        stores = [await Store.open(settings=settings) for _ in range(WORKERS + 1)]
        workers = [
            asyncio.create_task(
                run_worker(
                    store,
                    handler,
                    worker_id=f"w{i}",
                    batch=5,
                    lease=LEASE,
                    poll_interval=0.05,
                    reclaim_every=1.0,
                    stop=stop,
                )
            )
            for i, store in enumerate(stores[:WORKERS])
        ]
        creator = asyncio.create_task(create_loop(stores[WORKERS]))
        try:

            async def progressed() -> bool:
                return sum(runs.values()) >= 30 and len(created) >= 30

            await until(progressed)
            before = len(created)
            await asyncio.to_thread(primary.stop, "immediate")

            async def outage_seen() -> bool:
                return len(errors) > 0

            await until(outage_seen)  # a caller has met the dead primary
            await asyncio.to_thread(promote, standby)

            async def creating_again() -> bool:
                return len(created) >= before + 30

            await until(creating_again)  # the creator's pool found the new primary
            stop_creating.set()
            await creator

            async def all_completed() -> bool:
                conn = await asyncpg.connect(standby.url())
                try:
                    left = await conn.fetchval(
                        "SELECT count(*) FROM jobs WHERE status <> 'completed'"
                    )
                finally:
                    await conn.close()
                return bool(left == 0)

            await until(all_completed)  # ... and so did the workers'
        finally:
            stop.set()
            stop_creating.set()
            stats: list[WorkerStats] = await asyncio.gather(*workers)
            await creator
            for store in stores:
                await store.close()

        conn = await asyncpg.connect(standby.url())
        try:
            assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
            rows = await conn.fetch("SELECT id, status, attempts FROM jobs")
        finally:
            await conn.close()

    stored = {row["id"]: row for row in rows}
    # No acknowledged job lost; a creation that failed may or may not have committed
    assert set(created) <= set(stored)
    assert len(created) <= len(stored) <= len(created) + len(errors)
    assert {row["status"] for row in rows} == {"completed"}
    # Every job ran exactly once: none completed twice (no lease expired)
    assert {job_id: runs[job_id] for job_id in stored} == dict.fromkeys(stored, 1)
    assert all(row["attempts"] >= 1 for row in rows)
    untyped = [repr(exc) for exc in errors if not isinstance(exc, DatabaseUnavailable)]
    assert untyped == []
    assert len(created) > before + 30 - 1
    assert sum(s.completed for s in stats) == len(stored)
    assert sum(s.lost + s.unwritten for s in stats) == 0
