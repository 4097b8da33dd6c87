"""The work queue: drain throughput against pgqueuer, and claim latency as the table grows.

Drain: 10,000 jobs are enqueued, then 4 workers (coroutines of this process, each on its own
connections) claim 1 or 10 at a time and finish every job with a no-op handler. jobs/s is
measured from the end of the enqueue to the moment every job is finished. Contenders:
- media_store: ``run_worker`` (claim, lease, heartbeat task, guarded completion) on a Store
  per worker;
- pgqueuer 1.6.0: a QueueManager per worker on its own asyncpg connection, its own schema
  (``Queries.install``) in the same database, ``mode=drain``.
Each run gets a fresh database holding both schemas; contenders alternate, medians of rounds.
The database is ANALYZEd after the enqueue, for both: on a table that was never analyzed the
planner, guessing a handful of pending rows, bitmap-scans and sorts the whole backlog for
each claim (measured: ~8 ms per claim at 10k pending instead of ~0.5 ms) until autovacuum's
first analyze, which on a live table has long happened.

Claim latency: p50 of ``claim(limit=10)`` with 10,000 pending jobs, and with 1,000,000
finished + 100,000 pending jobs (inserted with generate_series).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job as PgqJob
from pgqueuer.types import QueueExecutionMode

from benchmarks.common import Timer, fresh_database, median, print_table, write_results
from media_store import Dsn, Job, Settings, Store
from media_store.worker import JobResult, run_worker

JOBS = 10_000
WORKERS = 4
BATCHES = (1, 10)
ROUNDS = 5
CLAIMS = 300

Contender = Callable[[str, int], Awaitable[float]]


async def install_pgqueuer(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await Queries.from_asyncpg_connection(conn).install()
    finally:
        await conn.close()


async def drain_media_store(url: str, batch: int) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url) SELECT 'audio', 'https://x/' || g"
            " FROM generate_series(1, $1::int) AS g",
            JOBS,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    settings = Settings(dsn=Dsn(url), min_size=2, max_size=2)
    stores = [await Store.open(settings=settings) for _ in range(WORKERS)]

    async def noop(job: Job) -> JobResult:
        return None

    try:
        with Timer() as timer:
            stats = await asyncio.gather(
                *(run_worker(s, noop, batch=batch, lease=30, burst=True) for s in stores)
            )
    finally:
        for s in stores:
            await s.close()
    done = sum(s.completed for s in stats)
    assert done == JOBS, f"media_store completed {done} of {JOBS}"
    return JOBS / timer.elapsed


async def drain_pgqueuer(url: str, batch: int) -> float:
    conn = await asyncpg.connect(url)
    try:
        await Queries.from_asyncpg_connection(conn).enqueue(
            ["bench"] * JOBS, [None] * JOBS, [0] * JOBS
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    done = 0
    connections = [await asyncpg.connect(url) for _ in range(WORKERS)]
    managers = []
    for worker_conn in connections:
        manager = QueueManager(Queries(AsyncpgDriver(worker_conn)))

        @manager.entrypoint("bench")
        async def noop(job: PgqJob) -> None:
            nonlocal done
            done += 1

        managers.append(manager)
    try:
        with Timer() as timer:
            await asyncio.gather(
                *(
                    m.run(
                        batch_size=batch,
                        mode=QueueExecutionMode.drain,
                        dequeue_timeout=timedelta(seconds=1),
                    )
                    for m in managers
                )
            )
    finally:
        for worker_conn in connections:
            await worker_conn.close()
    assert done == JOBS, f"pgqueuer completed {done} of {JOBS}"
    return JOBS / timer.elapsed


async def one_run(server_url: str, contender: Contender, batch: int) -> float:
    async with fresh_database(server_url) as url:
        await install_pgqueuer(url)
        return await contender(url, batch)


async def fill(url: str, finished: int, pending: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        if finished:
            await conn.execute(
                "INSERT INTO jobs (job_type, status, media_url, created_at, started_at,"
                " completed_at, attempts, locked_by)"
                " SELECT 'audio', 'completed', 'f' || g,"
                " now() - interval '30 days' + g * interval '1 ms', now(), now(), 1, 'w'"
                " FROM generate_series(1, $1::int) AS g",
                finished,
            )
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url) SELECT 'audio', 'p' || g"
            " FROM generate_series(1, $1::int) AS g",
            pending,
        )
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


async def claim_p50_ms(small_url: str, large_url: str) -> tuple[float, float]:
    """p50 of claim(limit=10) on each database, claims alternating between the two so that
    load from elsewhere on the machine falls on both alike."""
    stores = [
        await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1))
        for url in (small_url, large_url)
    ]
    times: list[list[float]] = [[], []]
    try:
        for store in stores:
            for _ in range(20):  # warm up: prepared statements, caches
                await store.jobs.claim("w", limit=10)
        for _ in range(CLAIMS):
            for index, store in enumerate(stores):
                start = time.perf_counter()
                await store.jobs.claim("w", limit=10)
                times[index].append((time.perf_counter() - start) * 1000)
    finally:
        for store in stores:
            await store.close()
    return statistics.median(times[0]), statistics.median(times[1])


async def main(server_url: str) -> None:
    contenders: dict[str, Contender] = {
        "media_store": drain_media_store,
        "pgqueuer 1.6.0": drain_pgqueuer,
    }
    drains: dict[int, dict[str, list[float]]] = {
        batch: {name: [] for name in contenders} for batch in BATCHES
    }
    for round_no in range(ROUNDS):
        for batch in BATCHES:
            order = list(contenders.items())
            if round_no % 2:
                order.reverse()
            for name, contender in order:
                drains[batch][name].append(await one_run(server_url, contender, batch))

    rows = []
    results: dict[str, object] = {}
    for batch in BATCHES:
        ours = median(drains[batch]["media_store"])
        theirs = median(drains[batch]["pgqueuer 1.6.0"])
        rows.append([f"drain, batch {batch}", ours, theirs, f"{ours / theirs:.2f}x"])
        results[f"drain_batch_{batch}"] = {
            "media_store_jobs_per_s": drains[batch]["media_store"],
            "pgqueuer_jobs_per_s": drains[batch]["pgqueuer 1.6.0"],
            "median_media_store": ours,
            "median_pgqueuer": theirs,
            "ratio": ours / theirs,
        }
    print_table(
        f"Drain {JOBS:,} jobs, {WORKERS} workers, jobs/s (median of {ROUNDS} rounds)",
        ["case", "media_store", "pgqueuer 1.6.0", "ratio"],
        rows,
    )

    async with fresh_database(server_url) as small_url, fresh_database(server_url) as large_url:
        await fill(small_url, 0, 10_000)
        with Timer() as filling:
            await fill(large_url, 1_000_000, 100_000)
        small, large = await claim_p50_ms(small_url, large_url)
    print_table(
        f"claim(limit=10) p50 latency, ms ({CLAIMS} claims each)",
        ["table", "p50 ms"],
        [
            ["10k pending", small],
            ["1M finished + 100k pending", large],
            ["ratio large / small", f"{large / small:.2f}x"],
        ],
    )
    print(f"  (filling the large table took {filling.elapsed:.0f} s)")
    results["claim_latency"] = {
        "small_p50_ms": small,
        "large_p50_ms": large,
        "ratio": large / small,
        "claims": CLAIMS,
    }
    write_results(
        "queue",
        {"jobs": JOBS, "workers": WORKERS, "rounds": ROUNDS, **results},
    )
