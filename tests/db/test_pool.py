"""The pool under what production does to it: backends killed under it, every connection held,
prepared statements that are not where the driver left them, and PgBouncer in front."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import pytest

from media_store import DatabaseError, DatabaseUnavailable, Dsn, Job, JobStatus, Settings, Store
from media_store.db.boundary import borrowed
from media_store.db.connections import ManagedPool, connect
from media_store.db.queries import Query
from media_store.errors import ConfigurationError, PoolExhausted, PreparedStatementConflict
from media_store.repositories import JobRepository
from media_store.repositories.base import Repository
from tests.support.pgbouncer import PgBouncer, bounced, pgbouncer_fixture  # noqa: F401

AUDIO = {"job_type": "audio", "media_url": "https://x/a.mp3"}
RawConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def app_name() -> str:
    """A per-test application_name, to find the pool's backends in pg_stat_activity."""
    return f"ms_pool_{secrets.token_hex(4)}"


async def backends(raw: RawConnection, application_name: str, state: str | None = None) -> set[int]:
    rows = await raw.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
        " AND ($2::text IS NULL OR state = $2)",
        application_name,
        state,
    )
    return {row["pid"] for row in rows}


async def terminate(raw: RawConnection, pids: set[int]) -> None:
    # With a timeout, pg_terminate_backend returns once the backend has exited.
    for pid in pids:
        assert await raw.fetchval("SELECT pg_terminate_backend($1, 10000)", pid) is True


# --- lost connections -------------------------------------------------------------------------


async def test_calls_after_the_pools_backends_are_killed_are_unavailable_and_the_pool_recovers(
    db_url: str, raw: RawConnection
) -> None:
    app = app_name()
    settings = Settings(dsn=Dsn(db_url), min_size=4, max_size=4, application_name=app)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create(AUDIO)
        killed: set[int] = set()
        failures: list[BaseException] = []
        for _ in range(8):
            idle = await backends(raw, app, "idle")
            await terminate(raw, idle)
            killed |= idle
            outcomes = await asyncio.gather(
                *(store.jobs.get_by_id(job.id) for _ in range(8)), return_exceptions=True
            )
            failures += [o for o in outcomes if isinstance(o, BaseException)]
            assert [o for o in outcomes if not isinstance(o, BaseException)] == [job] * (
                len(outcomes) - sum(isinstance(o, BaseException) for o in outcomes)
            )

        # Each killed connection fails at most the one call that found it dead, and always as
        # DatabaseUnavailable (a caller retrying on it retries these), never DatabaseError.
        assert [type(f) for f in failures if not isinstance(f, DatabaseUnavailable)] == []
        assert len(failures) <= len(killed)
        # The pool dropped every broken connection: calls in a row (the pool hands out its
        # connections in turn) all work, on new backends.
        assert [await store.jobs.get_by_id(job.id) for _ in range(8)] == [job] * 8
        alive = await backends(raw, app)
        assert len(alive) == 4
        assert not alive & killed


async def test_a_held_connection_whose_backend_is_killed_is_unavailable_then_replaced(
    db_url: str, raw: RawConnection
) -> None:
    app = app_name()
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=1, application_name=app)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create(AUDIO)
        async with store.connection() as held:
            await terminate(raw, await backends(raw, app))
            for _ in range(3):  # every later call on it too, not only the first
                with pytest.raises(DatabaseUnavailable):
                    await held.jobs.get_by_id(job.id)
        assert await store.jobs.get_by_id(job.id) == job


async def test_a_transaction_whose_backend_is_killed_is_unavailable_and_wrote_nothing(
    db_url: str, raw: RawConnection
) -> None:
    app = app_name()
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=1, application_name=app)
    async with await Store.open(settings=settings) as store:
        with pytest.raises(DatabaseUnavailable):
            async with store.transaction() as tx:
                await tx.jobs.create(AUDIO)
                await terminate(raw, await backends(raw, app))
                await tx.jobs.create(AUDIO)
        assert await store.jobs.get_all() == []
        assert len(await store.jobs.get_all()) == 0  # and the pool works again


# --- the acquire timeout ----------------------------------------------------------------------


