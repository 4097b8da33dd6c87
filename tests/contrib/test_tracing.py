"""OpenTelemetry traces (media_store.contrib.tracing), through the SDK's in-memory exporter: the
worker's handler span continues the trace of the request that created the job, across the
database; claim spans; a span per named query; nothing kept or read when not tracing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from media_store import Job, Store
from media_store.contrib.tracing import WorkerTracing, drops_sampled_out_children, trace_store
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


@pytest.mark.parametrize(
    ("sampler", "follows"),
    [
        (ParentBased(TraceIdRatioBased(0.01)), True),
        (ParentBased(ALWAYS_ON), True),
        (ALWAYS_ON, False),
        (TraceIdRatioBased(0.5), False),
        (ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON), False),
        (ParentBased(ALWAYS_ON, remote_parent_not_sampled=TraceIdRatioBased(0.5)), False),
    ],
)
def test_the_sampler_is_asked_whether_it_drops_a_sampled_out_jobs_span(
    sampler: Sampler, follows: bool
) -> None:
    assert drops_sampled_out_children(TracerProvider(sampler=sampler)) is follows


def test_a_provider_with_no_sampler_to_ask_gets_every_span() -> None:
    assert drops_sampled_out_children(trace.NoOpTracerProvider()) is False
    assert drops_sampled_out_children(trace.ProxyTracerProvider()) is False


async def test_a_job_sampled_out_where_it_began_runs_in_that_trace_without_a_span(
    store: Store, exporter: InMemorySpanExporter
) -> None:
    """ParentBased sampling (as docs/observability.md recommends): the request's trace kept
    (sampled) or not decides the job's. Kept: a process span, child of the request. Not kept:
    no span is made, and the handler runs in the request's (sampled-out) context, so its own
    spans are in that trace and not recorded either."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_store(store, tracer_provider=provider)
    api = provider.get_tracer("api")
    with api.start_as_current_span("kept") as kept:
        await store.jobs.create({"job_type": "audio", "media_url": "s3://x/kept.mp3"})
    dropped = trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=trace.TraceFlags(0))
    )
    with trace.use_span(dropped):
        await store.jobs.create({"job_type": "audio", "media_url": "s3://x/dropped.mp3"})
    seen: dict[str, tuple[int, bool]] = {}
    handler_tracer = provider.get_tracer("handler")

    async def handle(job: Job) -> None:
        with handler_tracer.start_as_current_span("transcribe") as own:
            current = own.get_span_context()
            seen[job.media_url] = (current.trace_id, own.is_recording())
            await store.jobs.get_by_id(job.id)  # a query: a span under the kept job's only

    tracing = WorkerTracing(provider)
    stats = await run_worker(store, handle, burst=True, instrument=tracing)
    assert stats.completed == 2
    spans = exporter.get_finished_spans()
    [process] = named(spans, "process audio")  # the kept job's only
    assert process.parent is not None
    assert process.parent.span_id == kept.get_span_context().span_id
    assert seen["s3://x/kept.mp3"] == (kept.get_span_context().trace_id, True)
    assert seen["s3://x/dropped.mp3"] == (0xABC, False)
    [transcribe] = named(spans, "transcribe")
    assert transcribe.context is not None
    assert transcribe.context.trace_id == kept.get_span_context().trace_id
    [read] = named(spans, "get_job_by_id")
    assert read.parent is not None and read.parent.span_id == transcribe.context.span_id


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff"},
        {"traceparent": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"},
        {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"},
        {"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {"traceparent": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"},
        {"traceparent": " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "a=1",
        },
        {"traceparent": "garbage"},
    ],
)
def test_a_jobs_trace_context_is_read_as_the_w3c_propagator_reads_it(
    carrier: dict[str, str],
) -> None:
    tracing = WorkerTracing(TracerProvider())
    parent, sampled_out = tracing._parent(carrier)
    ours = trace.get_current_span(parent).get_span_context()
    theirs = trace.get_current_span(
        TraceContextTextMapPropagator().extract(carrier)
    ).get_span_context()
    assert ours == theirs
    assert sampled_out == (theirs.is_valid and not theirs.trace_flags.sampled)
    assert tracing._parent(dict(carrier)) == (parent, sampled_out)  # the last one, kept
    assert (ours.trace_id, ours.span_id, ours.trace_flags, ours.trace_state, ours.is_remote) == (
        theirs.trace_id,
        theirs.span_id,
        theirs.trace_flags,
        theirs.trace_state,
        theirs.is_remote,
    )


