"""The work queue: drain throughput against its peers (pgqueuer, procrastinate) and against
the bare-SQL limit, in the conditions users meet; the cost of metrics and traces on it; and
claim latency as the table grows.

Drain: 5,000 jobs are enqueued, then 4 workers (coroutines of this process) claim 10 at a
time and finish every job with a no-op handler. jobs/s is measured from the end of the
enqueue to the moment every job is finished. Contenders:
- media_store: ``run_worker`` (claim, lease, heartbeat task, guarded batch completion) with
  the 4 workers sharing one Store, as the README recommends (one per process), and with a
  Store each;
- pgqueuer 1.6.0: a QueueManager per worker on its own asyncpg connection, its own schema
  (``Queries.install``) in the same database, ``mode=drain``;
- procrastinate 3.10: one App on its PsycopgConnector for the process (its schema applied
  beside the others), 4 workers (``run_worker_async(wait=False)``) of concurrency 10, an
  async no-op task, jobs deferred with ``batch_defer_async``;
- the bare-SQL limit: a loop of the same two statements a worker needs (a SKIP LOCKED claim
  of 10, one guarded batch completion) on a narrow table with a primary key and the partial
  pending index, no trigger, no constraint, returning ids only.
Each contender runs in both table states: "never analyzed" (the burst lands in a table
autovacuum has not analyzed yet: a new deployment, a bulk load; nothing is analyzed by hand)
and "analyzed" (ANALYZE after the enqueue, as autovacuum does a minute or so later). Each run
gets a fresh database holding every contender's schema; contenders rotate their position
from round to round; medians of rounds. Pools and connections are opened before the clock
starts, for every contender alike (a long-running worker's are open). The targets are
reported on the worse condition and arrangement. Each drain also reports the CPU a job took
on each side while the clock ran: this process's (workers, driver, event loop) and the
database backends' (read from /proc when the server runs on this machine), which says where
a gap to the limit lies.

Overhead of metrics and traces (issue 22, item 6): the drain of one Store with no instrument
against the same with ``WorkerMetrics`` (a prometheus_client registry of its own), and with
``Instruments(WorkerMetrics, WorkerTracing)`` and ``trace_store`` (the OpenTelemetry SDK, a
BatchSpanProcessor and an exporter that drops the spans; each job created in a trace of its
own, as one API request a job leaves them), in two arrangements: sampled at the source, 1 in
100 (``ParentBased(TraceIdRatioBased(0.01))``, and 1 in 100 of the jobs' traces sampled: what
docs/observability.md recommends for busy workers), and every span recorded. On analyzed
tables, in rounds whose order rotates, on fresh databases; the cost is one minus the median of
the rounds' ratios. Judged: metrics alone and metrics with sampled traces.

Claim latency: p50 of ``claim(limit=10)`` with 10,000 pending jobs and with 1,000,000
finished + 100,000 pending jobs (inserted with generate_series), both before any ANALYZE and
after one.

Jobs scheduled for later (migrations/0013): p50 of ``claim(limit=10)`` and the shared buffers
one claim reads (EXPLAIN (ANALYZE, BUFFERS) of the claim function, rolled back), with no job
scheduled for later and with 100,000 scheduled a day ahead, side by side: on an idle queue
(nothing due) and behind 10,000 due priority-0 jobs with the scheduled ones at priority 50.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

import asyncpg
import procrastinate
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job as PgqJob
from pgqueuer.types import QueueExecutionMode
from procrastinate.schema import SchemaManager
from prometheus_client import CollectorRegistry

from benchmarks.common import Timer, fresh_database, judge, median, print_table, write_results
from media_store import Dsn, Job, Settings, Store
from media_store.metrics import WorkerMetrics
from media_store.tracing import WorkerTracing, trace_store
from media_store.worker import Instrument, Instruments
from media_store.worker.runner import JobResult, run_worker

JOBS = 5_000
WORKERS = 4
BATCH = 10
ROUNDS = 5
CLAIMS = 300
CONDITIONS = ("never analyzed", "analyzed")
OVERHEAD_ROUNDS = 15
TARGET_OVERHEAD = 0.03
TARGET_VS_PEER = 1.2  # against every peer, in every table state
TARGET_VS_LIMIT = 0.7

SHARED = "media_store, one Store"
EACH = "media_store, a Store each"
METRICS = "media_store, one Store, metrics"
OBSERVED = "media_store, one Store, metrics + traces"
SAMPLED = 0.01
OBSERVED_SAMPLED = "media_store, one Store, metrics + traces sampled 1 in 100"
PGQUEUER = "pgqueuer 1.6.0"
PROCRASTINATE = "procrastinate 3.10"
PEERS = (PGQUEUER, PROCRASTINATE)
LIMIT = "bare-SQL limit"

BARE_SCHEMA = """
CREATE TABLE bare_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status text NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    locked_by text
);
CREATE INDEX bare_jobs_pending_idx ON bare_jobs (created_at, id) WHERE status = 'pending'
"""
BARE_CLAIM = """
WITH picked AS MATERIALIZED (
    SELECT id FROM bare_jobs WHERE status = 'pending'
    ORDER BY created_at, id LIMIT $2::int FOR UPDATE SKIP LOCKED
)
UPDATE bare_jobs AS j SET status = 'processing', locked_by = $1::text
FROM picked WHERE j.id = picked.id
RETURNING j.id
"""
BARE_COMPLETE = """
UPDATE bare_jobs SET status = 'completed'
WHERE id = any($2::uuid[]) AND status = 'processing' AND locked_by = $1::text
"""


class Drained(NamedTuple):
    """One drain: jobs/s, and CPU per job of this process (the client: workers, driver, event
    loop) and of the server backends connected to the drain's database (None when they cannot
    be read: a server on another machine)."""

    rate: float
    client_us: float
    server_us: float | None


def _backend_cpu_s(pids: list[int]) -> float | None:
    """User + system CPU seconds the processes ``pids`` have used (from /proc), if readable."""
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


class Meter:
    """Times a drain (its clock starts and stops around the work only) and measures the CPU
    it took on each side. The database's backends are listed when the clock starts: every
    contender's connections are open by then."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pids: list[int] = []
        self.timer = Timer()

    async def __aenter__(self) -> Meter:
        conn = await asyncpg.connect(self.url)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        self.pids = [row["pid"] for row in rows]
        self.server = _backend_cpu_s(self.pids)
        self.client = time.process_time()
        self.timer.__enter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.timer.__exit__(*exc)
        self.client = time.process_time() - self.client
        after = _backend_cpu_s(self.pids)
        self.server = None if after is None or self.server is None else after - self.server

    def drained(self) -> Drained:
        per_job = 1e6 / JOBS
        return Drained(
            JOBS / self.timer.elapsed,
            self.client * per_job,
            None if self.server is None else self.server * per_job,
        )