async def test_a_pool_whose_connections_are_all_held_raises_pool_exhausted_on_every_path(
    db_url: str,
) -> None:
    settings = Settings(dsn=Dsn(db_url), min_size=2, max_size=2, acquire_timeout=0.2)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create(AUDIO)
        async with store.transaction() as stuck, store.connection() as idle_holder:
            # One transaction holds a row lock and does nothing more; the other connection
            # is simply never given back: nothing is free.
            await stuck.jobs.start_processing(job.id, worker_id="w1")
            assert await idle_holder.jobs.get_by_id(job.id) is not None

            with pytest.raises(PoolExhausted) as exhausted:
                await store.jobs.get_by_id(job.id)
            with pytest.raises(PoolExhausted):
                await store.jobs.count_by_status()
            with pytest.raises(PoolExhausted):
                async with store.connection():
                    pass
            with pytest.raises(PoolExhausted):
                async with store.transaction():
                    pass
            with pytest.raises(PoolExhausted):
                async with borrowed(store.pool):
                    pass
            with pytest.raises(TimeoutError):  # the pool itself, for callers of the driver
                await store.pool.fetchval("SELECT 1")
            assert await store.ping() is False

        assert isinstance(exhausted.value, DatabaseUnavailable)  # retrying later may work
        assert exhausted.value.max_size == 2
        message = str(exhausted.value)
        assert "pool exhausted" in message
        assert "all 2 connections" in message
        assert "MEDIA_STORE_POOL_ACQUIRE_TIMEOUT" in message

        # Once the holders are done, the same pool serves again.
        fetched = await store.jobs.get_by_id(job.id)
        assert fetched is not None
        assert fetched.status == "processing"
        assert await store.ping() is True


async def test_more_callers_than_connections_queue_within_the_acquire_timeout(
    db_url: str,
) -> None:
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=2, acquire_timeout=30)
    async with await Store.open(settings=settings) as store:
        jobs = await asyncio.gather(*(store.jobs.create(AUDIO) for _ in range(20)))
        assert len({job.id for job in jobs}) == 20
        assert (await store.jobs.count_by_status())[JobStatus.PENDING] == 20


async def test_a_server_that_cannot_be_reached_is_unavailable_not_exhausted() -> None:
    # min_size=0: the pool opens without connecting; the first call has to connect.
    settings = Settings(dsn=Dsn("postgresql://app@127.0.0.1:1/none"), min_size=0, max_size=1)
    async with await Store.open(settings=settings) as store:
        with pytest.raises(DatabaseUnavailable) as refused:
            await store.jobs.count_by_status()
    assert not isinstance(refused.value, PoolExhausted)
    assert "cannot connect to postgresql://app@127.0.0.1:1/none" in str(refused.value)


def test_the_acquire_timeout_is_read_from_the_environment() -> None:
    base = {"DATABASE_URL": "postgresql://app@db/media"}
    assert Settings.from_env(env=base).acquire_timeout == 30.0
    read = Settings.from_env(env={**base, "MEDIA_STORE_POOL_ACQUIRE_TIMEOUT": "2.5"})
    assert read.acquire_timeout == 2.5
    for bad in ("soon", "0", "-1", "nan", "inf"):
        with pytest.raises(ConfigurationError, match=r"(?i)acquire_timeout"):
            Settings.from_env(env={**base, "MEDIA_STORE_POOL_ACQUIRE_TIMEOUT": bad})


# --- prepared statements that are not where the driver left them ------------------------------


class _AddOne(Repository):
    """A test-only repository: one statement through the library's error boundary."""

    ADD_ONE = Query(
        name="add_one",
        description="Add one to $1.",
        sql="SELECT $1::int4 + 1",
        path=Path(__file__),
        line=0,
    )

    async def add_one(self, value: int) -> Any:
        return await self._fetchval(self.ADD_ONE, value)


async def _cached_name(conn: Any, sql: str) -> str:
    name = await conn.fetchval("SELECT name FROM pg_prepared_statements WHERE statement = $1", sql)
    assert isinstance(name, str)
    return name


async def _deallocate_and_prepare_other(conn: Any) -> None:
    name = await _cached_name(conn, _AddOne.ADD_ONE.sql)
    # execute() without arguments is a simple query: nothing of the driver's is involved.
    await conn.execute(f'DEALLOCATE "{name}"; PREPARE "{name}" AS SELECT 1')


async def _deallocate(conn: Any) -> None:
    await conn.execute(f'DEALLOCATE "{await _cached_name(conn, _AddOne.ADD_ONE.sql)}"')


