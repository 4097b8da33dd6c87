"""Optional integrations, each behind an extra: :mod:`.fastapi` (``media-store[fastapi]``)."""
