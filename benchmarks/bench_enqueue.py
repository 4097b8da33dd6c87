"""The queue's enqueue side (issue 12): bulk enqueue against pgqueuer, and the claim's latency
with priorities and scheduled jobs at 1M finished + 100k pending.

Bulk enqueue: the same 10,000 jobs (an audio file's URL and parameters, priorities 0-4) in
one call each:
- media_store: ``jobs.create_many(items)`` from a list of dicts, as a caller has them: every
  item checked by JobCreate's rules before any SQL, then (with keys, a probe for the keys'
  holders and) one binary COPY, every job returned as a ``Job`` model in input order;
- pgqueuer 1.6.0: ``Queries.enqueue(entrypoints, payloads, priorities)``, the payload being the
  same URL and parameters serialized to JSON bytes (pgqueuer stores bytes: serializing is the
  caller's part of enqueueing, so it is inside the clock), returning the ids.
Two arrangements: no keys, and a unique key on every job (media_store's idempotency_key,
pgqueuer's dedupe_key with ``on_conflict="skip"``, its counterpart that does not raise). Each
round gets a fresh database holding both schemas, tables never analyzed (what a burst into a
new deployment meets); both contenders run back to back in it, first one then the other in
turn; pools and connections open before the clock. jobs/s, and the median of the rounds'
ratios (media_store / pgqueuer). Before each timed call the process's garbage is collected
(outside the clock, for every contender alike): a full collection walks every object of the
process (140,000-270,000 objects here: 50-95 ms each) and otherwise landed inside whichever
call crossed the collector's threshold, mostly for what earlier rounds left. What a call
leaves to the collector is measured apart: consecutive calls without collecting in between,
the time of the full collections they trigger, per contender. A third contender,
create_many's statements alone (the same probe, clock and COPY from unchecked dicts, nothing
returned), shows what the database and the driver cost without the library's Python.

Growth: both contenders enqueue batches of 10,000 into tables of their own in one database,
a batch of one then a batch of the other, until each table holds 1,000,000 pending jobs (a
backlog nobody drains: the case where pgqueuer's table and the jobs table grow alike);
autovacuum runs as configured. The median time of a batch into a table of 10k-50k jobs
against one into 950k-990k: the target is at most 1.2x.

Claim latency: ``claim(limit=10)`` on a jobs table holding 1,000,000 finished jobs and 100,000
pending ones (priorities -2..2, a seventh of them video, one in ten scheduled for tomorrow,
one in ten scheduled before its creation), inserted with generate_series, with autovacuum
held off so that it stays never analyzed; then after ANALYZE. p50 and p95 of claims of any
type and of one type (a seventh of the backlog), next to the same claims on a table of 50,000
pending jobs alone, claims alternating between the two tables.
"""

from __future__ import annotations

import gc
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
from pgqueuer import Queries

from benchmarks.common import (
    Timer,
    fresh_database,
    judge,
    median,
    print_table,
    settle,
    write_results,
)
from media_store import Dsn, Settings, Store
from media_store.db.connections import connect
from media_store.db.queries import QUERIES
from media_store.repositories.enqueue import COPY_COLUMNS

JOBS = 10_000
ROUNDS = 8  # even: each contender goes first equally often
TARGET = 1.2  # create_many's jobs/s over pgqueuer's, each arrangement, both servers
GROWTH_TARGET = 1.2  # a batch at 1M jobs in the table over a batch at 10k, at most
GROWTH_JOBS = 1_000_000
GROWTH_EDGE = 5  # batches averaged at each end of the growth
CLAIMS = 200
SMALL = 50_000  # pending jobs of the reference table
ARRANGEMENTS = ("no keys", "a key per job")
MEDIA_STORE = "media_store create_many"
PGQUEUER = "pgqueuer 1.6.0 enqueue"
STATEMENT = "create_many's statements alone"


def items(round_no: int, keyed: bool) -> list[dict[str, Any]]:
    """The 10,000 jobs as a caller holds them."""
    jobs = []
    for i in range(JOBS):
        job: dict[str, Any] = {
            "job_type": "audio",
            "media_url": f"s3://media/{round_no}/talk-{i}.mp3",
            "parameters": {"language": "en", "diarize": i % 2 == 0, "n": i},
            "priority": i % 5,
        }
        if keyed:
            job["idempotency_key"] = f"talk-{round_no}-{i}"
        jobs.append(job)
    return jobs


