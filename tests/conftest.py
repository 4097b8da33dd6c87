"""Fixtures: one migrated template database per run, a fresh clone of it per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from media_store import Dsn, Settings, Store, migrate
from tests.support.harness import (
    NoTestDatabase,
    Server,
    Source,
    choose_source,
    describe_source,
    provide_server,
    random_name,
    with_database,
)
from tests.support.pgbouncer import INSTALL_PGBOUNCER, pgbouncer_binary
from tests.support.throwaway_pg import postgres_bindir

_SOURCE = pytest.StashKey["Source | NoTestDatabase"]()


def chosen_source(config: pytest.Config) -> Source | NoTestDatabase:
    """Where this run's server comes from, chosen once: the header reports what the fixture
    then uses."""
    if _SOURCE not in config.stash:
        try:
            config.stash[_SOURCE] = choose_source(os.environ)
        except NoTestDatabase as exc:
            config.stash[_SOURCE] = exc
    return config.stash[_SOURCE]


def missing_components() -> list[str]:
    """The real components some tests start themselves that this machine lacks, each with the
    command that installs it (Debian's packages, as .ci/run installs them)."""
    missing = []
    if pgbouncer_binary() is None:
        missing.append(f"pgbouncer ({INSTALL_PGBOUNCER}): the PgBouncer tests are skipped")
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "pg_basebackup").exists():
        missing.append(
            "PostgreSQL server binaries initdb, pg_ctl, pg_basebackup (apt-get install"
            " postgresql): the restart, replica and failover tests are skipped"
        )
    if shutil.which("ffmpeg") is None:
        missing.append(
            "ffmpeg (apt-get install --no-install-recommends ffmpeg): the caption conversion"
            " test is skipped"
        )
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        missing.append(
            "prometheus, promtool (apt-get install -y --no-install-recommends prometheus): the"
            " Prometheus scrape test and the alert rules' check are skipped"
        )
    return missing


# What `make test-fast` leaves out (`-m "not slow"`): whole modules that start other processes
# or servers (PgBouncer, a primary and its standby, restarts, a wheel in a fresh venv, the demo
# as a command) or build large tables. Single slow tests elsewhere carry @pytest.mark.slow.
SLOW_MODULES = frozenset(
    {
        "tests/test_packaging.py",
        "tests/test_harness.py",
        "tests/db/test_pgbouncer.py",
        "tests/demo/test_demo.py",
        "tests/models/test_fuzz.py",
        "tests/replicas/test_failover.py",
        "tests/replicas/test_replicas.py",
        "tests/repositories/test_claim_plan.py",
        "tests/worker/test_restart.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        if item.path.relative_to(root).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def pytest_report_header(config: pytest.Config) -> list[str]:
    source = chosen_source(config)
    if isinstance(source, NoTestDatabase):
        lines = [f"media_store test server: none ({source})"]
    else:
        lines = [f"media_store test server: {describe_source(source)}"]
    lines += [f"media_store: NOT INSTALLED: {component}" for component in missing_components()]
    return lines


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    source = chosen_source(request.config)
    if isinstance(source, NoTestDatabase):
        pytest.fail(str(source), pytrace=False)
    with provide_server(source) as server:
        yield server


async def admin_execute(server: Server, sql: str) -> None:
    conn = await asyncpg.connect(server.admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(server: Server, template: str | None = None) -> str:
    name = random_name("ms_test")
    clause = f' TEMPLATE "{template}"' if template else ""
    await admin_execute(server, f'CREATE DATABASE "{name}"{clause}')
    return name


async def drop_database(server: Server, name: str) -> None:
    await admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def template_db(pg_server: Server) -> AsyncIterator[str]:
    """A database migrated once per run through the same code path as `make migrate`."""
    name = await create_database(pg_server)
    try:
        migrate.apply(Dsn(with_database(pg_server.admin_url, name)))
        yield name
    finally:
        await drop_database(pg_server, name)


@pytest.fixture
async def db_url(pg_server: Server, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only (a clone of the template)."""
    name = await create_database(pg_server, template=template_db)
    try:
        yield with_database(pg_server.admin_url, name)
    finally:
        await drop_database(pg_server, name)


@pytest.fixture
async def empty_db_url(pg_server: Server) -> AsyncIterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = await create_database(pg_server)
    try:
        yield with_database(pg_server.admin_url, name)
    finally:
        await drop_database(pg_server, name)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(dsn=Dsn(db_url), min_size=1, max_size=5)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = await Store.open(settings=settings)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def raw(db_url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A plain asyncpg connection to this test's database (no media_store codecs): any other
    client of the schema."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(db_url)
    try:
        yield conn
    finally:
        await conn.close()
