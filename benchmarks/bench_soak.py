"""Sustained load (issue 22, item 4): the queue at a steady rate for minutes, with a purge of
finished jobs running as an operator would schedule it, for media_store and for pgqueuer, one
after the other in one run.

For each contender, first its drain capacity: the median of 3 drains of 5,000 jobs by its 4
workers (as in ``bench_queue``). Then, on a fresh database, for ``MEDIA_STORE_SOAK_SECONDS``
(default 600) seconds:

- a producer, in a process of its own as an API's would be, enqueues at 70% of that capacity,
  every 0.1 s the jobs due by then (media_store: ``store.jobs.create_many``; pgqueuer:
  ``Queries.enqueue`` of the batch);
- 4 workers drain it: media_store's ``run_worker`` (one Store, batch 10, ``listen=True``, the
  default poll interval), pgqueuer's QueueManagers (one connection each, batch 10, continuous
  mode), both with a no-op handler;
- the operator's purge, every 60 s: media_store's ``store.jobs.purge`` of the jobs finished
  more than 60 s before (what ``media-store jobs purge --older-than`` runs); pgqueuer deletes a
  finished job from its queue table itself and writes a row to its log table, which it never
  trims: the operator's purge is ``Queries.clear_queue_log()``.

Every 30 s a row: claim latency p50/p99 of the claims in that interval (each claim statement,
empty ones included: media_store's through its Instrument hook, pgqueuer's around
``Queries.dequeue``), completions a second, the backlog (enqueued minus completed), the size
of the contender's tables with their indexes and TOAST (media_store: jobs; pgqueuer: its
queue and log tables), dead tuples, autovacuum and autoanalyze runs, and sequential scans of
the queue table since the soak began (``pg_stat_user_tables.seq_scan``; the sampler reads
only statistics views).

Targets (media_store): claim p99 of the last minute within 1.5x of the first; size at the end
within 1.3x of the size at minute 3 (the plateau; for runs shorter than 4 minutes, at half
time); no sequential scan of jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job as PgqJob

from benchmarks import bench_queue
from benchmarks.common import fresh_database, judge, print_table, write_results
from media_store import Dsn, Job, Settings, Store
from media_store.worker import Instrument, Outcome, run_worker
from media_store.worker.context import JobResult

SOAK_SECONDS_ENV = "MEDIA_STORE_SOAK_SECONDS"
SOAK_SECONDS = int(os.environ.get(SOAK_SECONDS_ENV, "600"))
INTERVAL = 30.0
TICK = 0.1
LOAD = 0.7
CAPACITY_DRAINS = 3
PURGE_EVERY = 60.0
PURGE_OLDER_THAN = 60.0
WORKERS = bench_queue.WORKERS
BATCH = bench_queue.BATCH
TARGET_P99_GROWTH = 1.5
TARGET_SIZE_GROWTH = 1.3
PLATEAU_FROM = 180.0

MEDIA_STORE = "media_store"
PGQUEUER = bench_queue.PGQUEUER


@dataclass
class Soak:
    """What one soak records as it runs."""

    started: float = field(default_factory=time.monotonic)
    claims: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    enqueued: int = 0
    completed: int = 0
    purged: int = 0
    purge_seconds: list[float] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def claim(self, seconds: float) -> None:
        self.claims.append((time.monotonic() - self.started, seconds))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class ClaimTimes(Instrument):
    """Records each claim's time and each completion, for the soak (nothing else)."""

    __slots__ = ("soak",)

    def __init__(self, soak: Soak) -> None:
        self.soak = soak

    def claimed(self, jobs: Sequence[Job], seconds: float) -> None:
        self.soak.claim(seconds)

    def finished(self, job: Job, outcome: Outcome) -> None:
        if outcome is Outcome.COMPLETED:
            self.soak.completed += 1