def payload(job: dict[str, Any]) -> bytes:
    """What pgqueuer stores for ``job``: its URL and parameters as JSON bytes (serializing is
    the caller's part of enqueueing with pgqueuer, so it is inside the clock)."""
    return orjson.dumps({"media_url": job["media_url"], "parameters": job["parameters"]})


Enqueue = Callable[[str, list[dict[str, Any]]], Awaitable[tuple[float, float]]]


def measured(count: int, timer: Timer, cpu: float) -> tuple[float, float]:
    """jobs/s, and the CPU this process spent a job (us): the client's share of the work."""
    return count / timer.elapsed, cpu * 1e6 / count


async def enqueue_media_store(url: str, jobs: list[dict[str, Any]]) -> tuple[float, float]:
    store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1))
    try:
        settle()
        cpu = time.process_time()
        with Timer() as timer:
            done = await store.jobs.create_many(jobs)
        cpu = time.process_time() - cpu
    finally:
        await store.close()
    assert len(done) == JOBS and all(e.created for e in done)
    return measured(JOBS, timer, cpu)


async def enqueue_statement(url: str, jobs: list[dict[str, Any]]) -> tuple[float, float]:
    """media_store's statements alone: what create_many sends (with keys, the holders' probe;
    the clock; the COPY, in key order with keys) on a connection with the library's codecs,
    the rows built from the dicts without any check and no job returned: what the database
    and the driver cost, without the library's Python."""
    keyed = "idempotency_key" in jobs[0]
    # Keys of its own: media_store's run already holds the batch's keys, and with them this
    # would measure the duplicate path instead of inserts.
    keys = [f"s-{j['idempotency_key']}" if keyed else None for j in jobs]
    conn = await connect(Settings(dsn=Dsn(url)))
    try:
        settle()
        cpu = time.process_time()
        with Timer() as timer:
            if keyed:
                held = await conn.fetch(QUERIES["get_key_holders"].sql, keys)
                assert not held
            clock = await conn.fetchval(QUERIES["get_clock"].sql)
            order = sorted(range(len(jobs)), key=lambda i: keys[i] or "") if keyed else None
            last = len(jobs) - 1
            await conn.copy_records_to_table(
                "jobs",
                records=(
                    (
                        uuid.uuid4(),
                        jobs[i]["job_type"],
                        jobs[i]["media_url"],
                        None,
                        jobs[i]["parameters"],
                        3,
                        jobs[i]["priority"],
                        None,
                        keys[i],
                        "active" if keyed else None,
                        clock - timedelta(microseconds=last - i),
                        clock,
                    )
                    for i in (range(len(jobs)) if order is None else order)
                ),
                columns=COPY_COLUMNS,
            )
        cpu = time.process_time() - cpu
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE updated_at = $1", clock) == JOBS
    finally:
        await conn.close()
    return measured(JOBS, timer, cpu)


async def enqueue_pgqueuer(url: str, jobs: list[dict[str, Any]]) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    try:
        queries = Queries.from_asyncpg_connection(conn)
        keyed = "idempotency_key" in jobs[0]
        settle()
        cpu = time.process_time()
        with Timer() as timer:
            payloads: list[bytes | None] = [payload(j) for j in jobs]
            entrypoints = [j["job_type"] for j in jobs]
            priorities = [j["priority"] for j in jobs]
            if keyed:
                ids = await queries.enqueue(
                    entrypoints,
                    payloads,
                    priorities,
                    dedupe_key=[j["idempotency_key"] for j in jobs],
                    on_conflict="skip",
                )
            else:
                ids = await queries.enqueue(entrypoints, payloads, priorities)
        cpu = time.process_time() - cpu
    finally:
        await conn.close()
    assert len(ids) == JOBS and all(i is not None for i in ids)
    return measured(JOBS, timer, cpu)


CONTENDERS: dict[str, Enqueue] = {
    MEDIA_STORE: enqueue_media_store,
    PGQUEUER: enqueue_pgqueuer,
    STATEMENT: enqueue_statement,
}


