"""Read replicas on real streaming replication: a primary and a hot standby made by the test
(tests/support/replication_pg.py), each test on a database of its own.

What must hold: reads through ``store.replica`` are served by the standby (its connection is in
recovery), balanced round robin, a replica further behind than the lag bound is skipped, a
stopped replica is skipped for its back-off and the read served by the primary, a write sent
on a replica connection is refused with a typed error, and nothing else ever goes to a replica.
"""

from __future__ import annotations

import asyncio
import socket
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import psycopg
import pytest

from media_store import (
    ConfigurationError,
    Dsn,
    JobStatus,
    ReadOnlyError,
    Repositories,
    Settings,
    Store,
    migrate,
)
from media_store.cli.main import main as cli_main
from media_store.config import parse_replica_urls
from tests.support.replication_pg import fetchval, primary_and_standby, wait_replayed
from tests.support.throwaway_pg import Cluster


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    with primary_and_standby() as clusters:
        yield clusters


@pytest.fixture
async def urls(pair: tuple[Cluster, Cluster]) -> AsyncIterator[tuple[str, str]]:
    """A migrated database of this test's own on the primary, replayed on the standby:
    (primary URL, standby URL)."""
    primary, standby = pair
    name = f"ms_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(primary.url())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    migrate.apply(Dsn(primary.url(name)))
    await wait_replayed(primary.url(), standby.url())
    try:
        yield primary.url(name), standby.url(name)
    finally:
        if standby.data.exists():
            with_standby = await _standby_up(standby)
            if with_standby:
                await fetchval(standby.url(), "SELECT pg_wal_replay_resume()")
        conn = await asyncpg.connect(primary.url())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _standby_up(standby: Cluster) -> bool:
    try:
        await fetchval(standby.url(), "SELECT 1")
    except OSError:
        return False
    return True


def replica_settings(primary_url: str, *replicas: str, **options: float) -> Settings:
    return Settings(
        dsn=Dsn(primary_url),
        min_size=1,
        max_size=3,
        replicas=tuple(Dsn(url) for url in replicas),
        **options,  # type: ignore[arg-type]
    )


async def in_recovery(store: Store) -> bool:
    async with store.replica.transaction() as tx:
        assert tx.executor is not None
        return bool(await tx.executor.fetchval("SELECT pg_is_in_recovery()"))


async def test_reads_marked_read_only_are_served_by_the_standby(urls: tuple[str, str]) -> None:
    primary_url, standby_url = urls
    async with await Store.open(settings=replica_settings(primary_url, standby_url)) as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
        await wait_replayed(primary_url, standby_url)
        assert await in_recovery(store)  # the view's connection is the standby's

        # Replay paused: a change on the primary stays invisible to the view, which proves
        # each call of the view (not only its transaction) reads on the standby.
        await fetchval(standby_url, "SELECT pg_wal_replay_pause()")
        await store.jobs.start_processing(job.id)
        seen = await store.replica.jobs.get_by_id(job.id)
        assert seen is not None and seen.status == JobStatus.PENDING
        page = await store.replica.jobs.list_jobs()
        assert [j.status for j in page.jobs] == [JobStatus.PENDING]
        assert (await store.replica.jobs.count_by_status())[JobStatus.PENDING] == 1
        pending = await store.replica.jobs.list_jobs(status="pending", job_type="audio")
        assert [j.id for j in pending.jobs] == [job.id]
        stats = await store.replica.jobs.stats()
        assert (stats.total.pending, stats.total.processing) == (1, 0)
        # ... while the Store itself, and so read-after-write, is the primary's
        now = await store.jobs.get_by_id(job.id)
        assert now is not None and now.status == JobStatus.PROCESSING
        assert store.replica.router.fallbacks == 0

        await fetchval(standby_url, "SELECT pg_wal_replay_resume()")
        await wait_replayed(primary_url, standby_url)
        seen = await store.replica.jobs.get_by_id(job.id)
        assert seen is not None and seen.status == JobStatus.PROCESSING