async def _prepare_the_next_names(conn: Any) -> None:
    # asyncpg names statements __asyncpg_stmt_<hex counter>__ from one process-wide counter;
    # taking the next names first makes its next PREPARE collide, as on a shared server
    # connection behind a pooler.
    names = await conn.fetch(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_\\_asyncpg\\_stmt\\_%'"
    )
    counter = max(int(row["name"][len("__asyncpg_stmt_") : -2], 16) for row in names)
    for n in range(counter + 1, counter + 64):
        await conn.execute(f'PREPARE "__asyncpg_stmt_{n:x}__" AS SELECT 1')


SABOTAGE = {
    "a different statement under the name (08P01)": (_deallocate_and_prepare_other, "08P01"),
    "the statement is gone (26000)": (_deallocate, "26000"),
    "the name is already taken (42P05)": (_prepare_the_next_names, "42P05"),
}


@pytest.mark.parametrize(("sabotage", "sqlstate"), SABOTAGE.values(), ids=SABOTAGE.keys())
async def test_a_cached_statement_missing_on_the_server_is_a_typed_error_naming_the_fix(
    db_url: str, sabotage: Any, sqlstate: str
) -> None:
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=1, statement_cache_size=100)
    async with await Store.open(settings=settings) as store, store.connection() as held:
        repo = _AddOne(held.executor)
        assert await repo.add_one(1) == 2
        await sabotage(held.executor)

        with pytest.raises(PreparedStatementConflict) as conflict:
            if sqlstate == "42P05":
                await held.jobs.count_by_status()  # a statement not prepared yet
            else:
                await repo.add_one(1)

    assert isinstance(conflict.value, ConfigurationError)  # retrying does not help
    assert conflict.value.sqlstate == sqlstate
    assert "MEDIA_STORE_STATEMENT_CACHE_SIZE=0" in str(conflict.value)
    assert "PgBouncer" in str(conflict.value)


# --- PgBouncer in transaction mode ------------------------------------------------------------


@pytest.fixture
async def pin(pgbouncer: PgBouncer, db_url: str) -> AsyncIterator[RawConnection]:
    """A plain client of the same PgBouncer database (no statement cache, as it must)."""
    conn: RawConnection = await asyncpg.connect(bounced(db_url, pgbouncer), statement_cache_size=0)
    try:
        yield conn
    finally:
        await conn.close()


async def _with_server_connections_taken(pin: RawConnection, call: Any) -> Any:
    """Run ``call`` while ``pin`` holds a server connection in a transaction, so PgBouncer
    sends ``call``'s statements to another (PgBouncer reuses the last used one first, which
    ``pin`` now holds)."""
    async with pin.transaction():
        await pin.fetchval("SELECT 1")
        return await call()


async def test_a_pooler_in_front_is_detected_and_everything_works_through_it(
    pgbouncer: PgBouncer, db_url: str, pin: RawConnection
) -> None:
    settings = Settings(dsn=Dsn(bounced(db_url, pgbouncer)), min_size=1, max_size=3)
    async with (
        await Store.open(settings=settings) as one,
        await Store.open(settings=settings) as two,
    ):
        assert one.pool.statement_cache_size == 0  # type: ignore[attr-defined]

        async def round_trip(store: Store, worker: str) -> Job:
            job = await store.jobs.create(AUDIO)
            assert await store.jobs.get_by_id(job.id) == job
            async with store.transaction() as tx:
                started = await tx.jobs.start_processing(job.id, worker_id=worker)
                assert await tx.jobs.get_by_id(job.id) == started
            return await store.jobs.complete(job.id, worker, {"ok": True})

        for _ in range(3):
            done = await asyncio.gather(
                *(round_trip(store, f"w{i}") for i, store in enumerate([one, two] * 4)),
                _with_server_connections_taken(pin, lambda: one.jobs.count_by_status()),
            )
            assert {job.status for job in done[:-1]} == {"completed"}
        assert (await one.jobs.count_by_status())[JobStatus.COMPLETED] == 24


async def test_a_direct_server_keeps_the_statement_cache(db_url: str) -> None:
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=1)
    assert settings.statement_cache_size is None  # auto
    async with await Store.open(settings=settings) as store:
        assert isinstance(store.pool, ManagedPool)
        assert store.pool.statement_cache_size == 100
        job = await store.jobs.create(AUDIO)
        assert await store.jobs.get_by_id(job.id) == job
        async with store.connection() as repos:
            named = await repos.executor.fetchval("SELECT count(*) FROM pg_prepared_statements")
        assert named > 0


