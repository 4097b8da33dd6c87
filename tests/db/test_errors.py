"""The server's own time limits (statement_timeout, lock_timeout) arrive as typed errors a
caller can catch and retry, told apart by SQLSTATE; the driver's command_timeout stays what it
was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

import media_store
import media_store.errors
from media_store import (
    DatabaseError,
    DatabaseTimeout,
    LockTimeout,
    MediaStoreError,
    Settings,
    StatementTimeout,
    Store,
)
from media_store.db import run


@asynccontextmanager
async def store_with(settings: Settings, **server_settings: str) -> AsyncIterator[Store]:
    """A Store whose every session runs with ``server_settings`` (as a role's settings
    would)."""
    changed = settings.model_copy(update={"server_settings": server_settings})
    async with await Store.open(settings=changed) as store:
        yield store


def test_the_timeouts_are_exported_and_caught_as_database_errors() -> None:
    for name in ("DatabaseTimeout", "StatementTimeout", "LockTimeout"):
        assert getattr(media_store, name) is getattr(media_store.errors, name)
        assert name in media_store.__all__
    assert issubclass(StatementTimeout, DatabaseTimeout)
    assert issubclass(LockTimeout, DatabaseTimeout)
    assert issubclass(DatabaseTimeout, DatabaseError)


async def test_statement_timeout_is_a_statement_timeout_and_the_pool_stays_usable(
    settings: Settings,
) -> None:
    async with store_with(settings, statement_timeout="100") as store:
        with pytest.raises(StatementTimeout) as timed_out:
            await run(store.pool, "fetchval", "SELECT pg_sleep($1)", (30,))
        assert isinstance(timed_out.value, MediaStoreError)
        assert timed_out.value.sqlstate == "57014"
        assert isinstance(timed_out.value.__cause__, asyncpg.QueryCanceledError)  # kept

        assert await store.ping() is True


async def test_statement_timeout_ends_a_repository_call_blocked_by_a_lock(
    settings: Settings, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    async with store_with(settings, statement_timeout="100") as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
        async with raw.transaction():
            await raw.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", job.id)
            with pytest.raises(StatementTimeout):
                await store.jobs.delete(job.id)
        assert await store.jobs.get_by_id(job.id) == job  # the delete did nothing


async def test_lock_timeout_is_a_lock_timeout_and_nothing_is_written(
    settings: Settings, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    async with store_with(settings, lock_timeout="100") as store:
        job = await store.jobs.create({"job_type": "audio", "media_url": "https://x/a.mp3"})
        async with raw.transaction():
            await raw.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", job.id)
            with pytest.raises(LockTimeout) as timed_out:
                await store.jobs.delete(job.id)
        assert isinstance(timed_out.value, MediaStoreError)
        assert timed_out.value.sqlstate == "55P03"
        assert isinstance(timed_out.value.__cause__, asyncpg.LockNotAvailableError)
        assert await store.jobs.get_by_id(job.id) == job
        assert await store.jobs.delete(job.id) is True  # once the lock is gone


async def test_the_drivers_command_timeout_is_no_server_timeout(settings: Settings) -> None:
    # The driver cancels the statement on the server too; what the caller gets is the
    # client's timeout, as before (a plain DatabaseError), not the server's 57014.
    changed = settings.model_copy(update={"command_timeout": 0.3})
    async with await Store.open(settings=changed) as store:
        with pytest.raises(DatabaseError, match="timed out") as timed_out:
            await run(store.pool, "fetchval", "SELECT pg_sleep($1)", (30,))
        assert not isinstance(timed_out.value, DatabaseTimeout)
        assert isinstance(timed_out.value.__cause__, TimeoutError)
