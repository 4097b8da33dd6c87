"""Transcriptions. Same order as sql/transcriptions.sql."""

from __future__ import annotations

from typing import Any

from media_store.models import Transcription, TranscriptionCreate
from media_store.queries import query
from media_store.repositories.children import ChildRepository


class TranscriptionRepository(ChildRepository[TranscriptionCreate, Transcription]):
    __slots__ = ()

    create_model = TranscriptionCreate
    row_model = Transcription
    _insert = query("create_transcription")
    _get = query("get_transcription")
    _list = query("list_transcriptions_for_job")
    _delete = query("delete_transcription")

    def _params(self, item: TranscriptionCreate) -> tuple[Any, ...]:
        words = (
            None
            if item.word_timestamps is None
            else [w.model_dump(exclude_none=True) for w in item.word_timestamps]
        )
        return (
            item.job_id,
            item.provider,
            item.text_content,
            item.language,
            item.confidence_score,
            words,
            item.metadata,
        )
