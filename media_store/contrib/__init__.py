"""Optional integrations, each behind an extra: :mod:`.fastapi` (``media-store[fastapi]``),
:mod:`.metrics` (``media-store[metrics]``), :mod:`.tracing` (``media-store[otel]``)."""
