"""Shared benchmark plumbing: the servers a run measures on, a fresh migrated database,
timing, the targets judged on the worse server, and the JSON results.

``make bench`` runs every benchmark on the embedded PostgreSQL a newcomer gets (the pgserver
wheel's, as ``make demo`` starts it) and, when ``MEDIA_STORE_BENCH_DSN`` is set, again on that
server, in one session. Each benchmark reports its ratios per server through :func:`judge`;
the run ends with one table of every target, judged on the worse server. Results go to
``benchmarks/results/<name>.json``, one entry per server, with the machine they ran on.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import json
import os
import platform
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from media_store import Dsn, migrate

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCH_DSN_ENV = "MEDIA_STORE_BENCH_DSN"
EMBEDDED = "embedded"
BENCH_DSN = "bench_dsn"


@dataclass(frozen=True)
class Server:
    """A server a benchmark runs on: ``kind`` (``embedded`` or ``bench_dsn``) and a label
    naming its version and capabilities, never its credentials."""

    kind: str
    url: str
    label: str

    def __repr__(self) -> str:  # the URL may hold a password
        return f"Server({self.kind!r}, {self.label!r})"


@dataclass(frozen=True)
class Verdict:
    benchmark: str
    server: str
    name: str
    value: float
    target: float
    higher_is_better: bool


_current: contextvars.ContextVar[Server | None] = contextvars.ContextVar("server", default=None)
_benchmark: contextvars.ContextVar[str] = contextvars.ContextVar("benchmark", default="?")
_verdicts: list[Verdict] = []


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def describe(kind: str, url: str) -> str:
    """The server's version, where it listens (no user, no password) and whether it can
    compress with lz4: what the figures depend on."""
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SHOW server_version")
        lz4 = await conn.fetchval(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        shared_buffers = await conn.fetchval("SHOW shared_buffers")
    finally:
        await conn.close()
    where = str(Dsn(url)) if kind == BENCH_DSN else "the pgserver wheel"
    return (
        f"{kind}: PostgreSQL {version.split()[0]} ({where}), lz4 {'yes' if lz4 else 'no'},"
        f" shared_buffers {shared_buffers}"
    )


@contextlib.contextmanager
def bench_servers() -> Iterator[list[Server]]:
    """The embedded server (started if need be), then MEDIA_STORE_BENCH_DSN's when set."""
    import asyncio

    from media_store.demo.embedded import DEFAULT_DIR, embedded_url, start_embedded

    urls = [(EMBEDDED, embedded_url(start_embedded(DEFAULT_DIR), "postgres"))]
    if dsn := os.environ.get(BENCH_DSN_ENV):
        urls.append((BENCH_DSN, dsn))
    yield [Server(kind, url, asyncio.run(describe(kind, url))) for kind, url in urls]


@contextlib.contextmanager
def bench_server() -> Iterator[str]:
    """One server's URL, for running a benchmark module on its own: MEDIA_STORE_BENCH_DSN,
    else the embedded server."""
    with bench_servers() as servers:
        server = servers[-1]
        token = _current.set(server)
        try:
            yield server.url
        finally:
            _current.reset(token)


@contextlib.contextmanager
def on_server(server: Server, benchmark: str) -> Iterator[None]:
    """``benchmark`` run inside this records its results and verdicts under ``server``."""
    token = _current.set(server)
    named = _benchmark.set(benchmark)
    try:
        yield
    finally:
        _benchmark.reset(named)
        _current.reset(token)


def current_server() -> Server | None:
    return _current.get()


def judge(name: str, value: float, target: float, *, higher_is_better: bool = True) -> bool:
    """Record a ratio against its target for the current server, print its verdict, and say
    whether it is met. The run's summary judges each target on the worse server."""
    server = _current.get()
    kind = server.kind if server is not None else "?"
    _verdicts.append(Verdict(_benchmark.get(), kind, name, value, target, higher_is_better))
    met = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    print(
        f"  target {name}: {value:.2f} {sign} {target:g} on {kind}: {'met' if met else 'NOT met'}"
    )
    return met


def verdicts() -> list[Verdict]:
    return list(_verdicts)


def summary() -> list[dict[str, Any]]:
    """Each target with its value on every server and the verdict on the worse one."""
    by_name: dict[str, list[Verdict]] = {}
    for verdict in _verdicts:
        by_name.setdefault(verdict.name, []).append(verdict)
    rows = []
    for name, found in by_name.items():
        first = found[0]
        pick = min if first.higher_is_better else max
        # A target judged more than once on one server (rounds, arrangements): its worst.
        per_server: dict[str, float] = {}
        for verdict in found:
            per_server[verdict.server] = (
                pick(per_server[verdict.server], verdict.value)
                if verdict.server in per_server
                else verdict.value
            )
        worse = pick(per_server.values())
        met = worse >= first.target if first.higher_is_better else worse <= first.target
        rows.append(
            {
                "benchmark": first.benchmark,
                "target": name,
                "per_server": per_server,
                "worse": worse,
                "goal": (">= " if first.higher_is_better else "<= ") + f"{first.target:g}",
                "met": met,
            }
        )
    return rows


def machine() -> dict[str, Any]:
    """What the figures ran on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    return {
        "cpu": model or platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


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


def settle() -> None:
    """Collect the process's garbage, outside the clock, before a contender's timed call: a
    full collection costs the whole heap (this process's, every imported library's objects),
    and otherwise falls inside whichever contender's call crosses the collector's threshold,
    mostly for objects earlier rounds and the inputs left (bench_enqueue measures what a call
    leaves to later ones apart)."""
    gc.collect()


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
    """Record ``payload`` as this run's figures of benchmark ``name`` on the current server, in
    benchmarks/results/<name>.json beside the other server's latest figures."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    server = _current.get()
    kind = server.kind if server is not None else "unknown"
    recorded: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        recorded = json.loads(path.read_text())
    servers = recorded.get("servers", {}) if isinstance(recorded.get("servers"), dict) else {}
    if server is not None:
        # A benchmark's main called outside `python -m benchmarks` (a script of one's own)
        # records its server as unknown: not kept beside a named one.
        servers.pop("unknown", None)
    servers[kind] = {
        "server": server.label if server is not None else "unknown",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "targets": [
            {"target": v.name, "value": v.value, "goal": v.target}
            for v in _verdicts
            if v.server == kind and v.benchmark == name
        ],
        **payload,
    }
    path.write_text(json.dumps({"benchmark": name, "servers": servers}, indent=2) + "\n")
    print(f"  results written to {path}")
    return path