Contender = Callable[[str, bool], Awaitable[Drained]]


async def prepare_schemas(url: str) -> None:
    """pgqueuer's and procrastinate's schemas and the bare table, beside media_store's
    (already migrated)."""
    conn = await asyncpg.connect(url)
    try:
        await Queries.from_asyncpg_connection(conn).install()
        await conn.execute(SchemaManager.get_schema())
        await conn.execute(BARE_SCHEMA)
    finally:
        await conn.close()


async def enqueue(url: str, sql: str, table: str, analyze: bool) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql, JOBS)
        if analyze:
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()


class DroppedSpans(SpanExporter):
    """An exporter that drops every span: the tracing cost on the workers' side, without a
    collector to send to."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


async def drain_media_store(
    url: str,
    analyze: bool,
    *,
    shared: bool,
    metrics: bool = False,
    traces: bool = False,
    sampled: float = 1.0,
) -> Drained:
    """``metrics``, ``traces``: with them (see the module doc); with traces the jobs are
    created with a trace context, as a traced API leaves them."""
    await enqueue(
        url,
        "INSERT INTO jobs (job_type, media_url) SELECT 'audio', 'https://x/' || g"
        " FROM generate_series(1, $1::int) AS g",
        "jobs",
        analyze,
    )
    if traces:
        conn = await asyncpg.connect(url)
        try:
            # A trace of its own a job (one request each), sampled in the proportion the
            # provider's sampler keeps root spans.
            await conn.execute(
                "INSERT INTO job_trace_contexts (job_id, traceparent)"
                " SELECT id, '00-' || md5(id::text) || '-' || left(md5(random()::text), 16)"
                " || CASE WHEN random() < $1::float8 THEN '-01' ELSE '-00' END FROM jobs",
                sampled,
            )
            if analyze:
                await conn.execute("ANALYZE job_trace_contexts")
        finally:
            await conn.close()
    # A worker holds one connection for claims and completions and borrows one to heartbeat.
    if shared:
        settings = Settings(dsn=Dsn(url), min_size=2 * WORKERS, max_size=max(10, 2 * WORKERS))
        stores = [await Store.open(settings=settings)]
        per_worker = stores * WORKERS
    else:
        settings = Settings(dsn=Dsn(url), min_size=2, max_size=2)
        stores = [await Store.open(settings=settings) for _ in range(WORKERS)]
        per_worker = stores

    async def noop(job: Job) -> JobResult:
        return None

    parts: list[Instrument] = []
    provider: TracerProvider | None = None
    if metrics:
        parts.append(WorkerMetrics(CollectorRegistry()))
    if traces:
        provider = TracerProvider(
            sampler=ALWAYS_ON if sampled >= 1 else ParentBased(TraceIdRatioBased(sampled))
        )
        provider.add_span_processor(BatchSpanProcessor(DroppedSpans()))
        for s in stores:
            trace_store(s, tracer_provider=provider)
        parts.append(WorkerTracing(provider))
    instrument = Instruments(*parts) if len(parts) > 1 else parts[0] if parts else None
    try:
        async with Meter(url) as meter:
            stats = await asyncio.gather(
                *(
                    run_worker(s, noop, batch=BATCH, lease=30, burst=True, instrument=instrument)
                    for s in per_worker
                )
            )
    finally:
        for s in stores:
            await s.close()
        if provider is not None:
            provider.shutdown()
    done = sum(s.completed for s in stats)
    assert done == JOBS, f"media_store completed {done} of {JOBS}"
    return meter.drained()


async def drain_shared(url: str, analyze: bool) -> Drained:
    return await drain_media_store(url, analyze, shared=True)


async def drain_each(url: str, analyze: bool) -> Drained:
    return await drain_media_store(url, analyze, shared=False)


async def drain_metrics(url: str, analyze: bool) -> Drained:
    return await drain_media_store(url, analyze, shared=True, metrics=True)


async def drain_observed(url: str, analyze: bool) -> Drained:
    return await drain_media_store(url, analyze, shared=True, metrics=True, traces=True)


async def drain_sampled(url: str, analyze: bool) -> Drained:
    return await drain_media_store(
        url, analyze, shared=True, metrics=True, traces=True, sampled=SAMPLED
    )


async def drain_pgqueuer(url: str, analyze: bool) -> Drained:
    conn = await asyncpg.connect(url)
    try:
        await Queries.from_asyncpg_connection(conn).enqueue(
            ["bench"] * JOBS, [None] * JOBS, [0] * JOBS
        )
        if analyze:
            await conn.execute("ANALYZE pgqueuer")
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
        async with Meter(url) as meter:
            await asyncio.gather(
                *(
                    m.run(
                        batch_size=BATCH,
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
    return meter.drained()


def procrastinate_app(url: str, workers: int) -> procrastinate.App:
    """procrastinate's App on its PsycopgConnector (a psycopg pool), as its docs set it up.
    Each worker holds a connection to LISTEN and borrows others for its fetches, outcomes
    and heartbeats: the pool has room for every worker's concurrency."""
    return procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=url, min_size=workers * 3, max_size=workers * 3
        )
    )