class TimedQueries(Queries):
    """pgqueuer's Queries, timing each dequeue (its claim)."""

    soak: Soak | None = None

    async def dequeue(self, *args: Any, **kwargs: Any) -> list[PgqJob]:
        sent = time.perf_counter()
        jobs = await super().dequeue(*args, **kwargs)
        if self.soak is not None:
            self.soak.claim(time.perf_counter() - sent)
        return jobs


TABLE_STATE = """
SELECT sum(pg_total_relation_size(s.relid))::bigint AS bytes,
       sum(s.n_dead_tup)::bigint AS dead,
       sum(s.n_live_tup)::bigint AS live,
       sum(s.autovacuum_count)::bigint AS autovacuums,
       sum(s.autoanalyze_count)::bigint AS autoanalyzes,
       sum(s.seq_scan) FILTER (WHERE s.relname = $2)::bigint AS seq_scans
FROM pg_stat_user_tables AS s
WHERE s.relname = any($1::text[])
"""


async def sample(conn: asyncpg.Connection[asyncpg.Record], tables: list[str]) -> asyncpg.Record:
    # Statistics other backends flushed: a fresh snapshot for each sample.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(TABLE_STATE, tables, tables[0])
    assert row is not None
    return row


async def sampler(soak: Soak, url: str, tables: list[str], stop: asyncio.Event, name: str) -> None:
    """A row every INTERVAL until ``stop``; the baseline (seq scans, autovacuums) at start."""
    conn = await asyncpg.connect(url)
    try:
        base = await sample(conn, tables)
        last_completed = 0
        last_at = 0.0
        index = 0
        print(
            f"\n  soak of {name}: at s, claim p50/p99 ms, completed/s, backlog, MB,"
            " dead tuples, autovacuums, seq scans",
            flush=True,
        )
        while True:
            index += 1
            due = soak.started + index * INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
            at = time.monotonic() - soak.started
            if stop.is_set() and at - last_at < 1.0:
                return  # stopped just after a row: that row is the last
            row = await sample(conn, tables)
            recent = [s for t, s in soak.claims if last_at <= t < at]
            completed = soak.completed
            entry = {
                "at_s": round(at, 1),
                "claims": len(recent),
                "claim_p50_ms": percentile(recent, 0.5) * 1000,
                "claim_p99_ms": percentile(recent, 0.99) * 1000,
                "completed_per_s": (completed - last_completed) / (at - last_at),
                # The producer's count is read every TICK: a completion may be counted first.
                "backlog": max(0, soak.enqueued - completed),
                "bytes": int(row["bytes"]),
                "dead_tuples": int(row["dead"]),
                "live_tuples": int(row["live"]),
                "autovacuums": int(row["autovacuums"] - base["autovacuums"]),
                "autoanalyzes": int(row["autoanalyzes"] - base["autoanalyzes"]),
                "seq_scans": int(row["seq_scans"] - base["seq_scans"]),
                "purged": soak.purged,
            }
            soak.samples.append(entry)
            print(
                f"  {entry['at_s']:6.0f}  {entry['claim_p50_ms']:6.2f} {entry['claim_p99_ms']:7.2f}"
                f"  {entry['completed_per_s']:8.0f}  {entry['backlog']:7d}"
                f"  {entry['bytes'] / 1e6:7.1f}  {entry['dead_tuples']:8d}"
                f"  {entry['autovacuums']:3d}  {entry['seq_scans']:3d}",
                flush=True,
            )
            last_completed, last_at = completed, at
            if stop.is_set():
                return
    finally:
        await conn.close()


def producer_process(
    kind: str, url: str, rate: float, seconds: float, started: float, counter: Any
) -> None:
    """The producer, in a process of its own as an API's would be (so that its client work
    does not share the workers' event loop): from ``started`` (``time.monotonic``, one clock
    for every process of the machine) for ``seconds``, every TICK, the jobs due by then at
    ``rate`` a second; the count so far in ``counter`` (a shared integer)."""
    asyncio.run(produce(kind, url, rate, seconds, started, counter))


