"""``make demo`` on a database that holds real work touches only the rows it created."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from media_store import Dsn, JobStatus, JobType, Store
from media_store.demo.queue import PRIVATE_PREFIX
from media_store.demo.run import bundled_psql, psql_command
from tests.support.harness import Server, pgserver_installed, provide_server, with_database

ROOT = Path(__file__).resolve().parents[2]


async def run_demo(url: str, *, env: dict[str, str] | None = None, code: int = 0) -> str:
    """``media-store demo`` with ``DATABASE_URL=url`` (and ``env``) in a process of its own;
    its output. Asserts its exit status is ``code``."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "media_store", "demo"),
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    output = out.decode()
    assert process.returncode == code, output
    return output


async def all_jobs(url: str) -> dict[uuid.UUID, dict[str, Any]]:
    """Every row of ``jobs``, every column, by id."""
    conn = await asyncpg.connect(url)
    try:
        return {row["id"]: dict(row) for row in await conn.fetch("SELECT * FROM jobs")}
    finally:
        await conn.close()


async def database_exists(url: str, name: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def foreign_work(url: str) -> None:
    """What another team left in the database: waiting jobs of every type the demo uses, one
    held by a worker whose lease has already expired (a demo worker must not reclaim it), and
    a finished one."""
    async with await Store.open(url) as store:
        for job_type in (JobType.VIDEO, JobType.AUDIO, JobType.VIDEO):
            await store.jobs.create({"job_type": job_type, "media_url": "s3://theirs/in.mp4"})
        await store.jobs.create({"job_type": JobType.VIDEO, "media_url": "s3://theirs/held.mp4"})
        [held] = await store.jobs.claim("their-worker", [JobType.VIDEO], limit=1, lease=0.001)
        done = await store.jobs.create({"job_type": JobType.AUDIO, "media_url": "s3://theirs/x"})
        await store.jobs.start_processing(done.id)
        await store.jobs.update_status(done.id, JobStatus.COMPLETED, result={"theirs": True})
        await asyncio.sleep(0.01)  # the held job's lease is expired from here on
        assert held.locked_until is not None


async def test_demo_run_twice_leaves_foreign_jobs_untouched_and_no_pending_work(
    db_url: str,
) -> None:
    await foreign_work(db_url)
    before = await all_jobs(db_url)
    assert sorted(job["status"] for job in before.values()) == [
        "completed", "pending", "pending", "pending", "processing"
    ]  # fmt: skip

    outputs = [await run_demo(db_url), await run_demo(db_url)]

    after = await all_jobs(db_url)
    assert {job_id: after.get(job_id) for job_id in before} == before  # untouched, every column
    own = {job_id: job for job_id, job in after.items() if job_id not in before}
    assert [job["status"] for job in own.values()] == ["completed"] * 4  # two a run
    for output in outputs:
        assert "Left in the database by this run: 2 jobs, none pending" in output
        assert not any(str(job_id) in output for job_id in before)  # never shown nor counted
        [private] = re.findall(rf"\b({PRIVATE_PREFIX}\w+) \(private", output)
        assert not await database_exists(db_url, private)  # dropped after the queue section
        assert re.search(r"^  flaky +completed +2 ", output, re.MULTILINE), output
        # the search finds its own job's phrase, to the word, whatever else the database holds
        hits = re.findall(r"^ +[\d.]+ - +[\d.]+ s  S[12]  .*compare what", output, re.MULTILINE)
        assert len(hits) == 3, output


@pytest.fixture
async def role_without_createdb(pg_server: Server, db_url: str) -> AsyncIterator[str]:
    """``db_url`` as a role that may use the schema but not create databases."""
    role = f"ms_demo_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_server.admin_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    except asyncpg.InsufficientPrivilegeError:
        await admin.close()
        pytest.skip("the test server's role may not create roles")
    db = await asyncpg.connect(db_url)
    try:
        for grant in ("ALL ON ALL TABLES", "ALL ON ALL SEQUENCES", "ALL ON ALL FUNCTIONS"):
            await db.execute(f"GRANT {grant} IN SCHEMA public TO {role}")
        await db.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        parts = db_url.split("://", 1)[1].split("@", 1)
        host_and_db = parts[-1]
        yield f"postgresql://{role}@{host_and_db}"
    finally:
        await db.execute(f"DROP OWNED BY {role}")
        await db.close()
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_demo_skips_the_queue_section_when_it_cannot_have_a_database_of_its_own(
    db_url: str, role_without_createdb: str
) -> None:
    await foreign_work(db_url)
    before = await all_jobs(db_url)

    output = await run_demo(role_without_createdb)

    assert "skipped" in output and "no CREATEDB" in output
    after = await all_jobs(db_url)
    assert {job_id: after.get(job_id) for job_id in before} == before
    own = [job["status"] for job_id, job in after.items() if job_id not in before]
    assert own == ["completed", "completed"]


def test_psql_command_for_the_embedded_server_names_its_socket_folder() -> None:
    dsn = Dsn("postgresql://postgres:@/media_store?host=/home/me/my code/.dev-postgres")
    assert psql_command(dsn) == "psql -h '/home/me/my code/.dev-postgres' -U postgres media_store"


@pytest.mark.skipif(not pgserver_installed(), reason="needs the pgserver wheel")
def test_the_printed_psql_command_opens_an_embedded_server() -> None:
    with provide_server("embedded") as server:
        command = psql_command(Dsn(with_database(server.admin_url, "postgres")), bundled_psql())
        done = subprocess.run(
            [*shlex.split(command), "-AtXc", "SELECT 6 * 7"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


async def test_demo_honours_the_environments_pool_settings(db_url: str) -> None:
    # A pool of one connection cannot run a worker (it needs one for claims and one for
    # heartbeats): the demo says so rather than quietly opening a pool of its own.
    output = await run_demo(db_url, env={"MEDIA_STORE_POOL_MAX_SIZE": "1"}, code=2)
    assert "pool of at least 2" in output and "has 1" in output
    # the same settings with room for a worker run the demo to the end
    output = await run_demo(db_url, env={"MEDIA_STORE_POOL_MAX_SIZE": "3"})
    assert "none pending" in output
