"""Queue stats at a million finished jobs, and what exact finished counts would cost the drain.

Stats: ``jobs.stats()`` (one statement, small indexes, estimated finished totals) beside
``jobs.count_by_status()`` (today's exact count: a scan of the whole table), p50 of repeated
calls on a fresh database holding 1,000,000 finished jobs (completed, every 50th failed, every
97th cancelled, finished over the last day, three job types) and 1,000 pending, in the states
users meet: never analyzed nor vacuumed (right after a bulk load), then after VACUUM ANALYZE
(what autovacuum does); then with 100,000 pending (a backlog: stats count it exactly, so
their cost grows with it), before and after the vacuum that marks the new rows all-visible.

Drain cost: 5,000 jobs drained by 4 ``run_worker`` coroutines sharing one Store (claims of 10;
the drain of bench_queue.py) on a never-analyzed table, medians of rounds, contenders rotating:
- 0008 as shipped (jobs_finished_idx gets an entry at every completion);
- 0008 without jobs_finished_idx (what the index costs the completions);
- 0008 plus exact finished counters: statement-level AFTER INSERT/UPDATE/DELETE triggers with
  transition tables appending per-(type, status) deltas to a counter table (insert-only, so
  concurrent workers never wait on one counter row; a reader sums the deltas). This is the
  cheapest exact alternative to the estimates; it is measured, not shipped.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg

from benchmarks.bench_queue import Drained, drain_shared, table_analyzed
from benchmarks.common import fresh_database, median, print_table, write_results
from media_store import Dsn, JobType, Settings, Store
from media_store.db.queries import QUERIES

FINISHED = 1_000_000
PENDING_SMALL = 1_000
PENDING_LARGE = 100_000
STATS_CALLS = 20
COUNT_CALLS = 5
ROUNDS = 7

SHIPPED = "0008 as shipped"
NO_FINISHED_INDEX = "without jobs_finished_idx"
COUNTERS = "with exact counters (triggers)"

COUNTER_SCHEMA = """
CREATE TABLE bench_job_counts (job_type text NOT NULL, status text NOT NULL, n bigint NOT NULL);
CREATE FUNCTION bench_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_job_counts
    SELECT job_type, status, count(*) FROM new_rows GROUP BY job_type, status;
    RETURN NULL;
END $$;
CREATE FUNCTION bench_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_job_counts
    SELECT job_type, status, sum(d) FROM (
        SELECT job_type, status, -1 AS d FROM old_rows
        UNION ALL
        SELECT job_type, status, 1 FROM new_rows
    ) AS moved
    GROUP BY job_type, status HAVING sum(d) <> 0;
    RETURN NULL;
END $$;
CREATE FUNCTION bench_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_job_counts
    SELECT job_type, status, -count(*) FROM old_rows GROUP BY job_type, status;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_counts_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_count_inserted();
CREATE TRIGGER bench_counts_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_count_updated();
CREATE TRIGGER bench_counts_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_count_deleted();
"""

FILL_FINISHED = """
INSERT INTO jobs (job_type, status, media_url, started_at, completed_at, locked_by, attempts)
SELECT (ARRAY['video', 'audio', 'document'])[1 + g % 3],
       CASE WHEN g % 50 = 0 THEN 'failed' WHEN g % 97 = 0 THEN 'cancelled'
            ELSE 'completed' END,
       'https://x/' || g, clock_timestamp() - interval '2 days',
       clock_timestamp() - (g % 86400) * interval '1 second', 'w', 1
