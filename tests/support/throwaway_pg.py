"""A PostgreSQL cluster a test owns: made with initdb in a temporary directory, listening on a
free port of 127.0.0.1, and stopped, started and restarted by the test at will (``pg_ctl stop
-m fast|immediate``), without touching any other server. Removed afterwards.

The binaries are the machine's (Debian: ``/usr/lib/postgresql/<version>/bin``, from the
``postgresql`` package the test server comes from). PostgreSQL refuses to run as root: as root
every command runs as the ``postgres`` system user, who owns the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

ShutdownMode = Literal["smart", "fast", "immediate"]
SYSTEM_USER = "postgres"
TIMEOUT = 60  # seconds pg_ctl may wait for a start or a stop


def postgres_bindir() -> Path | None:
    """The newest installed server's bin directory (one holding initdb and pg_ctl)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).parent
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A cluster in ``directory`` served on 127.0.0.1:``port``; ``url`` names its ``postgres``
    database as the ``postgres`` role (trust authentication)."""

    bindir: Path
    directory: Path
    port: int
    user: str | None  # the system user the server runs as, None: this process's

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections (crash recovery included)."""
        self._pg_ctl("start", "-w", "-l", str(self.log))

    def stop(self, mode: ShutdownMode = "fast") -> None:
        """Stop the server: ``fast`` rolls back and disconnects every session, ``immediate``
        kills every process without a checkpoint (the next start runs crash recovery)."""
        self._pg_ctl("stop", "-w", "-m", mode)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _pg_ctl(self, *args: str) -> None:
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-t", str(TIMEOUT), *args)

    def run(self, *command: str) -> None:
        result = subprocess.run(
            command,
            user=self.user,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT + 30,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}:\n"
                f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}"
                f"\n{self.log_text()[-4000:]}"
            )


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """initdb a new cluster on a free port, start it, and on exit stop it (immediately: its data
    is thrown away) and delete its directory.

    Skips the calling test, with the reason, when no PostgreSQL server binaries are installed;
    under CI (``CI`` set) that is a failure instead, since CI installs them.
    """
    bindir = postgres_bindir()
    if bindir is None:
        message = "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    directory = Path(tempfile.mkdtemp(prefix="ms_cluster_"))
    user = None
    if os.geteuid() == 0:
        user = SYSTEM_USER
        owner = pwd.getpwnam(SYSTEM_USER)
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(bindir, directory, free_port(), user)
    started = False
    try:
        cluster.run(
            str(bindir / "initdb"),
            "-D",
            str(cluster.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = {
            "port": str(cluster.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{directory}'",
            "max_connections": "50",
            "shared_buffers": "32MB",
            # A process crash (immediate shutdown) still recovers every commit from the WAL
            # the kernel holds; only an OS crash would need fsync. Spares the shared disk.
            # (synchronous_commit stays on: off would lose acknowledged commits in a crash.)
            "fsync": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        cluster.start()
        started = True
        yield cluster
    finally:
        if started:
            with contextlib.suppress(RuntimeError):
                cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