async def test_one_connection_through_a_pooler_detects_it_too(
    pgbouncer: PgBouncer, db_url: str, pin: RawConnection
) -> None:
    conn = await connect(Settings(dsn=Dsn(bounced(db_url, pgbouncer))))
    try:
        jobs = JobRepository(conn)
        job = await jobs.create(AUDIO)
        assert await jobs.get_by_id(job.id) == job
        for _ in range(3):
            assert await _with_server_connections_taken(pin, lambda: jobs.get_by_id(job.id)) == job
    finally:
        await conn.close()


async def test_a_forced_statement_cache_behind_a_pooler_fails_with_a_typed_error(
    pgbouncer: PgBouncer, db_url: str, pin: RawConnection
) -> None:
    settings = Settings(
        dsn=Dsn(bounced(db_url, pgbouncer)), min_size=1, max_size=1, statement_cache_size=100
    )
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create(AUDIO)
        outcomes: list[Any] = []
        for _ in range(4):
            await store.jobs.get_by_id(job.id)  # prepared on the server connection it reached
            try:
                outcomes.append(
                    await _with_server_connections_taken(pin, lambda: store.jobs.get_by_id(job.id))
                )
            except DatabaseError as exc:  # the wrong type: let the assertion below show it
                outcomes.append(exc)
            except PreparedStatementConflict as conflict:
                outcomes.append(conflict)
    conflicts = [o for o in outcomes if isinstance(o, PreparedStatementConflict)]
    assert conflicts, outcomes
    assert all(o == job or isinstance(o, PreparedStatementConflict) for o in outcomes), outcomes
    assert "MEDIA_STORE_STATEMENT_CACHE_SIZE=0" in str(conflicts[0])


# --- releases -----------------------------------------------------------------------------------


class ShieldCount:
    """asyncio.shield, counting its calls: asyncpg's Pool.release goes through it."""

    def __init__(self) -> None:
        self.calls = 0
        self._shield = asyncio.shield

    def __call__(self, awaitable: Any) -> Any:
        self.calls += 1
        return self._shield(awaitable)


async def test_a_quiet_release_returns_the_connection_in_place_and_others_take_asyncpgs_path(
    db_url: str, raw: RawConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    shield = ShieldCount()
    monkeypatch.setattr(asyncio, "shield", shield)
    app = app_name()
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=1, application_name=app)
    async with await Store.open(settings=settings) as store:
        pool = store.pool
        assert isinstance(pool, ManagedPool)
        job = await store.jobs.create(AUDIO)
        [pid] = await backends(raw, app)
        # A statement's borrow outside a transaction: released without asyncpg's shielded
        # task, the same connection back in the pool each time.
        assert [await store.jobs.get_by_id(job.id) for _ in range(20)] == [job] * 20
        assert shield.calls == 0
        assert pool.get_idle_size() == 1
        assert await backends(raw, app) == {pid}
        # It never waits: stepped once, the release is done and the connection free.
        conn = await pool.acquire()
        assert await conn.fetchval("SELECT 1") == 1
        assert pool.get_idle_size() == 0
        release = pool.release(conn)
        with pytest.raises(StopIteration):
            release.send(None)
        assert pool.get_idle_size() == 1
        assert shield.calls == 0

        # A connection left in a transaction: asyncpg's own release, which rolls it back.
        conn = await pool.acquire()
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'left')")
        await pool.release(conn)
        assert shield.calls == 1
        assert await raw.fetchval("SELECT count(*) FROM jobs WHERE media_url = 'left'") == 0
        assert await store.jobs.get_by_id(job.id) == job
        assert shield.calls == 1
        assert await backends(raw, app) == {pid}

        # A transaction asyncpg still counts as open though the server ended it: asyncpg's
        # path too (its reset sends a ROLLBACK, which waits).
        conn = await pool.acquire()
        await conn.transaction().start()
        await conn.execute("COMMIT")
        assert not conn.is_in_transaction()
        await pool.release(conn)
        assert shield.calls == 2
        assert await store.jobs.get_by_id(job.id) == job
        assert shield.calls == 2

        # A connection of an expired generation: asyncpg's own release, which closes it; the
        # next borrow opens a new one.
        conn = await pool.acquire()
        await pool.expire_connections()
        await pool.release(conn)
        assert shield.calls == 3
        assert await store.jobs.get_by_id(job.id) == job
        for _ in range(100):  # the old backend may take a moment to leave pg_stat_activity
            replaced = await backends(raw, app)
            if pid not in replaced:
                break
            await asyncio.sleep(0.05)
        assert len(replaced) == 1 and pid not in replaced
