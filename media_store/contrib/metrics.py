"""Prometheus metrics (``pip install media-store[metrics]``; public path
:mod:`media_store.metrics`). ``import media_store`` and ``run_worker`` never import this module
nor ``prometheus_client``.

Two sources, both exposed on one registry (``prometheus_client.REGISTRY`` unless told):

- :class:`WorkerMetrics`, an :class:`~media_store.worker.Instrument` given to ``run_worker``:
  what the workers of this process did, by job type (counters, histograms, a gauge);
- :class:`DatabaseCollector`: the queue and its tables as the database sees them, read when
  scraped by the cheap statements (``store.jobs.stats()``: small indexes only; the health
  queries: statistics views only), never a table scan. A scrape whose statements fail or
  exceed ``timeout`` is answered without those figures, and counts
  ``media_store_scrape_errors_total``: Prometheus keeps the worker figures and an alert can
  fire on the errors, instead of the whole target going down.

Where they are served: :func:`metrics_app`, an ASGI application to mount in a FastAPI (or any
ASGI) application (``app.mount("/metrics", metrics_app())``), finding the Store that
:func:`media_store.fastapi.lifespan` opened; or ``media-store metrics --listen
127.0.0.1:9108`` (:func:`serve`), a process of its own serving the database's figures.

Why the collector runs its statements on the event loop from another thread: the Store's pool
belongs to its event loop, and prometheus_client collects synchronously, in its HTTP server's
thread (``start_http_server``) or wherever ``generate_latest`` runs; :func:`metrics_app` runs
``generate_latest`` in a thread for that reason. Collecting on the loop's own thread would wait
for itself: it is refused (counted as an error) instead.

Metric names follow Prometheus conventions: the ``media_store_`` prefix, ``_total`` counters,
base units (``_seconds``, ``_bytes``), a ``job_type`` label, nothing per job. Names, types and
labels are listed in docs/observability.md.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from media_store.models.schemas import Job, JobType
from media_store.repositories.admin import QueueStats
from media_store.repositories.health import WATCHED_TABLES, HealthReads, TableHealth
from media_store.store import Store
from media_store.worker.context import Instrument, Outcome

log = logging.getLogger("media_store.metrics")

PREFIX: Final = "media_store_"
# How long a scrape waits for the database's figures (Prometheus' own scrape_timeout is 10 s
# by default: this answers well within it).
DEFAULT_TIMEOUT: Final = 5.0
# Where the FastAPI integration's lifespan keeps the Store (media_store.fastapi.STATE_KEY,
# repeated here so that the metrics extra does not need FastAPI).
STATE_KEY: Final = "media_store"

# Handler durations: from a few milliseconds (a thumbnail) to an hour (a long transcription).
HANDLER_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# A claim is one statement: milliseconds, unless the database is in trouble.
CLAIM_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Queue wait: from a busy worker's next round to a backlog of hours.
WAIT_BUCKETS: Final = (0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class WorkerMetrics(Instrument, Collector):
    """What the workers of this process did, as Prometheus metrics (give it to ``run_worker(...,
    instrument=metrics)``; one instance serves every worker of the process):

    - ``media_store_jobs_claimed_total``, ``media_store_jobs_completed_total``,
      ``media_store_jobs_failed_total`` (for good), ``media_store_jobs_retried_total``,
      ``media_store_jobs_cancelled_total``, ``media_store_job_leases_lost_total``: counters by
      ``job_type``;
    - ``media_store_job_handler_duration_seconds`` (by ``job_type``): the handler's run;
    - ``media_store_claim_duration_seconds``: each claim statement, empty ones included;
    - ``media_store_job_wait_seconds`` (by ``job_type``): from a job's creation to its claim,
      first attempts only (see :meth:`claimed`);
    - ``media_store_jobs_in_flight`` (by ``job_type``): handlers running now.

    How it is kept: a custom collector of prometheus_client (registered on ``registry`` when
    made; a second instance on one registry raises ``ValueError``, duplicated timeseries, as
    prometheus_client's own metrics do). Each thread whose workers use it counts in plain
    integers of its own (a worker's hooks run on its event loop's thread), without a lock,
    and ``collect`` adds up every thread's at scrape time. prometheus_client's ``Counter``
    and ``Histogram`` take a lock per value and walk the buckets in Python: six of their
    calls a job cost the drain of no-op jobs about 5% of its throughput; one lock shared by
    the threads, taken three times a job, about 1 us a job more than these
    (benchmarks/bench_queue.py, "Overhead").
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        # Guards the list of every live thread's counts (a thread's first hook adds its own)
        # and what the threads that ended counted (folded in by the first scrape after).
        self._lock = threading.Lock()
        self._threads: list[tuple[threading.Thread, _Counts]] = []
        self._ended = _Counts()
        self._local = threading.local()
        registry.register(self)

    def _counts(self) -> _Counts:
        """This thread's counts, made at its first hook (the per-job hooks read
        ``self._local.counts`` themselves, a call less, and come here the first time)."""
        try:
            counts: _Counts = self._local.counts
        except AttributeError:
            counts = self._local.counts = _Counts()
            with self._lock:
                self._threads.append((threading.current_thread(), counts))
        return counts

    def claimed(self, jobs: Iterable[Job], seconds: float) -> None:
        """Counts the jobs, observes the claim's time and, for first attempts, the wait from
        creation (``started_at - created_at``, both on the database clock). A retry or a job
        scheduled ahead is left out of the wait: the claim clears ``run_after``, so the time it
        became due is no longer known, and counting from creation would report its backoff or
        its schedule as waiting."""
        counts = self._counts()
        counts.claims.observe(seconds)
        tallies = counts.tallies
        for job in jobs:
            tally = tallies[job.job_type]
            tally.claimed += 1
            if job.attempts == 1 and job.started_at is not None:
                wait = (job.started_at - job.created_at).total_seconds()
                if wait < 0.0:
                    wait = 0.0
                # _Buckets.observe, inline: once a job
                buckets = tally.wait
                buckets.counts[bisect.bisect_left(buckets.bounds, wait)] += 1
                buckets.total += wait

    def running(
        self, job: Job, trace_context: Mapping[str, str] | None
    ) -> AbstractContextManager[object]:
        try:
            counts: _Counts = self._local.counts
        except AttributeError:
            counts = self._counts()
        return _Running(counts.tallies[job.job_type])

    def finished(self, job: Job, outcome: Outcome) -> None:
        try:
            counts: _Counts = self._local.counts
        except AttributeError:
            counts = self._counts()
        counts.tallies[job.job_type].outcomes[outcome] += 1

    # --- the collector ---------------------------------------------------------------------

    def describe(self) -> Iterator[Any]:
        # The families without their samples: what register() checks for duplicated names.
        return self._families(empty=True)

    def collect(self) -> Iterator[Any]:
        return self._families(empty=False)

    def _families(self, *, empty: bool) -> Iterator[Any]:
        # Every thread's counts added up, each value read once. Read while other threads
        # count, a histogram's sum and its buckets may be an observation apart (the buckets
        # are read first); a count never goes back, and in flight is never below zero (ended
        # is read before started). A thread that ended counts no more: its counts are added
        # to those of the others that ended, once, and its own are let go.
        with self._lock:
            live = []
            for thread, counts in self._threads:
                if thread.is_alive():
                    live.append((thread, counts))
                else:
                    self._ended.add(counts)
            self._threads = live
            total = _Counts()
            total.add(self._ended)
        for _, counts in live:
            total.add(counts)
        rows = [
            (
                job_type.value,
                tally.claimed,
                dict(tally.outcomes),
                tally.started - tally.ended,
                tally.handler.snapshot(),
                tally.wait.snapshot(),
            )
            for job_type, tally in total.tallies.items()
        ]
        claims = total.claims.snapshot()
        if empty:
            rows = []
        labels = ["job_type"]
        claimed = CounterMetricFamily(
            PREFIX + "jobs_claimed", "Jobs claimed by workers", labels=labels
        )
        outcomes = {
            outcome: CounterMetricFamily(PREFIX + name, doc, labels=labels)
            for outcome, (name, doc) in _OUTCOMES.items()
        }
        handler = HistogramMetricFamily(
            PREFIX + "job_handler_duration_seconds", "Time a job's handler ran", labels=labels
        )
        wait = HistogramMetricFamily(
            PREFIX + "job_wait_seconds",
            "Time from a job's creation to its first claim",
            labels=labels,
        )
        in_flight = GaugeMetricFamily(
            PREFIX + "jobs_in_flight", "Handlers running now", labels=labels
        )
        for job_type, claimed_n, outcome_n, running_n, handler_h, wait_h in rows:
            claimed.add_metric([job_type], claimed_n)
            for outcome, family in outcomes.items():
                family.add_metric([job_type], outcome_n[outcome])
            in_flight.add_metric([job_type], running_n)
            handler.add_metric([job_type], handler_h[0], handler_h[1])
            wait.add_metric([job_type], wait_h[0], wait_h[1])
        claim = HistogramMetricFamily(
            PREFIX + "claim_duration_seconds",
            "Time a claim statement took (one per claimed batch)",
        )
        if not empty:
            claim.add_metric([], claims[0], claims[1])
        yield claimed
        yield from outcomes.values()
        yield handler
        yield claim
        yield wait
        yield in_flight


# The outcome counters: name (without ``_total``, which the family adds) and help.
_OUTCOMES: Final[dict[Outcome, tuple[str, str]]] = {
    Outcome.COMPLETED: ("jobs_completed", "Jobs completed"),
    Outcome.FAILED: ("jobs_failed", "Jobs failed for good"),
    Outcome.RETRIED: ("jobs_retried", "Job attempts failed, the job pending again"),
    Outcome.CANCELLED: ("jobs_cancelled", "Jobs cancelled while a worker held them"),
    Outcome.LOST: ("job_leases_lost", "Jobs whose lease a worker lost before finishing"),
}


class _Buckets:
    """A histogram's counts: one per upper bound and one past the last (``+Inf``), not
    cumulative (``collect`` adds them up), and the sum. Observed by one thread only (see
    WorkerMetrics), read by a scrape."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as a Prometheus bucket counts value <= le
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def add(self, other: _Buckets) -> None:
        """Add ``other``'s counts (of the same bounds) to these."""
        for index, count in enumerate(list(other.counts)):
            self.counts[index] += count
        self.total += other.total

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """The cumulative buckets as HistogramMetricFamily wants them, and the sum."""
        buckets: list[tuple[str, float]] = []
        running = 0.0
        for bound, count in zip(
            (*map(floatToGoString, self.bounds), "+Inf"), self.counts, strict=True
        ):
            running += count
            buckets.append((bound, running))
        return buckets, self.total


class _Tally:
    """What the workers of one thread did with one job type."""

    __slots__ = ("claimed", "ended", "handler", "outcomes", "started", "wait")

    def __init__(self) -> None:
        self.claimed = 0
        self.started = 0
        self.ended = 0
        self.outcomes = dict.fromkeys(Outcome, 0)
        self.handler = _Buckets(HANDLER_BUCKETS)
        self.wait = _Buckets(WAIT_BUCKETS)

    def add(self, other: _Tally) -> None:
        """Add ``other``'s counts to these (see WorkerMetrics._families)."""
        self.claimed += other.claimed
        self.ended += other.ended
        self.started += other.started
        for outcome, count in list(other.outcomes.items()):
            self.outcomes[outcome] += count
        self.handler.add(other.handler)
        self.wait.add(other.wait)


class _Counts:
    """What the workers of one thread did: a tally by job type, and the claims' times."""

    __slots__ = ("claims", "tallies")

    def __init__(self) -> None:
        # Every job type shown from the start (at zero): a rate over a series that appears
        # only with its first job misses that job.
        self.tallies = {job_type: _Tally() for job_type in JobType}
        self.claims = _Buckets(CLAIM_BUCKETS)

    def add(self, other: _Counts) -> None:
        for job_type, tally in self.tallies.items():
            tally.add(other.tallies[job_type])
        self.claims.add(other.claims)


class _Running:
    """Around a handler's run: in flight, and its duration (a plain class: a generator-based
    context manager costs a few microseconds more a job). On the thread's own counts: no
    lock."""

    __slots__ = ("started", "tally")

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally
        self.started = 0.0

    def __enter__(self) -> None:
        self.tally.started += 1
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.started
        tally = self.tally
        tally.ended += 1
        handler = tally.handler
        handler.counts[bisect.bisect_left(handler.bounds, seconds)] += 1
        handler.total += seconds


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What one scrape read from the database."""

    stats: QueueStats
    tables: list[TableHealth]
    oldest_transaction_s: float | None


class DatabaseCollector(Collector):
    """The queue and its tables as the database sees them, read at each scrape (a custom
    collector: register it on a registry, ``registry.register(DatabaseCollector(store))``;
    :func:`metrics_app` and :func:`serve` do). Made on the Store's event loop (or given
    ``loop``); collected from any other thread.

    - ``media_store_jobs`` (``job_type``, ``status``: pending, processing): jobs by type and
      status, exact; ``media_store_jobs_finished_estimate`` (``status``: completed, failed,
      cancelled): all types, the planner's estimate (absent until jobs was analyzed);
    - ``media_store_jobs_claimable`` (``job_type``): pending and due now;
    - ``media_store_oldest_pending_age_seconds`` (``job_type``): the oldest due pending job's
      age (absent when none is due);
    - ``media_store_expired_leases`` (``job_type``): processing jobs whose lease ran out;
    - ``media_store_table_dead_tuples``, ``media_store_table_live_tuples``,
      ``media_store_table_size_bytes``, ``media_store_table_last_autovacuum_timestamp_seconds``
      (``table``: jobs, transcription_word_segments);
    - ``media_store_oldest_transaction_age_seconds``: the oldest open transaction holding back
      vacuum (0 when none);
    - ``media_store_scrape_errors_total``: scrapes whose statements failed or timed out (then
      answered without the figures above).

    ``timeout`` (seconds) bounds the statements of one scrape.
    """

    def __init__(
        self,
        store: Store,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        loop: asyncio.AbstractEventLoop | None = None,
        tables: Iterable[str] = WATCHED_TABLES,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.loop = loop or asyncio.get_running_loop()
        self.tables = tuple(tables)
        self.health = HealthReads(store.pool)
        self.errors = 0
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Any]:
        # Names without values: registering must not run the statements (prometheus_client
        # would otherwise collect once at register time, on the caller's thread).
        yield from self._families(None)

    def collect(self) -> Iterator[Any]:
        snapshot = self._read()
        yield from self._families(snapshot)

    def _read(self) -> _Snapshot | None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            log.error(
                "media_store metrics collected on the Store's event loop thread, which would "
                "wait for itself: collect from another thread (generate_latest in a thread)"
            )
            self._failed()
            return None
        future = asyncio.run_coroutine_threadsafe(self._query(), self.loop)
        try:
            return future.result(self.timeout + 1.0)  # the statements time out first
        except (Exception, concurrent.futures.CancelledError) as exc:
            future.cancel()
            log.warning("media_store metrics: the database's figures failed: %r", exc)
            self._failed()
            return None

    def _failed(self) -> None:
        with self._lock:
            self.errors += 1

    async def _query(self) -> _Snapshot:
        async with asyncio.timeout(self.timeout):
            stats = await self.store.jobs.stats()
            tables = await self.health.tables(self.tables)
            oldest = await self.health.oldest_transaction_age()
        return _Snapshot(stats, tables, oldest)

    def _families(self, snapshot: _Snapshot | None) -> Iterator[Any]:
        errors = CounterMetricFamily(
            PREFIX + "scrape_errors",
            "Scrapes whose database statements failed or timed out",
        )
        with self._lock:
            errors.add_metric([], self.errors)
        yield errors

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, labels=labels)

        jobs = gauge(
            "jobs", "Jobs by type and status (unfinished statuses)", ["job_type", "status"]
        )
        finished = gauge(
            "jobs_finished_estimate",
            "Finished jobs of all types by status, the planner's estimate",
            ["status"],
        )
        claimable = gauge("jobs_claimable", "Pending jobs due now", ["job_type"])
        oldest = gauge(
            "oldest_pending_age_seconds", "Age of the oldest due pending job", ["job_type"]
        )
        expired = gauge("expired_leases", "Processing jobs whose lease ran out", ["job_type"])
        dead = gauge("table_dead_tuples", "Dead tuples (statistics estimate)", ["table"])
        live = gauge("table_live_tuples", "Live tuples (statistics estimate)", ["table"])
        size = gauge("table_size_bytes", "Size with indexes and TOAST", ["table"])
        vacuumed = gauge(
            "table_last_autovacuum_timestamp_seconds",
            "When autovacuum last vacuumed the table (Unix time)",
            ["table"],
        )
        oldest_xact = gauge(
            "oldest_transaction_age_seconds",
            "Age of the oldest open transaction holding back vacuum (0: none)",
            [],
        )
        if snapshot is not None:
            for row in snapshot.stats.types:
                job_type = row.job_type.value if row.job_type is not None else "all"
                jobs.add_metric([job_type, "pending"], row.pending)
                jobs.add_metric([job_type, "processing"], row.processing)
                claimable.add_metric([job_type], row.claimable)
                expired.add_metric([job_type], row.expired_leases)
                if row.oldest_pending_s is not None:
                    oldest.add_metric([job_type], row.oldest_pending_s)
            total = snapshot.stats.total
            for status, estimate in (
                ("completed", total.completed_estimate),
                ("failed", total.failed_estimate),
                ("cancelled", total.cancelled_estimate),
            ):
                if estimate is not None:
                    finished.add_metric([status], estimate)
            for table in snapshot.tables:
                dead.add_metric([table.table], table.dead_tuples)
                live.add_metric([table.table], table.live_tuples)
                size.add_metric([table.table], table.total_bytes)
                if table.last_autovacuum is not None:
                    vacuumed.add_metric([table.table], table.last_autovacuum.timestamp())
            oldest_xact.add_metric([], snapshot.oldest_transaction_s or 0.0)
        yield from (jobs, finished, claimable, oldest, expired)
        yield from (dead, live, size, vacuumed, oldest_xact)


# --- serving ---------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def metrics_app(
    store: Store | None = None,
    *,
    registry: CollectorRegistry = REGISTRY,
    timeout: float = DEFAULT_TIMEOUT,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI application answering every GET with the registry's metrics in Prometheus'
    text format: ``app.mount("/metrics", metrics_app())`` in FastAPI or Starlette.

    A :class:`DatabaseCollector` for ``store`` (by default the Store the FastAPI
    integration's lifespan keeps on ``app.state``) is registered on ``registry`` at the first
    request, on the serving event loop; the exposition is rendered in a thread (see the module
    doc). No framework is needed: it is a plain ASGI callable.
    """
    registered: list[DatabaseCollector] = []
    lock = asyncio.Lock()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"method not allowed\n", "text/plain; charset=utf-8")
            return
        async with lock:
            if not registered:
                found = store or getattr(getattr(scope.get("app"), "state", None), STATE_KEY, None)
                if isinstance(found, Store):
                    collector = DatabaseCollector(found, timeout=timeout)
                    registry.register(collector)
                    registered.append(collector)
        body = await asyncio.to_thread(generate_latest, registry)
        await _answer(send, 200, b"" if scope["method"] == "HEAD" else body, CONTENT_TYPE_LATEST)

    return app


async def _answer(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def serve(
    store: Store,
    host: str,
    port: int,
    *,
    registry: CollectorRegistry = REGISTRY,
    timeout: float = DEFAULT_TIMEOUT,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``registry`` with the database's figures of ``store`` on ``http://host:port/``
    (any path; ``/metrics`` by convention) until ``stop`` is set or the task is cancelled.
    prometheus_client's own HTTP server answers, in its threads; the statements run on this
    event loop. ``media-store metrics --listen`` runs this. Raises ``OSError`` when the
    address cannot be bound."""
    collector = DatabaseCollector(store, timeout=timeout)
    registry.register(collector)
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        registry.unregister(collector)
