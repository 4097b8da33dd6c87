"""Workers and callers through lost connections: backends killed under a worker, and a server
the test owns restarted (fast and immediate) while workers drain and jobs are created.

What must hold: every job completes; none runs twice unless its lease really expired (an
outcome whose connection died is written again on a new one while the lease holds); every
error a caller sees is a media_store error; the pool recovers by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from media_store import (
    DatabaseUnavailable,
    Dsn,
    Job,
    JobStatus,
    MediaStoreError,
    Settings,
    Store,
    migrate,
)
from media_store.worker.runner import JobResult, WorkerStats, run_worker
from tests.support.throwaway_pg import Cluster, ShutdownMode, throwaway_cluster

WAIT = 60.0  # seconds any wait below may take before the test fails


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110 - polling the database: no event
            await asyncio.sleep(0.02)


async def terminate_backends(url: str, application_name: str) -> int:
    """Kill every backend of ``application_name`` (and wait until they are gone)."""
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))"
                " FROM pg_stat_activity WHERE application_name = $1",
                application_name,
            )
        )
    finally:
        await conn.close()


# --- backends killed under a worker, on the test server ----------------------------------------


@pytest.mark.parametrize(
    "complete_within", [0.0, 60.0], ids=["completed-one-by-one", "completed-in-one-statement"]
)
async def test_a_completion_whose_connection_was_killed_is_written_on_a_new_one(
    db_url: str, complete_within: float
) -> None:
    # Each handler run kills every connection of the worker's pool (the one claims and
    # completions are held on, and the heartbeat's) just before the outcome is written.
    app = f"killed_{uuid.uuid4().hex[:8]}"
    settings = Settings(dsn=Dsn(db_url), min_size=2, max_size=3, application_name=app)
    runs: Counter[uuid.UUID] = Counter()
    killed = 0

    async def handler(job: Job) -> JobResult:
        nonlocal killed
        runs[job.id] += 1
        killed += await terminate_backends(db_url, app)
        return {"run": runs[job.id]}

    async with await Store.open(settings=settings) as store:
        jobs = [
            await store.jobs.create({"job_type": "audio", "media_url": f"https://x/{i}"})
            for i in range(6)
        ]
        # burst: the worker returns once nothing is left to claim or reclaim. A completion
        # given up would leave its job processing until the lease (far longer) expires.
        stats = await run_worker(
            store,
            handler,
            worker_id="w",
            batch=3,
            lease=30,
            complete_within=complete_within,
            burst=True,
        )
        after = [await store.jobs.get_by_id(job.id) for job in jobs]

    assert killed >= len(jobs)  # every outcome was written after its connection died
    assert [(j.status, j.attempts, j.result) for j in after if j] == [
        (JobStatus.COMPLETED, 1, {"run": 1})
    ] * len(jobs)
    assert runs == dict.fromkeys((job.id for job in jobs), 1)
    assert (stats.completed, stats.lost, stats.unwritten, stats.paused) == (len(jobs), 0, 0, 0)


async def test_a_failure_whose_connection_was_killed_is_written_on_a_new_one(
    db_url: str,
) -> None:
    app = f"killed_{uuid.uuid4().hex[:8]}"
    settings = Settings(dsn=Dsn(db_url), min_size=2, max_size=3, application_name=app)
    runs: Counter[uuid.UUID] = Counter()

    async def handler(job: Job) -> JobResult:
        runs[job.id] += 1
        await terminate_backends(db_url, app)
        if runs[job.id] == 1:
            raise RuntimeError("transcoder crashed")
        return {"run": runs[job.id]}

    async with await Store.open(settings=settings) as store:
        jobs = [
            await store.jobs.create({"job_type": "video", "media_url": f"https://x/{i}"})
            for i in range(3)
        ]
        stats = await run_worker(store, handler, worker_id="w", batch=3, lease=30, burst=True)
        after = [await store.jobs.get_by_id(job.id) for job in jobs]

    # Failed once (written, so retried at once), then completed: two runs, two attempts.
    assert [(j.status, j.attempts, j.result) for j in after if j] == [
        (JobStatus.COMPLETED, 2, {"run": 2})
    ] * len(jobs)
    assert runs == dict.fromkeys((job.id for job in jobs), 2)
    assert (stats.retried, stats.completed, stats.lost, stats.unwritten) == (3, 3, 0, 0)


# --- a server restarted under load ------------------------------------------------------------

INITIAL_JOBS = 600
WORKERS = 2
LEASE = 8.0  # far longer than an outage here (well under a second), as in production
RESTARTS: tuple[ShutdownMode, ...] = ("fast", "immediate", "fast", "immediate")
FLAKY_EVERY = 10  # every tenth job fails its first run (its failure must be written too)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        migrate.apply(Dsn(made.url()))
        yield made


@pytest.fixture
async def restart_db(cluster: Cluster) -> AsyncIterator[str]:
    """The migrated ``postgres`` database of the test's own cluster, emptied afterwards."""
    yield cluster.url()
    conn = await asyncpg.connect(cluster.url())
    try:
        await conn.execute("TRUNCATE jobs CASCADE")
    finally:
        await conn.close()


