"""Least privilege: migrations run as the owner role; everything else runs as a runtime role
holding only what ``media_store.ops.grants`` gives it.

The databases here are hardened as a careful DBA would: PUBLIC may not connect, use the
schema or execute the owner's functions. So whatever the runtime role does, it does with the
grants alone. Roles are cluster-wide: each has a random name and a random password (for servers
that do not trust local connections), and is dropped afterwards with whatever it was granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
from psycopg import sql

from media_store import (
    ConfigurationError,
    Dsn,
    Job,
    JobStatus,
    Settings,
    Store,
    migrate,
)
from media_store.cli.main import main as cli_main
from media_store.db.queries import QUERIES
from media_store.ops.grants import RUNTIME_FUNCTIONS, TABLE_PRIVILEGES, grant_runtime
from media_store.ops.schema_check import check_database
from media_store.worker.runner import JobResult, run_worker
from tests.ops.test_migrations import MIGRATION_IDS, catalog_dump
from tests.support.harness import Server, random_name, with_database
from tests.test_docs import DOCS, ROOT, run_block, runnable

# --- roles and databases -----------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    name: str
    password: str


@dataclass
class Cluster:
    """The admin connection's server, and what the tests made on it (dropped at the end)."""

    admin_url: str
    roles: list[Role] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    def url(self, role: Role | None = None, database: str | None = None) -> str:
        """The admin URL, as ``role`` (with its password) and on ``database``."""
        url = with_database(self.admin_url, database) if database else self.admin_url
        if role is None:
            return url
        parts = urlsplit(url)
        hostport = parts.netloc.rpartition("@")[2]
        netloc = f"{quote(role.name, safe='')}:{quote(role.password, safe='')}@{hostport}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def execute(self, *statements: sql.Composed, database: str | None = None) -> None:
        with psycopg.connect(self.url(database=database), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def create_role(self, prefix: str) -> Role:
        role = Role(random_name(prefix), secrets.token_hex(16))
        self.roles.append(role)
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role.name), sql.Literal(role.password)
            )
        )
        return role

    def create_database(self, owner: Role, template: str | None = None) -> str:
        name = random_name("ms_test")
        self.databases.append(name)
        self.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {}").format(
                sql.Identifier(name),
                sql.Identifier(owner.name),
                sql.Identifier(template or "template1"),
            )
        )
        return name

    def drop_database(self, name: str) -> None:
        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        self.databases.remove(name)

    def clean_up(self) -> None:
        """Drop every database made here, then each role with what it owns and was granted."""
        for name in list(self.databases):
            self.drop_database(name)
        if self.roles:
            names = sql.SQL(", ").join(sql.Identifier(role.name) for role in self.roles)
            # Only the admin database is left where they could hold anything.
            self.execute(
                sql.SQL("DROP OWNED BY {}").format(names),
                sql.SQL("DROP ROLE {}").format(names),
            )
            self.roles.clear()


@contextlib.contextmanager
def cluster_of(server: Server) -> Iterator[Cluster]:
    cluster = Cluster(server.admin_url)
    try:
        yield cluster
    finally:
        cluster.clean_up()


@dataclass(frozen=True)
class Deployment:
    """A database migrated by ``owner``, and ``runtime`` granted its rights there."""

    cluster: Cluster
    owner: Role
    runtime: Role
    database: str

    @property
    def admin_url(self) -> str:
        return self.cluster.url(database=self.database)

    @property
    def owner_url(self) -> str:
        return self.cluster.url(self.owner, self.database)

    @property
    def runtime_url(self) -> str:
        return self.cluster.url(self.runtime, self.database)

    def settings(self) -> Settings:
        return Settings(dsn=Dsn(self.runtime_url), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def cluster(pg_server: Server) -> Iterator[Cluster]:
    with cluster_of(pg_server) as made:
        yield made


@pytest.fixture(scope="module")
def owner(cluster: Cluster) -> Role:
    return cluster.create_role("ms_owner")


@pytest.fixture(scope="module")
def runtime(cluster: Cluster) -> Role:
    return cluster.create_role("ms_rt")


def harden(cluster: Cluster, owner: Role, database: str) -> None:
    """Take from PUBLIC what PostgreSQL gives it by default: connecting to the database, using
    the schema, executing the functions the owner creates."""
    with psycopg.connect(cluster.url(owner, database), autocommit=True) as conn:
        conn.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
        )
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        conn.execute("ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")


