"""Where the test database comes from, and databases made per run and per test.

Order of sources:
1. ``MEDIA_STORE_TEST_DSN``: a server (any database on it) on which the suite creates its own
   databases; CI points it at the machine's PostgreSQL.
2. A testcontainers PostgreSQL, when a Docker engine answers.
3. An embedded PostgreSQL from the ``pgserver`` wheel.
If none can be had, the run fails with a message saying how to provide one.
"""

from __future__ import annotations

import contextlib
import gc
import os
import secrets
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from media_store.config import redact

TEST_DSN_ENV = "MEDIA_STORE_TEST_DSN"
Source = Literal["env", "container", "embedded"]

HOW_TO_PROVIDE = (
    "no PostgreSQL for the tests: set MEDIA_STORE_TEST_DSN to a postgresql:// URL of a server "
    "where the suite may create databases (e.g. postgresql://postgres@127.0.0.1:5432/postgres), "
    "or start a Docker engine (testcontainers), or `pip install pgserver` for an embedded one"
)


class NoTestDatabase(RuntimeError):
    pass


def docker_answers() -> bool:
    """True when a Docker engine answers a ping (what testcontainers needs)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False  # nothing to ask; spares importing docker and a failed connect
    try:
        import docker  # type: ignore[import-untyped]  # installed with testcontainers
    except ImportError:
        return False
    with warnings.catch_warnings():
        # A failed ping leaves the client's socket to the garbage collector; its
        # ResourceWarning would surface later, as an error in whichever test is running.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # any failure to reach the engine means: no engine
            return False
        finally:
            gc.collect()


def pgserver_installed() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver  # noqa: F401
    except ImportError:
        return False
    return True


def choose_source(
    env: Mapping[str, str],
    docker: Callable[[], bool] = docker_answers,
    embedded: Callable[[], bool] = pgserver_installed,
) -> Source:
    """Pick the first available source, in the documented order."""
    if env.get(TEST_DSN_ENV):
        return "env"
    if docker():
        return "container"
    if embedded():
        return "embedded"
    raise NoTestDatabase(HOW_TO_PROVIDE)


def describe_source(source: Source, env: Mapping[str, str] = os.environ) -> str:
    """Which server the run uses, in words, for the report header: never the password."""
    if source == "env":
        return f"{TEST_DSN_ENV} = {redact(env[TEST_DSN_ENV])}"
    if source == "container":
        return "a PostgreSQL 16 container, through Docker (testcontainers)"
    return "an embedded PostgreSQL from the pgserver wheel, in a temporary folder"


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead (query parameters such as host= kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def random_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@dataclass
class Server:
    """A server the suite may create databases on; ``admin_url`` names an existing database."""

    source: Source
    admin_url: str


@contextlib.contextmanager
def provide_server(source: Source, env: Mapping[str, str] = os.environ) -> Iterator[Server]:
    if source == "env":
        yield Server("env", env[TEST_DSN_ENV])
    elif source == "container":  # not exercised on a machine without Docker
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as pg:
            yield Server("container", pg.get_connection_url())
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

            tmp = tempfile.mkdtemp(prefix="ms-pg-")
            server = get_server(Path(tmp), cleanup_mode="delete")
        with _exit_on_sigterm():
            try:
                yield Server("embedded", server.get_uri("postgres"))
            finally:
                server.cleanup()


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (e.g. from `timeout`) into SystemExit, so the embedded server is stopped
    and its folder deleted instead of outliving the run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
