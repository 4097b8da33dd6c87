"""Media assets, transcriptions, analysis results; transactions; bad input; error mapping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from media_store import (
    AnalysisResult,
    Conflict,
    DatabaseUnavailable,
    Dsn,
    Job,
    JobNotFound,
    MediaAsset,
    MediaStoreError,
    Repositories,
    Settings,
    Store,
    Transcription,
    ValidationError,
)
from media_store.db.connections import connect, create_pool
from media_store.errors import translate
from media_store.repositories import JobRepository

TABLES = ("jobs", "media_assets", "transcriptions", "analysis_results")


async def counts(repos: Repositories | Store) -> dict[str, int]:
    executor = repos.executor
    return {t: await executor.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


@pytest.fixture
async def job(store: Store) -> Job:
    return await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})


def asset(job_id: uuid.UUID, **kw: Any) -> dict[str, Any]:
    return {"job_id": job_id, "asset_type": "frame", "file_path": "/f/1.jpg", **kw}


def transcription(job_id: uuid.UUID, **kw: Any) -> dict[str, Any]:
    return {"job_id": job_id, "provider": "whisper", "text_content": "hi there", **kw}


def result(job_id: uuid.UUID, **kw: Any) -> dict[str, Any]:
    return {"job_id": job_id, "analysis_type": "summary", **kw}


# --- media assets ---------------------------------------------------------------------------


async def test_media_asset_create_get_list_delete(store: Store, job: Job) -> None:
    a1 = await store.media_assets.create(
        asset(
            job.id,
            asset_type="original",
            file_size_bytes=0,
            mime_type="audio/mpeg",
            metadata={"codec": "mp3", "bitrate": 128},
        )
    )
    a2 = await store.media_assets.create(asset(job.id))
    assert isinstance(a1, MediaAsset)
    assert a1.file_size_bytes == 0  # falsy but stored
    assert a1.metadata == {"codec": "mp3", "bitrate": 128}
    assert a2.metadata == {}
    assert await store.media_assets.get(a1.id) == a1
    assert await store.media_assets.list_for_job(job.id) == [a1, a2]
    assert await store.media_assets.delete(a1.id) is True
    assert await store.media_assets.delete(a1.id) is False
    assert await store.media_assets.get(a1.id) is None
    assert await store.media_assets.list_for_job(job.id) == [a2]


async def test_media_assets_create_many_keeps_order(store: Store, job: Job) -> None:
    made = await store.media_assets.create_many(
        [asset(job.id, file_path=f"/f/{i}.jpg", file_size_bytes=i) for i in range(50)]
    )
    assert [a.file_path for a in made] == [f"/f/{i}.jpg" for i in range(50)]
    listed = await store.media_assets.list_for_job(job.id)
    assert [a.file_path for a in listed] == [f"/f/{i}.jpg" for i in range(50)]
    assert await store.media_assets.create_many([]) == []


async def test_create_many_with_one_bad_item_writes_nothing(store: Store, job: Job) -> None:
    before = await counts(store)
    items = [asset(job.id, file_path=f"/f/{i}.jpg") for i in range(10)]
    items[7]["file_size_bytes"] = -1
    with pytest.raises(ValidationError, match="7"):
        await store.media_assets.create_many(items)
    results = [result(job.id) for _ in range(5)] + [result(job.id, input_tokens=-1)]
    with pytest.raises(ValidationError):
        await store.analysis_results.create_many(results)
    assert await counts(store) == before


async def test_create_many_for_a_missing_job_writes_nothing(store: Store, job: Job) -> None:
    before = await counts(store)
    items = [asset(job.id), asset(uuid.uuid4())]
    with pytest.raises(JobNotFound):
        await store.media_assets.create_many(items)
    assert await counts(store) == before


# --- transcriptions -----------------------------------------------------------------------


async def test_transcription_create_get_list_delete(store: Store, job: Job) -> None:
    words = [
        {"word": "hi", "start": 0.0, "end": 0.3, "confidence": 0.9},
        {"word": "there", "start": 0.3, "end": 0.8, "confidence": 1.0, "speaker": "A"},
    ]
    t1 = await store.transcriptions.create(
        transcription(
            job.id,
            language="en",
            confidence_score=0.0,
            word_timestamps=words,
            metadata={"model": "large-v3"},
        )
    )
    t2 = await store.transcriptions.create(transcription(job.id, text_content=""))
    assert isinstance(t1, Transcription)
    assert t1.confidence_score == 0.0
    assert t1.metadata == {"model": "large-v3"}
    assert t1.word_timestamps is not None
    assert [(w.word, w.start, w.end, w.confidence, w.speaker) for w in t1.word_timestamps] == [
        ("hi", 0.0, 0.3, 0.9, None),
        ("there", 0.3, 0.8, 1.0, "A"),
    ]
    assert await store.transcriptions.get(t1.id) == t1
    assert [t.id for t in await store.transcriptions.list_for_job(job.id)] == [t1.id, t2.id]
    assert await store.transcriptions.delete(t2.id) is True
    assert await store.transcriptions.delete(t2.id) is False
    assert await store.transcriptions.get(t2.id) is None


# --- analysis results -----------------------------------------------------------------------


async def test_analysis_result_create_get_list_delete(store: Store, job: Job) -> None:
    r1 = await store.analysis_results.create(
        result(
            job.id,
            summary="",
            detailed_analysis={},
            confidence_score=1.0,
            model_used="minimax-m1",
            prompt_used="Summarise",
            input_tokens=0,
            output_tokens=12,
        )
    )
    assert isinstance(r1, AnalysisResult)
    assert (r1.summary, r1.detailed_analysis, r1.input_tokens) == ("", {}, 0)
    many = await store.analysis_results.create_many(
        [result(job.id, analysis_type=f"t{i}", output_tokens=i) for i in range(3)]
    )
    assert [r.analysis_type for r in many] == ["t0", "t1", "t2"]
    assert await store.analysis_results.get(r1.id) == r1
    assert [r.id for r in await store.analysis_results.list_for_job(job.id)] == [
        r1.id,
        *[r.id for r in many],
    ]
    assert await store.analysis_results.delete(r1.id) is True
    assert await store.analysis_results.get(r1.id) is None


# --- children of a missing job, and cascade ---------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "make"),
    [("media_assets", asset), ("transcriptions", transcription), ("analysis_results", result)],
)
async def test_child_of_missing_job_raises_job_not_found(
    store: Store, repo: str, make: Callable[..., dict[str, Any]]
) -> None:
    before = await counts(store)
    missing = uuid.uuid4()
    with pytest.raises(JobNotFound) as info:
        await getattr(store, repo).create(make(missing))
    assert info.value.job_id == missing
    assert isinstance(info.value.__cause__, MediaStoreError)
    assert await counts(store) == before


async def test_deleting_a_job_cascades_to_everything_it_produced(store: Store, job: Job) -> None:
    other = await store.jobs.create({"job_type": "video", "media_url": "https://x/v"})
    for j in (job, other):
        await store.media_assets.create_many([asset(j.id), asset(j.id)])
        await store.transcriptions.create(
            transcription(j.id, word_timestamps=[{"word": "a", "start": 0, "end": 1}])
        )
        await store.analysis_results.create(result(j.id))
    assert await counts(store) == {
        "jobs": 2,
        "media_assets": 4,
        "transcriptions": 2,
        "analysis_results": 2,
    }
    assert await store.jobs.delete(job.id) is True
    assert await counts(store) == {
        "jobs": 1,
        "media_assets": 2,
        "transcriptions": 1,
        "analysis_results": 1,
    }
    assert await store.media_assets.list_for_job(job.id) == []
    assert len(await store.media_assets.list_for_job(other.id)) == 2


# --- transactions ---------------------------------------------------------------------------


async def test_transaction_commits_everything_together(store: Store, job: Job) -> None:
    await store.jobs.start_processing(job.id)
    async with store.transaction() as tx:
        await tx.transcriptions.create(transcription(job.id))
        await tx.analysis_results.create(result(job.id))
        await tx.jobs.update_status(job.id, "completed", result={"n": 1})
        # not visible outside the transaction before commit
        outside = await store.jobs.get_by_id(job.id)
        assert outside is not None and outside.status == "processing"
    done = await store.jobs.get_by_id(job.id)
    assert done is not None and done.status == "completed"
    assert (await counts(store))["analysis_results"] == 1


async def test_transaction_rolls_back_everything_on_error(store: Store, job: Job) -> None:
    await store.jobs.start_processing(job.id)
    before = await counts(store)

    class WorkerCrash(Exception):
        pass

    with pytest.raises(WorkerCrash):
        async with store.transaction() as tx:
            await tx.transcriptions.create(transcription(job.id))
            await tx.analysis_results.create(result(job.id))
            await tx.jobs.update_status(job.id, "completed")
            raise WorkerCrash
    assert await counts(store) == before
    current = await store.jobs.get_by_id(job.id)
    assert current is not None and current.status == "processing"


async def test_transaction_rolls_back_when_a_statement_fails(store: Store, job: Job) -> None:
    before = await counts(store)
    with pytest.raises(JobNotFound):
        async with store.transaction() as tx:
            await tx.analysis_results.create(result(job.id))
            await tx.analysis_results.create(result(uuid.uuid4()))
    assert await counts(store) == before
    # the pool's connection is healthy afterwards
    assert await store.ping()
    assert (await store.analysis_results.create(result(job.id))).job_id == job.id


async def test_transactions_on_concurrent_tasks_are_isolated(store: Store, job: Job) -> None:
    async def write(i: int, fail: bool) -> None:
        async with store.transaction() as tx:
            await tx.media_assets.create(asset(job.id, file_path=f"/t/{i}"))
            await asyncio.sleep(0.01)
            if fail:
                raise RuntimeError("boom")

    outcomes = await asyncio.gather(
        *(write(i, fail=i % 2 == 1) for i in range(8)), return_exceptions=True
    )
    assert sum(isinstance(o, RuntimeError) for o in outcomes) == 4
    paths = sorted(a.file_path for a in await store.media_assets.list_for_job(job.id))
    assert paths == ["/t/0", "/t/2", "/t/4", "/t/6"]


# --- bad input: typed error, nothing written, connection still usable -------------------------

BIG = 2**63
BAD_INPUTS: list[tuple[str, str, Callable[[uuid.UUID], dict[str, Any]]]] = [
    ("job: unknown job_type", "jobs", lambda j: {"job_type": "image", "media_url": "u"}),
    ("job: empty media_url", "jobs", lambda j: {"job_type": "audio", "media_url": ""}),
    ("job: missing media_url", "jobs", lambda j: {"job_type": "audio"}),
    ("job: NUL in media_url", "jobs", lambda j: {"job_type": "audio", "media_url": "a\x00b"}),
    (
        "job: NUL in prompt",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "prompt": "\x00"},
    ),
    (
        "job: NaN in parameters",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "parameters": {"x": float("nan")}},
    ),
    (
        "job: Infinity nested in parameters",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "parameters": {"a": [1, float("inf")]}},
    ),
    (
        "job: non-string key in parameters",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "parameters": {"a": {1: "x"}}},
    ),
    (
        "job: non-JSON value in parameters",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "parameters": {"a": {1, 2}}},
    ),
    (
        "job: NUL inside a JSON string",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "parameters": {"a": "x\x00"}},
    ),
    (
        "job: parameters not an object",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "parameters": [1, 2]},
    ),
    (
        "job: max_attempts below 1",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "max_attempts": 0},
    ),
    (
        "job: unknown field",
        "jobs",
        lambda j: {"job_type": "audio", "media_url": "u", "status": "completed"},
    ),
    ("asset: unknown asset_type", "media_assets", lambda j: asset(j, asset_type="thumbnail")),
    ("asset: empty file_path", "media_assets", lambda j: asset(j, file_path="")),
    ("asset: negative size", "media_assets", lambda j: asset(j, file_size_bytes=-1)),
    ("asset: size beyond bigint", "media_assets", lambda j: asset(j, file_size_bytes=BIG)),
    ("asset: mime_type over 100 chars", "media_assets", lambda j: asset(j, mime_type="a" * 101)),
    ("asset: NUL in a metadata key", "media_assets", lambda j: asset(j, metadata={"\x00": 1})),
    ("asset: job_id not a UUID", "media_assets", lambda j: asset("job-1")),  # type: ignore[arg-type]
    (
        "transcription: provider over 50 chars",
        "transcriptions",
        lambda j: transcription(j, provider="p" * 51),
    ),
    ("transcription: empty provider", "transcriptions", lambda j: transcription(j, provider="")),
    (
        "transcription: language over 10 chars",
        "transcriptions",
        lambda j: transcription(j, language="english-gb-x"),
    ),
    (
        "transcription: confidence above 1",
        "transcriptions",
        lambda j: transcription(j, confidence_score=1.5),
    ),
    (
        "transcription: NaN confidence",
        "transcriptions",
        lambda j: transcription(j, confidence_score=float("nan")),
    ),
    (
        "transcription: NUL in text",
        "transcriptions",
        lambda j: transcription(j, text_content="a\x00"),
    ),
    (
        "transcription: word ends before it starts",
        "transcriptions",
        lambda j: transcription(j, word_timestamps=[{"word": "a", "start": 2.0, "end": 1.0}]),
    ),
    (
        "transcription: word confidence below 0",
        "transcriptions",
        lambda j: transcription(
            j, word_timestamps=[{"word": "a", "start": 0, "end": 1, "confidence": -0.1}]
        ),
    ),
    (
        "transcription: word_timestamps a dict (the plan's type)",
        "transcriptions",
        lambda j: transcription(j, word_timestamps={"a": {"start": 0, "end": 1}}),
    ),
    (
        "transcription: negative word start",
        "transcriptions",
        lambda j: transcription(j, word_timestamps=[{"word": "a", "start": -1.0, "end": 1.0}]),
    ),
    ("result: negative input_tokens", "analysis_results", lambda j: result(j, input_tokens=-5)),
    (
        "result: output_tokens beyond int4",
        "analysis_results",
        lambda j: result(j, output_tokens=2**31),
    ),
    ("result: confidence below 0", "analysis_results", lambda j: result(j, confidence_score=-0.01)),
    (
        "result: analysis_type over 50 chars",
        "analysis_results",
        lambda j: result(j, analysis_type="t" * 51),
    ),
    (
        "result: NaN inside detailed_analysis",
        "analysis_results",
        lambda j: result(j, detailed_analysis={"scores": [0.5, float("nan")]}),
    ),
    (
        "result: model_used over 100 chars",
        "analysis_results",
        lambda j: result(j, model_used="m" * 101),
    ),
    ("result: NUL in summary", "analysis_results", lambda j: result(j, summary="\x00")),
]


@pytest.mark.parametrize(("case", "repo", "make"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
async def test_bad_input_is_refused_before_anything_is_written(
    store: Store, job: Job, case: str, repo: str, make: Callable[[uuid.UUID], dict[str, Any]]
) -> None:
    async with store.transaction() as tx:
        before = await counts(tx)
        with pytest.raises(ValidationError) as info:
            await getattr(tx, repo).create(make(job.id))
        assert str(info.value)  # a readable message
        assert info.value.errors  # and structured detail
        assert await counts(tx) == before
        # the same connection and transaction are still usable: nothing was sent and failed
        made = await tx.analysis_results.create(result(job.id, summary="after"))
        assert made.summary == "after"
    assert (await counts(store))["analysis_results"] == before["analysis_results"] + 1


# --- the error boundary -------------------------------------------------------------------------


async def test_unique_violation_becomes_conflict(store: Store, job: Job) -> None:
    async with store.connection() as repos:
        conn = repos.executor
        with pytest.raises(asyncpg.UniqueViolationError) as info:
            await conn.execute(
                "INSERT INTO jobs (id, job_type, media_url) VALUES ($1, 'audio', 'u')", job.id
            )
    error = translate(info.value)
    assert isinstance(error, Conflict)
    assert "jobs_pkey" in str(error)


async def test_lost_connection_becomes_database_unavailable(store: Store, job: Job) -> None:
    with pytest.raises(DatabaseUnavailable):
        async with store.transaction() as tx:
            conn = tx.executor
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await tx.analysis_results.create(result(job.id))
            await store.pool.execute("SELECT pg_terminate_backend($1)", pid)
            while await store.pool.fetchval(  # noqa: ASYNC110 - polling the server, not a flag
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                await asyncio.sleep(0.01)
            await tx.analysis_results.create(result(job.id))
    assert (await counts(store))["analysis_results"] == 0
    # the pool replaces the dead connection
    assert await store.ping()
    assert (await store.analysis_results.create(result(job.id))).job_id == job.id


# --- executors ------------------------------------------------------------------------------------


async def test_a_repository_runs_on_a_pool_or_on_one_connection(settings: Settings) -> None:
    pool = await create_pool(settings)
    conn = await connect(settings)
    try:
        on_pool = JobRepository(pool)
        on_conn = JobRepository(conn)
        created = await on_pool.create({"job_type": "audio", "media_url": "https://x/p"})
        async with conn.transaction():
            await on_conn.start_processing(created.id)
            # inside the connection's open transaction: invisible to the pool
            seen = await on_pool.get_by_id(created.id)
            assert seen is not None and seen.status == "pending"
        seen = await on_pool.get_by_id(created.id)
        assert seen is not None and seen.status == "processing"
    finally:
        await conn.close()
        await pool.close()


# --- what a pooled connection carries back -------------------------------------------------------


@pytest.mark.parametrize("full_reset", [False, True])
async def test_released_connection_never_keeps_an_open_transaction(
    db_url: str, full_reset: bool
) -> None:
    pool = await create_pool(
        Settings(dsn=Dsn(db_url), min_size=1, max_size=1, full_reset=full_reset)
    )
    try:
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("SET application_name = 'borrowed'")
        await conn.execute("INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'u')")
        await pool.release(conn)
        again = await pool.acquire()
        try:
            # the open transaction was rolled back, so the SET inside it is gone too
            assert await again.fetchval("SELECT count(*) FROM jobs") == 0
            assert await again.fetchval("SELECT current_setting('application_name')") == (
                "media_store"
            )
            await again.execute("SET application_name = 'session-level'")
        finally:
            await pool.release(again)
        last = await pool.acquire()
        try:
            name = await last.fetchval("SELECT current_setting('application_name')")
        finally:
            await pool.release(last)
        # a session-level SET survives release only without full_reset (documented)
        assert name == ("media_store" if full_reset else "session-level")
    finally:
        await pool.close()