async def drain_procrastinate(url: str, analyze: bool) -> Drained:
    """procrastinate 3.10: one App (one pool) for the process, as its docs recommend, and
    4 workers (``run_worker_async``, ``wait=False``: they return once the queue is empty),
    each running up to 10 jobs at a time (``concurrency``: the jobs a worker has in hand, as
    the others' batch of 10)."""
    app = procrastinate_app(url, WORKERS)
    done = 0

    @app.task(name="bench")
    async def noop() -> None:
        nonlocal done
        done += 1

    async with app.open_async():
        await noop.batch_defer_async(*([{}] * JOBS))
        if analyze:
            await app.connector.execute_query_async("ANALYZE procrastinate_jobs")
        async with Meter(url) as meter:
            await asyncio.gather(
                *(
                    app.run_worker_async(
                        name=f"w{i}",
                        concurrency=BATCH,
                        wait=False,
                        install_signal_handlers=False,
                    )
                    for i in range(WORKERS)
                )
            )
    assert done == JOBS, f"procrastinate completed {done} of {JOBS}"
    return meter.drained()


async def drain_limit(url: str, analyze: bool) -> Drained:
    await enqueue(
        url,
        "INSERT INTO bare_jobs (status) SELECT 'pending' FROM generate_series(1, $1::int)",
        "bare_jobs",
        analyze,
    )
    connections = [await asyncpg.connect(url) for _ in range(WORKERS)]
    done = 0

    async def worker(conn: asyncpg.Connection[asyncpg.Record], holder: str) -> None:
        nonlocal done
        while rows := await conn.fetch(BARE_CLAIM, holder, BATCH):
            ids = [row["id"] for row in rows]
            await conn.execute(BARE_COMPLETE, holder, ids)
            done += len(ids)

    try:
        async with Meter(url) as meter:
            await asyncio.gather(*(worker(c, f"w{i}") for i, c in enumerate(connections)))
    finally:
        for conn in connections:
            await conn.close()
    assert done == JOBS, f"the bare loop completed {done} of {JOBS}"
    return meter.drained()