@pytest.fixture(scope="module")
def owner_template(cluster: Cluster, owner: Role) -> str:
    """A hardened database the owner role migrated, through `media-store migrate`'s code."""
    name = cluster.create_database(owner)
    harden(cluster, owner, name)
    assert migrate.apply(Dsn(cluster.url(owner, name))) == MIGRATION_IDS
    return name


@contextlib.contextmanager
def deployed(cluster: Cluster, owner: Role, runtime: Role, template: str) -> Iterator[Deployment]:
    """A clone of the template (its schema, owners and privileges; the database's own
    privileges are not copied, so they are hardened again), with the runtime role granted."""
    name = cluster.create_database(owner, template=template)
    try:
        harden(cluster, owner, name)
        made = Deployment(cluster, owner, runtime, name)
        grant_runtime(Dsn(made.owner_url), runtime.name)
        yield made
    finally:
        cluster.drop_database(name)


@pytest.fixture
def deployment(
    cluster: Cluster, owner: Role, runtime: Role, owner_template: str
) -> Iterator[Deployment]:
    """A deployment of this test's own."""
    with deployed(cluster, owner, runtime, owner_template) as made:
        yield made


@pytest.fixture(scope="module")
def unchanged(
    cluster: Cluster, owner: Role, runtime: Role, owner_template: str
) -> Iterator[Deployment]:
    """A deployment shared by the tests that change nothing in it (each asserts so)."""
    with deployed(cluster, owner, runtime, owner_template) as made:
        yield made


@pytest.fixture
async def runtime_store(deployment: Deployment) -> AsyncIterator[Store]:
    store = await Store.open(settings=deployment.settings())
    try:
        yield store
    finally:
        await store.close()


async def fetch(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(query, *args)]
    finally:
        await conn.close()


async def row_counts(url: str) -> dict[str, int]:
    [row] = await fetch(
        url,
        "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM media_assets),"
        " (SELECT count(*) FROM transcriptions), (SELECT count(*) FROM analysis_results),"
        " (SELECT count(*) FROM transcription_word_segments),"
        " (SELECT count(*) FROM job_cancel_requests),"
        " (SELECT count(*) FROM job_trace_contexts),"
        " (SELECT count(*) FROM transcription_word_search),"
        " (SELECT count(*) FROM transcription_search_configs)",
    )
    return dict(zip(migrate.TABLES, row, strict=True))


# Every privilege the role $1 holds itself (not through PUBLIC) in the database.
GRANTS_HELD = """
SELECT 'database', d.datname::text, a.privilege_type, a.is_grantable
FROM pg_database AS d, aclexplode(d.datacl) AS a
WHERE d.datname = current_database() AND a.grantee = $1::regrole
UNION ALL
SELECT 'schema', n.nspname::text, a.privilege_type, a.is_grantable
FROM pg_namespace AS n, aclexplode(n.nspacl) AS a
WHERE a.grantee = $1::regrole
UNION ALL
SELECT 'table', c.relname::text, a.privilege_type, a.is_grantable
FROM pg_class AS c, aclexplode(c.relacl) AS a
WHERE a.grantee = $1::regrole
UNION ALL
SELECT 'function', p.proname::text, a.privilege_type, a.is_grantable
FROM pg_proc AS p, aclexplode(p.proacl) AS a
WHERE a.grantee = $1::regrole
"""

ALL_ACLS = """
SELECT 'database', datname::text, datacl::text FROM pg_database WHERE datname = current_database()
UNION ALL SELECT 'schema', nspname::text, nspacl::text FROM pg_namespace
UNION ALL SELECT 'class', relname::text, relacl::text FROM pg_class
UNION ALL SELECT 'function', proname::text, proacl::text FROM pg_proc
ORDER BY 1, 2, 3
"""


# --- the grants ----------------------------------------------------------------------------


