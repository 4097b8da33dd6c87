"""Check every named query against a live database, as sqlc's vet does at generation time.

Each query is prepared (nothing runs); its parameter types are compared with the Python types
the code declares for it, and its result columns (names, types, order) with the fields of the
model its rows become (see :func:`media_store.db.queries.query`). The declarations come from the
``queries`` each repository lists; a query no repository lists is reported as unused.
``media-store check`` runs this against ``DATABASE_URL`` so an operator can verify, before
deploying, that a database's schema is what this version of the library expects.
"""

from __future__ import annotations

import enum
import types
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

import asyncpg
from pydantic import BaseModel

from media_store.config import Settings
from media_store.db import queries
from media_store.db.connections import connect
from media_store.db.queries import Query
from media_store.repositories import declared_queries

_PG_KINDS = {
    "uuid": "uuid",
    "text": "text",
    "varchar": "text",
    "bpchar": "text",
    "name": "text",
    "int2": "int",
    "int4": "int",
    "int8": "int",
    "float4": "float",
    "float8": "float",
    "numeric": "float",
    "bool": "bool",
    "json": "json",
    "jsonb": "json",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp (without time zone)",
    "interval": "interval",
    "bytea": "bytes",
}


def pg_kind(type_name: str) -> str:
    if type_name.endswith("[]"):
        return "array of " + pg_kind(type_name[:-2])
    return _PG_KINDS.get(type_name, type_name)


def python_kinds(tp: Any) -> set[str]:
    """The PostgreSQL kinds a Python annotation can carry (see ``_PG_KINDS``)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return python_kinds(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return set().union(*(python_kinds(a) for a in get_args(tp) if a is not type(None)))
    if tp is Any:
        return {"json"}
    if origin in (dict,) or tp is dict:
        return {"json"}
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        args = get_args(tp)
        element = python_kinds(args[0]) if args else set()
        return {"json"} | {f"array of {k}" for k in element}
    if isinstance(tp, type):
        if issubclass(tp, bool):
            return {"bool"}
        if issubclass(tp, bytes | bytearray | memoryview):
            return {"bytes"}
        if issubclass(tp, enum.Enum) or issubclass(tp, str):
            return {"text"}
        if issubclass(tp, int):
            return {"int"}
        if issubclass(tp, float):
            return {"float", "int"}
        if issubclass(tp, uuid.UUID):
            return {"uuid"}
        if issubclass(tp, datetime):
            return {"timestamptz"}
        if issubclass(tp, BaseModel):
            return {"json"}
    return {f"unknown python type {tp!r}"}


def _expected_columns(returns: Any) -> list[tuple[str, Any]] | None:
    if returns is None:
        return None
    if isinstance(returns, type) and issubclass(returns, BaseModel):
        return [(name, field.annotation) for name, field in returns.model_fields.items()]
    return [(name, tp) for name, tp in returns]


def _label(returns: Any) -> str:
    return returns.__name__ if isinstance(returns, type) else "declared columns"


def compare(q: Query, params: Sequence[Any], columns: Sequence[Any]) -> list[str]:
    """Mismatches between a prepared statement's types and what the code declares."""
    where = f"{q.location} {q.name}"
    problems: list[str] = []
    if q.params is not None:
        if len(q.params) != len(params):
            problems.append(
                f"{where}: takes {len(params)} parameter(s), the code passes {len(q.params)}"
            )
        for index, (declared, actual) in enumerate(zip(q.params, params, strict=False), 1):
            if pg_kind(actual.name) not in python_kinds(declared):
                problems.append(
                    f"{where}: parameter ${index} is {actual.name}, the code passes {declared!r}"
                )
    expected = _expected_columns(q.returns)
    if expected is not None:
        names = [c.name for c in columns]
        wanted = [name for name, _ in expected]
        if names != wanted:
            problems.append(
                f"{where}: returns columns {names}, {_label(q.returns)} expects {wanted}"
            )
        by_name = {c.name: c for c in columns}
        for name, annotation in expected:
            column = by_name.get(name)
            if column is not None and pg_kind(column.type.name) not in python_kinds(annotation):
                problems.append(
                    f"{where}: column {name!r} is {column.type.name}, "
                    f"{_label(q.returns)}.{name} is {annotation!r}"
                )
    return problems


async def check_connection(conn: asyncpg.Connection[asyncpg.Record]) -> list[str]:
    """Every mismatch between the named queries and the schema ``conn`` sees."""
    declared = declared_queries()
    problems: list[str] = []
    for name, loaded in queries.QUERIES.items():
        q = declared.get(name)
        if q is None:
            problems.append(f"{loaded.location} {name}: defined but no code uses it")
            q = loaded
        try:
            stmt = await conn.prepare(q.sql)
        except asyncpg.PostgresError as exc:
            problems.append(f"{q.location} {name}: does not prepare: {type(exc).__name__}: {exc}")
            continue
        problems.extend(compare(q, stmt.get_parameters(), stmt.get_attributes()))
    return problems


async def check_database(settings: Settings) -> list[str]:
    conn = await connect(settings)
    try:
        return await check_connection(conn)
    finally:
        await conn.close()