async def test_a_traced_claim_gives_each_jobs_context_in_the_order_of_the_jobs(
    store: Store, provider: TracerProvider
) -> None:
    """claim_traced: the jobs, and beside them, in their order, the W3C headers each was
    created under (None for one created with no span current)."""
    trace_store(store, tracer_provider=provider)
    await store.jobs.create({"job_type": "audio", "media_url": "s3://x/0", "priority": 3})
    with provider.get_tracer("api").start_as_current_span("request") as request:
        await store.jobs.create({"job_type": "audio", "media_url": "s3://x/1", "priority": 2})
    store.trace_queries(None)
    await store.jobs.create({"job_type": "audio", "media_url": "s3://x/2", "priority": 1})
    claimed, carriers = await store.jobs.claim_traced("w", limit=3)
    assert [job.media_url for job in claimed] == ["s3://x/0", "s3://x/1", "s3://x/2"]
    ids = request.get_span_context()
    assert carriers == [
        None,
        {"traceparent": f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"},
        None,
    ]


def a_job() -> Job:
    now = datetime.now(UTC)
    return Job(
        id=uuid.uuid4(),
        job_type="audio",
        status="processing",
        media_url="s3://x/a.mp3",
        created_at=now,
        updated_at=now,
        started_at=now,
        attempts=1,
        max_attempts=3,
        locked_by="w",
        locked_until=now,
        heartbeat_at=now,
        prompt=None,
        parameters={},
        result=None,
        error=None,
        completed_at=None,
        processing_time_ms=None,
        run_after=None,
        priority=0,
        idempotency_key=None,
        idempotency_scope=None,
    )


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-fe",
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-00",
        "00-00000000000000000000000000000000-b7ad6b7169203331-00",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-00",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra",
        "",
    ],
)
def test_a_sampled_out_jobs_handler_runs_in_the_context_the_propagator_reads(
    traceparent: str, exporter: InMemorySpanExporter
) -> None:
    """The worker's shortcut for a job whose trace was sampled out (a traceparent alone, read
    without the propagator, the last one kept): the handler runs in exactly the context the
    W3C propagator reads, with no span of its own; a traceparent the propagator reads no
    context from gets a trace of its own, as any job without a context."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = WorkerTracing(provider)
    carrier = {"traceparent": traceparent}
    theirs = trace.get_current_span(
        TraceContextTextMapPropagator().extract(carrier)
    ).get_span_context()
    for _ in range(2):  # the second time, the context kept from the first
        with tracing.running(a_job(), dict(carrier)):
            current = trace.get_current_span()
            ours, recording = current.get_span_context(), current.is_recording()
        if theirs.is_valid:
            assert not recording
            assert (ours.trace_id, ours.span_id, ours.trace_flags, ours.is_remote) == (
                theirs.trace_id,
                theirs.span_id,
                theirs.trace_flags,
                theirs.is_remote,
            )
        else:
            assert recording and ours.trace_id != theirs.trace_id
    assert len(exporter.get_finished_spans()) == (0 if theirs.is_valid else 2)


async def test_a_job_with_an_unreadable_context_or_a_sampled_parent_still_gets_its_spans(
    store: Store, exporter: InMemorySpanExporter, db_url: str
) -> None:
    """The shortcut is for sampled-out traces only: a job whose stored context is not valid
    (a zero trace id) starts a trace of its own, and a query under a sampled (if not
    recording) parent, such as a remote caller's, gets its span."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://x/a.mp3"})
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO job_trace_contexts (job_id, traceparent)"
            " VALUES ($1, '00-00000000000000000000000000000000-b7ad6b7169203331-00')",
            job.id,
        )
    finally:
        await conn.close()
    stats = await run_worker(
        store, lambda job: None, burst=True, instrument=WorkerTracing(provider)
    )
    assert stats.completed == 1
    [process] = named(exporter.get_finished_spans(), "process audio")
    assert process.parent is None  # a root: the sampler's to keep, and it did

    trace_store(store, tracer_provider=provider)
    remote = trace.NonRecordingSpan(
        trace.SpanContext(0x123, 0x456, is_remote=True, trace_flags=trace.TraceFlags(1))
    )
    with trace.use_span(remote):
        await store.jobs.get_by_id(job.id)
    [read] = named(exporter.get_finished_spans(), "get_job_by_id")
    assert read.parent is not None and read.parent.span_id == 0x456


@pytest.mark.parametrize("kept", [True, False])
async def test_a_batchs_outcomes_are_written_under_its_receive_span(
    store: Store, exporter: InMemorySpanExporter, kept: bool
) -> None:
    """The statement that completes a claimed batch is a child of that batch's ``receive``
    span, not a root of its own; where the receive span was sampled out (and the sampler
    drops such children), it gets no span at all."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON if kept else TraceIdRatioBased(0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await store.jobs.create_many(
        [{"job_type": "audio", "media_url": f"s3://x/{n}.mp3"} for n in range(3)]
    )
    trace_store(store, tracer_provider=provider)
    stats = await run_worker(
        store, lambda job: None, burst=True, batch=3, instrument=WorkerTracing(provider)
    )
    assert stats.completed == 3
    spans = exporter.get_finished_spans()
    completions = named(spans, "complete_many_jobs")
    if not kept:
        assert not spans  # no receive, no claim, no completion span: all sampled out
        return
    [completion] = completions
    first = named(spans, "receive")[0]
    assert first.context is not None and first.attributes is not None
    assert first.attributes["messaging.batch.message_count"] == 3
    assert completion.parent is not None
    assert completion.parent.span_id == first.context.span_id
