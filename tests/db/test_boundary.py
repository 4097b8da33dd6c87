"""The execution boundary's entry points that the repository tests do not reach on their own:
a routed executor, and LISTEN."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pytest

from media_store import Settings, Store
from media_store.db import Executor, Pool, RoutedExecutor, copy_records, listening, run, transaction

T = TypeVar("T")


class OnePool(RoutedExecutor):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.calls = 0

    async def route(self, call: Callable[[Executor], Awaitable[T]], /) -> T:
        self.calls += 1
        return await call(self.pool)


async def test_run_gives_each_statement_on_a_router_to_the_router(store: Store) -> None:
    router = OnePool(store.pool)
    assert await run(router, "fetchval", "SELECT $1::int + 1", (41,)) == 42
    assert await run(router, "fetch", "SELECT 1 AS one", ()) == [(1,)]
    assert router.calls == 2


async def test_a_transaction_or_a_copy_on_a_router_is_refused(store: Store) -> None:
    router = OnePool(store.pool)
    with pytest.raises(TypeError, match="a transaction needs one connection"):
        async with transaction(router):
            pass
    with pytest.raises(TypeError, match="a COPY needs one connection"):
        await copy_records(router, "jobs", [], ["id"])
    assert router.calls == 0


async def test_listening_calls_back_on_each_notification_until_the_block_ends(
    store: Store,
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    def notified(_conn: Any, _pid: int, _channel: str, payload: Any) -> None:
        received.put_nowait(str(payload))

    async with listening(store.pool, "media_store_test", notified) as conn:
        await store.pool.execute("SELECT pg_notify('media_store_test', 'one')")
        assert await asyncio.wait_for(received.get(), 5) == "one"
        assert not conn.is_closed()
    await store.pool.execute("SELECT pg_notify('media_store_test', 'two')")
    await asyncio.sleep(0.2)
    assert received.empty()


async def test_listening_tells_when_idle_session_timeout_ends_its_session(
    settings: Settings, raw: asyncpg.Connection[asyncpg.Record]
) -> None:
    # A LISTEN connection runs no statement: it is idle, so the server ends its session.
    idle = settings.model_copy(update={"server_settings": {"idle_session_timeout": "300"}})
    lost = asyncio.Event()

    def notified(*_: object) -> None:
        pass

    async with (
        await Store.open(settings=idle) as store,
        listening(store.pool, "media_store_test", notified, on_lost=lost.set) as conn,
    ):
        pid = conn.get_server_pid()
        await asyncio.wait_for(lost.wait(), 10)
    assert not await raw.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
