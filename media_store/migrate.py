"""Schema migrations: yoyo applies the numbered files of ``migrations/``.

Run by an operator (``make migrate`` / ``media-store migrate``) or by tools and tests through
these functions, never implicitly by a worker on start. ``DATABASE_URL`` is one
``postgresql://`` URL: asyncpg takes it as is, and it is translated here for yoyo's
synchronous driver (psycopg 3).

Concurrent runs are serialised by a PostgreSQL advisory lock held on a separate connection
for the whole run, so a second ``migrate`` started at the same moment waits for the first and
then finds nothing left to apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from media_store.config import Dsn
from media_store.errors import DatabaseUnavailable, MediaStoreError
from media_store.resources import migrations_dir

# An arbitrary, fixed advisory-lock key: "media_store migrations".
_LOCK_KEY = 0x6D656469615F6D69
DEFAULT_LOCK_WAIT_S = 120.0


class MigrationError(MediaStoreError):
    """A migration run could not complete; the schema is as the last whole migration left it."""


@dataclass(frozen=True)
class MigrationState:
    id: str
    applied: bool


def yoyo_url(dsn: Dsn) -> str:
    """Translate a ``postgresql://`` URL to the ``postgresql+psycopg://`` form yoyo needs."""
    _scheme, rest = dsn.reveal().split("://", 1)
    return f"postgresql+psycopg://{rest}"


def _connect(dsn: Dsn) -> psycopg.Connection[Any]:
    failure = None
    try:
        return psycopg.connect(dsn.reveal(), autocommit=True)
    except psycopg.Error as exc:
        failure = DatabaseUnavailable(
            f"cannot connect to {dsn}: {dsn.scrub(type(exc).__name__ + ': ' + str(exc))}"
        )
    # Raised outside the handler so that neither __cause__ nor __context__ carries the
    # driver's exception, whose text may quote the URL.
    raise failure


@contextlib.contextmanager
def _serialised(dsn: Dsn, lock_wait_s: float) -> Iterator[None]:
    conn = _connect(dsn)
    try:
        conn.execute(f"SET lock_timeout = {int(lock_wait_s * 1000)}")
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        except psycopg.errors.LockNotAvailable as exc:
            raise MigrationError(
                f"another migration run has held the lock for over {lock_wait_s:.0f}s; "
                "nothing was applied"
            ) from exc
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.close()


@contextlib.contextmanager
def _failing_as(dsn: Dsn, doing: str) -> Iterator[None]:
    # yoyo runs each migration in its own transaction: a failing one is rolled back whole and
    # the ones before it stay applied.
    try:
        yield
    except psycopg.Error as exc:
        raise MigrationError(
            f"{doing} migrations on {dsn} failed: {dsn.scrub(type(exc).__name__ + ': ' + str(exc))}"
        ) from exc


@contextlib.contextmanager
def _backend(dsn: Dsn) -> Iterator[Any]:
    backend = get_backend(yoyo_url(dsn))
    try:
        yield backend
    finally:
        backend.connection.close()


def _migrations(source: Path | None) -> Any:
    return read_migrations(str(source or migrations_dir()))


def migration_ids(source: Path | None = None) -> list[str]:
    """The ids of the migrations this version ships, in the order they apply."""
    return [m.id for m in _migrations(source)]


def apply(
    dsn: Dsn,
    *,
    target: str | None = None,
    source: Path | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
) -> list[str]:
    """Apply every pending migration, in order, or those up to and including ``target``.

    Returns the ids applied (maybe none). Raises :class:`MigrationError` for an unknown
    ``target``, :class:`DatabaseUnavailable` when the database cannot be reached.
    """
    migrations = _migrations(source)
    if target is not None:
        ids = [m.id for m in migrations]
        if target not in ids:
            raise MigrationError(f"no migration {target!r}; known: {', '.join(ids)}")
        migrations = type(migrations)(
            list(migrations)[: ids.index(target) + 1], migrations.post_apply
        )
    with _serialised(dsn, lock_wait_s), _backend(dsn) as backend, backend.lock():
        pending = backend.to_apply(migrations)
        with _failing_as(dsn, "applying"):
            backend.apply_migrations(pending)
        return [m.id for m in pending]


def rollback(
    dsn: Dsn,
    *,
    count: int = 1,
    source: Path | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
) -> list[str]:
    """Revert the latest ``count`` applied migrations (default: exactly one)."""
    if count < 1:
        raise MigrationError(f"count must be >= 1 (got {count})")
    migrations = _migrations(source)
    with _serialised(dsn, lock_wait_s), _backend(dsn) as backend, backend.lock():
        latest = backend.to_rollback(migrations)[:count]
        with _failing_as(dsn, "rolling back"):
            backend.rollback_migrations(latest)
        return [m.id for m in latest]


def status(dsn: Dsn, *, source: Path | None = None) -> list[MigrationState]:
    """Every migration this version ships, in order, and whether it is applied."""
    migrations = _migrations(source)
    _connect(dsn).close()  # a typed, scrubbed error when the database cannot be reached
    with _backend(dsn) as backend:
        applied = backend.get_applied_migration_hashes()
        return [MigrationState(m.id, m.hash in applied) for m in migrations]
