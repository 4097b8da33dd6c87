"""``media_store.metrics``: the Prometheus metrics' public path (they live in
:mod:`media_store.contrib.metrics`; needs the ``metrics`` extra). See docs/observability.md."""

from media_store.contrib.metrics import (
    DEFAULT_TIMEOUT,
    DatabaseCollector,
    WorkerMetrics,
    metrics_app,
    serve,
)

__all__ = ["DEFAULT_TIMEOUT", "DatabaseCollector", "WorkerMetrics", "metrics_app", "serve"]