async def test_words_and_children_read_on_the_standby(urls: tuple[str, str]) -> None:
    primary_url, standby_url = urls
    words = [{"word": f"w{i}", "start": i * 0.5, "end": i * 0.5 + 0.4} for i in range(600)]
    async with await Store.open(settings=replica_settings(primary_url, standby_url)) as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
        t = await store.transcriptions.create(
            {"job_id": job.id, "provider": "asr", "text_content": "t", "word_timestamps": words}
        )
        asset = await store.media_assets.create(
            {"job_id": job.id, "asset_type": "original", "file_path": "/a.wav"}
        )
        await wait_replayed(primary_url, standby_url)
        async with store.replica.transaction() as tx:
            assert tx.executor is not None
            assert await tx.executor.fetchval("SELECT pg_is_in_recovery()") is True
            assert await tx.transcriptions.count_words(t.id) == 600
            window = await tx.transcriptions.words_between(t.id, 10.0, 20.0)
            assert window.starts == [i * 0.5 for i in range(20, 40)]
            assert [a.id for a in await tx.media_assets.list_for_job(job.id)] == [asset.id]
        assert (await store.replica.transcriptions.words(t.id)).words == [w["word"] for w in words]
        listed = await store.replica.transcriptions.list_for_job(job.id)
        assert [x.id for x in listed] == [t.id]
        assert await store.replica.analysis_results.list_for_job(job.id) == []
        assert store.replica.router.fallbacks == 0


async def test_reads_are_balanced_round_robin(urls: tuple[str, str]) -> None:
    primary_url, standby_url = urls
    # Two replicas: the standby, and the primary itself (read-only sessions): which one
    # served is visible in pg_is_in_recovery().
    settings = replica_settings(primary_url, standby_url, primary_url)
    async with await Store.open(settings=settings) as store:
        served = [await in_recovery(store) for _ in range(6)]
    assert served in ([True, False] * 3, [False, True] * 3)


async def test_a_write_on_a_replica_connection_is_refused_typed(urls: tuple[str, str]) -> None:
    primary_url, standby_url = urls
    settings = replica_settings(primary_url, standby_url, primary_url)
    async with await Store.open(settings=settings) as store:
        before = await store.jobs.count_by_status()
        for _ in range(2):  # the standby, then the primary's read-only session
            with pytest.raises(ReadOnlyError):
                async with store.replica.transaction() as tx:
                    # a full repository on the replica's connection: a write gets there
                    # only by going around the view
                    assert tx.executor is not None
                    await Repositories(tx.executor).jobs.create(
                        {"job_type": "audio", "media_url": "https://x/w"}
                    )
        assert await store.jobs.count_by_status() == before
        # The view has no write methods at all
        assert not hasattr(store.replica.jobs, "create")
        assert not hasattr(store.replica.jobs, "claim")
        assert not hasattr(store.replica.transcriptions, "append_words")
        assert not hasattr(store.replica, "transaction_rw")


async def test_a_replica_behind_the_lag_bound_is_skipped(urls: tuple[str, str]) -> None:
    primary_url, standby_url = urls
    # A bound twice the quiet second below: a sample taken just as the primary's background
    # writes (autovacuum) reach the standby may date the standby from the sample before.
    settings = replica_settings(primary_url, standby_url, replica_max_lag=2.0)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
        await wait_replayed(primary_url, standby_url)
        assert await in_recovery(store)
        # An idle primary is no lag: the bound holds through a quiet second
        await asyncio.sleep(1.0)
        assert await in_recovery(store)
        assert store.replica.router.fallbacks == 0

        await fetchval(standby_url, "SELECT pg_wal_replay_pause()")
        await store.jobs.start_processing(job.id)
        await asyncio.sleep(2.5)  # past the bound: the standby lacks a commit this long
        seen = await store.replica.jobs.get_by_id(job.id)
        assert seen is not None and seen.status == JobStatus.PROCESSING  # the primary's
        assert not await in_recovery(store)
        assert store.replica.router.fallbacks == 2

        await fetchval(standby_url, "SELECT pg_wal_replay_resume()")
        await wait_replayed(primary_url, standby_url)
        await asyncio.sleep(0.6)  # the next sample is taken a quarter of the bound later

        async def back_on_standby() -> bool:
            while not await in_recovery(store):  # noqa: ASYNC110 - polling a server
                await asyncio.sleep(0.05)
            return True

        async with asyncio.timeout(10):
            assert await back_on_standby()


async def test_a_stopped_replica_falls_back_to_the_primary_and_is_retried_later(
    pair: tuple[Cluster, Cluster], urls: tuple[str, str]
) -> None:
    _, standby = pair
    primary_url, standby_url = urls
    settings = replica_settings(primary_url, standby_url, replica_retry_after=1.0)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
        await wait_replayed(primary_url, standby_url)
        assert await in_recovery(store)
        standby.stop("fast")
        try:
            # the pooled connection is gone and no new one can be opened: each read is
            # served by the primary, none raises
            for _ in range(3):
                seen = await store.replica.jobs.get_by_id(job.id)
                assert seen is not None and seen.id == job.id
            assert not await in_recovery(store)
            assert store.replica.router.fallbacks == 4
        finally:
            standby.start()
        await asyncio.sleep(1.1)  # the back-off
        assert await in_recovery(store)