async def table_analyzed(url: str, table: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT EXISTS (SELECT FROM pg_statistic WHERE starelid = $1::regclass)", table
            )
        )
    finally:
        await conn.close()


TABLES = {
    SHARED: "jobs",
    EACH: "jobs",
    METRICS: "jobs",
    OBSERVED: "jobs",
    OBSERVED_SAMPLED: "jobs",
    PGQUEUER: "pgqueuer",
    PROCRASTINATE: "procrastinate_jobs",
    LIMIT: "bare_jobs",
}


async def one_run(
    server_url: str, name: str, contender: Contender, analyze: bool
) -> tuple[Drained, bool]:
    """The drain, and whether the table had statistics at the end (autovacuum may analyze a
    "never analyzed" table during the run: then the run is reported as such)."""
    async with fresh_database(server_url) as url:
        await prepare_schemas(url)
        drained = await contender(url, analyze)
        return drained, await table_analyzed(url, TABLES[name])


# --- overhead of metrics and traces ---------------------------------------------------------


async def overhead(server_url: str) -> dict[str, Any]:
    """The drain with metrics, and with metrics and traces, against the same without, in
    rounds whose order rotates (so that no side always runs first), on analyzed tables."""
    sides: list[tuple[str, Contender]] = [
        (SHARED, drain_shared),
        (METRICS, drain_metrics),
        (OBSERVED_SAMPLED, drain_sampled),
        (OBSERVED, drain_observed),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in sides}
    cpu: dict[str, list[float]] = {name: [] for name, _ in sides}
    for round_no in range(OVERHEAD_ROUNDS):
        shift = round_no % len(sides)
        for name, contender in sides[shift:] + sides[:shift]:
            drained, _ = await one_run(server_url, name, contender, True)
            rates[name].append(drained.rate)
            cpu[name].append(drained.client_us)
    result: dict[str, Any] = {"rounds": OVERHEAD_ROUNDS, "target": TARGET_OVERHEAD}
    rows = []
    for name, _ in sides:
        ratios = [a / b for a, b in zip(rates[name], rates[SHARED], strict=True)]
        cost = 1 - median(ratios)
        extra_us = median(cpu[name]) - median(cpu[SHARED])
        result[name] = {
            "jobs_per_s": rates[name],
            "client_cpu_us_per_job": cpu[name],
            "ratios": ratios,
            "cost": cost,
            "client_cpu_us_per_job_added": extra_us,
        }
        rows.append(
            [
                name,
                median(rates[name]),
                f"{median(cpu[name]):.0f}",
                "" if name == SHARED else f"{cost:.1%}",
                "" if name == SHARED else f"{extra_us:+.0f}",
            ]
        )
    print_table(
        f"Overhead of metrics and traces on the drain ({JOBS:,} jobs, {WORKERS} workers, one"
        f" Store, analyzed; {OVERHEAD_ROUNDS} rounds, order rotating): jobs/s and client CPU us"
        " a job (medians); cost: 1 - median of the rounds' ratios to the plain drain",
        ["contender", "jobs/s", "client us", "cost", "client us added"],
        rows,
    )
    # Judged: metrics alone, and metrics with traces as docs/observability.md recommends
    # running them on busy workers (sampled at the source); every span recorded is reported.
    judged = (("metrics", METRICS), ("metrics and traces sampled 1 in 100", OBSERVED_SAMPLED))
    result["met"] = all(result[name]["cost"] <= TARGET_OVERHEAD for _, name in judged)
    for label, name in judged:
        judge(
            f"{label}, share of drain lost",
            result[name]["cost"],
            TARGET_OVERHEAD,
            higher_is_better=False,
        )
    return result


