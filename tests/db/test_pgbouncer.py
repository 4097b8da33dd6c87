"""Through a real PgBouncer in transaction pooling mode, with the library's default settings:
the repository round trips, word appends and windows, and workers draining every job exactly
once. And the worker's side of what PgBouncer did to it before (claims got through while every
completion failed): a worker whose outcomes cannot be written stops claiming new work.

In transaction mode consecutive transactions of one client run on different server
connections, fewer than the clients (tests.support.pgbouncer gives each database 4), so every test
here really shares them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from media_store import Dsn, Job, JobStatus, LeaseLost, Settings, Store
from media_store.worker.runner import JobResult, run_worker
from tests import conftest
from tests.support.harness import Server
from tests.support.pgbouncer import PgBouncer, bounced, pgbouncer_binary, running_pgbouncer

WAIT = 30.0  # seconds any wait below may take before the test fails


@pytest.fixture(scope="module")
def bouncer(pg_server: Server) -> Iterator[PgBouncer]:
    with running_pgbouncer(pg_server.admin_url, pool_mode="transaction") as running:
        yield running


@pytest.fixture
def bounced_url(db_url: str, bouncer: PgBouncer) -> str:
    return bounced(db_url, bouncer)


def bounced_settings(url: str) -> Settings:
    """The library's defaults (nothing told about PgBouncer), a pool a worker can use."""
    return Settings(dsn=Dsn(url), min_size=1, max_size=3)


@pytest.fixture
async def bounced_store(bounced_url: str) -> AsyncIterator[Store]:
    async with await Store.open(settings=bounced_settings(bounced_url)) as store:
        yield store


async def test_the_store_goes_through_pgbouncer_pooling_by_transaction(
    bouncer: PgBouncer, bounced_url: str, bounced_store: Store
) -> None:
    # The premise of this module, as PgBouncer's admin console reports it: the store's
    # connections are clients of a transaction-mode pool of the test database.
    database = bounced_url.rsplit("/", 1)[1]
    assert await bounced_store.ping()
    with psycopg.connect(bouncer.url("pgbouncer"), autocommit=True) as admin:
        pools = admin.execute("SHOW POOLS").fetchall()
        columns = [column.name for column in admin.execute("SHOW POOLS").description or []]
    mine = [dict(zip(columns, row, strict=True)) for row in pools if row[0] == database]
    assert [(pool["pool_mode"], pool["cl_active"] + pool["cl_waiting"] >= 1) for pool in mine] == [
        ("transaction", True)
    ]


async def test_job_round_trips_through_pgbouncer(bounced_store: Store) -> None:
    jobs = bounced_store.jobs
    created = [
        await jobs.create(
            {"job_type": "audio", "media_url": f"https://x/{i}.mp3", "parameters": {"i": i}}
        )
        for i in range(5)
    ]
    assert await jobs.get_by_id(created[0].id) == created[0]
    assert [j.id for j in await jobs.get_by_status("pending", limit=10)] == [
        j.id for j in reversed(created)
    ]
    first = await jobs.list_jobs(limit=3)
    assert first.next is not None
    rest = await jobs.list_jobs(after=first.next.encode(), limit=3)
    assert [j.id for j in first.jobs + rest.jobs] == [j.id for j in reversed(created)]
    assert [j.id for j in await jobs.get_all(limit=2, offset=3)] == [
        created[1].id,
        created[0].id,
    ]

    started = await jobs.update_status(created[0].id, "processing")
    done = await jobs.update_status(created[0].id, "completed", result={}, error="")
    assert (started.status, done.status, done.result, done.error) == (
        JobStatus.PROCESSING,
        JobStatus.COMPLETED,
        {},
        "",
    )

    claimed = await jobs.claim("w", limit=2, lease=30)
    assert [j.id for j in claimed] == [created[1].id, created[2].id]
    assert (await jobs.heartbeat("w", [j.id for j in claimed])).lost == []
    completed = await jobs.complete(claimed[0].id, "w", {"ok": True})
    assert (completed.status, completed.result) == (JobStatus.COMPLETED, {"ok": True})
    with pytest.raises(LeaseLost):
        await jobs.complete(claimed[0].id, "w", {"again": True})
    many = await jobs.complete_many("w", {claimed[1].id: {"n": 2}})
    assert (many.completed, many.lost) == ([claimed[1].id], [])
    assert await jobs.count_by_status() == {
        JobStatus.PENDING: 2,
        JobStatus.PROCESSING: 0,
        JobStatus.COMPLETED: 3,
        JobStatus.FAILED: 0,
        JobStatus.CANCELLED: 0,
    }
    assert await jobs.delete(created[4].id) is True
    assert await jobs.get_by_id(created[4].id) is None


