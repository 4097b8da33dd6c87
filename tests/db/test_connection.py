"""The connection layer against real PostgreSQL: settings, secrets, pool, codecs, timestamps."""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
from psycopg.conninfo import conninfo_to_dict

from media_store import (
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailable,
    Dsn,
    MediaStoreError,
    Settings,
    Store,
    migrate,
)
from media_store.cli.main import main as cli_main
from media_store.config import redact
from media_store.db.connections import create_pool
from media_store.db.queries import Query
from media_store.repositories.base import Repository
from tests.support.harness import Server

# --- settings -------------------------------------------------------------------------------

_TESTS = Path(__file__).resolve().parents[1]  # the suite's own frames are not checked


@pytest.mark.parametrize("env", [{}, {"DATABASE_URL": ""}], ids=["unset", "empty"])
def test_no_dsn_and_no_database_url_is_a_clear_configuration_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL") as refused:
        Settings.from_env(env=env)
    assert "no database configured" in str(refused.value)


async def test_store_open_without_any_dsn_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        await Store.open()


BAD_ENV: dict[str, tuple[dict[str, str], str]] = {
    "max size not a number": ({"MEDIA_STORE_POOL_MAX_SIZE": "ten"}, "MEDIA_STORE_POOL_MAX_SIZE"),
    "min size above max": (
        {"MEDIA_STORE_POOL_MIN_SIZE": "8", "MEDIA_STORE_POOL_MAX_SIZE": "2"},
        "pool sizes",
    ),
    "max size zero": ({"MEDIA_STORE_POOL_MAX_SIZE": "0"}, "pool sizes"),
    "timeout not a number": ({"MEDIA_STORE_COMMAND_TIMEOUT": "soon"}, "COMMAND_TIMEOUT"),
    "timeout negative": ({"MEDIA_STORE_COMMAND_TIMEOUT": "-1"}, "command_timeout"),
    "cache size negative": ({"MEDIA_STORE_STATEMENT_CACHE_SIZE": "-1"}, "statement_cache_size"),
    "not a postgresql url": ({"DATABASE_URL": "mysql://u:Pw0rd@db/app"}, "postgresql://"),
    "port not a number": ({"DATABASE_URL": "postgresql://u:Pw0rd@db:port/app"}, "port"),
    "unbalanced ipv6 host": ({"DATABASE_URL": "postgresql://u:Pw0rd@[::1/app"}, "malformed"),
    "port out of range": ({"DATABASE_URL": "postgresql://u:Pw0rd@h1:5432,h2:99999/app"}, "port"),
    # libpq's own messages quote the offending text, here the password itself
    "bad percent-encoding": ({"DATABASE_URL": "postgresql://u:Pw0rd%zz@db/app"}, "malformed"),
    "space in the password": ({"DATABASE_URL": "postgresql://u:Pw0rd x@db/app"}, "malformed"),
    "key=value conninfo": ({"DATABASE_URL": "host=db user=u password=Pw0rd"}, "password=\\*\\*\\*"),
    "acquire timeout zero": ({"MEDIA_STORE_POOL_ACQUIRE_TIMEOUT": "0"}, "acquire_timeout"),
    "cache size not a number": ({"MEDIA_STORE_STATEMENT_CACHE_SIZE": "many"}, "CACHE_SIZE"),
}


@pytest.mark.parametrize(("env", "mentions"), BAD_ENV.values(), ids=BAD_ENV.keys())
def test_bad_environment_values_are_configuration_errors(
    env: dict[str, str], mentions: str
) -> None:
    env = {"DATABASE_URL": "postgresql://u:Pw0rd@db/app", **env}
    with pytest.raises(ConfigurationError, match=mentions) as refused:
        Settings.from_env(env=env)
    assert "Pw0rd" not in "".join(traceback.format_exception(refused.value))


