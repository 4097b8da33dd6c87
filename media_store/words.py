"""Word-level timestamps: the model of one word and (later) their columnar storage."""

from __future__ import annotations

from typing import Annotated

import pydantic
from pydantic import Field

from media_store.models import Confidence, Text, Text50, _Input


class WordTimestamp(_Input):
    """One spoken word: seconds from the start of the media, 0 <= start <= end."""

    word: Text
    start: Annotated[float, Field(ge=0.0)]
    end: Annotated[float, Field(ge=0.0)]
    confidence: Confidence | None = None
    speaker: Text50 | None = None

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> WordTimestamp:
        if self.end < self.start:
            raise ValueError(f"word ends ({self.end}) before it starts ({self.start})")
        return self