async def test_children_and_transactions_through_pgbouncer(bounced_store: Store) -> None:
    job = await bounced_store.jobs.create({"job_type": "video", "media_url": "https://x/v.mp4"})
    asset = await bounced_store.media_assets.create(
        {"job_id": job.id, "asset_type": "frame", "file_path": "/f.jpg", "metadata": {"w": 1}}
    )
    async with bounced_store.transaction() as tx:
        result = await tx.analysis_results.create(
            {"job_id": job.id, "analysis_type": "summary", "summary": "a cat"}
        )
        assert await tx.analysis_results.list_for_job(job.id) == [result]
    assert await bounced_store.media_assets.list_for_job(job.id) == [asset]
    assert await bounced_store.analysis_results.list_for_job(job.id) == [result]

    # A rolled-back transaction leaves nothing, even though its statements ran on a server
    # connection other clients use in between.
    with pytest.raises(RuntimeError):
        async with bounced_store.transaction() as tx:
            await tx.media_assets.create(
                {"job_id": job.id, "asset_type": "original", "file_path": "/a.wav"}
            )
            raise RuntimeError("abandon")
    assert await bounced_store.media_assets.list_for_job(job.id) == [asset]


def words(n: int, start: float) -> list[dict[str, Any]]:
    return [
        {"word": f"w{i}", "start": start + i * 0.5, "end": start + i * 0.5 + 0.4} for i in range(n)
    ]


async def test_word_timestamps_create_append_and_window_through_pgbouncer(
    bounced_store: Store,
) -> None:
    job = await bounced_store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
    first, second = words(600, 0.0), words(500, 300.0)
    created = await bounced_store.transcriptions.create(
        {
            "job_id": job.id,
            "provider": "whisper",
            "text_content": "…",
            "word_timestamps": first,
        }
    )
    assert await bounced_store.transcriptions.append_words(created.id, second) == len(second)
    assert await bounced_store.transcriptions.count_words(created.id) == len(first + second)
    stored = await bounced_store.transcriptions.words(created.id)
    assert [(w.word, w.start, w.end) for w in stored] == [
        (w["word"], w["start"], w["end"]) for w in first + second
    ]
    window = await bounced_store.transcriptions.words_between(created.id, 299.0, 301.0)
    assert [w.word for w in window] == ["w598", "w599", "w0", "w1"]
    (listed,) = await bounced_store.transcriptions.list_for_job(job.id)
    assert listed.id == created.id


WORKERS_PER_STORE = 3
STORES = 2
JOBS = 300


async def test_workers_through_pgbouncer_run_every_job_exactly_once(
    bounced_url: str, db_url: str
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO jobs (job_type, media_url) SELECT 'audio', 'https://x/' || g"
            " FROM generate_series(1, $1::int) AS g",
            JOBS,
        )
    finally:
        await conn.close()
    runs: Counter[uuid.UUID] = Counter()

    async def handler(job: Job) -> JobResult:
        runs[job.id] += 1
        await asyncio.sleep(0)  # let the other workers in between
        return {"attempt": job.attempts}

    stores = [await Store.open(settings=bounced_settings(bounced_url)) for _ in range(STORES)]
    try:
        stats = await asyncio.wait_for(
            asyncio.gather(
                *(
                    run_worker(store, handler, worker_id=f"s{s}w{w}", batch=5, lease=30, burst=True)
                    for s, store in enumerate(stores)
                    for w in range(WORKERS_PER_STORE)
                )
            ),
            timeout=WAIT,
        )
    finally:
        for store in stores:
            await store.close()

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT id, status, attempts, locked_by FROM jobs")
    finally:
        await conn.close()
    assert len(rows) == JOBS
    assert {(row["status"], row["attempts"]) for row in rows} == {("completed", 1)}
    assert runs == {row["id"]: 1 for row in rows}
    assert sum(s.completed for s in stats) == sum(s.claimed for s in stats) == JOBS
    assert sum(s.lost + s.unwritten + s.paused + s.retried for s in stats) == 0
    assert len({row["locked_by"] for row in rows}) > 1  # they really shared the work


