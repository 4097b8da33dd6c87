"""The asyncpg pool: opening it, its per-connection codecs, health check and close."""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

import asyncpg
import orjson

from media_store.config import Settings
from media_store.errors import ConfigurationError, DatabaseUnavailable, MediaStoreError

log = logging.getLogger("media_store")

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

_CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError, ValueError)


def _jsonb_encode(value: Any) -> bytes:
    # jsonb's binary wire format is a version byte (1) followed by the JSON text. Binary
    # codecs keep copy_records_to_table working on jsonb columns (COPY uses binary format).
    return b"\x01" + orjson.dumps(value)


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _json_decode(data: bytes) -> Any:
    return orjson.loads(data)


async def init_connection(conn: Connection) -> None:
    """Register the JSON codecs once per connection (the pool's ``init=``).

    JSON is encoded and decoded here and nowhere else.
    """
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=orjson.dumps,
        decoder=_json_decode,
        format="binary",
    )


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every media_store connection is opened with."""
    return {
        "dsn": settings.dsn.reveal(),
        "command_timeout": settings.command_timeout,
        "statement_cache_size": settings.statement_cache_size,
        # Sessions run in UTC so that text casts of timestamps agree with what the driver
        # returns (asyncpg already returns timezone-aware UTC datetimes for timestamptz).
        "server_settings": {
            "application_name": settings.application_name,
            "timezone": "UTC",
            **settings.server_settings,
        },
    }


def _connect_failure(settings: Settings, exc: BaseException) -> MediaStoreError:
    """The library error for a failed connect, its message scrubbed of the password."""
    message = settings.dsn.scrub(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        # e.g. an unknown sslmode: retrying will not help, the URL must change
        return ConfigurationError(f"unusable database URL {settings.dsn}: {message}")
    return DatabaseUnavailable(f"cannot connect to {settings.dsn}: {message}")


async def _rollback_only_reset(conn: Connection) -> None:
    # Before calling a custom reset, asyncpg has already rolled back any open transaction and
    # dropped the connection's listeners; nothing else is needed (see Settings.full_reset).
    return None


async def create_pool(settings: Settings) -> Pool:
    """Open a pool for ``settings``. The caller owns it and must close it.

    Raises :class:`DatabaseUnavailable` when the server cannot be reached and
    :class:`ConfigurationError` when the URL cannot be used; the driver's message is repeated
    with the password scrubbed, and the driver's exception is not chained (neither
    ``__cause__`` nor ``__context__``) because its text may quote the URL.
    """
    failure: MediaStoreError
    try:
        pool: Pool = await asyncpg.create_pool(
            min_size=settings.min_size,
            max_size=settings.max_size,
            init=init_connection,
            reset=None if settings.full_reset else _rollback_only_reset,
            **connect_kwargs(settings),
        )
    except _CONNECT_ERRORS as exc:
        failure = _connect_failure(settings, exc)
    else:
        log.info("media_store pool opened on %s (max_size=%d)", settings.dsn, settings.max_size)
        return pool
    raise failure


async def connect(settings: Settings) -> Connection:
    """Open one connection with the same codecs and settings as the pool's.

    The caller owns it and must close it. Raises as :func:`create_pool` does.
    """
    failure: MediaStoreError
    try:
        conn: Connection = await asyncpg.connect(**connect_kwargs(settings))
    except _CONNECT_ERRORS as exc:
        failure = _connect_failure(settings, exc)
    else:
        await init_connection(conn)
        return conn
    raise failure