async def enqueue_round(
    server_url: str, round_no: int, keyed: bool
) -> dict[str, tuple[float, float]]:
    """One round: a fresh database, each contender once, media_store and pgqueuer back to
    back (first one, then the other in turn), then the statement alone."""
    jobs = items(round_no, keyed)
    async with fresh_database(server_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await Queries.from_asyncpg_connection(conn).install()
        finally:
            await conn.close()
        order = [MEDIA_STORE, PGQUEUER] if round_no % 2 == 0 else [PGQUEUER, MEDIA_STORE]
        results = {name: await CONTENDERS[name](url, jobs) for name in [*order, STATEMENT]}
    return results


# --- what a call leaves to the collector -------------------------------------------------------

LEFT_CALLS = 8


async def collections_left(server_url: str) -> dict[str, Any]:
    """The full collections of the garbage collector that consecutive calls (no collection in
    between, each call's result dropped before the next) trigger, per contender, in this
    process: what the rounds above leave out by settling first. A full collection walks every
    object of the process; it runs when a quarter more objects than the heap held have
    survived two younger collections since the last, and the jobs create_many returns (five
    tracked objects each: the Enqueued, the Job, its dict, its fields set, its id) do."""
    result: dict[str, Any] = {"calls": LEFT_CALLS}
    spent: list[float] = []
    started: list[float] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            spent.append(time.perf_counter() - started.pop())

    async with fresh_database(server_url) as url:
        conn = await asyncpg.connect(url)
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1))
        try:
            queries = Queries.from_asyncpg_connection(conn)
            await queries.install()
            batches = [items(2000 + n, False) for n in range(LEFT_CALLS)]
            settle()
            # The heap a full collection walks, the inputs of the calls included.
            result["process_objects"] = len(gc.get_objects())
            for name in (MEDIA_STORE, PGQUEUER):
                settle()
                spent.clear()
                gc.callbacks.append(watch)
                try:
                    for jobs in batches:
                        if name == MEDIA_STORE:
                            await store.jobs.create_many(jobs)
                        else:
                            payloads: list[bytes | None] = [payload(j) for j in jobs]
                            await queries.enqueue(
                                [j["job_type"] for j in jobs],
                                payloads,
                                [j["priority"] for j in jobs],
                            )
                finally:
                    gc.callbacks.remove(watch)
                result[name] = {
                    "full_collections": len(spent),
                    "ms_in_them": sum(spent) * 1000,
                    "us_a_job": sum(spent) * 1e6 / (LEFT_CALLS * JOBS),
                }
        finally:
            await store.close()
            await conn.close()
    return result


# --- growth ----------------------------------------------------------------------------------


async def growth(server_url: str, keyed: bool) -> dict[str, Any]:
    """ms of each 10,000-job batch as both tables grow to GROWTH_JOBS, batches alternating."""
    batches = GROWTH_JOBS // JOBS
    times: dict[str, list[float]] = {MEDIA_STORE: [], PGQUEUER: []}
    async with fresh_database(server_url) as url:
        conn = await asyncpg.connect(url)
        try:
            queries = Queries.from_asyncpg_connection(conn)
            await queries.install()
            store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1))
            try:
                for batch in range(batches):
                    jobs = items(1000 + batch, keyed)
                    payloads: list[bytes | None] = [payload(j) for j in jobs]
                    for name in (MEDIA_STORE, PGQUEUER) if batch % 2 else (PGQUEUER, MEDIA_STORE):
                        settle()
                        start = time.perf_counter()
                        if name == MEDIA_STORE:
                            await store.jobs.create_many(jobs)
                        elif keyed:
                            await queries.enqueue(
                                [j["job_type"] for j in jobs],
                                payloads,
                                [j["priority"] for j in jobs],
                                dedupe_key=[j["idempotency_key"] for j in jobs],
                                on_conflict="skip",
                            )
                        else:
                            await queries.enqueue(
                                [j["job_type"] for j in jobs],
                                payloads,
                                [j["priority"] for j in jobs],
                            )
                        times[name].append((time.perf_counter() - start) * 1000)
            finally:
                await store.close()
        finally:
            await conn.close()
    result: dict[str, Any] = {}
    for name, ms in times.items():
        early = median(ms[1 : 1 + GROWTH_EDGE])  # 10k-50k jobs in the table
        late = median(ms[-GROWTH_EDGE:])
        result[name] = {
            "ms_per_batch": ms,
            "early_ms": early,
            "late_ms": late,
            "ratio": late / early,
        }
    return result


