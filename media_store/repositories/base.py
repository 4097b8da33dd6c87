"""What every repository shares: its executor, and the boundary every call goes through.

Each call runs one statement through :func:`media_store.db.boundary.run`: on a connection, on
it; on a pool, on a connection borrowed for the statement within the pool's acquire timeout;
on a routed executor (the replica view's router), where the router chooses. Driver errors
become :mod:`media_store.errors` there. Transactions and COPY go through the same boundary.

A repository given a :class:`QueryTracer` (``Store.trace_queries``) runs each named query
through it instead, which wraps :func:`~media_store.db.boundary.run` in a span named by the
query. Without one, a call costs one attribute test more (tens of nanoseconds against the
~45 us of a pooled round trip): tracing is opt-in, and nothing is imported for it here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Protocol, Self

import asyncpg

from media_store.db.boundary import Target, copy_records, run, transaction
from media_store.db.queries import Query


class QueryTracer(Protocol):
    """What traces a repository's queries (:class:`media_store.tracing.QuerySpans` is one):
    ``run`` is :func:`~media_store.db.boundary.run` of ``query.sql`` inside a span, and
    ``carrier`` the W3C trace context (``traceparent``, maybe ``tracestate``) of the span
    current in the caller, which a job created now keeps for the worker that will run it."""

    def run(
        self, target: Target, method: str, query: Query, args: Sequence[Any]
    ) -> Coroutine[Any, Any, Any]: ...

    def carrier(self) -> Mapping[str, str] | None: ...


class Repository:
    """Base of the repositories and of their read halves (the ``*Reads`` classes). It never
    opens or closes its executor."""

    __slots__ = ("_db", "_tracer")

    # Every named query the repository runs, in the order of its .sql file(s): what
    # ``media-store check`` verifies against a database.
    queries: ClassVar[tuple[Query, ...]] = ()

    def __init__(self, executor: Target, tracer: QueryTracer | None = None) -> None:
        self._db = executor
        self._tracer = tracer

    @property
    def executor(self) -> Target:
        return self._db

    # Plain methods returning run's coroutine (awaited by the caller): one coroutine frame
    # per call instead of two.
    def _fetch(self, query: Query, *args: Any) -> Coroutine[Any, Any, list[asyncpg.Record]]:
        if self._tracer is None:
            return run(self._db, "fetch", query.sql, args)
        return self._tracer.run(self._db, "fetch", query, args)

    def _fetchrow(self, query: Query, *args: Any) -> Coroutine[Any, Any, asyncpg.Record | None]:
        if self._tracer is None:
            return run(self._db, "fetchrow", query.sql, args)
        return self._tracer.run(self._db, "fetchrow", query, args)

    def _fetchval(self, query: Query, *args: Any) -> Coroutine[Any, Any, Any]:
        if self._tracer is None:
            return run(self._db, "fetchval", query.sql, args)
        return self._tracer.run(self._db, "fetchval", query, args)

    def _trace_carrier(self) -> Mapping[str, str] | None:
        """The trace context a job created now should keep (None: not tracing, or no span)."""
        return None if self._tracer is None else self._tracer.carrier()

    async def _copy(
        self, table: str, records: Iterable[Sequence[Any]], columns: Sequence[str]
    ) -> None:
        await copy_records(self._db, table, records, columns)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Self]:
        """This repository on one connection inside a transaction (a savepoint when the
        executor is a connection already in one); see :func:`media_store.db.transaction`."""
        async with transaction(self._db) as conn:
            yield type(self)(conn, self._tracer)
