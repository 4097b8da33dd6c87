"""``media_store.tracing``: the OpenTelemetry integration's public path (it lives in
:mod:`media_store.contrib.tracing`; needs the ``otel`` extra). See docs/observability.md."""

from media_store.contrib.tracing import QuerySpans, WorkerTracing, carrier, trace_store

__all__ = ["QuerySpans", "WorkerTracing", "carrier", "trace_store"]