async def _pid_and_recovery(store: Store) -> tuple[int, bool]:
    async with store.replica.transaction() as tx:
        assert tx.executor is not None
        row = await tx.executor.fetchrow("SELECT pg_backend_pid() AS pid, pg_is_in_recovery() AS r")
        assert row is not None
        return int(row["pid"]), bool(row["r"])


def _terminate(url: str, pid: int) -> None:
    """End backend ``pid`` from another connection and wait until it is gone, blocking the
    event loop meanwhile (a synchronous psycopg connection): the pooled connection's driver
    has not read the server's notice when the next borrow takes it, as when a replica
    restarts while a busy service is not reading that socket. (Given a turn of the loop,
    asyncpg would see the closed socket and the pool would open a new connection.)"""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()
        assert row == (True,)


async def test_a_stale_pooled_replica_connection_falls_back_before_the_block(
    urls: tuple[str, str],
) -> None:
    """The standby ends the view's pooled connection (a restart, an administrator): the next
    transaction of the view still runs, on the primary, and the standby is marked down for
    its back-off like a replica that cannot be reached."""
    primary_url, standby_url = urls
    settings = replica_settings(primary_url, standby_url, replica_retry_after=1.0)
    async with await Store.open(settings=settings) as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
        await wait_replayed(primary_url, standby_url)
        pid, recovering = await _pid_and_recovery(store)
        assert recovering
        _terminate(standby_url, pid)

        async with store.replica.transaction() as tx:  # the first try succeeds
            assert tx.executor is not None
            assert await tx.executor.fetchval("SELECT pg_is_in_recovery()") is False
            seen = await tx.jobs.get_by_id(job.id)
            assert seen is not None and seen.id == job.id
        assert store.replica.router.fallbacks == 1
        assert not await in_recovery(store)  # marked down: not tried again at once
        assert store.replica.router.fallbacks == 2
        await asyncio.sleep(1.1)  # the back-off; then a new connection to the standby
        assert await in_recovery(store)
        assert store.replica.router.fallbacks == 2


async def test_a_stale_pooled_replica_connection_moves_on_to_the_next_replica(
    urls: tuple[str, str],
) -> None:
    # Two replicas, the standby and the primary itself (read-only sessions): the standby's
    # stale connection sends the transaction to the other replica, not to the primary's pool.
    primary_url, standby_url = urls
    async with await Store.open(
        settings=replica_settings(primary_url, standby_url, primary_url)
    ) as store:
        first, second = await _pid_and_recovery(store), await _pid_and_recovery(store)
        standby_pid = next(pid for pid, recovering in (first, second) if recovering)
        _terminate(standby_url, standby_pid)
        # each of the next two transactions starts at another replica: one starts at the
        # standby, finds its connection stale, and moves on
        served = [await _pid_and_recovery(store) for _ in range(2)]
        assert [recovering for _, recovering in served] == [False, False]
        assert store.replica.router.fallbacks == 0
        # the primary-as-replica's own pool served both (its pooled connection, not the
        # primary pool's)
        assert {pid for pid, _ in served} == {next(p for p, r in (first, second) if not r)}


async def test_the_store_opens_with_a_replica_down_and_a_hung_one_is_bounded(
    urls: tuple[str, str],
) -> None:
    primary_url, _ = urls
    # A port that accepts TCP connections and never answers: only the connect timeout ends
    # the wait. And a port where nothing listens.
    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        closed.bind(("127.0.0.1", 0))
        hung = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x"
        down = f"postgresql://postgres@127.0.0.1:{closed.getsockname()[1]}/x"
        settings = replica_settings(primary_url, hung, down, replica_connect_timeout=0.3)
        async with await Store.open(settings=settings) as store:
            job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a"})
            async with asyncio.timeout(20):  # a hang fails the test instead of stalling it
                seen = await store.replica.jobs.get_by_id(job.id)
            assert seen is not None
            assert store.replica.router.fallbacks == 1
            # Both are marked down: the next read goes to the primary without trying them
            assert await store.replica.jobs.get_by_id(job.id) is not None
            assert store.replica.router.fallbacks == 2


