"""Cancellation: pending and processing jobs, the holder told at its heartbeat, its late
outcome refused, races with heartbeats and completions, and run_worker stopping handlers."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from media_store import (
    InvalidTransition,
    Job,
    JobCancelled,
    JobNotFound,
    JobStatus,
    LeaseLost,
    PoolExhausted,
    Settings,
    Store,
    ValidationError,
)
from media_store.worker.runner import JobContext, JobResult, WorkerStats, run_worker

LEASE = 30


async def new_job(store: Store, job_type: str = "audio") -> Job:
    return await store.jobs.create({"job_type": job_type, "media_url": "s3://b/a.mp3"})


async def claimed(store: Store, worker: str = "w1") -> Job:
    job = await new_job(store)
    [got] = await store.jobs.claim(worker, limit=1, lease=LEASE)
    assert got.id == job.id
    return got


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def has_status(store: Store, job_id: uuid.UUID, status: JobStatus) -> bool:
    job = await store.jobs.get_by_id(job_id)
    return job is not None and job.status is status


async def requests(raw: asyncpg.Connection[asyncpg.Record]) -> list[asyncpg.Record]:
    return await raw.fetch(
        "SELECT job_id, holder, acknowledged_at IS NOT NULL AS told FROM job_cancel_requests"
    )


# --- the repository ---------------------------------------------------------------------------


async def test_a_cancelled_pending_job_is_final_and_never_claimed(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    job = await new_job(store)

    cancelled = await store.jobs.cancel(job.id)

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.completed_at is not None and cancelled.started_at is None
    assert cancelled.locked_by is None and cancelled.processing_time_ms is None
    assert await store.jobs.claim("w1", limit=10) == []
    assert await requests(raw) == []  # nobody held it: nobody to tell
    with pytest.raises(InvalidTransition):
        await store.jobs.update_status(job.id, "processing")


async def test_a_cancelled_processing_job_is_told_at_the_heartbeat_and_its_outcome_refused(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    job = await claimed(store)

    cancelled = await store.jobs.cancel(job.id)

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.locked_by == "w1" and cancelled.locked_until is None
    assert cancelled.processing_time_ms is not None and cancelled.attempts == 1
    assert [(r["job_id"], r["holder"], r["told"]) for r in await requests(raw)] == [
        (job.id, "w1", False)
    ]
    beat = await store.jobs.heartbeat("w1", [job.id])
    assert (beat.extended, beat.lost, beat.cancelled) == ([], [job.id], [job.id])
    assert [r["told"] for r in await requests(raw)] == [True]
    with pytest.raises(JobCancelled) as info:
        await store.jobs.complete(job.id, "w1", {"late": True})
    assert isinstance(info.value, LeaseLost) and info.value.job_id == job.id
    with pytest.raises(JobCancelled):
        await store.jobs.fail(job.id, "w1", "late failure")
    many = await store.jobs.complete_many("w1", {job.id: {"late": True}})
    assert (many.completed, many.lost) == ([], [job.id])
    assert await store.jobs.get_by_id(job.id) == cancelled


async def test_another_workers_heartbeat_is_not_told_of_a_job_it_does_not_hold(
    store: Store,
) -> None:
    job = await claimed(store, "w1")
    await store.jobs.cancel(job.id)
    beat = await store.jobs.heartbeat("w2", [job.id])
    assert (beat.lost, beat.cancelled) == ([job.id], [])


@pytest.mark.parametrize("finished", ["completed", "failed", "cancelled"])
async def test_cancelling_a_finished_job_is_refused_and_changes_nothing(
    store: Store, finished: str
) -> None:
    job = await claimed(store)
    if finished == "completed":
        await store.jobs.complete(job.id, "w1", {"ok": True})
    elif finished == "failed":
        await store.jobs.fail(job.id, "w1", "broken", retry=False)
    else:
        await store.jobs.cancel(job.id)
    before = await store.jobs.get_by_id(job.id)

    with pytest.raises(InvalidTransition) as info:
        await store.jobs.cancel(job.id)

    assert (info.value.current, info.value.target) == (finished, "cancelled")
    assert str(info.value) == (
        f"only pending or processing jobs can be cancelled (job {job.id} is {finished})"
    )
    assert await store.jobs.get_by_id(job.id) == before


@pytest.mark.parametrize("status", ["pending", "processing", "completed", "cancelled"])
async def test_requeueing_a_job_that_did_not_fail_says_only_failed_jobs_can_be(
    store: Store, status: str
) -> None:
    # An operator's message, not the lifecycle's ("cannot move from pending to pending").
    job = await new_job(store) if status == "pending" else await claimed(store)
    if status == "completed":
        await store.jobs.complete(job.id, "w1", {"ok": True})
    elif status == "cancelled":
        await store.jobs.cancel(job.id)
    before = await store.jobs.get_by_id(job.id)

    with pytest.raises(InvalidTransition) as info:
        await store.jobs.requeue(job.id)

    assert str(info.value) == f"only failed jobs can be requeued (job {job.id} is {status})"
    assert (info.value.job_id, info.value.current, info.value.target) == (
        job.id,
        status,
        "pending",
    )
    assert await store.jobs.get_by_id(job.id) == before


async def test_cancel_of_a_missing_job_or_a_bad_id(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    await new_job(store)
    with pytest.raises(JobNotFound):
        await store.jobs.cancel(uuid.uuid4())
    with pytest.raises(ValidationError, match="job_id"):
        await store.jobs.cancel("not-a-uuid")  # type: ignore[arg-type]
    assert await raw.fetchval("SELECT count(*) FROM jobs WHERE status = 'pending'") == 1


async def test_the_database_holds_every_client_to_the_cancelled_status(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    job = await new_job(store)
    await store.jobs.cancel(job.id)
    for target in ("pending", "processing", "completed", "failed"):
        with pytest.raises(asyncpg.CheckViolationError):
            await raw.execute("UPDATE jobs SET status = $2 WHERE id = $1", job.id, target)
    with pytest.raises(asyncpg.CheckViolationError):  # finished means completed_at is set
        await raw.execute("UPDATE jobs SET completed_at = NULL WHERE id = $1", job.id)


# --- races ------------------------------------------------------------------------------------


async def test_cancel_during_a_heartbeat_waits_for_it_then_the_late_complete_is_refused(
    store: Store, db_url: str
) -> None:
    job = await claimed(store)
    beating = await asyncpg.connect(db_url)
    try:
        # The holder's heartbeat is in flight: its statement ran, its transaction is open
        # and holds the job's row.
        tx = beating.transaction()
        await tx.start()
        await beating.execute(
            "UPDATE jobs SET locked_until = clock_timestamp() + interval '30 seconds'"
            " WHERE id = $1 AND status = 'processing' AND locked_by = 'w1'",
            job.id,
        )
        cancel = asyncio.create_task(store.jobs.cancel(job.id))
        await asyncio.sleep(0.3)
        assert not cancel.done()  # serialised on the row
        await tx.commit()
        cancelled = await asyncio.wait_for(cancel, 10)
    finally:
        await beating.close()

    assert cancelled.status is JobStatus.CANCELLED
    assert (await store.jobs.heartbeat("w1", [job.id])).cancelled == [job.id]
    with pytest.raises(JobCancelled):
        await store.jobs.complete(job.id, "w1", {"late": True})
    assert (await store.jobs.get_by_id(job.id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_heartbeats_and_cancels_at_once_never_extend_a_cancelled_lease(
    store: Store,
) -> None:
    for _ in range(20):
        job = await claimed(store)
        beats, cancelled = await asyncio.gather(
            store.jobs.heartbeat("w1", [job.id]), store.jobs.cancel(job.id)
        )
        assert cancelled.status is JobStatus.CANCELLED
        # Either the beat ran first (extended) or after (lost; told now or at the next beat).
        assert (beats.extended, beats.lost) in (([job.id], []), ([], [job.id]))
        assert (await store.jobs.heartbeat("w1", [job.id])).cancelled == [job.id]
        with pytest.raises(JobCancelled):
            await store.jobs.complete(job.id, "w1", None)
        now = await store.jobs.get_by_id(job.id)
        assert now is not None and now.status is JobStatus.CANCELLED and now.locked_until is None


async def test_a_cancel_racing_a_completion_has_exactly_one_winner(store: Store) -> None:
    outcomes: set[str] = set()
    for _ in range(30):
        job = await claimed(store)
        done, cancel = await asyncio.gather(
            store.jobs.complete(job.id, "w1", {"ok": True}),
            store.jobs.cancel(job.id),
            return_exceptions=True,
        )
        now = await store.jobs.get_by_id(job.id)
        assert now is not None
        if isinstance(done, Job):  # completed first: the cancel is refused
            assert isinstance(cancel, InvalidTransition)
            assert now.status is JobStatus.COMPLETED and now.result == {"ok": True}
            outcomes.add("completed")
        else:  # cancelled first: the completion is refused
            assert isinstance(done, JobCancelled) and isinstance(cancel, Job)
            assert now.status is JobStatus.CANCELLED and now.result is None
            outcomes.add("cancelled")
    assert outcomes  # at least one round ran; which side wins is the scheduler's


# --- run_worker -------------------------------------------------------------------------------


def start_worker(
    store: Store, handler: Callable[..., object], stop: asyncio.Event
) -> asyncio.Task[WorkerStats]:
    return asyncio.create_task(
        run_worker(
            store,
            handler,  # type: ignore[arg-type]
            worker_id="w-cancel",
            lease=3,
            heartbeat_every=0.1,
            poll_interval=0.05,
            stop=stop,
        )
    )


async def test_run_worker_cancels_an_async_handler_and_goes_on_with_the_next_job(
    store: Store,
) -> None:
    started = asyncio.Event()
    interrupted: list[uuid.UUID] = []

    async def handler(job: Job) -> JobResult:
        if job.media_url == "s3://b/long":
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                interrupted.append(job.id)
                raise
        return {"ok": True}

    long = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/long"})
    stop = asyncio.Event()
    worker = start_worker(store, handler, stop)
    await asyncio.wait_for(started.wait(), 20)
    await store.jobs.cancel(long.id)
    await wait_for(lambda: asyncio.sleep(0, bool(interrupted)))
    after = await new_job(store)

    await wait_for(lambda: has_status(store, after.id, JobStatus.COMPLETED))
    stop.set()
    stats = await asyncio.wait_for(worker, 20)

    assert interrupted == [long.id]
    assert (stats.claimed, stats.completed, stats.cancelled, stats.lost) == (2, 1, 1, 0)
    now = await store.jobs.get_by_id(long.id)
    assert now is not None and now.status is JobStatus.CANCELLED and now.result is None


async def test_run_worker_tells_a_plain_handler_through_its_context(store: Store) -> None:
    started = threading.Event()
    saw: list[bool] = []

    def handler(job: Job, context: JobContext) -> JobResult:
        started.set()
        saw.append(context.cancel_requested.wait(30))  # returns as soon as it is cancelled
        return {"finished": True}

    job = await new_job(store)
    stop = asyncio.Event()
    worker = start_worker(store, handler, stop)
    await asyncio.wait_for(asyncio.to_thread(started.wait, 20), 25)
    t0 = time.monotonic()
    await store.jobs.cancel(job.id)
    await wait_for(lambda: asyncio.sleep(0, bool(saw)))
    stop.set()
    stats = await asyncio.wait_for(worker, 20)

    assert saw == [True] and time.monotonic() - t0 < 25
    assert (stats.completed, stats.cancelled, stats.lost) == (0, 1, 0)
    now = await store.jobs.get_by_id(job.id)
    assert now is not None and now.status is JobStatus.CANCELLED and now.result is None


async def test_a_plain_handler_that_ignores_the_cancel_has_its_late_result_refused(
    store: Store,
) -> None:
    started = threading.Event()
    release = threading.Event()

    def handler(job: Job) -> JobResult:  # one argument: no context, as before
        started.set()
        release.wait(30)
        return {"finished": True}

    job = await new_job(store)
    stop = asyncio.Event()
    worker = start_worker(store, handler, stop)
    await asyncio.wait_for(asyncio.to_thread(started.wait, 20), 25)
    await store.jobs.cancel(job.id)
    await asyncio.sleep(0.5)  # several heartbeats: the worker knows, the thread runs on
    release.set()
    stop.set()
    stats = await asyncio.wait_for(worker, 20)

    assert (stats.completed, stats.cancelled, stats.lost) == (0, 1, 0)
    now = await store.jobs.get_by_id(job.id)
    assert now is not None and now.status is JobStatus.CANCELLED and now.result is None


async def test_a_job_cancelled_before_its_turn_in_the_batch_is_not_run(store: Store) -> None:
    ran: list[str] = []
    gate = asyncio.Event()

    async def handler(job: Job) -> JobResult:
        ran.append(job.media_url)
        if job.media_url == "s3://b/0":
            await gate.wait()
        return None

    jobs = [
        await store.jobs.create({"job_type": "audio", "media_url": f"s3://b/{i}"}) for i in range(2)
    ]
    stop = asyncio.Event()
    worker = start_worker(store, handler, stop)
    await wait_for(lambda: asyncio.sleep(0, bool(ran)))
    await store.jobs.cancel(jobs[1].id)  # claimed in the same batch, not started
    await asyncio.sleep(0.5)  # a few heartbeats
    gate.set()
    await wait_for(lambda: has_status(store, jobs[0].id, JobStatus.COMPLETED))
    stop.set()
    stats = await asyncio.wait_for(worker, 20)

    assert ran == ["s3://b/0"]
    assert (stats.claimed, stats.completed, stats.cancelled) == (2, 1, 1)


# --- run_worker's arguments and its LISTEN connection -----------------------------------------


@pytest.mark.parametrize("job_types", [5, [5], ["podcast"], b"audio", []])
async def test_run_worker_refuses_bad_job_types_naming_the_argument(
    store: Store, raw: asyncpg.Connection[asyncpg.Record], job_types: object
) -> None:
    job = await new_job(store)
    with pytest.raises(ValidationError, match="job_types"):
        await run_worker(store, lambda job: None, job_types=job_types, burst=True)  # type: ignore[arg-type]
    assert await raw.fetchval("SELECT status FROM jobs WHERE id = $1", job.id) == "pending"
    assert await raw.fetchval("SELECT count(*) FROM jobs") == 1


async def test_run_worker_listen_on_an_exhausted_pool_raises_pool_exhausted(
    settings: Settings,
) -> None:
    tight = Settings(dsn=settings.dsn, min_size=1, max_size=3, acquire_timeout=0.3)
    store = await Store.open(settings=tight)
    try:
        held = [await store.pool.acquire() for _ in range(3)]
        try:
            with pytest.raises(PoolExhausted):
                await run_worker(store, lambda job: None, listen=True, burst=True)
        finally:
            for conn in held:
                await store.pool.release(conn)
        # The pool is whole again: a listening worker runs.
        stats = await run_worker(store, lambda job: None, listen=True, burst=True)
        assert stats.claimed == 0
    finally:
        await store.close()


# --- cancel, then purge; lost leases; update_status --------------------------------------------


async def test_a_processing_job_cancelled_is_not_purged_until_its_holder_was_told(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    job = await claimed(store)
    await store.jobs.cancel(job.id)

    dry = await store.jobs.purge(0, statuses=["cancelled"], dry_run=True)
    purged = await store.jobs.purge(0, statuses=["cancelled"])

    assert (dry.jobs, purged.jobs) == (0, 0)
    assert [tuple(r) for r in await requests(raw)] == [(job.id, "w1", False)]
    assert (await store.jobs.heartbeat("w1", [job.id])).cancelled == [job.id]  # told
    assert (await store.jobs.purge(0, statuses=["cancelled"])).jobs == 1
    assert await store.jobs.get_by_id(job.id) is None and await requests(raw) == []
    # A request nobody acknowledged for longer than any lease no longer keeps its job.
    stale = await claimed(store, "w-dead")
    await store.jobs.cancel(stale.id)
    await raw.execute(
        "UPDATE job_cancel_requests SET requested_at = requested_at - interval '8 days'"
    )
    assert (await store.jobs.purge(0, statuses=["cancelled"])).jobs == 1


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_cancel_then_purge_while_the_handler_runs_stops_it_then_purges(
    store: Store, raw: asyncpg.Connection[asyncpg.Record], db_url: str, kind: str
) -> None:
    started = threading.Event()
    told: list[str] = []

    def plain(job: Job, context: JobContext) -> JobResult:
        started.set()
        deadline = time.monotonic() + 30
        while not context.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)  # polls its context
        told.append("told" if context.cancelled else "ran to the end")
        return {"finished": True}

    async def coroutine(job: Job) -> JobResult:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            told.append("told")
            raise
        told.append("ran to the end")
        return {"finished": True}

    job = await new_job(store)
    stop = asyncio.Event()
    worker = start_worker(store, plain if kind == "plain" else coroutine, stop)
    await asyncio.wait_for(asyncio.to_thread(started.wait, 20), 25)
    await store.jobs.cancel(job.id)
    # Keep the holder from being told while the purge runs: its heartbeat waits on this lock.
    hold = await asyncpg.connect(db_url)
    try:
        async with hold.transaction():
            told_yet = await hold.fetchval(
                "SELECT acknowledged_at IS NOT NULL FROM job_cancel_requests"
                " WHERE job_id = $1 FOR UPDATE",
                job.id,
            )
            if not told_yet:  # the usual case: a beat is 0.1 s, this took a few ms
                purged = await asyncio.wait_for(store.jobs.purge(0, statuses=["cancelled"]), 10)
                assert purged.jobs == 0 and told == []
    finally:
        await hold.close()
    await wait_for(lambda: asyncio.sleep(0, bool(told)))
    assert (await store.jobs.purge(0, statuses=["cancelled"])).jobs == 1
    stop.set()
    stats = await asyncio.wait_for(worker, 20)

    assert told == ["told"]
    assert (stats.completed, stats.cancelled, stats.lost) == (0, 1, 0)
    assert await store.jobs.get_by_id(job.id) is None


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_run_worker_stops_the_handler_of_a_job_whose_lease_it_lost(
    store: Store, kind: str
) -> None:
    started = threading.Event()
    told: list[str] = []

    def plain(job: Job, context: JobContext) -> JobResult:
        started.set()
        told.append("told" if context.cancel_requested.wait(30) else "ran to the end")
        return {"finished": True}

    async def coroutine(job: Job) -> JobResult:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            told.append("told")
            raise
        told.append("ran to the end")
        return {"finished": True}

    job = await new_job(store)
    stop = asyncio.Event()
    worker = start_worker(store, plain if kind == "plain" else coroutine, stop)
    await asyncio.wait_for(asyncio.to_thread(started.wait, 20), 25)
    # Its lease goes to another worker (given back, as an expired one is reclaimed).
    assert await store.jobs.release("w-cancel", [job.id]) == [job.id]
    [other] = await store.jobs.claim("w-other", limit=1, lease=LEASE)
    assert other.id == job.id
    await wait_for(lambda: asyncio.sleep(0, bool(told)))
    stop.set()
    stats = await asyncio.wait_for(worker, 20)

    assert told == ["told"]
    assert (stats.completed, stats.failed, stats.cancelled, stats.lost) == (0, 0, 0, 1)
    now = await store.jobs.get_by_id(job.id)
    assert now is not None and now.status is JobStatus.PROCESSING and now.locked_by == "w-other"


async def test_update_status_cancelled_is_a_cancel_that_tells_the_holder(
    store: Store, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    job = await claimed(store)
    with pytest.raises(ValidationError, match=r"jobs\.cancel"):
        await store.jobs.update_status(job.id, "cancelled", error="stop")
    assert (await store.jobs.get_by_id(job.id)).status is JobStatus.PROCESSING  # type: ignore[union-attr]

    cancelled = await store.jobs.update_status(job.id, "cancelled")

    assert cancelled.status is JobStatus.CANCELLED
    assert [tuple(r) for r in await requests(raw)] == [(job.id, "w1", False)]
    assert (await store.jobs.heartbeat("w1", [job.id])).cancelled == [job.id]
    with pytest.raises(JobCancelled):
        await store.jobs.complete(job.id, "w1", None)


# --- cancel during the real heartbeat, both orders ---------------------------------------------


async def test_cancel_waits_for_a_heartbeat_holding_the_row_then_the_next_beat_tells(
    store: Store,
) -> None:
    job = await claimed(store)
    async with store.transaction() as beating:  # the heartbeat's transaction holds the row
        beat = await beating.jobs.heartbeat("w1", [job.id], lease=LEASE)
        assert (beat.extended, beat.cancelled) == ([job.id], [])
        cancel = asyncio.create_task(store.jobs.cancel(job.id))
        await asyncio.sleep(0.3)
        assert not cancel.done()  # serialised on the row
    cancelled = await asyncio.wait_for(cancel, 10)

    assert cancelled.status is JobStatus.CANCELLED
    # The beat in flight said "extended"; the next one tells: at most one beat late.
    beat = await store.jobs.heartbeat("w1", [job.id], lease=LEASE)
    assert (beat.extended, beat.lost, beat.cancelled) == ([], [job.id], [job.id])
    with pytest.raises(JobCancelled):
        await store.jobs.complete(job.id, "w1", {"late": True})
    now = await store.jobs.get_by_id(job.id)
    assert now is not None and now.status is JobStatus.CANCELLED and now.locked_until is None


async def test_a_heartbeat_waits_for_a_cancel_holding_the_row_and_is_told_at_once(
    store: Store,
) -> None:
    job = await claimed(store)
    async with store.transaction() as cancelling:  # the cancel's transaction holds the row
        await cancelling.jobs.cancel(job.id)
        beating = asyncio.create_task(store.jobs.heartbeat("w1", [job.id], lease=LEASE))
        await asyncio.sleep(0.3)
        assert not beating.done()  # serialised on the row
    beat = await asyncio.wait_for(beating, 10)

    # The beat re-read the row after the cancel: not extended, and told in this very beat.
    assert (beat.extended, beat.lost, beat.cancelled) == ([], [job.id], [job.id])
    with pytest.raises(JobCancelled):
        await store.jobs.complete(job.id, "w1", {"late": True})
    now = await store.jobs.get_by_id(job.id)
    assert now is not None and now.status is JobStatus.CANCELLED and now.locked_until is None