async def test_the_runtime_role_holds_exactly_the_granted_rights(unchanged: Deployment) -> None:
    held = await fetch(unchanged.admin_url, GRANTS_HELD, unchanged.runtime.name)

    assert sorted(held) == sorted(
        [("database", unchanged.database, "CONNECT", False), ("schema", "public", "USAGE", False)]
        + [("table", t, p, False) for t in migrate.TABLES for p in TABLE_PRIVILEGES]
        + [("function", f, "EXECUTE", False) for f in RUNTIME_FUNCTIONS]
    )
    [(owns, may_create, may_temp)] = await fetch(
        unchanged.admin_url,
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = $1::regrole)"
        "     + (SELECT count(*) FROM pg_proc WHERE proowner = $1::regrole),"
        " has_schema_privilege($1, 'public', 'CREATE'),"
        " has_database_privilege($1, current_database(), 'CREATE, TEMPORARY')",
        unchanged.runtime.name,
    )
    assert (owns, may_create, may_temp) == (0, False, False)


async def test_the_grants_cover_every_table_and_function_the_migrations_create(
    unchanged: Deployment,
) -> None:
    tables = await fetch(
        unchanged.admin_url,
        "SELECT relname::text, relkind::text FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'S', 'v', 'm')"
        "   AND relname::text <> all($1::text[])",
        list(migrate.YOYO_TABLES),
    )
    functions = await fetch(
        unchanged.admin_url,
        "SELECT proname::text, prorettype = 'trigger'::regtype FROM pg_proc"
        " WHERE pronamespace = 'public'::regnamespace",
    )

    assert sorted(tables) == sorted((table, "r") for table in migrate.TABLES)  # no sequence
    assert all(name.startswith(migrate.FUNCTION_PREFIX) for name, _ in functions)
    assert sorted(name for name, trigger in functions if not trigger) == sorted(RUNTIME_FUNCTIONS)


async def test_granting_again_changes_nothing_and_a_dry_run_nothing_at_all(
    unchanged: Deployment,
) -> None:
    acls = await fetch(unchanged.admin_url, ALL_ACLS)
    owner_dsn = Dsn(unchanged.owner_url)

    statements = grant_runtime(owner_dsn, unchanged.runtime.name)
    assert await fetch(unchanged.admin_url, ALL_ACLS) == acls

    other = unchanged.cluster.create_role("ms_rt")
    assert grant_runtime(owner_dsn, other.name, dry_run=True) == [
        statement.replace(f'"{unchanged.runtime.name}"', f'"{other.name}"')
        for statement in statements
    ]
    assert await fetch(unchanged.admin_url, ALL_ACLS) == acls


async def test_grant_refuses_a_role_that_is_not_a_runtime_role_and_changes_nothing(
    unchanged: Deployment,
) -> None:
    acls = await fetch(unchanged.admin_url, ALL_ACLS)
    [(admin,)] = await fetch(unchanged.admin_url, "SELECT current_user::text")
    owner_dsn = Dsn(unchanged.owner_url)
    member = unchanged.cluster.create_role("ms_member")
    unchanged.cluster.execute(
        sql.SQL("GRANT {} TO {}").format(
            sql.Identifier(unchanged.owner.name), sql.Identifier(member.name)
        )
    )
    missing = random_name("ms_nobody")

    with pytest.raises(ConfigurationError, match=f"role {missing} does not exist"):
        grant_runtime(owner_dsn, missing)
    with pytest.raises(ConfigurationError, match=f"role {admin} is a superuser"):
        grant_runtime(owner_dsn, admin)
    with pytest.raises(
        ConfigurationError,
        match=f"role {member.name} has the privileges of {unchanged.owner.name}, the owner",
    ):
        grant_runtime(owner_dsn, member.name)
    with pytest.raises(
        ConfigurationError,
        match=f"role {unchanged.runtime.name} may not grant .* table jobs "
        f"\\(owner: {unchanged.owner.name}\\).*grant as the owner role",
    ):
        grant_runtime(Dsn(unchanged.runtime_url), unchanged.runtime.name)

    assert await fetch(unchanged.admin_url, ALL_ACLS) == acls