# --- claim latency -------------------------------------------------------------------------------

FILL_FINISHED = """
INSERT INTO jobs (job_type, status, media_url, created_at, started_at, completed_at, attempts,
                  locked_by, priority)
SELECT CASE WHEN g % 7 = 0 THEN 'video' ELSE 'audio' END, 'completed', 'f' || g,
       now() - interval '30 days' + g * interval '1 ms', now(), now(), 1, 'w', g % 5 - 2
FROM generate_series(1, $1::int) AS g
"""
FILL_PENDING = """
INSERT INTO jobs (job_type, media_url, created_at, priority, run_after)
SELECT CASE WHEN g % 7 = 0 THEN 'video' ELSE 'audio' END, 'p' || g,
       now() - interval '2 hours' + g * interval '1 ms', g % 5 - 2,
       CASE WHEN g % 10 = 3 THEN now() + interval '1 day'
            WHEN g % 10 = 7 THEN now() - interval '3 hours' + g * interval '1 ms' END
FROM generate_series(1, $1::int) AS g
"""


async def fill(url: str, finished: int, pending: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        # Held off so that "never analyzed" stays true while claims are measured.
        await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
        if finished:
            await conn.execute(FILL_FINISHED, finished)
        await conn.execute(FILL_PENDING, pending)
    finally:
        await conn.close()


async def analyzed(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT FROM pg_statistic WHERE starelid = 'jobs'::regclass)"
            )
        )
    finally:
        await conn.close()


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


async def claim_times(urls: list[str], job_types: list[str] | None) -> list[list[float]]:
    """ms of each claim(limit=10) on each database, claims alternating between them."""
    stores = [
        await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1)) for url in urls
    ]
    times: list[list[float]] = [[] for _ in urls]
    try:
        for _ in range(CLAIMS):
            for index, store in enumerate(stores):
                start = time.perf_counter()
                claimed = await store.jobs.claim("w", job_types, limit=10)
                times[index].append((time.perf_counter() - start) * 1000)
                assert len(claimed) == 10
    finally:
        for store in stores:
            await store.close()
    return times


async def claim_latency(server_url: str) -> dict[str, Any]:
    async with fresh_database(server_url) as small, fresh_database(server_url) as large:
        await fill(small, 0, SMALL)
        with Timer() as filling:
            await fill(large, 1_000_000, 100_000)
        print(f"\n  (filling the large table took {filling.elapsed:.0f} s)")
        result: dict[str, Any] = {}
        rows = []
        for condition in ("never analyzed", "analyzed"):
            if condition == "analyzed":
                for url in (small, large):
                    conn = await asyncpg.connect(url)
                    try:
                        await conn.execute("ANALYZE jobs")
                    finally:
                        await conn.close()
            stats = [await analyzed(url) for url in (small, large)]
            result[condition] = {"tables_had_statistics": stats}
            for label, types in (("any type", None), ("one type (video)", ["video"])):
                t_small, t_large = await claim_times([small, large], types)
                figures = {
                    "small_p50_ms": percentile(t_small, 50),
                    "small_p95_ms": percentile(t_small, 95),
                    "large_p50_ms": percentile(t_large, 50),
                    "large_p95_ms": percentile(t_large, 95),
                }
                figures["p50_ratio"] = figures["large_p50_ms"] / figures["small_p50_ms"]
                result[condition][label] = figures
                rows.append(
                    [
                        condition,
                        label,
                        figures["small_p50_ms"],
                        figures["small_p95_ms"],
                        figures["large_p50_ms"],
                        figures["large_p95_ms"],
                        f"{figures['p50_ratio']:.2f}x",
                        str(stats),
                    ]
                )
    print_table(
        f"claim(limit=10) latency, ms, priorities -2..2 and scheduled jobs ({CLAIMS} claims"
        " each, alternating between the tables)",
        [
            "table state",
            "claim",
            "50k p50",
            "50k p95",
            "1M+100k p50",
            "1M+100k p95",
            "p50 ratio",
            "had stats",
        ],
        rows,
    )
    return {"claims": CLAIMS, "finished": 1_000_000, "pending": 100_000, **result}


