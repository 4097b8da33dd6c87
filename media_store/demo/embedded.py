"""An embedded development PostgreSQL for ``make demo`` when ``DATABASE_URL`` is unset.

pgserver runs a real PostgreSQL from a pip wheel. The data directory is kept in a git-ignored
folder of the checkout (``.dev-postgres/``) so the demo's data survives between runs. This is
a development convenience only: the library itself never falls back to a default database.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from media_store.errors import ConfigurationError

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

DEFAULT_DIR = Path(".dev-postgres")


def start_embedded(data_dir: Path = DEFAULT_DIR, *, keep_running: bool = False) -> PostgresServer:
    """Start (or reuse) the embedded server; returns the pgserver handle.

    The server stops when the last process using it exits, unless ``keep_running``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "DATABASE_URL is not set and the embedded PostgreSQL (pip package pgserver) is "
            "not installed: set DATABASE_URL or `pip install media-store[embedded]`"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as under root in CI); harmless.
        warnings.simplefilter("ignore")
        return get_server(data_dir.resolve(), cleanup_mode=None if keep_running else "stop")


def embedded_url(server: PostgresServer, database: str = "media_store") -> str:
    """A ``postgresql://`` URL for ``database`` on the embedded server, creating it if needed."""
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    uri: str = server.get_uri(database)
    return uri