async def test_grant_before_the_migrations_says_to_migrate_first(
    cluster: Cluster, owner: Role, runtime: Role
) -> None:
    name = cluster.create_database(owner)
    try:
        with pytest.raises(
            ConfigurationError, match=r"has no table jobs.*apply the migrations first"
        ):
            grant_runtime(Dsn(cluster.url(owner, name)), runtime.name)
    finally:
        cluster.drop_database(name)


async def test_an_owner_role_that_does_not_own_the_database_leaves_public_rights_alone(
    cluster: Cluster, owner: Role, runtime: Role
) -> None:
    # The database and its schema belong to the admin; the owner role only may CREATE there.
    name = random_name("ms_test")
    cluster.databases.append(name)
    cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        cluster.execute(
            sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(owner.name)),
            database=name,
        )
        owner_dsn = Dsn(cluster.url(owner, name))
        migrate.apply(owner_dsn)

        # CONNECT and USAGE the runtime role holds through PUBLIC: not granted again.
        statements = grant_runtime(owner_dsn, runtime.name)
        assert [s.split(" ON ")[0] for s in statements] == [
            f"GRANT {', '.join(TABLE_PRIVILEGES)}",
            "GRANT EXECUTE",
        ]
        async with await Store.open(
            settings=Settings(dsn=Dsn(cluster.url(runtime, name)), max_size=2)
        ) as store:
            job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a.mp3"})
            assert await store.jobs.get_by_id(job.id) == job

        # Taken from PUBLIC, CONNECT is the database owner's to grant (to the owner role too).
        database = sql.Identifier(name)
        cluster.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                database, sql.Identifier(owner.name)
            ),
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(database),
        )
        [(admin,)] = await fetch(cluster.url(database=name), "SELECT current_user::text")
        with pytest.raises(
            ConfigurationError,
            match=f"role {owner.name} may not grant {runtime.name} its rights on database "
            f"{name} \\(owner: {admin}\\) in database {name}: grant as the owner role",
        ):
            grant_runtime(owner_dsn, runtime.name)
    finally:
        cluster.drop_database(name)


# --- the library as the runtime role -------------------------------------------------------


async def test_every_repository_round_trips_as_the_runtime_role(
    runtime_store: Store, deployment: Deployment
) -> None:
    store = runtime_store
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a.mp3"})
    asset = await store.media_assets.create(
        {"job_id": job.id, "asset_type": "original", "file_path": "/m/a.mp3", "file_size_bytes": 7}
    )
    text = await store.transcriptions.create(
        {"job_id": job.id, "provider": "whisper", "text_content": "hi", "language": "en"}
    )
    result = await store.analysis_results.create(
        {"job_id": job.id, "analysis_type": "summary", "summary": "a greeting"}
    )
    started = await store.jobs.start_processing(job.id)
    done = await store.jobs.update_status(job.id, JobStatus.COMPLETED, result={"ok": True})

    assert started.status is JobStatus.PROCESSING
    assert await store.jobs.get_by_id(job.id) == done
    assert done.result == {"ok": True}
    assert await store.jobs.get_by_status(JobStatus.COMPLETED) == [done]
    assert await store.jobs.get_all() == [done]
    assert (await store.jobs.list_jobs()).jobs == [done]
    assert (await store.jobs.count_by_status())[JobStatus.COMPLETED] == 1
    assert await store.media_assets.get(asset.id) == asset
    assert await store.media_assets.list_for_job(job.id) == [asset]
    assert await store.transcriptions.get(text.id) == text
    assert await store.analysis_results.list_for_job(job.id) == [result]
    assert await store.analysis_results.delete(result.id) is True
    assert await store.analysis_results.list_for_job(job.id) == []
    assert await check_database(deployment.settings()) == []  # `media-store check` works too
    assert await row_counts(deployment.admin_url) == {
        "jobs": 1,
        "media_assets": 1,
        "transcriptions": 1,
        "analysis_results": 0,
        "transcription_word_segments": 0,
        "job_cancel_requests": 0,
        "job_trace_contexts": 0,
        "transcription_word_search": 0,
        "transcription_search_configs": 0,
    }