def test_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        env={
            "DATABASE_URL": "postgresql://app@db:6432/media",
            "MEDIA_STORE_POOL_MIN_SIZE": "0",
            "MEDIA_STORE_POOL_MAX_SIZE": "3",
            "MEDIA_STORE_COMMAND_TIMEOUT": "2.5",
            "MEDIA_STORE_STATEMENT_CACHE_SIZE": "0",
        }
    )
    assert (settings.dsn.reveal(), settings.min_size, settings.max_size) == (
        "postgresql://app@db:6432/media",
        0,
        3,
    )
    assert (settings.command_timeout, settings.statement_cache_size) == (2.5, 0)


@pytest.mark.parametrize(("raw", "size"), [("", None), ("auto", None), ("AUTO", None), ("0", 0)])
def test_the_statement_cache_size_is_auto_unless_a_number_is_given(
    raw: str, size: int | None
) -> None:
    env = {"DATABASE_URL": "postgresql://app@db/media", "MEDIA_STORE_STATEMENT_CACHE_SIZE": raw}
    assert Settings.from_env(env=env).statement_cache_size == size


MULTI_HOST = [
    "postgresql://app@h1,h2/media?target_session_attrs=read-write",
    "postgresql://app@h1:5432,h2:5433/media",
    "postgresql://app@[::1]:5432,h2/media",
    "postgresql://app@/media?host=h1,h2&port=5432,5433",
]


@pytest.mark.parametrize("url", MULTI_HOST)
def test_multi_host_urls_are_accepted(url: str) -> None:
    dsn = Dsn(url)
    assert (dsn.reveal(), str(dsn), repr(dsn)) == (url, url, f"Dsn({url!r})")


async def test_a_multi_host_url_connects_to_the_host_that_answers(db_url: str) -> None:
    params = conninfo_to_dict(db_url)
    host, port, database = params.get("host"), params.get("port") or "5432", params["dbname"]
    user = params.get("user", "postgres")
    if host and not str(host).startswith("/"):
        url = f"postgresql://{user}@127.0.0.1:1,{host}:{port}/{database}"
    else:  # a Unix socket directory: hosts as a query parameter
        url = f"postgresql://{user}@/{database}?host=127.0.0.1,{host or ''}&port=1,{port}"
    settings = Settings(dsn=Dsn(url + ("&" if "?" in url else "?") + "target_session_attrs=any"))
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
        assert await store.jobs.get_by_id(job.id) == job


ODD_URLS = [
    "postgresql://",
    "postgresql://@",
    "postgresql://:@",
    "postgresql://u:Pw0rd@",
    "postgresql://u:Pw0rd@[",
    "postgresql://u:Pw0rd@db:99999999999999999999/x",
    "postgresql://u:Pw0rd@db/x?password",
    "postgresql://u:Pw0rd@db/x?password=Pw0rd&password=Pw0rd",
    "postgresql://u:Pw0rd@db/x#frag@ment",
    "postgresql://u:Pw0rd@db/x?a=@&b=:",
    "postgresql://u:Pw0rd@db/\udcff",
    "password=Pw0rd",
    "password='Pw0rd",
    "://u:Pw0rd@",
    "",
]


@pytest.mark.parametrize("url", ODD_URLS)
def test_redact_never_raises_and_never_shows_the_password(url: str) -> None:
    assert "Pw0rd" not in redact(url)


def test_a_dsn_never_fails_to_show_itself() -> None:
    # Whatever a Dsn holds (the constructor refuses malformed URLs; a subclass or a pickle
    # might not), str and repr work and hide the password.
    dsn = Dsn("postgresql://u:Pw0rd@db/x")
    for odd in ODD_URLS:
        object.__setattr__(dsn, "_url", odd)
        assert "Pw0rd" not in str(dsn) + repr(dsn)