# --- claim latency ----------------------------------------------------------------------------


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
    finally:
        await conn.close()


async def claim_p50_ms(urls: list[str]) -> list[float]:
    """p50 of claim(limit=10) on each database, claims alternating between them so that
    load from elsewhere on the machine falls on all alike."""
    stores = [
        await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1)) for url in urls
    ]
    times: list[list[float]] = [[] for _ in urls]
    try:
        for _ in range(CLAIMS):
            for index, store in enumerate(stores):
                start = time.perf_counter()
                await store.jobs.claim("w", limit=10)
                times[index].append((time.perf_counter() - start) * 1000)
    finally:
        for store in stores:
            await store.close()
    return [statistics.median(t) for t in times]


async def claim_latency(server_url: str) -> dict[str, Any]:
    async with fresh_database(server_url) as small_url, fresh_database(server_url) as large_url:
        urls = [small_url, large_url]
        await fill(small_url, 0, 10_000)
        with Timer() as filling:
            await fill(large_url, 1_000_000, 100_000)
        print(f"\n  (filling the large table took {filling.elapsed:.0f} s)")
        result: dict[str, Any] = {}
        rows = []
        for condition in CONDITIONS:
            if condition == "analyzed":
                for url in urls:
                    conn = await asyncpg.connect(url)
                    try:
                        await conn.execute("ANALYZE jobs")
                    finally:
                        await conn.close()
            small, large = await claim_p50_ms(urls)
            stats = [await table_analyzed(url, "jobs") for url in urls]
            result[condition] = {
                "small_p50_ms": small,
                "large_p50_ms": large,
                "ratio": large / small,
                "tables_had_statistics": stats,
            }
            rows.append([condition, small, large, f"{large / small:.2f}x", str(stats)])
    print_table(
        f"claim(limit=10) p50 latency, ms ({CLAIMS} claims each, alternating)",
        ["table state", "10k pending", "1M finished + 100k pending", "ratio", "had stats"],
        rows,
    )
    return {"claims": CLAIMS, **result}


