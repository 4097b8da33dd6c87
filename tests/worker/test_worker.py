"""run_worker on real processes and connections: exactly once, crashes, heartbeats, retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from media_store import Job, JobStatus, LeaseLost, Settings, Store, ValidationError
from media_store.db.queries import QUERIES
from media_store.worker import Instrument, Instruments
from media_store.worker.runner import JobResult, PermanentFailure, WorkerStats, run_worker

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
COROUTINES = 3
JOBS = 5_000


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.queue_worker_proc",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    assert line, f"worker process exited early with {await proc.wait()}"
    return line.decode().strip()


async def insert_jobs(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url) SELECT 'audio', 'https://x/' || g"
            " FROM generate_series(1, $1::int) AS g",
            count,
        )
    finally:
        await conn.close()


async def test_worker_processes_complete_every_job_exactly_once(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "CREATE TABLE queue_audit (job_id uuid NOT NULL, worker_id text NOT NULL)"
        )
    finally:
        await conn.close()
    await insert_jobs(db_url, JOBS)
    procs = [await spawn("drain", db_url, f"p{i}", str(COROUTINES), "10") for i in range(PROCESSES)]
    try:
        for proc in procs:
            assert await read_line(proc) == "ready"
        for proc in procs:  # all start together, so that they really compete
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(proc.communicate() for proc in procs)), timeout=180
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert [proc.returncode for proc in procs] == [0] * PROCESSES
    stats = [WorkerStats(**s) for out, _ in outputs for s in json.loads(out.decode())]

    conn = await asyncpg.connect(db_url)
    try:
        runs = await conn.fetchrow(
            "SELECT count(*) AS runs, count(DISTINCT job_id) AS jobs FROM queue_audit"
        )
        by_status = {
            row["status"]: row["n"]
            for row in await conn.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        }
        mismatched = await conn.fetchval(
            "SELECT count(*) FROM jobs j JOIN queue_audit a ON a.job_id = j.id"
            " WHERE j.attempts <> 1 OR j.locked_by IS DISTINCT FROM a.worker_id"
            "    OR j.result ->> 'worker' IS DISTINCT FROM a.worker_id"
            "    OR j.completed_at IS NULL OR j.locked_until IS NOT NULL"
        )
        processes = await conn.fetchval(
            "SELECT count(DISTINCT split_part(locked_by, '/', 1)) FROM jobs"
        )
    finally:
        await conn.close()
    assert runs is not None
    assert (runs["runs"], runs["jobs"]) == (JOBS, JOBS)  # each handler ran once per job
    assert by_status == {"completed": JOBS}  # none lost, none left processing
    assert mismatched == 0  # one attempt each, finished by the worker that ran it
    assert processes == PROCESSES
    assert sum(s.claimed for s in stats) == sum(s.completed for s in stats) == JOBS
    assert sum(s.lost + s.retried + s.failed + s.released for s in stats) == 0
    assert len(stats) == PROCESSES * COROUTINES


async def until(predicate: Any, timeout: float = 30.0, every: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110 - polling the database: no event
            await asyncio.sleep(every)


async def test_killed_workers_jobs_are_reclaimed_and_its_late_writes_refused(
    store: Store, db_url: str
) -> None:
    await insert_jobs(db_url, 20)
    proc = await spawn("hang", db_url, "doomed", "20", "1.5")
    try:
        held = [uuid.UUID(i) for i in json.loads(await read_line(proc))]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(held) == 20
    assert {(j.status, j.locked_by) for j in await store.jobs.get_by_status("processing")} == {
        (JobStatus.PROCESSING, "doomed")
    }

    stop = asyncio.Event()

    async def handler(job: Job) -> JobResult:
        return {"rescued": True}

    rescuer = asyncio.create_task(
        run_worker(
            store,
            handler,
            worker_id="rescuer",
            lease=30,
            poll_interval=0.1,
            reclaim_every=0.2,
            stop=stop,
        )
    )

    async def all_done() -> bool:
        return (await store.jobs.count_by_status())[JobStatus.COMPLETED] == 20

    try:
        await until(all_done)
    finally:
        stop.set()
    stats = await rescuer
    assert (stats.reclaimed, stats.completed, stats.lost) == (20, 20, 0)
    for job_id in held:
        done = await store.jobs.get_by_id(job_id)
        assert done is not None
        assert (done.status, done.locked_by, done.attempts) == (JobStatus.COMPLETED, "rescuer", 2)
        assert done.result == {"rescued": True} and done.error is None

    # The killed worker's writes, replayed with its worker id, change nothing.
    victim = held[0]
    before = await store.jobs.get_by_id(victim)
    with pytest.raises(LeaseLost):
        await store.jobs.complete(victim, "doomed", {"late": True})
    with pytest.raises(LeaseLost):
        await store.jobs.fail(victim, "doomed", "late failure")
    assert (await store.jobs.heartbeat("doomed", held)).lost == held
    assert await store.jobs.release("doomed", held) == []
    assert await store.jobs.get_by_id(victim) == before


async def test_cpu_heavy_handler_keeps_its_lease(store: Store, settings: Settings) -> None:
    job = await store.jobs.create({"job_type": "video", "media_url": "https://x/long.mp4"})
    reclaimed: list[uuid.UUID] = []
    done = asyncio.Event()

    async def other_worker_reclaiming() -> None:
        async with await Store.open(settings=settings) as other:
            while not done.is_set():
                reclaimed.extend(j.id for j in await other.jobs.reclaim_expired())
                await asyncio.sleep(0.1)

    def spin(job: Job) -> JobResult:
        # Pure-Python computation for several lease lengths, never yielding.
        end = time.monotonic() + 4.0
        rounds = 0
        while time.monotonic() < end:
            rounds += sum(range(1000)) > 0
        return {"rounds": rounds}

    reclaimer = asyncio.create_task(other_worker_reclaiming())
    try:
        stats = await run_worker(
            store, spin, worker_id="cruncher", lease=1.5, heartbeat_every=0.3, burst=True
        )
    finally:
        done.set()
        await reclaimer
    assert reclaimed == []
    assert (stats.completed, stats.lost) == (1, 0)
    finished = await store.jobs.get_by_id(job.id)
    assert finished is not None
    assert (finished.status, finished.attempts, finished.locked_by) == (
        JobStatus.COMPLETED,
        1,
        "cruncher",
    )
    assert finished.processing_time_ms is not None and finished.processing_time_ms >= 4000


async def test_failing_job_is_retried_until_max_attempts_then_failed(store: Store) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/bad.mp3"})

    async def always_fails(job: Job) -> JobResult:
        raise RuntimeError(f"decoder crashed on attempt {job.attempts}")

    stats = await run_worker(store, always_fails, worker_id="w", burst=True)

    failed = await store.jobs.get_by_id(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, failed.max_attempts)
    assert failed.error == "RuntimeError: decoder crashed on attempt 3"
    assert (stats.claimed, stats.retried, stats.failed, stats.completed) == (3, 2, 1, 0)


async def test_job_failing_once_completes_on_its_second_attempt(store: Store) -> None:
    job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/flaky.mp3"})

    def flaky(job: Job) -> JobResult:
        if job.attempts == 1:
            raise TimeoutError("provider timed out")
        return {"ok": True}

    stats = await run_worker(store, flaky, worker_id="w", burst=True)

    done = await store.jobs.get_by_id(job.id)
    assert done is not None
    assert (done.status, done.attempts, done.error) == (JobStatus.COMPLETED, 2, None)
    assert (stats.retried, stats.completed) == (1, 1)


async def test_permanent_failure_and_bad_result_fail_at_once(store: Store) -> None:
    refused = await store.jobs.create({"job_type": "audio", "media_url": "https://x/drm.mp3"})
    odd = await store.jobs.create({"job_type": "audio", "media_url": "https://x/odd.mp3"})

    async def handler(job: Job) -> Any:
        if job.id == refused.id:
            raise PermanentFailure("DRM protected")
        return ["not", "an", "object"]

    stats = await run_worker(store, handler, worker_id="w", burst=True)

    first = await store.jobs.get_by_id(refused.id)
    second = await store.jobs.get_by_id(odd.id)
    assert first is not None and second is not None
    assert (first.status, first.attempts, first.error) == (
        JobStatus.FAILED,
        1,
        "PermanentFailure: DRM protected",
    )
    assert (second.status, second.attempts) == (JobStatus.FAILED, 1)
    assert second.error is not None and second.error.startswith("ValidationError")
    assert stats.failed == 2


async def test_cancelled_worker_releases_the_jobs_it_holds(store: Store) -> None:
    jobs = [
        await store.jobs.create({"job_type": "audio", "media_url": f"https://x/{i}"})
        for i in range(3)
    ]
    started = asyncio.Event()

    async def forever(job: Job) -> JobResult:
        started.set()
        await asyncio.Event().wait()
        return None

    task = asyncio.create_task(run_worker(store, forever, worker_id="w", batch=3))
    await asyncio.wait_for(started.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    for job in jobs:
        back = await store.jobs.get_by_id(job.id)
        assert back is not None
        assert (back.status, back.attempts, back.locked_by) == (JobStatus.PENDING, 0, None)


async def test_stop_finishes_the_job_in_hand_and_releases_the_rest(store: Store) -> None:
    jobs = [
        await store.jobs.create({"job_type": "audio", "media_url": f"https://x/{i}"})
        for i in range(3)
    ]
    stop = asyncio.Event()

    async def handler(job: Job) -> JobResult:
        stop.set()
        return {"n": 1}

    stats = await run_worker(store, handler, worker_id="w", batch=3, stop=stop)

    assert (stats.claimed, stats.completed, stats.released) == (3, 1, 2)
    statuses = [(await store.jobs.get_by_id(j.id)).status for j in jobs]  # type: ignore[union-attr]
    assert statuses == [JobStatus.COMPLETED, JobStatus.PENDING, JobStatus.PENDING]


async def test_listen_wakes_an_idle_worker_before_its_next_poll(store: Store) -> None:
    stop = asyncio.Event()
    seen: list[uuid.UUID] = []

    async def handler(job: Job) -> JobResult:
        seen.append(job.id)
        stop.set()
        return None

    # The worker would not poll again for a minute: only the notification can wake it.
    task = asyncio.create_task(
        run_worker(store, handler, worker_id="w", listen=True, poll_interval=60, stop=stop)
    )
    # Wait until the server reports the worker's first claim done (its connection idle after
    # it) and its LISTEN in place: a job created now can only reach it through NOTIFY.
    claim_sql = QUERIES["claim_jobs"].sql[:200]
    try:
        async with asyncio.timeout(30):  # a broken worker fails the test, never hangs it
            while await store.pool.fetchval(
                "SELECT count(*) FILTER (WHERE state = 'idle' AND left(query, 200) = $1) = 0"
                " OR count(*) FILTER (WHERE query LIKE 'LISTEN %') = 0"
                " FROM pg_stat_activity WHERE datname = current_database()",
                claim_sql,
            ):
                assert not task.done()
                await asyncio.sleep(0.01)
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/new.mp3"})
        stats = await asyncio.wait_for(task, timeout=30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen == [job.id]
    assert stats.completed == 1


async def listening_backend(store: Store, other_than: int | None = None) -> int:
    """The pid of the backend LISTENing for the worker (other than ``other_than``), once the
    worker's claim connection is idle after a claim: a job created now can only reach an
    idle worker through NOTIFY."""
    claim_sql = QUERIES["claim_jobs"].sql[:200]
    try:
        async with asyncio.timeout(10):  # a worker that never LISTENs (again) fails, never hangs
            while True:
                pid = await store.pool.fetchval(
                    "SELECT max(pid) FILTER (WHERE query LIKE 'LISTEN %' AND pid <> $2)"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " HAVING count(*) FILTER (WHERE state = 'idle' AND left(query, 200) = $1) > 0",
                    claim_sql,
                    other_than or 0,
                )
                if pid is not None:
                    return int(pid)
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail("no backend LISTENs for the worker (or its claim connection is busy)")


async def test_listen_is_re_established_after_its_backend_is_terminated(store: Store) -> None:
    picked: asyncio.Queue[tuple[uuid.UUID, float]] = asyncio.Queue()

    async def handler(job: Job) -> JobResult:
        picked.put_nowait((job.id, time.monotonic()))
        return None

    stop = asyncio.Event()
    # Polling every 30 s: a job picked up within seconds was announced through LISTEN.
    task = asyncio.create_task(
        run_worker(store, handler, worker_id="w", listen=True, poll_interval=30, stop=stop)
    )
    try:
        first = await listening_backend(store)
        assert await store.pool.fetchval("SELECT pg_terminate_backend($1)", first)
        again = await listening_backend(store, other_than=first)
        assert again != first

        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/new.mp3"})
        created = time.monotonic()
        picked_id, at = await asyncio.wait_for(picked.get(), timeout=10)
        assert picked_id == job.id
        assert at - created < 5
        assert not task.done()
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, timeout=30)
    assert stats.completed == 1


async def test_worker_refuses_a_pool_too_small_to_heartbeat(settings: Settings) -> None:
    job = None
    async with await Store.open(settings=Settings(dsn=settings.dsn, max_size=1)) as small:
        job = await small.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})

        async def handler(job: Job) -> JobResult:
            return None

        with pytest.raises(ValidationError, match="pool of at least 2"):
            await run_worker(small, handler, burst=True)
        assert (await small.jobs.get_by_id(job.id)) == job


@pytest.mark.parametrize("parts", [2, 3])
async def test_the_worker_calls_every_running_hook_then_enters_them_in_order(
    store: Store, parts: int
) -> None:
    """Whatever the number of instruments, as Instruments.running does: each part's running
    is called, then their managers entered in order and exited in reverse; a finished hook
    set on an instance (not its class) is called too."""
    log: list[str] = []

    class Logged(Instrument):
        def __init__(self, name: str) -> None:
            self.name = name

        def running(
            self, job: Job, trace_context: Mapping[str, str] | None
        ) -> AbstractContextManager[object]:
            log.append(f"{self.name} running")
            return self._entered()

        @contextlib.contextmanager
        def _entered(self) -> Iterator[None]:
            log.append(f"{self.name} enters")
            yield
            log.append(f"{self.name} exits")

    class Plain(Instrument):  # slots of its own are not Instrument's: an instance may be set
        pass

    counted = Plain()
    counted.finished = lambda job, outcome: log.append(f"finished {outcome.value}")  # type: ignore[method-assign]
    names = [str(n) for n in range(parts)]
    await store.jobs.create({"job_type": "audio", "media_url": "s3://x/a.mp3"})
    every = Instruments(*(Logged(name) for name in names), Instrument(), counted)
    stats = await run_worker(store, lambda job: None, burst=True, instrument=every)
    assert stats.completed == 1
    assert log == [
        *(f"{name} running" for name in names),
        *(f"{name} enters" for name in names),
        *(f"{name} exits" for name in reversed(names)),
        "finished completed",
    ]
