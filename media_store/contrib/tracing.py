"""OpenTelemetry traces (``pip install media-store[otel]``; public path
:mod:`media_store.tracing`). ``import media_store`` never imports this module nor OpenTelemetry;
without an SDK configured, OpenTelemetry's API makes no-op spans.

- :func:`trace_store` makes a span of every named query a Store runs (``db.*`` attributes of
  the database semantic conventions, the span named by the query), and lets jobs created
  through it keep the W3C trace context (``traceparent``, ``tracestate``) that was current then
  (table ``job_trace_contexts``, migrations/0014);
- :class:`WorkerTracing`, an :class:`~media_store.worker.Instrument` given to ``run_worker``,
  makes a span of each claim (``receive``) and of each handler run (``process``; messaging
  semantic conventions), the latter a child of the span the job was created in: the request
  that enqueued a job and the worker that ran it share one trace, across the database.

Why ``messaging.system`` is ``"media_store"``: the conventions name the messaging product, and a
system not in their list uses its own name; PostgreSQL is the store under the queue, named by
the query spans' ``db.system.name``.

Cost: a Store without :func:`trace_store` pays one attribute test per statement (see
:mod:`media_store.repositories.base`); a worker without the instrument pays nothing here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final

import psycopg.conninfo
from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from media_store.db.boundary import Target, run
from media_store.db.connections import ManagedPool
from media_store.db.queries import Query
from media_store.models.schemas import Job, JobType
from media_store.store import Store
from media_store.worker.context import Instrument

# The instrumentation scope of every span made here.
SCOPE: Final = "media_store"
MESSAGING_SYSTEM: Final = "media_store"
DB_SYSTEM: Final = "postgresql"
# Where the attempt number goes: no messaging convention names it.
ATTEMPT: Final = "media_store.job.attempt"

# Only the W3C trace context travels with a job (not baggage: it is the application's, and
# would be stored in every job row of a traced request).
_W3C = TraceContextTextMapPropagator()


def carrier() -> dict[str, str] | None:
    """The W3C headers of the span current now (``traceparent``, and ``tracestate`` when it
    has one), None when no span is recording or sampled-out context is current."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    headers: dict[str, str] = {}
    _W3C.inject(headers)
    return headers or None


class QuerySpans:
    """A :class:`~media_store.repositories.base.QueryTracer`: each named query run in a
    ``CLIENT`` span named after the query, with ``db.system.name`` (postgresql),
    ``db.query.summary`` (the query's name), ``db.operation.name`` (its SQL verb: ``SELECT``,
    ``INSERT``, …; ``WITH`` for a statement that begins with a CTE) and ``db.namespace`` (the
    database, when known). A failing statement's span records the library's error."""

    __slots__ = ("_attributes", "follows_parent", "namespace", "tracer")

    def __init__(
        self, tracer: Tracer, namespace: str | None = None, *, follows_parent: bool = False
    ) -> None:
        self.tracer = tracer
        self.namespace = namespace
        # The sampler drops the children of a sampled-out span (see running() below): a
        # query run under one then gets no span, rather than one that records nothing.
        self.follows_parent = follows_parent
        # The attributes of each query, made once: a span's attributes are copied anyway.
        self._attributes: dict[str, dict[str, str]] = {}

    def run(
        self, target: Target, method: str, query: Query, args: Sequence[Any]
    ) -> Coroutine[Any, Any, Any]:
        if self.follows_parent and _sampled_out(trace.get_current_span()):
            # The statement as an untraced Store runs it: no span (see follows_parent), and
            # no coroutine of ours around it.
            return run(target, method, query.sql, args)
        return self._run(target, method, query, args)

    async def _run(self, target: Target, method: str, query: Query, args: Sequence[Any]) -> Any:
        attributes = self._attributes.get(query.name)
        if attributes is None:
            attributes = self._attributes[query.name] = self._attributes_of(query)
        with Current(
            self.tracer.start_span(query.name, kind=SpanKind.CLIENT, attributes=attributes)
        ):
            return await run(target, method, query.sql, args)

    def _attributes_of(self, query: Query) -> dict[str, str]:
        attributes = {
            "db.system.name": DB_SYSTEM,
            "db.query.summary": query.name,
            "db.operation.name": query.sql.split(None, 1)[0].upper(),
        }
        if self.namespace:
            attributes["db.namespace"] = self.namespace
        return attributes

    def carrier(self) -> Mapping[str, str] | None:
        return carrier()