async def test_cancel_stats_requeue_and_purge_run_as_the_runtime_role(
    runtime_store: Store, deployment: Deployment
) -> None:
    store = runtime_store
    running = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/a.mp3"})
    failed = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/b.mp3"})
    await store.jobs.claim("w", limit=2)
    await store.jobs.fail(failed.id, "w", "broken", retry=False)

    assert (await store.jobs.cancel(running.id)).status is JobStatus.CANCELLED
    assert (await store.jobs.heartbeat("w", [running.id])).cancelled == [running.id]
    assert (await store.jobs.requeue(failed.id)).status is JobStatus.PENDING
    stats = await store.jobs.stats()  # pg_class and pg_stats, readable by the role
    assert (stats.total.pending, stats.total.cancelled_last_hour) == (1, 1)
    purged = await store.jobs.purge(0)
    assert purged.jobs == 1 and purged.by_status[JobStatus.CANCELLED] == 1
    assert (await row_counts(deployment.admin_url))["job_cancel_requests"] == 0


def words(n: int, start: float = 0.0) -> list[dict[str, Any]]:
    return [
        {"word": f"w{i}", "start": start + i, "end": start + i + 0.5, "speaker": f"S{i % 2}"}
        for i in range(n)
    ]


async def test_words_and_the_cascade_work_as_the_runtime_role(
    runtime_store: Store, deployment: Deployment
) -> None:
    store = runtime_store
    job = await store.jobs.create({"job_type": "audio", "media_url": "s3://b/long.mp3"})
    created = await store.transcriptions.create(
        {
            "job_id": job.id,
            "provider": "whisper",
            "text_content": "…",
            "word_timestamps": words(300),
        }
    )
    appended = await store.transcriptions.append_words(created.id, words(10, start=300.0))

    assert appended == 10
    assert await store.transcriptions.count_words(created.id) == 310
    assert await store.transcriptions.words(created.id) == words(300) + words(10, start=300.0)
    assert await store.transcriptions.words_between(created.id, 299.0, 302.0) == [
        words(300)[299],
        *words(10, start=300.0)[:2],
    ]
    # The packed columns are readable from SQL too, with the functions granted.
    [(first, speakers)] = await fetch(
        deployment.runtime_url,
        "SELECT (media_store_unpack_words(words, word_lengths))[1],"
        " (media_store_unpack_speakers(speakers))[1:2]"
        " FROM transcription_word_segments WHERE transcription_id = $1 AND seq = 0",
        created.id,
    )
    assert (first, speakers) == ("w0", ["S0", "S1"])

    assert await store.jobs.delete(job.id) is True
    # Every row of the job is gone; the list of search configurations in use keeps its one
    # row (a row a language ever stored, no job's data).
    assert await row_counts(deployment.admin_url) == {
        **dict.fromkeys(migrate.TABLES, 0),
        "transcription_search_configs": 1,
    }


async def until_listening(deployment: Deployment, worker: asyncio.Task[Any]) -> None:
    """Wait until the server reports the worker's first claim done and its LISTEN in place
    (the runtime role sees no other role's statements: asked as the admin)."""
    claim_sql = QUERIES["claim_jobs"].sql[:200]
    conn = await asyncpg.connect(deployment.admin_url)
    try:
        while await conn.fetchval(
            "SELECT count(*) FILTER (WHERE state = 'idle' AND left(query, 200) = $1) = 0"
            " OR count(*) FILTER (WHERE query LIKE 'LISTEN %') = 0"
            " FROM pg_stat_activity WHERE datname = current_database() AND usename = $2",
            claim_sql,
            deployment.runtime.name,
        ):
            assert not worker.done(), worker
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