def test_an_explicit_dsn_wins_over_database_url() -> None:
    settings = Settings.from_env(
        "postgresql://explicit@db/one", env={"DATABASE_URL": "postgresql://env@db/two"}
    )
    assert settings.dsn == Dsn("postgresql://explicit@db/one")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:Pw0rd@db:5432/media", "postgresql://app:***@db:5432/media"),
        ("postgresql://app:Pw0rd@[::1]:5432/media?sslmode=disable",
         "postgresql://app:***@[::1]:5432/media?sslmode=disable"),
        ("postgresql://app@db/media", "postgresql://app@db/media"),
        ("postgresql://postgres:@/media?host=/tmp/pg", "postgresql://postgres:@/media?host=/tmp/pg"),
        # redact never parses ports: a malformed URL is redacted like any other
        ("postgresql://app:Pw0rd@db:port/media", "postgresql://app:***@db:port/media"),
        ("postgresql://app:Pw0rd@[::1/media", "postgresql://app:***@[::1/media"),
        ("postgresql://app@db/media?password=Pw0rd", "postgresql://app@db/media?password=***"),
        ("postgresql://app@db/media?sslmode=require&PASSWORD=Pw0rd&application_name=x",
         "postgresql://app@db/media?sslmode=require&PASSWORD=***&application_name=x"),
        ("postgresql://app:Pw0rd@h1:5432,h2:5433/media?target_session_attrs=read-write",
         "postgresql://app:***@h1:5432,h2:5433/media?target_session_attrs=read-write"),
        ("postgresql://app:Pw@0rd/x@db/media", "postgresql://app:***@db/media"),  # unencoded
        ("host=db user=app password=Pw0rd dbname=media",
         "host=db user=app password=*** dbname=media"),
        ("host=db password = 'Pw 0\\'rd' sslpassword=Key0 dbname=media",
         "host=db password=*** sslpassword=*** dbname=media"),
    ],
)  # fmt: skip
def test_redact_hides_only_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown


# --- the password never shows ---------------------------------------------------------------

SECRET = f"Sx{secrets.token_hex(8)}@/pw"  # '@' and '/' must be percent-encoded in the URL


# Where a URL may carry the password: libpq and asyncpg read both.
PLACES = ["userinfo", "query"]


def url_with(
    base: str,
    *,
    user: str,
    password: str = SECRET,
    netloc: str | None = None,
    place: str = "userinfo",
) -> str:
    parts = urlsplit(base)
    host = netloc or parts.netloc.rsplit("@", 1)[-1]
    encoded = quote(password, safe="")
    if place == "query":
        query = "&".join(q for q in (parts.query, f"password={encoded}") if q)
        return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, query, ""))
    return urlunsplit((parts.scheme, f"{user}:{encoded}@{host}", parts.path, parts.query, ""))


def assert_secret_absent(*texts: str) -> None:
    encoded = quote(SECRET, safe="")
    for text in texts:
        assert SECRET not in text
        assert encoded not in text
        assert SECRET.split("@", 1)[0] not in text  # any fragment that identifies it