async def count_unfinished(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE status <> 'completed'"))
    finally:
        await conn.close()


@pytest.mark.slow
async def test_restarts_fast_and_immediate_while_workers_drain_and_jobs_are_created(
    cluster: Cluster, restart_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="media_store")  # outages log a lot, on purpose
    conn = await asyncpg.connect(restart_db)
    try:
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url, parameters, max_attempts)"
            " SELECT 'audio', 'https://x/' || g,"
            "        jsonb_build_object('flaky', g % $2::int = 0), 5"
            " FROM generate_series(1, $1::int) AS g",
            INITIAL_JOBS,
            FLAKY_EVERY,
        )
    finally:
        await conn.close()

    settings = Settings(dsn=Dsn(restart_db), min_size=1, max_size=3)
    runs: Counter[uuid.UUID] = Counter()
    flaky: set[uuid.UUID] = set()
    stop = asyncio.Event()
    stop_creating = asyncio.Event()
    created: list[uuid.UUID] = []
    create_errors: list[MediaStoreError] = []

    async def handler(job: Job) -> JobResult:
        runs[job.id] += 1
        await asyncio.sleep(0.01)  # some work, so that outages meet jobs in hand
        if job.parameters.get("flaky"):
            flaky.add(job.id)
            if runs[job.id] == 1:
                raise RuntimeError("flaky first run")
        return {"runs": runs[job.id]}

    async def create_loop(store: Store) -> None:
        i = 0
        while not stop_creating.is_set():
            i += 1
            try:
                job = await store.jobs.create(
                    {
                        "job_type": "video",
                        "media_url": f"https://y/{i}",
                        "parameters": {"flaky": i % FLAKY_EVERY == 0},
                        "max_attempts": 5,
                    }
                )
            except MediaStoreError as exc:  # anything else fails the test
                create_errors.append(exc)
            else:
                created.append(job.id)
            await asyncio.sleep(0.02)

    stores = [await Store.open(settings=settings) for _ in range(WORKERS + 1)]
    workers = [
        asyncio.create_task(
            run_worker(
                store,
                handler,
                worker_id=f"w{i}",
                batch=10,
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
        for mode in RESTARTS:
            done, made = sum(runs.values()), len(created)

            async def progressed(done: int = done, made: int = made) -> bool:
                return sum(runs.values()) >= done + 60 and len(created) >= made + 5

            await until(progressed)
            seen = len(create_errors)
            await asyncio.to_thread(cluster.stop, mode)

            async def outage_seen(seen: int = seen) -> bool:
                return len(create_errors) > seen

            await until(outage_seen)  # a caller has met the outage
            await asyncio.to_thread(cluster.start)

        made = len(created)

        async def creating_again() -> bool:
            return len(created) >= made + 5

        await until(creating_again)  # the creator's pool recovered by itself
        stop_creating.set()
        await creator

        async def all_completed() -> bool:
            return await count_unfinished(restart_db) == 0

        # Jobs whose claim committed while its answer was lost wait for their lease.
        await until(all_completed)
    finally:
        stop.set()
        stop_creating.set()
        stats: list[WorkerStats] = await asyncio.gather(*workers)
        await creator
        try:
            counts = await stores[0].jobs.count_by_status()  # the workers' pools recovered
        finally:
            for store in stores:
                await store.close()

    conn = await asyncpg.connect(restart_db)
    try:
        rows = await conn.fetch("SELECT id, status, attempts, result FROM jobs")
    finally:
        await conn.close()
    total = len(rows)
    assert counts[JobStatus.COMPLETED] == total
    assert INITIAL_JOBS + len(created) <= total <= INITIAL_JOBS + len(created) + len(create_errors)
    assert {row["status"] for row in rows} == {"completed"}
    # None ran twice: each job ran once, a flaky one twice (its failure, then its success).
    expected = {row["id"]: 2 if row["id"] in flaky else 1 for row in rows}
    assert {job_id: runs[job_id] for job_id in expected} == expected
    assert all(json.loads(row["result"]) == {"runs": runs[row["id"]]} for row in rows)
    # A claim whose answer was lost counts an attempt the handler never saw; nothing else does.
    assert all(row["attempts"] >= runs[row["id"]] for row in rows)
    assert len(create_errors) >= len(RESTARTS)
    untyped = [repr(exc) for exc in create_errors if not isinstance(exc, DatabaseUnavailable)]
    assert untyped == []
    assert sum(s.completed for s in stats) == total
    assert sum(s.lost + s.unwritten for s in stats) == 0
