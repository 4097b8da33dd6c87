"""Migrations behind a long transaction (issue 20, item 10): a migration waits for its locks at
most the lock timeout at a time, so the workers queued behind its lock request are held up no
longer; it retries, and gives up with an error naming the session in the way, the database as
it was.

Each test holds ``jobs`` in an open transaction on a second connection (a report that read it),
as an operator's long-running query would.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from media_store import Dsn, migrate
from media_store.db.bundled import migrations_dir
from tests.ops.test_migrations import MIGRATION_IDS, catalog_dump, run_cli

LATEST = MIGRATION_IDS[-1]
# The newest migration whose rollback locks jobs (0019's claim indexes); the rollbacks of any
# after it touch other tables only, so the tests that are about waiting for jobs roll those
# back first.
ON_JOBS = "0019_narrow_claim_indexes"


def roll_back_past(url: str, migration: str) -> None:
    """Roll back every migration applied after ``migration``."""
    while [s.id for s in migrate.status(Dsn(url)) if s.applied][-1] != migration:
        migrate.rollback(Dsn(url))


def applied_up_to(url: str, migration: str) -> bool:
    """Whether exactly the migrations up to ``migration`` are applied."""
    last = MIGRATION_IDS.index(migration)
    return {s.id: s.applied for s in migrate.status(Dsn(url))} == {
        m: i <= last for i, m in enumerate(MIGRATION_IDS)
    }


REPORT = "nightly report"


@asynccontextmanager
async def holding_jobs(url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A connection in a transaction that read ``jobs`` and holds SHARE UPDATE EXCLUSIVE on it
    (what an ANALYZE in a transaction or a manual VACUUM holds; writes go on beside it), which
    every DDL on jobs waits for, storage settings included (0015's ALTER TABLE ... SET/RESET
    waits for no reader), rolled back on exit unless the test committed it."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        url, server_settings={"application_name": REPORT}
    )
    try:
        await conn.execute("BEGIN")
        await conn.fetchval("SELECT count(*) FROM jobs")
        await conn.execute("LOCK TABLE jobs IN SHARE UPDATE EXCLUSIVE MODE")
        yield conn
    finally:
        await conn.execute("ROLLBACK")  # a warning only, when the test committed already
        await conn.close()


async def outcome(
    call: Callable[[], list[str]], within_s: float, release: asyncpg.Connection[Any]
) -> tuple[float, list[str] | BaseException]:
    """Run ``call`` in a thread; how long it took and what it returned or raised. If it has not
    ended within ``within_s`` (the code waited without limit), ``release`` is rolled back so
    that the thread ends and the test fails instead of hanging."""
    started = time.monotonic()
    task = asyncio.create_task(asyncio.to_thread(call))
    await asyncio.wait({task}, timeout=within_s)
    elapsed = time.monotonic() - started
    if not task.done():
        await release.execute("ROLLBACK")
    try:
        return elapsed, await task
    except Exception as exc:
        return elapsed, exc


def lock_env(monkeypatch: pytest.MonkeyPatch, timeout_s: float, retries: int) -> float:
    """Set the policy through the environment (as an operator would); its worst case."""
    monkeypatch.setenv("MEDIA_STORE_MIGRATION_LOCK_TIMEOUT", str(timeout_s))
    monkeypatch.setenv("MEDIA_STORE_MIGRATION_LOCK_RETRIES", str(retries))
    # timeout_s at each attempt, pauses of timeout_s * 1, 2, 4, ... between them
    return (retries + 1) * timeout_s + sum(timeout_s * 2.0**i for i in range(retries))


def assert_gave_up_naming(result: object, holder_pid: int, migration: str) -> None:
    assert isinstance(result, migrate.MigrationError), result
    assert type(result).__name__ == "MigrationLockTimeout", result
    message = str(result)
    assert migration in message
    assert f"pid {holder_pid}" in message
    assert repr(REPORT) in message
    assert "jobs" in message
    assert "pg_terminate_backend" in message


async def test_rollback_gives_up_within_its_bound_naming_the_blocker_and_changes_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = lock_env(monkeypatch, timeout_s=0.3, retries=2)
    roll_back_past(db_url, ON_JOBS)
    before = await catalog_dump(db_url)

    async with holding_jobs(db_url) as holder:
        pid = holder.get_server_pid()
        elapsed, result = await outcome(lambda: migrate.rollback(Dsn(db_url)), bound + 5, holder)

    assert_gave_up_naming(result, pid, ON_JOBS)
    assert elapsed < bound + 3
    assert await catalog_dump(db_url) == before
    assert applied_up_to(db_url, ON_JOBS)


@pytest.fixture
def probe_source(tmp_path: Path) -> Path:
    """The shipped migrations and two more: 0098 touches no existing table, 0099 creates a table
    and then needs jobs (ACCESS EXCLUSIVE)."""
    for path in migrations_dir().glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "0098_lock_probe_a.sql").write_text(
        f"-- depends: {LATEST}\nCREATE TABLE lock_probe_a (id integer);\n"
    )
    (tmp_path / "0098_lock_probe_a.rollback.sql").write_text("DROP TABLE lock_probe_a;\n")
    (tmp_path / "0099_lock_probe_b.sql").write_text(
        "-- depends: 0098_lock_probe_a\nCREATE TABLE lock_probe_b (id integer);\n"
        "ALTER TABLE jobs ADD COLUMN lock_probe integer;\n"
    )
    (tmp_path / "0099_lock_probe_b.rollback.sql").write_text(
        "ALTER TABLE jobs DROP COLUMN lock_probe;\nDROP TABLE lock_probe_b;\n"
    )
    return tmp_path


async def test_apply_gives_up_without_leaving_a_migration_half_applied(
    db_url: str, monkeypatch: pytest.MonkeyPatch, probe_source: Path
) -> None:
    bound = lock_env(monkeypatch, timeout_s=0.3, retries=1)

    async with holding_jobs(db_url) as holder:
        pid = holder.get_server_pid()
        elapsed, result = await outcome(
            lambda: migrate.apply(Dsn(db_url), source=probe_source), bound + 5, holder
        )

    assert_gave_up_naming(result, pid, "0099_lock_probe_b")
    assert elapsed < bound + 3
    assert getattr(result, "done", None) == ["0098_lock_probe_a"]
    assert "0098_lock_probe_a (kept)" in str(result)
    conn = await asyncpg.connect(db_url)
    try:
        tables = await conn.fetch("SELECT relname FROM pg_class WHERE relname LIKE 'lock_probe%'")
        columns = await conn.fetchval(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'jobs'::regclass"
            " AND attname = 'lock_probe'"
        )
    finally:
        await conn.close()
    # 0098 stays applied; 0099's first statement went with its failed second one
    assert [row["relname"] for row in tables] == ["lock_probe_a"]
    assert columns == 0
    states = {s.id: s.applied for s in migrate.status(Dsn(db_url), source=probe_source)}
    assert states["0098_lock_probe_a"] is True
    assert states["0099_lock_probe_b"] is False


async def test_workers_wait_at_most_about_the_lock_timeout_while_it_retries(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeout_s = 0.5
    # 0015's rollback only resets storage settings (SHARE UPDATE EXCLUSIVE: writes go on
    # beside it); 0014's drops a table whose foreign key references jobs, which asks for ACCESS
    # EXCLUSIVE on jobs, and the workers' writes queue behind: that is the rollback this is about.
    roll_back_past(db_url, "0014_job_trace_context")
    bound = lock_env(monkeypatch, timeout_s=timeout_s, retries=3)
    worker: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(db_url)
    job_id: uuid.UUID = await worker.fetchval(
        "INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'u') RETURNING id"
    )
    waits: list[float] = []
    try:
        async with holding_jobs(db_url) as holder:
            task = asyncio.create_task(
                outcome(lambda: migrate.rollback(Dsn(db_url)), bound + 5, holder)
            )
            await asyncio.sleep(0.2)  # the rollback asks for its lock
            stop = time.monotonic() + 3 * timeout_s + 1
            while time.monotonic() < stop:  # a worker's writes: a heartbeat, a new job
                started = time.monotonic()
                try:
                    await worker.execute(
                        "UPDATE jobs SET priority = priority WHERE id = $1", job_id, timeout=5
                    )
                    await worker.execute(
                        "INSERT INTO jobs (job_type, media_url) VALUES ('audio', 'u')", timeout=5
                    )
                except TimeoutError:
                    waits.append(float("inf"))
                    break
                waits.append(time.monotonic() - started)
                await asyncio.sleep(0.05)
            blocked = [w for w in waits if w > timeout_s / 2]
            _elapsed, result = await task
    finally:
        await worker.close()

    assert isinstance(result, migrate.MigrationError), result  # it was still held up
    assert blocked, "the worker never queued behind the migration: the test shows nothing"
    assert max(waits) < timeout_s + 1.0, waits
    assert len(waits) >= 10, waits


async def test_a_retry_succeeds_once_the_blocking_transaction_ends(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = lock_env(monkeypatch, timeout_s=0.3, retries=6)
    roll_back_past(db_url, ON_JOBS)

    async with holding_jobs(db_url) as holder:
        task = asyncio.create_task(outcome(lambda: migrate.rollback(Dsn(db_url)), bound, holder))
        await asyncio.sleep(1.0)  # a few attempts fail meanwhile
        await holder.execute("COMMIT")
        _elapsed, result = await task

    assert result == [ON_JOBS]
    assert applied_up_to(db_url, MIGRATION_IDS[MIGRATION_IDS.index(ON_JOBS) - 1])


async def test_cli_rollback_behind_a_long_transaction_exits_75_naming_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MEDIA_STORE_MIGRATION_LOCK_TIMEOUT", "60")  # the options win
    roll_back_past(db_url, ON_JOBS)

    async with holding_jobs(db_url) as holder:
        pid = holder.get_server_pid()
        code, output = await asyncio.to_thread(
            run_cli, ["rollback", "--lock-timeout", "0.2", "--lock-retries", "1"], capsys
        )

    assert code == 75, output
    assert "media-store rollback: MigrationLockTimeout" in output
    assert f"pid {pid}" in output and "--lock-timeout" in output
    assert applied_up_to(db_url, ON_JOBS)


# --- the policy itself ---------------------------------------------------------------------


def test_policy_reads_the_environment_and_the_options_win() -> None:
    env = {"MEDIA_STORE_MIGRATION_LOCK_TIMEOUT": "1.5", "MEDIA_STORE_MIGRATION_LOCK_RETRIES": "2"}
    assert migrate.LockPolicy.from_env({}) == migrate.LockPolicy(timeout_s=3.0, retries=3)
    assert migrate.LockPolicy.from_env(env) == migrate.LockPolicy(timeout_s=1.5, retries=2)
    assert migrate.LockPolicy.from_env(env, timeout_s=0.2, retries=0) == migrate.LockPolicy(
        timeout_s=0.2, retries=0
    )
    # attempts of 1.5s, pauses of 1.5s and 3s between them
    assert migrate.LockPolicy(timeout_s=1.5, retries=2).worst_case_s == pytest.approx(9.0)
    assert migrate.LockPolicy(timeout_s=20, retries=3).pause_after(3) == 30.0  # capped


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEDIA_STORE_MIGRATION_LOCK_TIMEOUT": "soon"}, "must be a number"),
        ({"MEDIA_STORE_MIGRATION_LOCK_TIMEOUT": "0"}, "must be > 0"),
        ({"MEDIA_STORE_MIGRATION_LOCK_RETRIES": "1.5"}, "must be an integer"),
        ({"MEDIA_STORE_MIGRATION_LOCK_RETRIES": "-1"}, "must be >= 0"),
    ],
)
def test_policy_refuses_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(migrate.MigrationError, match=message):
        migrate.LockPolicy.from_env(env)


def test_the_lock_timeout_joins_the_urls_own_options() -> None:
    policy = migrate.LockPolicy(timeout_s=2.5)
    plain = migrate.yoyo_url(Dsn("postgresql://u@h/db"), policy)
    assert plain == (
        "postgresql+psycopg://u@h/db?options=-c%20lock_timeout%3D2500"
        "&application_name=media-store%20migrations"
    )
    own = migrate.yoyo_url(
        Dsn("postgresql://u@h/db?options=-c%20search_path%3Dx&application_name=deploy"), policy
    )
    assert own == (
        "postgresql+psycopg://u@h/db?options=-c%20search_path%3Dx%20-c%20lock_timeout%3D2500"
        "&application_name=deploy"
    )