# --- jobs scheduled for later ------------------------------------------------------------------

SCHEDULED = 100_000


async def fill_scheduled(url: str, due: int, scheduled: int, priority: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url, created_at) SELECT 'audio', 'p' || g,"
            " now() - interval '1 hour' + g * interval '1 ms'"
            " FROM generate_series(1, $1::int) AS g",
            due,
        )
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url, run_after, priority)"
            " SELECT 'audio', 's' || g, now() + interval '1 day', $2::int"
            " FROM generate_series(1, $1::int) AS g",
            scheduled,
            priority,
        )
        await conn.execute("ANALYZE jobs")
    finally:
        await conn.close()


async def claim_buffers(url: str) -> int:
    """Shared buffers one claim(limit=10) reads (its function's statements included), rolled
    back; the second of two, so that the function's plans are cached as in a worker."""
    conn = await asyncpg.connect(url)
    try:
        counted = 0
        for _ in range(2):
            transaction = conn.transaction()
            await transaction.start()
            try:
                explained = await conn.fetchval(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)"
                    " SELECT id FROM media_store_claim_jobs('w', 10, 30, NULL)"
                )
            finally:
                await transaction.rollback()
            top = json.loads(explained)[0]["Plan"]
            counted = int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])
        return counted
    finally:
        await conn.close()


