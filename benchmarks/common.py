"""Shared benchmark plumbing: a fresh migrated database, timing, and the JSON results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from media_store import Dsn, migrate

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCH_DSN_ENV = "MEDIA_STORE_BENCH_DSN"


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextlib.contextmanager
def bench_server() -> Iterator[str]:
    """A server URL: MEDIA_STORE_BENCH_DSN, else DATABASE_URL, else the embedded dev server."""
    url = os.environ.get(BENCH_DSN_ENV) or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from media_store.demo.embedded import DEFAULT_DIR, embedded_url, start_embedded

    server = start_embedded(DEFAULT_DIR)
    yield embedded_url(server, "postgres")


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """A new database on ``server_url`` (migrated to head unless told not to), dropped after."""
    name = f"ms_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    try:
        if migrated:
            migrate.apply(Dsn(url))
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class Timer:
    def __init__(self) -> None:
        self.elapsed = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self._start


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title}")
    cells = [header, *[[f"{c:,.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        **payload,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"  results written to {path}")
    return path