@pytest.mark.parametrize("listen", [False, True], ids=["polling", "listen"])
async def test_run_worker_drains_jobs_as_the_runtime_role(
    runtime_store: Store, deployment: Deployment, listen: bool
) -> None:
    store = runtime_store
    seen: list[uuid.UUID] = []
    stop = asyncio.Event()
    expected = 3

    async def handler(job: Job) -> JobResult:
        seen.append(job.id)
        if len(seen) == expected:
            stop.set()
        return {"n": len(seen)}

    if listen:
        # The worker would not poll again for a minute: only NOTIFY can wake it.
        worker = asyncio.create_task(
            run_worker(store, handler, listen=True, poll_interval=60, stop=stop)
        )
        try:
            async with asyncio.timeout(60):  # a hang fails the test; nothing is timed
                await until_listening(deployment, worker)
                async with store.transaction() as tx:  # one notification, at commit, for all
                    jobs = [
                        await tx.jobs.create({"job_type": "audio", "media_url": f"s3://b/{i}.mp3"})
                        for i in range(expected)
                    ]
                stats = await worker
        finally:
            # On a failure the worker must not keep its connections: closing the store would
            # wait for them for ever.
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    else:
        jobs = [
            await store.jobs.create({"job_type": "audio", "media_url": f"s3://b/{i}.mp3"})
            for i in range(expected)
        ]
        stats = await run_worker(store, handler, burst=True)

    assert sorted(seen) == sorted(job.id for job in jobs)
    assert (stats.claimed, stats.completed) == (expected, expected)
    assert await store.jobs.count_by_status() == {
        **dict.fromkeys(JobStatus, 0),
        JobStatus.COMPLETED: expected,
    }


# Every guide but the one about migrating, which is the owner role's work.
RUNTIME_DOCS = [doc for doc in DOCS if runnable(doc) and doc != ROOT / "docs" / "operations.md"]