async def scheduled_claims(server_url: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    rows = []
    for state, due, priority in (
        ("idle (nothing due)", 0, 0),
        ("10k due at priority 0, scheduled at 50", 10_000, 50),
    ):
        async with fresh_database(server_url) as none_url, fresh_database(server_url) as some_url:
            await fill_scheduled(none_url, due, 0, priority)
            await fill_scheduled(some_url, due, SCHEDULED, priority)
            buffers = [await claim_buffers(url) for url in (none_url, some_url)]
            none, some = await claim_p50_ms([none_url, some_url])
        result[state] = {
            "p50_ms": {"none": none, "scheduled": some, "ratio": some / none},
            "buffers": {"none": buffers[0], "scheduled": buffers[1]},
        }
        rows.append([state, none, some, f"{some / none:.2f}x", buffers[0], buffers[1]])
    print_table(
        f"claim(limit=10) with 0 vs {SCHEDULED:,} jobs scheduled a day ahead (analyzed):"
        f" p50 ms ({CLAIMS} claims each, alternating) and shared buffers a claim reads",
        ["queue", "p50 none", "p50 scheduled", "ratio", "buffers none", "buffers scheduled"],
        rows,
    )
    return {"scheduled": SCHEDULED, "claims": CLAIMS, **result}


# --- main -------------------------------------------------------------------------------------


async def main(server_url: str) -> None:
    contenders: dict[str, Contender] = {
        SHARED: drain_shared,
        EACH: drain_each,
        PGQUEUER: drain_pgqueuer,
        PROCRASTINATE: drain_procrastinate,
        LIMIT: drain_limit,
    }
    names = list(contenders)
    runs: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in CONDITIONS}
    client_us: dict[str, dict[str, list[float]]] = {c: {n: [] for n in names} for c in CONDITIONS}
    server_us: dict[str, dict[str, list[float | None]]] = {
        c: {n: [] for n in names} for c in CONDITIONS
    }
    mislabelled: dict[str, dict[str, int]] = {c: dict.fromkeys(names, 0) for c in CONDITIONS}
    for round_no in range(ROUNDS):
        shift = round_no % len(names)
        order = names[shift:] + names[:shift]
        for condition in CONDITIONS:
            analyze = condition == "analyzed"
            for name in order:
                drained, had_stats = await one_run(server_url, name, contenders[name], analyze)
                runs[condition][name].append(drained.rate)
                client_us[condition][name].append(drained.client_us)
                server_us[condition][name].append(drained.server_us)
                if had_stats != analyze:
                    mislabelled[condition][name] += 1

    medians = {c: {n: median(runs[c][n]) for n in names} for c in CONDITIONS}

    def paired(condition: str, name: str, other: str) -> float:
        """Median over rounds of the ratio of two runs of one round (run back to back, so a
        slow spell of the machine falls on both): steadier than a ratio of medians."""
        pairs = zip(runs[condition][name], runs[condition][other], strict=True)
        return median([a / b for a, b in pairs])

    def cpu(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return median(known) if len(known) == len(values) else None

    rows = []
    results: dict[str, Any] = {}
    for condition in CONDITIONS:
        m = medians[condition]
        for name in names:
            server = cpu(server_us[condition][name])
            rows.append(
                [
                    condition,
                    name,
                    m[name],
                    *(f"{paired(condition, name, peer):.2f}x" for peer in PEERS),
                    f"{paired(condition, name, LIMIT):.2f}x",
                    f"{median(client_us[condition][name]):.0f}",
                    "?" if server is None else f"{server:.0f}",
                ]
            )
        results[condition] = {
            name: {
                "jobs_per_s": runs[condition][name],
                "median": m[name],
                "vs_pgqueuer": paired(condition, name, PGQUEUER),
                "vs_procrastinate": paired(condition, name, PROCRASTINATE),
                "vs_limit": paired(condition, name, LIMIT),
                "vs_pgqueuer_of_medians": m[name] / m[PGQUEUER],
                "vs_procrastinate_of_medians": m[name] / m[PROCRASTINATE],
                "vs_limit_of_medians": m[name] / m[LIMIT],
                "runs_whose_table_state_differed": mislabelled[condition][name],
                # CPU a job took during the drain, in us: this process's and the database
                # backends' (None: not readable), per round, and their medians.
                "client_cpu_us_per_job": client_us[condition][name],
                "server_cpu_us_per_job": server_us[condition][name],
                "client_cpu_us_per_job_median": median(client_us[condition][name]),
                "server_cpu_us_per_job_median": cpu(server_us[condition][name]),
            }
            for name in names
        }
    print_table(
        f"Drain {JOBS:,} jobs, {WORKERS} workers, batch {BATCH}, jobs/s (median of {ROUNDS});"
        " ratios: median of the rounds' ratios; CPU us a job (medians): client (this"
        " process), server (the database's backends)",
        [
            "table state",
            "contender",
            "jobs/s",
            "vs pgqueuer",
            "vs procrastinate",
            "vs limit",
            "client us",
            "server us",
        ],
        rows,
    )
    # The targets, on the worse condition and arrangement.
    targets: dict[str, Any] = {}
    for key, other, target in (
        ("vs_pgqueuer", PGQUEUER, TARGET_VS_PEER),
        ("vs_procrastinate", PROCRASTINATE, TARGET_VS_PEER),
        ("vs_limit", LIMIT, TARGET_VS_LIMIT),
    ):
        ratio, condition, name = min(
            (paired(c, n, other), c, n) for c in CONDITIONS for n in (SHARED, EACH)
        )
        targets[key] = {
            "worst": ratio,
            "at": [condition, name],
            "target": target,
            "met": ratio >= target,
        }
        print(f"  worst {key}: {condition}, {name}")
        judge(f"drain {key.replace('_', ' ')}, worst table state", ratio, target)

    cost = await overhead(server_url)
    latency = await claim_latency(server_url)
    scheduled = await scheduled_claims(server_url)
    write_results(
        "queue",
        {
            "jobs": JOBS,
            "workers": WORKERS,
            "batch": BATCH,
            "rounds": ROUNDS,
            "drain": results,
            "targets": targets,
            "overhead": cost,
            "claim_latency": latency,
            "scheduled_for_later": scheduled,
        },
    )