def exception_texts(exc: BaseException) -> list[str]:
    """str and repr of ``exc`` and of everything chained to it, and the full traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *map(repr, current.args)]
        todo += [current.__cause__, current.__context__]
    return texts


def frame_variables(exc: BaseException) -> list[str]:
    """repr of every variable of the library's and the driver's frames in the tracebacks of
    ``exc`` and everything chained to it: what an error reporter that captures locals ships.
    (The test's own frames are left out: they hold the URL the test built.)"""
    texts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        for frame, _ in traceback.walk_tb(current.__traceback__):
            if _TESTS in Path(frame.f_code.co_filename).resolve().parents:
                continue
            texts += [
                f"{frame.f_code.co_name}: {name}={value!r}"
                for name, value in frame.f_locals.items()
            ]
        todo += [current.__cause__, current.__context__]
    return texts


def log_texts(records: list[logging.LogRecord]) -> list[str]:
    return [
        text
        for record in records
        for text in (record.getMessage(), repr(record.args), record.exc_text or "")
    ]


@pytest.fixture
def secret_role(pg_server: Server) -> Iterator[str]:
    """A login role whose password is SECRET (the test servers trust local connections, so
    the password is carried, not checked: what matters is where it could show)."""
    role = f"ms_secret_{secrets.token_hex(4)}"
    escaped = SECRET.replace("'", "''")
    run_admin(pg_server, f"CREATE ROLE {role} LOGIN PASSWORD '{escaped}'")
    try:
        yield role
    finally:
        run_admin(pg_server, f"DROP ROLE IF EXISTS {role}")


def run_admin(server: Server, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="media_store")
    return caplog


@pytest.mark.parametrize("place", PLACES)
async def test_password_absent_from_settings_logs_and_a_working_pool(
    db_url: str, secret_role: str, debug_logs: pytest.LogCaptureFixture, place: str
) -> None:
    settings = Settings.from_env(url_with(db_url, user=secret_role, place=place), env={})
    assert settings.dsn.password is not None  # the URL really carries it

    async with await Store.open(settings=settings) as store:
        assert await store.ping()
        assert await store.pool.fetchval("SELECT current_user") == secret_role

    assert debug_logs.records, "opening a pool logs a line"
    assert_secret_absent(
        repr(settings), str(settings), str(settings.dsn), repr(settings.dsn),
        *log_texts(debug_logs.records),
    )  # fmt: skip


UNREACHABLE = {
    "refused port": "127.0.0.1:1",
    "unknown host": "no-such-host.invalid:5432",
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("netloc", UNREACHABLE.values(), ids=UNREACHABLE.keys())
async def test_password_absent_when_the_server_cannot_be_reached(
    netloc: str, place: str, debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    url = url_with("postgresql://x@h/media", user="app", netloc=netloc, place=place)
    settings = Settings(dsn=Dsn(url), min_size=1, max_size=2)

    with pytest.raises(DatabaseUnavailable) as by_pool:
        await Store.open(settings=settings)
    # A pool that opened without connecting (min_size=0) connects on the first borrow.
    lazy = await create_pool(Settings(dsn=Dsn(url), min_size=0, max_size=1))
    try:
        with pytest.raises(DatabaseUnavailable) as by_borrow:
            await Store(lazy).jobs.count_by_status()
    finally:
        await lazy.close()
    with pytest.raises(DatabaseUnavailable) as by_migrate:
        migrate.apply(settings.dsn)
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli_main(["migrate"]) == 2
    printed = capsys.readouterr()

    for failure in (by_pool.value, by_borrow.value):
        assert "cannot connect to postgresql://app" in str(failure)
        # Not chained: the driver's frames hold the connection parameters.
        assert failure.__cause__ is None
        assert failure.__context__ is None
    assert_secret_absent(
        *exception_texts(by_pool.value), *exception_texts(by_borrow.value),
        *exception_texts(by_migrate.value),
        *frame_variables(by_pool.value), *frame_variables(by_borrow.value),
        *log_texts(debug_logs.records), printed.out, printed.err,
        repr(settings), str(settings.dsn), repr(settings.dsn),
    )  # fmt: skip
    assert "DatabaseUnavailable" in printed.err


@pytest.mark.parametrize("place", PLACES)
async def test_password_absent_when_the_server_refuses_the_login(
    db_url: str, debug_logs: pytest.LogCaptureFixture, place: str
) -> None:
    role = f"no_such_role_{secrets.token_hex(3)}"
    settings = Settings(dsn=Dsn(url_with(db_url, user=role, place=place)))

    with pytest.raises(DatabaseUnavailable) as refused:
        await Store.open(settings=settings)

    assert_secret_absent(
        *exception_texts(refused.value), *frame_variables(refused.value),
        *log_texts(debug_logs.records),
    )  # fmt: skip


async def test_an_unusable_url_option_is_a_configuration_error_without_the_password(
    db_url: str,
) -> None:
    url = url_with(db_url, user="app")
    settings = Settings(dsn=Dsn(url + ("&" if "?" in url else "?") + "sslmode=sometimes"))
    with pytest.raises(ConfigurationError, match="sslmode") as refused:
        await Store.open(settings=settings)
    assert_secret_absent(*exception_texts(refused.value))


# --- the pool -------------------------------------------------------------------------------


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    """A pool of the library's own making that the test, not a Store, owns."""
    p = await create_pool(settings)
    try:
        yield p
    finally:
        await p.close()


async def test_ping_answers_while_open_and_not_after_close(settings: Settings) -> None:
    store = await Store.open(settings=settings)
    assert await store.ping() is True
    await store.close()
    assert store.pool.is_closing()
    assert await store.ping() is False


async def test_ping_is_false_against_a_dead_server() -> None:
    # min_size=0: the pool opens without connecting, and every borrow then fails.
    pool = await create_pool(Settings(dsn=Dsn("postgresql://app@127.0.0.1:1/none"), min_size=0))
    try:
        assert await Store(pool).ping(timeout=5) is False
    finally:
        await pool.close()


async def test_ping_is_false_when_the_server_drops_the_connection_then_recovers(
    store: Store, pg_server: Server
) -> None:
    async with store.connection() as repos:
        pid = await repos.executor.fetchval("SELECT pg_backend_pid()")
    run_admin(pg_server, f"SELECT pg_terminate_backend({int(pid)}, 5000)")

    answers = [await store.ping() for _ in range(3)]

    assert answers[-1] is True  # the pool replaced the dead connection
    assert answers.count(False) <= 1


@pytest.mark.parametrize("cache_size", [0, 100])
async def test_statement_cache_size_setting_decides_whether_statements_are_prepared(
    db_url: str, cache_size: int
) -> None:
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=1, statement_cache_size=cache_size)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create({"job_type": "video", "media_url": "https://x/v.mp4"})
        for _ in range(3):
            assert await store.jobs.get_by_id(job.id) == job
        async with store.connection() as repos:
            named = await repos.executor.fetchval("SELECT count(*) FROM pg_prepared_statements")
    # With no cache (as behind PgBouncer in transaction mode) nothing stays prepared on the
    # server between statements.
    assert (named == 0) is (cache_size == 0)


class _Sleeper(Repository):
    """A test-only repository: one slow statement through the library's error boundary."""

    SLEEP = Query(
        name="sleep_for",
        description="Sleep on the server for $1 seconds.",
        sql="SELECT pg_sleep($1::float8)",
        path=Path(__file__),
        line=0,
    )

    async def sleep_for(self, seconds: float) -> Any:
        return await self._fetchval(self.SLEEP, seconds)


async def test_command_timeout_raises_a_typed_error_and_the_pool_stays_usable(
    db_url: str,
) -> None:
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=1, command_timeout=0.3)
    async with await Store.open(settings=settings) as store:
        with pytest.raises(DatabaseError, match="timed out") as timed_out:
            await _Sleeper(store.pool).sleep_for(30)
        assert isinstance(timed_out.value, MediaStoreError)
        assert not isinstance(timed_out.value.__cause__, MediaStoreError)  # the driver's, kept

        assert await store.ping() is True
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
        assert await store.jobs.get_by_id(job.id) == job
        # The server cancelled the statement: no backend of this database is still asleep.
        sleeping = await store.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%'"
            " AND state = 'active'"
        )
        assert sleeping == 0