# --- main ----------------------------------------------------------------------------------------


async def main(server_url: str) -> None:
    results: dict[str, Any] = {}
    rows = []
    for arrangement in ARRANGEMENTS:
        keyed = arrangement == "a key per job"
        rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        cpus: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        for round_no in range(ROUNDS):
            for name, (rate, cpu) in (await enqueue_round(server_url, round_no, keyed)).items():
                rates[name].append(rate)
                cpus[name].append(cpu)

        def paired(name: str, other: str) -> float:
            """Median of the rounds' ratios (each pair ran back to back in one database)."""
            pairs = zip(rates[name], rates[other], strict=True)  # noqa: B023 - used at once
            return median([a / b for a, b in pairs])

        results[arrangement] = {
            name: {
                "jobs_per_s": rates[name],
                "median": median(rates[name]),
                "client_cpu_us_per_job": cpus[name],
                "client_cpu_us_per_job_median": median(cpus[name]),
                "vs_pgqueuer": paired(name, PGQUEUER),
            }
            for name in CONTENDERS
        }
        results[arrangement]["ratio"] = paired(MEDIA_STORE, PGQUEUER)
        for name in CONTENDERS:
            rows.append(
                [
                    arrangement,
                    name,
                    median(rates[name]),
                    f"{paired(name, PGQUEUER):.2f}x",
                    f"{median(cpus[name]):.1f}",
                ]
            )
    print_table(
        f"Enqueue {JOBS:,} jobs in one call, jobs/s (median of {ROUNDS} rounds); ratio to"
        " pgqueuer: median of the rounds' ratios; client CPU: this process, us a job",
        ["arrangement", "contender", "jobs/s", "vs pgqueuer", "client CPU us/job"],
        rows,
    )
    for arrangement in ARRANGEMENTS:
        judge(f"create_many vs pgqueuer, {arrangement}", results[arrangement]["ratio"], TARGET)
    left = await collections_left(server_url)
    results["collections_left"] = left
    print_table(
        f"What {LEFT_CALLS} consecutive calls of 10,000 (no keys) leave to the garbage"
        f" collector in this process ({left['process_objects']:,} objects): its full"
        " collections during them, which the rounds above leave out by collecting before each"
        " call",
        ["contender", "full collections", "ms in them", "us a job"],
        [
            [
                name,
                left[name]["full_collections"],
                f"{left[name]['ms_in_them']:.0f}",
                f"{left[name]['us_a_job']:.1f}",
            ]
            for name in (MEDIA_STORE, PGQUEUER)
        ],
    )

    grown: dict[str, Any] = {}
    growth_rows = []
    for arrangement in ARRANGEMENTS:
        grown[arrangement] = await growth(server_url, arrangement == "a key per job")
        for name in (MEDIA_STORE, PGQUEUER):
            figures = grown[arrangement][name]
            growth_rows.append(
                [
                    arrangement,
                    name,
                    figures["early_ms"],
                    figures["late_ms"],
                    f"{figures['ratio']:.2f}x",
                ]
            )
    print_table(
        f"Growth: ms a batch of {JOBS:,} as each table grows to {GROWTH_JOBS:,} pending jobs"
        f" (median of {GROWTH_EDGE} batches at each end)",
        ["arrangement", "contender", "at 10k-50k", "at 950k-990k", "late / early"],
        growth_rows,
    )
    for arrangement in ARRANGEMENTS:
        judge(
            f"create_many at 1M jobs / at 10k, {arrangement}",
            grown[arrangement][MEDIA_STORE]["ratio"],
            GROWTH_TARGET,
            higher_is_better=False,
        )

    latency = await claim_latency(server_url)
    write_results(
        "enqueue",
        {
            "jobs": JOBS,
            "rounds": ROUNDS,
            "enqueue": results,
            "growth": grown,
            "claim_latency": latency,
        },
    )