@pytest.mark.parametrize("doc", RUNTIME_DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
async def test_the_docs_run_as_the_runtime_role(
    doc: Path, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", deployment.runtime_url)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for block in runnable(doc):
            await run_block(block, namespace)
    finally:
        # A block that failed may leave a worker running: it would hold its connections, and
        # closing the store would wait for them for ever.
        tasks = [value for value in namespace.values() if isinstance(value, asyncio.Task)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for value in namespace.values():
            if isinstance(value, Store):
                await value.close()
    # The blocks assert what they read back; the rows are there for every other client too.
    # (docs/store.md writes a job, a transcription with its words and an analysis result.)
    written: tuple[str, ...] = ("jobs",)
    if doc.name == "store.md":
        written = ("jobs", "transcriptions", "transcription_word_segments", "analysis_results")
    counts = await row_counts(deployment.admin_url)
    assert {table: counts[table] > 0 for table in written} == dict.fromkeys(written, True)


# --- what the runtime role cannot do -------------------------------------------------------

FORBIDDEN = [
    "DROP TABLE jobs",
    "TRUNCATE jobs",
    "ALTER TABLE jobs ADD COLUMN intruder integer",
    "CREATE TABLE intruder (id integer)",
    "CREATE TEMPORARY TABLE intruder (id integer)",
    "CREATE INDEX intruder ON jobs (media_url)",
    "DROP FUNCTION media_store_claim_jobs",
    "CREATE TRIGGER intruder BEFORE INSERT ON jobs"
    " FOR EACH ROW EXECUTE FUNCTION media_store_touch_updated_at()",
    "SELECT count(*) FROM _yoyo_migration",
    "DELETE FROM _yoyo_migration",
    "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 1)",
]


async def test_the_runtime_role_cannot_change_the_schema_or_the_migration_records(
    unchanged: Deployment,
) -> None:
    schema = await catalog_dump(unchanged.admin_url)
    outcomes: dict[str, str] = {}
    conn = await asyncpg.connect(unchanged.runtime_url)
    try:
        for statement in FORBIDDEN:
            try:
                await conn.execute(statement)
                outcomes[statement] = "ran"
            except asyncpg.PostgresError as exc:
                outcomes[statement] = type(exc).__name__
    finally:
        await conn.close()

    assert outcomes == dict.fromkeys(FORBIDDEN, "InsufficientPrivilegeError")
    assert await catalog_dump(unchanged.admin_url) == schema


async def migration_records(deployment: Deployment) -> list[tuple[Any, ...]]:
    return await fetch(
        deployment.admin_url, "SELECT migration_id FROM _yoyo_migration ORDER BY migration_id"
    )


async def test_migrations_as_the_runtime_role_are_refused_clearly_and_change_nothing(
    deployment: Deployment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The latest migration is pending: a refused run must not apply it.
    assert migrate.rollback(Dsn(deployment.owner_url)) == [MIGRATION_IDS[-1]]
    schema = await catalog_dump(deployment.admin_url)
    records = await migration_records(deployment)
    runtime = Dsn(deployment.runtime_url)
    rt, db, owner = deployment.runtime.name, deployment.database, deployment.owner.name
    message = (
        f"role {rt} cannot run migrations in schema public of database {db}: it may not "
        f"create tables there \\(no CREATE privilege\\); it may not write yoyo's migration "
        f"records \\(_yoyo_migration, _yoyo_log, _yoyo_version and 1 more\\); it does not own "
        f"table jobs and \\d+ more \\(owner: {owner}\\). Migrations run as the owner role "
        f"\\({owner}\\), not as a runtime role; nothing was changed"
    )

    with pytest.raises(migrate.MigrationError, match=message):
        migrate.apply(runtime)
    with pytest.raises(migrate.MigrationError, match=message):
        migrate.rollback(runtime)
    with pytest.raises(migrate.MigrationError, match=message):
        migrate.status(runtime)
    monkeypatch.setenv("DATABASE_URL", deployment.runtime_url)
    for command in (["migrate"], ["rollback"], ["migrate-status"]):
        capsys.readouterr()
        assert cli_main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"media-store {command[0]}: MigrationError: role {rt} cannot")
        assert "Traceback" not in err and "yoyo_lock" not in err

    assert await catalog_dump(deployment.admin_url) == schema
    assert await migration_records(deployment) == records
    assert migrate.apply(Dsn(deployment.owner_url)) == [MIGRATION_IDS[-1]]


async def test_migrating_an_empty_database_without_create_names_the_right_not_yoyo_lock(
    cluster: Cluster, owner: Role, runtime: Role
) -> None:
    name = cluster.create_database(owner)
    try:
        url = cluster.url(runtime, name)
        for run in (migrate.apply, migrate.rollback, migrate.status):
            with pytest.raises(migrate.MigrationError) as refused:
                run(Dsn(url))
            assert str(refused.value) == (
                f"role {runtime.name} cannot run migrations in schema public of database {name}: "
                f"it may not create tables there (no CREATE privilege). Migrations run as the "
                f"owner role, not as a runtime role; nothing was changed"
            )
        # Not even yoyo's bookkeeping tables were made.
        assert (
            await fetch(
                cluster.url(database=name),
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            )
            == []
        )
    finally:
        cluster.drop_database(name)


async def test_a_role_keeping_the_records_but_not_owning_the_schema_may_only_find_nothing_to_do(
    deployment: Deployment,
) -> None:
    # As a deploy script's role might be: it may create in the schema and write yoyo's
    # records, but the tables are the owner role's.
    keeper = deployment.cluster.create_role("ms_keeper")
    name = sql.Identifier(keeper.name)
    deployment.cluster.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
            sql.Identifier(deployment.database), name
        ),
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(table) for table in migrate.YOYO_TABLES), name
        ),
        database=deployment.database,
    )
    as_keeper = Dsn(deployment.cluster.url(keeper, deployment.database))

    assert migrate.apply(as_keeper) == []  # nothing to do: allowed
    assert migrate.rollback(Dsn(deployment.owner_url)) == [MIGRATION_IDS[-1]]
    schema = await catalog_dump(deployment.admin_url)

    owner = deployment.owner.name
    with pytest.raises(
        migrate.MigrationError,
        match=f"^role {keeper.name} cannot run migrations in schema public of database "
        f"{deployment.database}: it does not own table jobs and \\d+ more \\(owner: {owner}\\)\\. "
        f"Migrations run as the owner role \\({owner}\\), not as a runtime role; nothing "
        f"was changed$",
    ):
        migrate.apply(as_keeper)

    assert await catalog_dump(deployment.admin_url) == schema
    assert [state.applied for state in migrate.status(as_keeper)] == [
        migration != MIGRATION_IDS[-1] for migration in MIGRATION_IDS
    ]
