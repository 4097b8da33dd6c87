"""OpenTelemetry traces (media_store.contrib.tracing), through the SDK's in-memory exporter: the
worker's handler span continues the trace of the request that created the job, across the
database; claim spans; a span per named query; nothing kept or read when not tracing."""

from __future__ import annotations

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from media_store import Job, Store
from media_store.contrib.tracing import WorkerTracing, trace_store
from media_store.worker import run_worker


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def contexts(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM job_trace_contexts")
        return count
    finally:
        await conn.close()


async def test_the_handler_span_is_a_child_of_the_request_that_created_the_job(
    store: Store, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    trace_store(store, tracer_provider=provider)
    api = provider.get_tracer("api")
    with api.start_as_current_span("POST /jobs") as request:
        created = await store.jobs.create({"job_type": "audio", "media_url": "s3://x/a.mp3"})

    async def handle(job: Job) -> dict[str, bool]:
        await store.jobs.get_by_id(job.id)  # a query of the handler's own
        return {"ok": True}

    stats = await run_worker(
        store, handle, burst=True, worker_id="w-1", instrument=WorkerTracing(provider)
    )
    assert stats.completed == 1
    spans = exporter.get_finished_spans()

    [process] = named(spans, "process audio")
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == request.get_span_context().span_id
    assert process.context is not None
    assert process.context.trace_id == request.get_span_context().trace_id
    assert process.attributes is not None
    assert dict(process.attributes) == {
        "messaging.system": "media_store",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.message.id": str(created.id),
        "messaging.destination.name": "audio",
        "media_store.job.attempt": 1,
    }
    # the handler's query is a child of the handler's span
    [read] = [s for s in named(spans, "get_job_by_id") if s.parent is not None]
    assert read.parent is not None and read.parent.span_id == process.context.span_id

    receives = named(spans, "receive")
    assert receives and all(span.kind is SpanKind.CLIENT for span in receives)
    first = receives[0]
    assert first.attributes is not None
    assert first.attributes["messaging.batch.message_count"] == 1
    assert first.attributes["messaging.client.id"] == "w-1"
    # each claim statement (a traced worker's: the jobs and their trace contexts at once) is
    # a child of its claim's span (a burst ends on an empty claim), and nothing else is read
    assert not named(spans, "get_job_trace_contexts") and not named(spans, "claim_jobs")
    claims = named(spans, "claim_traced_jobs")
    assert len(claims) == len(receives) == 2
    assert [c.parent.span_id if c.parent else None for c in claims] == [
        r.context.span_id if r.context else None for r in receives
    ]

    # one span per named query, with the database conventions
    [insert] = named(spans, "create_traced_job")
    assert insert.kind is SpanKind.CLIENT
    assert insert.parent is not None
    assert insert.parent.span_id == request.get_span_context().span_id
    assert insert.attributes is not None
    assert insert.attributes["db.system.name"] == "postgresql"
    assert insert.attributes["db.query.summary"] == "create_traced_job"
    assert insert.attributes["db.operation.name"] == "WITH"
    assert insert.attributes["db.namespace"]


async def test_enqueued_and_batched_jobs_keep_their_trace_context_too(
    store: Store, db_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    trace_store(store, tracer_provider=provider)
    with provider.get_tracer("api").start_as_current_span("POST /batch") as request:
        await store.jobs.enqueue(
            {"job_type": "video", "media_url": "s3://x/v", "idempotency_key": "k1"}
        )
        await store.jobs.create_many(
            [{"job_type": "video", "media_url": f"s3://x/{n}"} for n in range(3)]
        )
        # a key already held creates nothing, and keeps nothing
        await store.jobs.enqueue(
            {"job_type": "video", "media_url": "s3://x/v", "idempotency_key": "k1"}
        )
    assert await contexts(db_url) == 4
    await run_worker(store, lambda job: None, burst=True, instrument=WorkerTracing(provider))
    processes = named(exporter.get_finished_spans(), "process video")
    assert len(processes) == 4
    trace_id = request.get_span_context().trace_id
    assert all(span.context is not None and span.context.trace_id == trace_id for span in processes)


async def test_an_untraced_store_keeps_no_context_and_a_job_without_one_starts_a_trace(
    store: Store, db_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with provider.get_tracer("api").start_as_current_span("POST /jobs"):
        await store.jobs.create({"job_type": "audio", "media_url": "s3://x/a.mp3"})
    assert await contexts(db_url) == 0
    await run_worker(store, lambda job: None, burst=True, instrument=WorkerTracing(provider))
    spans = exporter.get_finished_spans()
    [process] = named(spans, "process audio")
    assert process.parent is None
    assert not named(spans, "claim_jobs")  # the store's queries are not traced
    # turned on, then off again
    trace_store(store, tracer_provider=provider)
    store.trace_queries(None)
    await store.jobs.count_by_status()
    assert not named(exporter.get_finished_spans(), "count_jobs_by_status")


async def test_a_traced_transaction_traces_its_queries(
    store: Store, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    trace_store(store, tracer_provider=provider)
    async with store.transaction() as tx:
        await tx.jobs.count_by_status()
    async with store.connection() as conn:
        await conn.jobs.count_by_status()
    assert len(named(exporter.get_finished_spans(), "count_jobs_by_status")) == 2
