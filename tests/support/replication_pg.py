"""A primary and a hot standby the test owns: a throwaway cluster (tests/support/throwaway_pg.py)
as the primary, and a copy of it made by ``pg_basebackup -R`` (a physical standby streaming from it)
started on its own port. Removed afterwards. Nothing here touches any other server.

initdb's default pg_hba.conf already lets local TCP connections replicate (``host replication
all 127.0.0.1/32 trust``) and PostgreSQL 15 defaults to ``wal_level = replica``; both are set
explicitly anyway, so the fixture does not depend on defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from tests.support.throwaway_pg import SYSTEM_USER, Cluster, free_port, throwaway_cluster

STANDBY_NAME = "media_store_standby"


def _new_directory() -> tuple[Path, str | None]:
    directory = Path(tempfile.mkdtemp(prefix="ms_standby_"))
    if os.geteuid() != 0:
        return directory, None
    owner = pwd.getpwnam(SYSTEM_USER)
    os.chown(directory, owner.pw_uid, owner.pw_gid)
    return directory, SYSTEM_USER


def _configure_primary(primary: Cluster, synchronous: bool) -> None:
    hba = primary.data / "pg_hba.conf"
    lines = hba.read_text()
    if "host replication all 127.0.0.1/32 trust" not in lines:
        # written as the server's user would: appended to a file it owns
        with hba.open("a") as out:
            out.write("host replication all 127.0.0.1/32 trust\n")
    settings = {"wal_level": "replica", "max_wal_senders": "5", "wal_keep_size": "64MB"}
    if synchronous:
        # A commit returns once the standby has flushed it: nothing acknowledged is lost
        # when the primary dies and the standby takes over.
        settings["synchronous_standby_names"] = f"'{STANDBY_NAME}'"
    with (primary.data / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    primary.stop("fast")
    primary.start()


@contextlib.contextmanager
def standby_of(primary: Cluster) -> Iterator[Cluster]:
    """A hot standby of ``primary``, started and streaming; stopped and removed on exit."""
    directory, user = _new_directory()
    standby = Cluster(primary.bindir, directory, free_port(), user)
    started = False
    try:
        standby.run(
            str(primary.bindir / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(standby.data),
            "-R",  # standby.signal and primary_conninfo: start as a standby of the primary
            "-X",
            "stream",
            "--checkpoint=fast",
            "--no-sync",
        )
        settings = {
            "port": str(standby.port),
            "unix_socket_directories": f"'{directory}'",
            "hot_standby": "on",
            # the walreceiver's application_name, which synchronous_standby_names names
            "cluster_name": f"'{STANDBY_NAME}'",
            "wal_receiver_status_interval": "1s",
            # The copy has the primary's configuration: once promoted, it must not wait for
            # a synchronous standby of its own (there is none; commits would hang).
            "synchronous_standby_names": "''",
        }
        with (standby.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        standby.start()
        started = True
        yield standby
    finally:
        if started:
            with contextlib.suppress(RuntimeError):
                standby.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def primary_and_standby(*, synchronous: bool = False) -> Iterator[tuple[Cluster, Cluster]]:
    """A new primary and a hot standby streaming from it (synchronously if asked)."""
    with throwaway_cluster() as primary:
        _configure_primary(primary, synchronous)
        with standby_of(primary) as standby:
            yield primary, standby


def promote(standby: Cluster) -> None:
    """Make the standby a primary (``pg_ctl promote``, waiting until it accepts writes)."""
    standby.run(
        str(standby.bindir / "pg_ctl"), "-D", str(standby.data), "-w", "-t", "60", "promote"
    )


async def fetchval(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def wait_replayed(primary_url: str, standby_url: str, timeout: float = 30.0) -> None:
    """Until the standby has replayed everything the primary had written when called."""
    target = await fetchval(primary_url, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    async with asyncio.timeout(timeout):
        while True:
            replayed = await fetchval(standby_url, "SELECT pg_last_wal_replay_lsn() - '0/0'")
            if replayed is not None and replayed >= target:  # type: ignore[operator]
                return
            await asyncio.sleep(0.02)
