"""The replica view is built from the repositories' read halves (the ``*Reads`` classes): it
offers each of their read methods and no write, and runs each read call whole where its router
says. On one server: a router that counts what it is asked to route and sends everything to
the test database's pool (the routing over real standbys is test_replicas' and test_failover's).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from media_store import ReadOnlyRepositories, Store, TranscriptionNotFound
from media_store.db import Executor, Pool, RoutedExecutor
from media_store.repositories import (
    AnalysisResultReads,
    MediaAssetReads,
    TranscriptionReads,
)

T = TypeVar("T")

WORDS = [
    {"word": "hello", "start": 0.0, "end": 0.4, "confidence": 0.9},
    {"word": "world", "start": 0.5, "end": 0.9, "confidence": 0.8},
]


class CountingRouter(RoutedExecutor):
    """Routes every call to one pool, counting the calls."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.calls = 0

    async def route(self, call: Callable[[Executor], Awaitable[T]], /) -> T:
        self.calls += 1
        return await call(self.pool)


def _read_methods(reads: type[object]) -> set[str]:
    return {
        name
        for name, _ in inspect.getmembers(reads, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def test_the_view_offers_every_read_method_of_the_reads_classes_and_no_write(store: Store) -> None:
    view = store.replica
    for attribute, reads in [
        ("media_assets", MediaAssetReads),
        ("transcriptions", TranscriptionReads),
        ("analysis_results", AnalysisResultReads),
    ]:
        repository = getattr(view, attribute)
        assert isinstance(repository, reads)
        assert _read_methods(type(repository)) == _read_methods(reads)
        assert not hasattr(repository, "create")
        assert not hasattr(repository, "delete")
    assert _read_methods(TranscriptionReads) == {
        "get",
        "list_for_job",
        "words",
        "words_between",
        "count_words",
        "search",
    }
    assert not hasattr(view.transcriptions, "append_words")
    assert not hasattr(view.jobs, "claim")


async def test_a_read_of_several_statements_is_routed_once_as_a_whole(store: Store) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
    created = await store.transcriptions.create(
        {"job_id": job.id, "provider": "p", "text_content": "hello world", "word_timestamps": WORDS}
    )
    router = CountingRouter(store.pool)
    view = ReadOnlyRepositories(router)

    # the row, then its word segments: two statements, one call to route
    assert await view.transcriptions.get(created.id) == created
    assert router.calls == 1
    assert await view.transcriptions.list_for_job(job.id) == [created]
    assert router.calls == 2
    words = await view.transcriptions.words_between(created.id, 0.0, 0.45)
    assert list(words.words) == ["hello"]
    assert router.calls == 3
    # no segments, then the check that tells an unknown transcription: still one call
    with pytest.raises(TranscriptionNotFound):
        await view.transcriptions.words(uuid.uuid4())
    assert router.calls == 4
    # the jobs' reads too (the adapter the jobs split replaces)
    assert await view.jobs.get_by_id(job.id) == await store.jobs.get_by_id(job.id)
    assert router.calls == 5
    assert view.executor is None


async def test_the_reads_on_a_connection_run_there_unrouted(store: Store) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
    asset = await store.media_assets.create(
        {"job_id": job.id, "asset_type": "original", "file_path": "/a.wav"}
    )
    async with store.connection() as repos:
        view = ReadOnlyRepositories(repos.executor)
        assert type(view.media_assets) is MediaAssetReads
        assert view.executor is repos.executor
        assert await view.media_assets.list_for_job(job.id) == [asset]