async def test_command_timeout_cancels_a_write_blocked_by_a_lock(db_url: str) -> None:
    settings = Settings(dsn=Dsn(db_url), min_size=1, max_size=2, command_timeout=0.3)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
        locker = await asyncpg.connect(db_url)
        try:
            async with locker.transaction():
                await locker.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", job.id)
                with pytest.raises(DatabaseError, match="timed out"):
                    await store.jobs.delete(job.id)
        finally:
            await locker.close()
        assert await store.jobs.get_by_id(job.id) == job  # the delete did not happen
        assert await store.jobs.delete(job.id) is True


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() is not None
    assert value.utcoffset() == UTC.utcoffset(None)


async def test_timestamps_are_utc_aware_whatever_the_session_time_zone(db_url: str) -> None:
    settings = Settings(
        dsn=Dsn(db_url), min_size=1, max_size=2, server_settings={"timezone": "America/New_York"}
    )
    async with await Store.open(settings=settings) as store:
        assert await store.pool.fetchval("SHOW timezone") == "America/New_York"
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
        fetched = await store.jobs.get_by_id(job.id)
        assert fetched is not None
        for stamp in (job.created_at, job.updated_at, fetched.created_at, fetched.updated_at):
            assert_utc(stamp)
        # A wall-clock literal is read in the session's zone and comes back as UTC.
        noon_in_new_york = await store.pool.fetchval("SELECT '2024-01-15 12:00'::timestamptz")
        assert noon_in_new_york == datetime(2024, 1, 15, 17, 0, tzinfo=UTC)
        assert_utc(noon_in_new_york)
        assert_utc(await store.pool.fetchval("SELECT now()"))