# --- the worker's side of finding 5 ------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def pauses(self) -> list[float]:
        """The claim pauses the worker announced, in seconds."""
        found: list[float] = []
        for record in self.records:
            if str(record.msg).startswith("worker %s: %d job outcome(s) in a row"):
                assert isinstance(record.args, tuple)
                found.append(float(str(record.args[-1])))
        return found


async def test_a_worker_whose_completions_keep_failing_stops_claiming_new_work(
    bounced_store: Store, db_url: str
) -> None:
    # Claims get through, every completion fails (as behind a pooler that broke the worker's
    # prepared statements): a trigger refuses them, a database error like any other.
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            """
            CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'completions are refused'; END $$;
            CREATE TRIGGER refuse_completion BEFORE UPDATE ON jobs FOR EACH ROW
            WHEN (NEW.status = 'completed') EXECUTE FUNCTION refuse_completion();
            INSERT INTO jobs (job_type, media_url, max_attempts)
            SELECT 'audio', 'https://x/' || g, 100 FROM generate_series(1, 20) AS g;
            """
        )
        records = Records()
        logger = logging.getLogger("media_store.worker")
        logger.addHandler(records)
        runs: Counter[uuid.UUID] = Counter()
        stop = asyncio.Event()

        async def handler(job: Job) -> JobResult:
            runs[job.id] += 1
            return None

        worker = asyncio.create_task(
            run_worker(
                bounced_store,
                handler,
                worker_id="w",
                batch=5,
                lease=1.0,
                heartbeat_every=0.3,
                poll_interval=0.05,
                stop=stop,
            )
        )
        try:

            async def paused(times: int) -> None:
                async with asyncio.timeout(WAIT):
                    while len(records.pauses()) < times:  # noqa: ASYNC110 - the worker's log
                        await asyncio.sleep(0.01)

            await paused(3)
            claims = await conn.fetchval("SELECT sum(attempts) FROM jobs")
            # A first batch, then one job after each pause: not a batch per round.
            assert claims <= 5 + 3
            pauses = records.pauses()[:3]
            assert pauses == sorted(pauses) and pauses[0] < pauses[2]

            # Completions work again: the worker finds out with its next single claim, then
            # drains the rest (the given-up jobs once their leases expire).
            await conn.execute("DROP TRIGGER refuse_completion ON jobs")

            async def drained() -> bool:
                return bool(await conn.fetchval("SELECT bool_and(status = 'completed') FROM jobs"))

            async with asyncio.timeout(WAIT):
                while not await drained():  # noqa: ASYNC110 - polling the database
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            stats = await worker
            logger.removeHandler(records)
    finally:
        await conn.close()

    assert stats.unwritten >= 3 and stats.paused >= 3
    assert stats.completed == 20 and stats.lost == 0
    assert len(runs) == 20


# --- where PgBouncer is not installed -----------------------------------------------------------


def test_the_run_header_names_a_missing_pgbouncer_and_how_to_install_it(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where it is not installed, its tests are skipped and the header says so at the top of
    # the run, with the command that installs it; where it is, the header says nothing of it.
    mentioned = any("pgbouncer" in line for line in conftest.pytest_report_header(request.config))
    assert mentioned is (pgbouncer_binary() is None)
    monkeypatch.setattr(conftest, "pgbouncer_binary", lambda: None)
    header = conftest.pytest_report_header(request.config)
    assert header[0].startswith("media_store test server: ")
    assert [line for line in header if "pgbouncer" in line] == [
        "media_store: NOT INSTALLED: pgbouncer (apt-get install pgbouncer):"
        " the PgBouncer tests are skipped"
    ]