class Current:
    """``span`` current while the block runs and ended when it ends; an exception raised in
    the block is recorded on the span, its status an error, as
    ``tracer.start_as_current_span`` does. A plain class instead of that generator-based
    context manager (two generators deep): the same spans for about 5 us less each, and a
    worker makes one a job."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span) -> None:
        self.span = span

    def __enter__(self) -> Span:
        self.token = context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            # Exceptions only, not other BaseExceptions (a cancellation is no error), as
            # OpenTelemetry's use_span.
            if isinstance(exc, Exception) and self.span.is_recording():
                self.span.record_exception(exc)
                self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            context.detach(self.token)
            self.span.end()


class Attached:
    """``ctx`` current while the block runs (no span of its own)."""

    __slots__ = ("ctx", "token")

    def __init__(self, ctx: context.Context) -> None:
        self.ctx = ctx

    def __enter__(self) -> None:
        self.token = context.attach(self.ctx)

    def __exit__(self, *exc: object) -> None:
        context.detach(self.token)


def _sampled_out(span: Span) -> bool:
    """Whether ``span`` is one of a trace, sampled out (not the invalid span of no trace)."""
    span_context = span.get_span_context()
    return span_context.is_valid and not span_context.trace_flags.sampled


def drops_sampled_out_children(provider: TracerProvider) -> bool:
    """Whether ``provider``'s sampler drops every span whose parent was sampled out, remote (a
    job's creator) or local (a claim's span): asked of the sampler itself (an SDK's
    ``sampler.should_sample``), for parents in a trace whose id is the lowest and one whose id
    is the highest (a ratio sampler keeps the former). False when the provider has no sampler
    to ask (a no-op or proxy provider)."""
    sampler = getattr(provider, "sampler", None)
    should_sample = getattr(sampler, "should_sample", None)
    if should_sample is None:
        return False
    for trace_id, remote in itertools.product((1, (1 << 128) - 1), (True, False)):
        parent = trace.set_span_in_context(
            trace.NonRecordingSpan(
                trace.SpanContext(trace_id, 1, is_remote=remote, trace_flags=trace.TraceFlags(0))
            )
        )
        try:
            decision = should_sample(parent, trace_id, "process", SpanKind.CONSUMER, None).decision
            if decision.is_recording():
                return False
        except Exception:  # a sampler of another make: ask no more, make the spans
            return False
    return True


def trace_store(
    store: Store, *, tracer_provider: TracerProvider | None = None, namespace: str | None = None
) -> QuerySpans:
    """Trace ``store``'s queries (see :class:`QuerySpans`) with a tracer of
    ``tracer_provider`` (default: OpenTelemetry's global one), and let the jobs it creates
    keep the trace context they were created in. ``namespace``: ``db.namespace`` (default:
    the database the Store's settings name). Returns the query tracer;
    ``store.trace_queries(None)`` turns it off."""
    if namespace is None and isinstance(store.pool, ManagedPool):
        dbname = psycopg.conninfo.conninfo_to_dict(store.pool.settings.dsn.reveal()).get("dbname")
        namespace = None if dbname is None else str(dbname)
    provider = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
    spans = QuerySpans(
        trace.get_tracer(SCOPE, tracer_provider=provider),
        namespace,
        follows_parent=drops_sampled_out_children(provider),
    )
    store.trace_queries(spans)
    return spans


class WorkerTracing(Instrument):
    """Spans of a worker (give it to ``run_worker(..., instrument=WorkerTracing())``):

    - each claim: a ``CLIENT`` span ``receive`` (``messaging.operation.name`` and ``.type``
      ``receive``, ``messaging.batch.message_count``, ``messaging.client.id`` the worker);
    - each handler run: a ``CONSUMER`` span ``process <job type>``, a child of the span the
      job was created in when it was created by a traced Store (see :func:`trace_store`), a
      root otherwise; ``messaging.operation.name``/``.type`` ``process``,
      ``messaging.message.id`` the job's id, ``messaging.destination.name`` its type,
      ``media_store.job.attempt`` the attempt. The span is current while the handler runs, so
      the handler's own spans (and its queries on a traced Store) are its children. An
      exception the handler raised is recorded on it, the status an error.

    The trace contexts are read by the claim's own statement (one index lookup a job).

    Sampled out: where the provider's sampler drops the children of a span that was sampled
    out (``ParentBased``, the sampler docs/observability.md recommends; asked of the sampler
    when this is made), a job created in a trace that was sampled out gets no ``process``
    span: its handler runs in that trace's context, so its own spans are that trace's (and
    sampled out alike), without the cost of a span that records nothing. The same holds for a
    query run under a sampled-out span (:func:`trace_store`). With any other sampler, every
    job gets its span and the sampler decides.
    """

    wants_trace_context = True

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        # What every span of a kind carries, made once (the SDK copies a span's attributes).
        self._process = {
            job_type: (
                f"process {job_type.value}",
                {
                    "messaging.system": MESSAGING_SYSTEM,
                    "messaging.operation.name": "process",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": job_type.value,
                },
            )
            for job_type in JobType
        }
        # The last carrier's traceparent and tracestate, its context, and whether that
        # context's span is one of a trace sampled out (see _parent).
        self._last: tuple[str | None, str | None, context.Context, bool] = (
            "",
            None,
            context.Context(),
            False,
        )
        provider = trace.get_tracer_provider() if tracer_provider is None else tracer_provider
        self._follows_parent = drops_sampled_out_children(provider)

    def claiming(self, worker_id: str) -> AbstractContextManager[object]:
        return Current(
            self.tracer.start_span(
                "receive",
                kind=SpanKind.CLIENT,
                attributes={
                    "messaging.system": MESSAGING_SYSTEM,
                    "messaging.operation.name": "receive",
                    "messaging.operation.type": "receive",
                    "messaging.client.id": worker_id,
                },
            )
        )

    def claimed(self, jobs: Sequence[Job], seconds: float) -> None:
        # Called inside claiming(): the receive span is current.
        trace.get_current_span().set_attribute("messaging.batch.message_count", len(jobs))

    def running(
        self, job: Job, trace_context: Mapping[str, str] | None
    ) -> AbstractContextManager[object]:
        parent: context.Context | None = None
        if trace_context:
            parent, sampled_out = self._parent(trace_context)
            if sampled_out and self._follows_parent:
                # The job's trace was sampled out where it began, and this provider's sampler
                # drops the children of such a span (ParentBased, as docs/observability.md
                # recommends): the span would not be recorded. The handler runs in that
                # trace's context as it is (its own spans are sampled out alike, the context
                # travels on), without the ~3 us the SDK takes to make the span that records
                # nothing.
                return Attached(parent)
        name, common = self._process[job.job_type]
        span = self.tracer.start_span(
            name, context=parent, kind=SpanKind.CONSUMER, attributes=common
        )
        if span.is_recording():
            # The job's own attributes only on a span that is kept: a sampled-out job (most
            # of them, where traces are sampled) costs no string of its id.
            span.set_attributes({"messaging.message.id": str(job.id), ATTEMPT: job.attempts})
        return Current(span)

    def settling(self, claimed: object) -> AbstractContextManager[object]:
        # The statements that write a batch's outcomes, children of its receive span: when
        # that span was sampled out, a traced Store makes them no span either (it would be a
        # root of its own otherwise, ~6 us a batch for a span most samplers drop).
        if isinstance(claimed, Span):
            return Attached(trace.set_span_in_context(claimed))
        return super().settling(claimed)

    def _parent(self, carrier: Mapping[str, str]) -> tuple[context.Context, bool]:
        """The context ``carrier`` holds, as the W3C propagator extracts it, and whether its
        span is one of a trace sampled out; the last one is kept (one tuple, replaced whole:
        workers on other threads may share this), as the jobs of one batch often come from
        one request (``create_many``)."""
        traceparent = carrier.get("traceparent")
        tracestate = carrier.get("tracestate")
        last = self._last
        if traceparent == last[0] and tracestate == last[1]:
            return last[2], last[3]
        read = _plain_parent(traceparent) if tracestate is None else None
        if read is None:
            parent = _W3C.extract(carrier)
            read = parent, _sampled_out(trace.get_current_span(parent))
        self._last = (traceparent, tracestate, *read)
        return read


# A traceparent of version 00 as a traced Store keeps it (lower-case hex, no other field).
_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def _plain_parent(traceparent: str | None) -> tuple[context.Context, bool] | None:
    """The context of ``traceparent`` with no ``tracestate``, as the W3C propagator extracts
    it (tests/contrib/test_tracing.py compares the two), and whether it is one of a trace
    sampled out; read here in a fraction of the propagator's time (a worker reads one a job).
    None for anything else, which is left to the propagator."""
    if traceparent is None:
        return None
    found = _TRACEPARENT.fullmatch(traceparent)
    if found is None or found[1] == _NO_TRACE or found[2] == _NO_SPAN:
        return None
    flags = _FLAGS[found[3]]
    span: Span
    if flags.sampled:
        span = trace.NonRecordingSpan(
            trace.SpanContext(
                int(found[1], 16), int(found[2], 16), is_remote=True, trace_flags=flags
            )
        )
    else:
        span = _SampledOutParent(traceparent, flags)
    return trace.set_span_in_context(span, _EMPTY), not flags.sampled


class _SampledOutParent(trace.NonRecordingSpan):
    """The remote span a sampled-out job's traceparent names, its ids read from their hex
    when first asked (``get_span_context``: a span started under it, a log record's trace
    id, a propagator's inject). A worker attaches one a job whose trace was sampled out, and
    most handlers of such jobs never ask: the ~2 us of the ids and the SpanContext are left
    to those that do."""

    __slots__ = ("_flags", "_traceparent")

    def __init__(self, traceparent: str, flags: trace.TraceFlags | None = None) -> None:
        # NonRecordingSpan's own __init__ only sets _context: set here, a call less.
        self._context = trace.INVALID_SPAN_CONTEXT
        self._traceparent: str | None = traceparent
        self._flags = flags

    def get_span_context(self) -> trace.SpanContext:
        traceparent = self._traceparent
        if traceparent is not None:
            flags = self._flags
            self._context = trace.SpanContext(
                int(traceparent[3:35], 16),
                int(traceparent[36:52], 16),
                is_remote=True,
                trace_flags=_FLAGS[traceparent[53:55]] if flags is None else flags,
            )
            self._traceparent = None
        return self._context

    def __repr__(self) -> str:
        return f"NonRecordingSpan({self.get_span_context()!r})"


# Every traceparent's flags by their two hex digits, and the context a read one goes into
# (set_span_in_context copies it): made once, not a job. A trace id or span id of zeros is
# not valid (the propagator reads no context from it).
_FLAGS: Final = {f"{n:02x}": trace.TraceFlags(n) for n in range(256)}
_EMPTY: Final = context.Context()
_NO_TRACE: Final = "0" * 32
_NO_SPAN: Final = "0" * 16