async def produce(
    kind: str, url: str, rate: float, seconds: float, started: float, counter: Any
) -> None:
    enqueue: Callable[[int], Awaitable[object]]
    if kind == MEDIA_STORE:
        # The library's bulk enqueue, as an API enqueueing what it was sent would call it.
        store = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1))

        def enqueue(count: int) -> Awaitable[object]:
            return store.jobs.create_many(
                [{"job_type": "audio", "media_url": "https://x/soak"} for _ in range(count)]
            )

        close: Callable[[], Awaitable[None]] = store.close
    else:
        conn = await asyncpg.connect(url)
        queries = Queries(AsyncpgDriver(conn))

        def enqueue(count: int) -> Awaitable[object]:
            return queries.enqueue(["bench"] * count, [None] * count, [0] * count)

        close = conn.close
    done = 0
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(rate * elapsed) - done
            if due > 0:
                await enqueue(due)
                done += due
                counter.value = done
            await asyncio.sleep(TICK)
    finally:
        await close()


async def run_producer(soak: Soak, kind: str, url: str, rate: float, seconds: float) -> None:
    """Run :func:`producer_process` and follow its count in ``soak.enqueued`` until it ends."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0, lock=False)
    process = context.Process(
        target=producer_process, args=(kind, url, rate, seconds, soak.started, counter)
    )
    process.start()
    try:
        while process.is_alive():
            soak.enqueued = counter.value
            await asyncio.sleep(TICK)
    finally:
        process.join()
    soak.enqueued = counter.value
    if process.exitcode != 0:
        raise RuntimeError(f"the producer of {kind} exited with {process.exitcode}")


async def operator(
    soak: Soak, seconds: float, purge: Callable[[], Awaitable[int]], stop: asyncio.Event
) -> None:
    while time.monotonic() - soak.started < seconds:
        try:
            await asyncio.wait_for(stop.wait(), PURGE_EVERY)
            return
        except TimeoutError:
            pass
        began = time.perf_counter()
        soak.purged += await purge()
        soak.purge_seconds.append(time.perf_counter() - began)


async def soak_media_store(url: str, rate: float, seconds: float) -> Soak:
    soak = Soak()
    settings = Settings(dsn=Dsn(url), min_size=3 * WORKERS, max_size=3 * WORKERS)
    workers_store = await Store.open(settings=settings)
    admin = await Store.open(settings=Settings(dsn=Dsn(url), min_size=1, max_size=1))
    stop = asyncio.Event()

    async def noop(job: Job) -> JobResult:
        return None

    async def purge() -> int:
        return (await admin.jobs.purge(timedelta(seconds=PURGE_OLDER_THAN))).jobs

    try:
        soak.started = time.monotonic()
        instrument = ClaimTimes(soak)
        workers = [
            asyncio.create_task(
                run_worker(
                    workers_store, noop, batch=BATCH, listen=True, stop=stop, instrument=instrument
                )
            )
            for _ in range(WORKERS)
        ]
        watching = asyncio.create_task(sampler(soak, url, ["jobs"], stop, MEDIA_STORE))
        purging = asyncio.create_task(operator(soak, seconds, purge, stop))
        await run_producer(soak, MEDIA_STORE, url, rate, seconds)
        stop.set()
        await asyncio.gather(*workers, purging)
        await watching
    finally:
        stop.set()
        for store in (workers_store, admin):
            await store.close()
    return soak


async def soak_pgqueuer(url: str, rate: float, seconds: float) -> Soak:
    soak = Soak()
    stop = asyncio.Event()
    connections = [await asyncpg.connect(url) for _ in range(WORKERS + 1)]
    admin = Queries(AsyncpgDriver(connections[-1]))
    managers = []
    for worker_conn in connections[:WORKERS]:
        queries = TimedQueries(AsyncpgDriver(worker_conn))
        queries.soak = soak
        manager = QueueManager(queries)

        @manager.entrypoint("bench")
        async def noop(job: PgqJob) -> None:
            soak.completed += 1

        managers.append(manager)

    async def purge() -> int:
        await admin.clear_queue_log()
        return 0

    async def stopper() -> None:
        await stop.wait()
        for manager in managers:
            manager.shutdown.set()

    try:
        soak.started = time.monotonic()
        workers = [
            asyncio.create_task(manager.run(batch_size=BATCH, dequeue_timeout=timedelta(seconds=1)))
            for manager in managers
        ]
        stopping = asyncio.create_task(stopper())
        watching = asyncio.create_task(
            sampler(soak, url, ["pgqueuer", "pgqueuer_log"], stop, PGQUEUER)
        )
        purging = asyncio.create_task(operator(soak, seconds, purge, stop))
        await run_producer(soak, PGQUEUER, url, rate, seconds)
        stop.set()
        await asyncio.gather(*workers, purging, stopping)
        await watching
    finally:
        stop.set()
        for conn in connections:
            await conn.close()
    return soak


CONTENDERS: dict[
    str, tuple[bench_queue.Contender, Callable[[str, float, float], Awaitable[Soak]]]
] = {
    MEDIA_STORE: (bench_queue.drain_shared, soak_media_store),
    PGQUEUER: (bench_queue.drain_pgqueuer, soak_pgqueuer),
}


def summarise(
    name: str, soak: Soak, seconds: float, capacity: float, rate: float
) -> dict[str, Any]:
    first = [s for t, s in soak.claims if t < 60]
    last = [s for t, s in soak.claims if t >= seconds - 60]
    p99_first = percentile(first, 0.99) * 1000
    p99_last = percentile(last, 0.99) * 1000
    plateau_at = PLATEAU_FROM if seconds >= 240 else seconds / 2
    reference = min(soak.samples, key=lambda s: abs(s["at_s"] - plateau_at))
    end = soak.samples[-1]
    size_growth = end["bytes"] / reference["bytes"]
    return {
        "capacity_jobs_per_s": capacity,
        "rate_jobs_per_s": rate,
        "seconds": seconds,
        "enqueued": soak.enqueued,
        "completed": soak.completed,
        "purged": soak.purged,
        "purge_seconds": soak.purge_seconds,
        "claim_ms_first_minute": {
            "p50": percentile(first, 0.5) * 1000,
            "p99": p99_first,
            "claims": len(first),
        },
        "claim_ms_last_minute": {
            "p50": percentile(last, 0.5) * 1000,
            "p99": p99_last,
            "claims": len(last),
        },
        "p99_growth": p99_last / p99_first,
        "size_reference_at_s": reference["at_s"],
        "size_reference_bytes": reference["bytes"],
        "size_end_bytes": end["bytes"],
        "size_growth": size_growth,
        "seq_scans": end["seq_scans"],
        "autovacuums": end["autovacuums"],
        "autoanalyzes": end["autoanalyzes"],
        "dead_tuples_end": end["dead_tuples"],
        "dead_tuples_max": max(s["dead_tuples"] for s in soak.samples),
        "samples": soak.samples,
        "targets": {
            "p99_growth": {
                "target": TARGET_P99_GROWTH,
                "met": p99_last <= TARGET_P99_GROWTH * p99_first,
            },
            "size_growth": {"target": TARGET_SIZE_GROWTH, "met": size_growth <= TARGET_SIZE_GROWTH},
            "no_seq_scan": {"met": end["seq_scans"] == 0},
        },
    }


async def main(server_url: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        autovacuum = await conn.fetchval("SHOW autovacuum")
    finally:
        await conn.close()
    if autovacuum != "on":
        # What the soak measures is what autovacuum keeps of the tables under churn.
        print("  skipped: autovacuum is off on this server (the soak measures what it keeps)")
        return
    seconds = float(SOAK_SECONDS)
    results: dict[str, Any] = {}
    for name, (drain, soak_it) in CONTENDERS.items():
        rates = []
        for _ in range(CAPACITY_DRAINS):
            drained, _ = await bench_queue.one_run(
                server_url, bench_queue.SHARED if name == MEDIA_STORE else name, drain, True
            )
            rates.append(drained.rate)
        capacity = statistics.median(rates)
        rate = LOAD * capacity
        print(
            f"\n{name}: drain capacity {capacity:,.0f} jobs/s (median of {CAPACITY_DRAINS});"
            f" soak at {rate:,.0f} jobs/s for {seconds:.0f} s",
            flush=True,
        )
        async with fresh_database(server_url) as url:
            await bench_queue.prepare_schemas(url)
            soak = await soak_it(url, rate, seconds)
        results[name] = summarise(name, soak, seconds, capacity, rate)
        if name == MEDIA_STORE:
            summary = results[name]
            judge(
                "soak: claim p99 last minute / first",
                summary["p99_growth"],
                TARGET_P99_GROWTH,
                higher_is_better=False,
            )
            judge(
                "soak: size at the end / at minute 3",
                summary["size_growth"],
                TARGET_SIZE_GROWTH,
                higher_is_better=False,
            )
            judge("soak: sequential scans of jobs", summary["seq_scans"], 0, higher_is_better=False)
        print_table(
            f"Soak of {name}: {rate:,.0f} jobs/s ({LOAD:.0%} of its drain capacity) for"
            f" {seconds:.0f} s, {WORKERS} workers, purge every {PURGE_EVERY:.0f} s",
            [
                "at s",
                "claim p50 ms",
                "claim p99 ms",
                "done/s",
                "backlog",
                "MB",
                "dead tuples",
                "autovacuums",
                "seq scans",
            ],
            [
                [
                    f"{s['at_s']:.0f}",
                    s["claim_p50_ms"],
                    s["claim_p99_ms"],
                    f"{s['completed_per_s']:.0f}",
                    s["backlog"],
                    f"{s['bytes'] / 1e6:.1f}",
                    s["dead_tuples"],
                    s["autovacuums"],
                    s["seq_scans"],
                ]
                for s in soak.samples
            ],
        )

    def pair(claims: dict[str, float]) -> str:
        return f"{claims['p50']:.2f} / {claims['p99']:.2f}"

    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{r['rate_jobs_per_s']:.0f}",
                pair(r["claim_ms_first_minute"]),
                pair(r["claim_ms_last_minute"]),
                f"{r['p99_growth']:.2f}x",
                f"{r['size_reference_bytes'] / 1e6:.1f} @{r['size_reference_at_s']:.0f}s",
                f"{r['size_end_bytes'] / 1e6:.1f}",
                f"{r['size_growth']:.2f}x",
                r["seq_scans"],
                r["autovacuums"],
            ]
        )
    print_table(
        "Soak summary: claim ms p50 / p99, first minute vs last; size MB at minute 3 vs end",
        [
            "contender",
            "jobs/s",
            "first min",
            "last min",
            "p99 growth",
            "size ref",
            "size end",
            "growth",
            "seq scans",
            "autovacuums",
        ],
        rows,
    )
    ours = results[MEDIA_STORE]
    for key, label in (
        ("p99_growth", f"claim p99 last minute <= {TARGET_P99_GROWTH}x the first"),
        ("size_growth", f"size at the end <= {TARGET_SIZE_GROWTH}x the size at minute 3"),
        ("no_seq_scan", "no sequential scan of jobs"),
    ):
        print(f"  target {label}: {'met' if ours['targets'][key]['met'] else 'NOT met'}")
    write_results(
        "soak",
        {
            "seconds": seconds,
            "interval_s": INTERVAL,
            "load": LOAD,
            "workers": WORKERS,
            "batch": BATCH,
            "purge_every_s": PURGE_EVERY,
            "purge_older_than_s": PURGE_OLDER_THAN,
            "contenders": results,
        },
    )