FROM generate_series(1, $1::int) AS g
"""
FILL_PENDING = """
INSERT INTO jobs (job_type, media_url)
SELECT (ARRAY['video', 'audio', 'document'])[1 + g % 3], 'https://p/' || g
FROM generate_series(1, $1::int) AS g
"""


async def p50_ms(call: Callable[[], Awaitable[object]], times: int) -> float:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        await call()
        took.append((time.perf_counter() - start) * 1000)
    return statistics.median(took)


async def stats_at_a_million(server_url: str) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    async with fresh_database(server_url) as url:
        admin = await asyncpg.connect(url)
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=2))
        try:
            await admin.execute(FILL_FINISHED, FINISHED)
            await admin.execute(FILL_PENDING, PENDING_SMALL)

            async def measure(condition: str, pending: int) -> None:
                analyzed = await table_analyzed(url, "jobs")
                stats_ms = await p50_ms(store.jobs.stats, STATS_CALLS)
                count_ms = await p50_ms(store.jobs.count_by_status, COUNT_CALLS)
                plan = "\n".join(
                    row[0]
                    for row in await admin.fetch(
                        "EXPLAIN " + QUERIES["get_job_stats"].sql, [t.value for t in JobType]
                    )
                )
                results.append(
                    {
                        "condition": condition,
                        "finished": FINISHED,
                        "pending": pending,
                        "had statistics": analyzed,
                        "stats p50 ms": round(stats_ms, 2),
                        "count_by_status p50 ms": round(count_ms, 2),
                        "speed-up": round(count_ms / stats_ms, 1),
                        "seq scan of jobs": "Seq Scan on jobs" in plan,
                        "finished range index-only": "Index Only Scan using jobs_finished_idx"
                        in plan,
                    }
                )

            await measure("never analyzed nor vacuumed", PENDING_SMALL)
            await admin.execute("VACUUM ANALYZE jobs")
            await measure("after VACUUM ANALYZE", PENDING_SMALL)
            await admin.execute(FILL_PENDING, PENDING_LARGE - PENDING_SMALL)
            await measure("backlog just inserted (not vacuumed)", PENDING_LARGE)
            await admin.execute("VACUUM ANALYZE jobs")
            await measure("backlog after VACUUM ANALYZE", PENDING_LARGE)
        finally:
            await store.close()
            await admin.close()
    return results


async def drain_variant(server_url: str, variant: str) -> Drained:
    async with fresh_database(server_url) as url:
        conn = await asyncpg.connect(url)
        try:
            if variant == NO_FINISHED_INDEX:
                await conn.execute("DROP INDEX jobs_finished_idx")
            elif variant == COUNTERS:
                await conn.execute(COUNTER_SCHEMA)
        finally:
            await conn.close()
        drained = await drain_shared(url, False)
        if variant == COUNTERS:  # the counters are exact: every job ended completed
            conn = await asyncpg.connect(url)
            try:
                counted = await conn.fetchval(
                    "SELECT sum(n) FROM bench_job_counts WHERE status = 'completed'"
                )
            finally:
                await conn.close()
            assert counted == 5_000, counted
        return drained


async def main(server_url: str) -> None:
    stats = await stats_at_a_million(server_url)
    print_table(
        f"jobs.stats() vs count_by_status() at {FINISHED:,} finished jobs (p50 ms)",
        ["condition", "pending", "stats", "count_by_status", "speed-up", "seq scan", "index-only"],
        [
            [
                str(r["condition"]),
                f"{r['pending']:,}",
                float(r["stats p50 ms"]),  # type: ignore[arg-type]
                float(r["count_by_status p50 ms"]),  # type: ignore[arg-type]
                f"{r['speed-up']}x",
                str(r["seq scan of jobs"]),
                str(r["finished range index-only"]),
            ]
            for r in stats
        ],
    )
    variants = [SHIPPED, NO_FINISHED_INDEX, COUNTERS]
    runs: dict[str, list[Drained]] = {v: [] for v in variants}
    for round_ in range(ROUNDS):
        for variant in variants[round_ % 3 :] + variants[: round_ % 3]:
            runs[variant].append(await drain_variant(server_url, variant))
    rates = {v: median([d.rate for d in runs[v]]) for v in variants}
    servers = {
        v: (
            None
            if any(d.server_us is None for d in runs[v])
            else median([d.server_us for d in runs[v] if d.server_us is not None])
        )
        for v in variants
    }
    print_table(
        f"drain of 5,000 jobs, 4 workers sharing one Store, never analyzed (median of {ROUNDS})",
        ["schema", "jobs/s", "vs shipped", "server us/job"],
        [
            [
                v,
                rates[v],
                f"{rates[v] / rates[SHIPPED]:.2f}x",
                "-" if servers[v] is None else f"{servers[v]:.1f}",
            ]
            for v in variants
        ],
    )
    write_results(
        "stats",
        {
            "stats": stats,
            "drain": {
                v: {
                    "jobs_per_s": round(rates[v]),
                    "ratio_to_shipped": round(rates[v] / rates[SHIPPED], 3),
                    "server_us_per_job": None if servers[v] is None else round(servers[v], 1),
                    "rounds": [round(d.rate) for d in runs[v]],
                }
                for v in variants
            },
        },
    )


if __name__ == "__main__":  # pragma: no cover
    import os

    asyncio.run(main(os.environ["MEDIA_STORE_BENCH_DSN"]))
