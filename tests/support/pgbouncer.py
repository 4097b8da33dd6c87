"""A real PgBouncer for tests: started on a free port in a temporary directory, in front of
the test server, stopped and removed afterwards.

Use the ``pgbouncer`` fixture (one per session, transaction pooling; import
``pgbouncer_fixture`` into the test module to make it available) and :func:`bounced` to turn a
test database's URL into the same database through PgBouncer, or :func:`running_pgbouncer`
for one with other settings. Tests using them are skipped, with the
reason, when the ``pgbouncer`` binary is not installed (Debian: ``apt-get install pgbouncer``;
the run's header says so too); under CI (``CI`` set) that is a failure instead.

The upstream is the test server wherever it listens: a TCP address (MEDIA_STORE_TEST_DSN,
a container) or a Unix socket directory (the embedded pgserver listens on a socket in its data
directory only, ``host=`` in its URL).

Authentication is ``trust`` in PgBouncer (the test servers trust local connections too); any
role of the server may log in through it (``auth_user`` looks roles up), and ``postgres`` may
use the admin console (``SHOW POOLS`` etc. on the ``pgbouncer`` database).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg.conninfo
import pytest

from tests.support.harness import Server

START_TIMEOUT = 30.0  # seconds to wait for PgBouncer to report that it listens
CONNECT_TIMEOUT = 15  # seconds a first connection through it may take to reach the server
STOP_TIMEOUT = 30.0
ADMIN_ROLE = "postgres"
INSTALL_PGBOUNCER = "apt-get install pgbouncer"


def pgbouncer_binary() -> str | None:
    """The pgbouncer executable, if installed (Debian puts it in /usr/sbin)."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


@dataclass(frozen=True)
class PgBouncer:
    """A running PgBouncer: ``host``/``port`` to connect to, ``log`` its log file."""

    host: str
    port: int
    pool_mode: str
    log: Path

    def url(self, database: str, user: str = ADMIN_ROLE) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def bounced(url: str, bouncer: PgBouncer) -> str:
    """``url`` (user, password, database, options) through ``bouncer`` instead."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    query = "&".join(
        pair for pair in parts.query.split("&") if pair and not pair.startswith(("host=", "port="))
    )
    netloc = f"{userinfo}{bouncer.host}:{bouncer.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _upstream(server_url: str) -> tuple[str, str]:
    """Host (name, address or socket directory) and port of the test server."""
    params = psycopg.conninfo.conninfo_to_dict(server_url)
    host = str(params.get("host") or "/var/run/postgresql").split(",")[0]
    port = str(params.get("port") or "5432").split(",")[0]
    return host, port


def _system_user(server_url: str) -> str:
    """The system user to run PgBouncer as when this process is root (PgBouncer refuses to run
    as root): one that can reach the server. For a Unix socket, the owner of the socket (the
    server's own user: the embedded pgserver runs as ``pgserver``, its socket in a data
    directory only that user may enter); over TCP, ``postgres``."""
    host, port = _upstream(server_url)
    if host.startswith("/"):
        socket_dir = Path(host)
        for path in (socket_dir / f".s.PGSQL.{port}", socket_dir):
            with contextlib.suppress(OSError):
                owner = pwd.getpwuid(path.stat().st_uid)
                if owner.pw_uid != 0:
                    return owner.pw_name
    return ADMIN_ROLE


def _config(
    directory: Path, server_url: str, port: int, pool_mode: str, settings: Mapping[str, str]
) -> str:
    host, upstream_port = _upstream(server_url)
    options = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(directory / "userlist.txt"),
        # Roles not in auth_file are looked up on the server as this role.
        "auth_user": ADMIN_ROLE,
        "admin_users": ADMIN_ROLE,
        "stats_users": ADMIN_ROLE,
        "pool_mode": pool_mode,
        # Fewer server connections than test clients, so that clients really share them.
        "default_pool_size": "4",
        "max_client_conn": "200",
        "ignore_startup_parameters": "extra_float_digits",
        "pidfile": str(directory / "pgbouncer.pid"),
        **settings,
    }
    lines = ["[databases]", f"* = host={host} port={upstream_port}", "", "[pgbouncer]"]
    lines += [f"{key} = {value}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_pgbouncer(
    server_url: str, *, pool_mode: str = "transaction", settings: Mapping[str, str] | None = None
) -> Iterator[PgBouncer]:
    """Start a PgBouncer in front of the server ``server_url`` points at; stop it on exit.

    ``settings`` add to or override the ``[pgbouncer]`` section. Skips the calling test when
    the binary is absent (fails it under CI). PgBouncer refuses to run as root: as root it is
    started with ``-u <user>`` (the files are made readable for that user), a user that can
    reach the server (:func:`_system_user`). Before it is handed out, a first connection
    through it must reach the server, so that a PgBouncer that cannot fails at once, with its
    log, instead of every client timing out.
    """
    binary = pgbouncer_binary()
    if binary is None:
        message = f"pgbouncer is not installed ({INSTALL_PGBOUNCER})"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    directory = Path(tempfile.mkdtemp(prefix="ms_pgbouncer_"))
    process: subprocess.Popen[bytes] | None = None
    try:
        port = _free_port()
        (directory / "userlist.txt").write_text(f'"{ADMIN_ROLE}" ""\n')
        config = directory / "pgbouncer.ini"
        config.write_text(_config(directory, server_url, port, pool_mode, settings or {}))
        command = [binary, str(config)]
        if os.geteuid() == 0:
            user = pwd.getpwnam(_system_user(server_url))
            os.chown(directory, user.pw_uid, user.pw_gid)
            command[1:1] = ["-u", user.pw_name]
        log = directory / "pgbouncer.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        bouncer = PgBouncer("127.0.0.1", port, pool_mode, log)
        _wait_until_listening(process, bouncer)
        _reach_server(bouncer, server_url)
        yield bouncer
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_until_listening(process: subprocess.Popen[bytes], bouncer: PgBouncer) -> None:
    # PgBouncer logs "process up" once it listens; polling the log is waiting on what the
    # process reports, and the exit code says why it did not come up.
    deadline = time.monotonic() + START_TIMEOUT
    while "process up" not in bouncer.log_text():
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({process.returncode}):\n{bouncer.log_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"pgbouncer did not start:\n{bouncer.log_text()}")
        time.sleep(0.05)


def _reach_server(bouncer: PgBouncer, server_url: str) -> None:
    """One query through ``bouncer`` to the database ``server_url`` names."""
    database = str(psycopg.conninfo.conninfo_to_dict(server_url).get("dbname") or ADMIN_ROLE)
    try:
        with psycopg.connect(
            bouncer.url(database), connect_timeout=CONNECT_TIMEOUT, autocommit=True
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise RuntimeError(
            f"pgbouncer does not reach the server ({exc}):\n{bouncer.log_text()}"
        ) from exc


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # immediate shutdown: clients are disconnected
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session", name="pgbouncer")
def pgbouncer_fixture(pg_server: Server) -> Iterator[PgBouncer]:
    """One PgBouncer in transaction pooling mode in front of the test server, for the run."""
    with running_pgbouncer(pg_server.admin_url) as bouncer:
        yield bouncer