def test_replica_settings_from_the_environment() -> None:
    env = {
        "DATABASE_URL": "postgresql://u:secret@p:5432/db",
        "MEDIA_STORE_REPLICA_URLS": (
            "postgresql://u:secret@r1:5432/db, postgresql://u:pw@r2:5432,r3:5433/db"
            "?target_session_attrs=standby"
        ),
        "MEDIA_STORE_REPLICA_MAX_LAG": "2.5",
    }
    settings = Settings.from_env(env=env)
    assert [str(d) for d in settings.replicas] == [
        "postgresql://u:***@r1:5432/db",
        "postgresql://u:***@r2:5432,r3:5433/db?target_session_attrs=standby",
    ]
    assert settings.replica_max_lag == 2.5
    assert "secret" not in repr(settings)
    replica = settings.for_replica(settings.replicas[0])
    assert replica.min_size == 0
    assert replica.server_settings["default_transaction_read_only"] == "on"
    assert replica.connect_timeout == settings.replica_connect_timeout == 2.0
    assert Settings.from_env(env={"DATABASE_URL": "postgresql://p/db"}).replicas == ()
    with pytest.raises(ConfigurationError, match="replica_max_lag"):
        Settings.from_env(env={**env, "MEDIA_STORE_REPLICA_MAX_LAG": "0"})
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env={**env, "MEDIA_STORE_REPLICA_URLS": "mysql://u:secret@r/db"})
    assert "secret" not in str(info.value)
    assert parse_replica_urls(" ") == ()


# --- a malformed URL never shows a password ----------------------------------------------------

SECRETS = ("s3cretA9", "s3cretB9", "s3cretC9")
MALFORMED = {
    # two, then three, URLs separated by spaces instead of commas
    "space separator": ("postgresql://app:s3cretA9@r1/db postgresql://app:s3cretB9@r2/db"),
    "three, tab and newline": (
        "postgresql://app:s3cretA9@r1/db\tpostgresql://app:s3cretB9@r2/db\n"
        "postgresql://app:s3cretC9@r3/db"
    ),
    # libpq does not read the query string (asyncpg's options): the space hides there
    "after a query string": (
        "postgresql://app:s3cretA9@r1/db?sslmode=disable postgresql://app:s3cretB9@r2/db"
    ),
    "second without a scheme": "postgresql://app:s3cretA9@r1/db app:s3cretB9@r2/db",
    "a query password": (
        "postgresql://app@r1/db?password=s3cretA9 postgresql://app@r2/db?sslpassword=s3cretB9"
    ),
    "then a conninfo": "postgresql://app:s3cretA9@r1/db,host=r2 password=s3cretB9 dbname=db",
    "conninfo form": "host=r1 user=app password=s3cretA9 dbname=db sslpassword=s3cretB9",
    "bad percent-encoding": "postgresql://app:s3cretA9@r1/db,postgresql://app:s3cr%zzetB9@r2/db",
    "unencoded slash": "postgresql://app:s3c/retA9@r1/db",
    "unbalanced ipv6": "postgresql://app:s3cretA9@[::1/db,postgresql://app:s3cretB9@r2/db",
}


def _leaks(text: str) -> list[str]:
    """The pieces of the test's passwords (4 characters or more) found in ``text``."""
    pieces = {s[i:j] for s in SECRETS for i in range(len(s)) for j in range(i + 4, len(s) + 1)}
    pieces |= {"s3c/", "/retA9", "cr%zz", "%zzetB9"}
    return sorted(piece for piece in pieces if piece in text)


@pytest.mark.parametrize("variable", ["MEDIA_STORE_REPLICA_URLS", "DATABASE_URL"])
@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_url_never_shows_a_password(
    variable: str,
    raw: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"DATABASE_URL": "postgresql://app:s3cretC9@p/db", variable: raw}
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env(env=env)
    shown = str(refused.value) + repr(refused.value)
    shown += "".join(traceback.format_exception(refused.value))
    assert _leaks(shown) == [], shown
    assert "malformed" in str(refused.value) or "postgresql://" in str(refused.value)

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert cli_main(["jobs", "stats"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("media-store jobs stats: ConfigurationError: "), err
    assert _leaks(out + err) == [], err


def test_the_space_separator_is_named_in_the_error() -> None:
    raw = "postgresql://app:s3cretA9@r1/db postgresql://app:s3cretB9@r2/db"
    with pytest.raises(ConfigurationError, match="separate URLs with commas") as refused:
        parse_replica_urls(raw)
    assert _leaks(str(refused.value)) == []
    # a space inside the query string stays allowed: pgserver's socket folder may hold one
    folder = "postgresql://postgres:@/media_store?host=/home/me/my code/.dev-postgres"
    assert parse_replica_urls(f"{folder},{folder}") == (Dsn(folder), Dsn(folder))