async def test_sessions_run_in_utc_even_when_the_database_default_is_not(
    db_url: str, pg_server: Server
) -> None:
    database = urlsplit(db_url).path.lstrip("/")
    run_admin(pg_server, f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Tokyo'")
    async with await Store.open(settings=Settings(dsn=Dsn(db_url))) as store:
        assert await store.pool.fetchval("SHOW timezone") == "UTC"
        assert await store.pool.fetchval("SELECT '2024-01-15 12:00'::timestamptz::text") == (
            "2024-01-15 12:00:00+00"
        )
        assert_utc(await store.pool.fetchval("SELECT clock_timestamp()"))


NESTED: dict[str, Any] = {
    "title": "Café – naïve résumé 東京 🎬",
    "nested": {"list": [1, 2.5, -3, None, True, False, "ß"], "empty": {}, "deep": [[{"k": []}]]},
    "big": 2**53 + 1,
    'quote"and\\slash': "line\nbreak\ttab",
}


@pytest.mark.parametrize("pg_type", ["jsonb", "json"])
async def test_json_round_trips_through_the_pool(
    pool: asyncpg.Pool[asyncpg.Record], pg_type: str
) -> None:
    assert await pool.fetchval(f"SELECT $1::{pg_type}", NESTED) == NESTED
    assert await pool.fetchval(f"SELECT $1::{pg_type}", [NESTED, "x"]) == [NESTED, "x"]
    # Decoded on the server too, not just echoed: the text is valid JSON with the values.
    assert await pool.fetchval(f"SELECT ($1::{pg_type}) #>> '{{nested,list,6}}'", NESTED) == "ß"


async def test_json_round_trips_through_a_jsonb_column(store: Store) -> None:
    job = await store.jobs.create(
        {"job_type": "document", "media_url": "https://x/d.pdf", "parameters": NESTED}
    )
    fetched = await store.jobs.get_by_id(job.id)
    assert fetched is not None
    assert fetched.parameters == NESTED


async def test_copy_records_to_table_writes_jsonb_with_the_codecs(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    records = [("audio", f"https://x/{i}.mp3", {**NESTED, "i": i}) for i in range(50)]

    await pool.copy_records_to_table(
        "jobs", records=records, columns=["job_type", "media_url", "parameters"]
    )

    rows = await pool.fetch("SELECT media_url, parameters FROM jobs ORDER BY created_at, id")
    assert [(row["media_url"], row["parameters"]) for row in rows] == [
        (url, parameters) for _, url, parameters in records
    ]
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE parameters ->> 'i' = '49'") == 1


# --- Store lifecycle ------------------------------------------------------------------------


async def test_store_open_and_close_owns_its_pool(db_url: str) -> None:
    store = await Store.open(db_url)
    assert await store.ping()
    assert not store.pool.is_closing()
    await store.close()
    assert store.pool.is_closing()


async def test_store_as_async_context_manager_closes_its_pool(db_url: str) -> None:
    async with await Store.open(db_url) as store:
        job = await store.jobs.create({"job_type": "video", "media_url": "https://x/v.mp4"})
        assert await store.jobs.get_by_id(job.id) == job
    assert store.pool.is_closing()
    assert await store.ping() is False


async def test_a_pool_passed_to_store_stays_open_after_store_close(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    async with Store(pool) as store:
        assert await store.ping()
    await Store(pool).close()

    assert not pool.is_closing()
    assert await pool.fetchval("SELECT 1") == 1
