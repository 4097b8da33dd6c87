"""Schema migrations: yoyo applies the numbered files of ``migrations/``.

Run by an operator (``make migrate`` / ``media-store migrate``) or by tools and tests through
these functions, never implicitly by a worker on start. ``DATABASE_URL`` is one
``postgresql://`` URL: asyncpg takes it as is, and it is translated here for yoyo's
synchronous driver (psycopg 3).

Concurrent runs are serialised by a PostgreSQL advisory lock held on a separate connection
for the whole run, so a second ``migrate`` started at the same moment waits for the first and
then finds nothing left to apply.

Migrations run as the owner role: one that may CREATE in the schema and owns (has the
privileges of the owner of) the tables and functions the migrations made. Workers run as a
runtime role with DML rights only (:mod:`media_store.ops.grants`). Every run first checks its
role's rights (:func:`require_rights`), so that the wrong role gets an error naming the role,
the database and each missing right before yoyo touches anything; yoyo itself would retry its
lock row for ten seconds and then blame a missing ``yoyo_lock`` table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from media_store.config import Dsn
from media_store.db.bundled import migrations_dir
from media_store.errors import DatabaseUnavailable, MediaStoreError

# An arbitrary, fixed advisory-lock key: "media_store migrations".
_LOCK_KEY = 0x6D656469615F6D69
DEFAULT_LOCK_WAIT_S = 120.0

# The tables the migrations create, in the order they first appear. The owner role must own
# them; media_store.ops.grants gives the runtime role DML on exactly these (tests/ops/test_roles.py
# compares the list with a migrated schema).
TABLES = (
    "jobs",
    "media_assets",
    "transcriptions",
    "analysis_results",
    "transcription_word_segments",
    "job_cancel_requests",
)
# Every function the migrations create is named so.
FUNCTION_PREFIX = "media_store_"
# yoyo's own tables, created by the first run in the same schema.
YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")

# Who the connection is, and whether it may create in the schema unqualified names go to
# (NULL when no schema of the search_path exists).
_SESSION = """
SELECT current_user, current_database(), current_schema(),
       coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)
"""

# The tables and functions of the schema that the migrations (or yoyo) made, with their owner,
# whether the connected role has the owner's privileges (as ALTER and DROP require; membership
# counts) and whether it may read and write the table's rows.
_MADE = """
SELECT kind, name, pg_get_userbyid(owner), pg_has_role(owner, 'USAGE'), writable
FROM (
    SELECT 'table' AS kind, c.relname::text AS name, c.relowner AS owner,
           has_table_privilege(c.oid, 'SELECT') AND has_table_privilege(c.oid, 'INSERT')
           AND has_table_privilege(c.oid, 'UPDATE') AND has_table_privilege(c.oid, 'DELETE')
               AS writable
    FROM pg_class AS c
    WHERE c.relnamespace = current_schema()::regnamespace
      AND c.relkind IN ('r', 'p')
      AND c.relname = any(%(tables)s::text[])
    UNION ALL
    SELECT 'function', p.proname::text, p.proowner, NULL
    FROM pg_proc AS p
    WHERE p.pronamespace = current_schema()::regnamespace
      AND starts_with(p.proname::text, %(prefix)s::text)
) AS made
ORDER BY kind DESC, array_position(%(tables)s::text[], name), name
"""


class MigrationError(MediaStoreError):
    """A migration run could not complete; the schema is as the last whole migration left it."""


@dataclass(frozen=True)
class Session:
    """Who a connection is: its role, its database, the schema unqualified names go to (None
    when no schema of the search_path exists) and whether the role may CREATE in it."""

    role: str
    database: str
    schema: str | None
    may_create: bool

    @classmethod
    def of(cls, conn: psycopg.Connection[Any]) -> Session:
        row = conn.execute(_SESSION).fetchone()
        assert row is not None  # the query returns one row
        return cls(*row)


@dataclass(frozen=True)
class MigrationState:
    id: str
    applied: bool


def yoyo_url(dsn: Dsn) -> str:
    """Translate a ``postgresql://`` URL to the ``postgresql+psycopg://`` form yoyo needs."""
    _scheme, rest = dsn.reveal().split("://", 1)
    return f"postgresql+psycopg://{rest}"


def connect(dsn: Dsn) -> psycopg.Connection[Any]:
    """A synchronous autocommit connection (the caller closes it). Raises
    :class:`DatabaseUnavailable` with the URL's password scrubbed, chaining nothing."""
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


def require_rights(conn: psycopg.Connection[Any], *, changing: bool) -> Session:
    """Check that ``conn``'s role may run migrations, changing nothing.

    Every run keeps yoyo's records: it reads and writes yoyo's tables, or creates them (which
    needs CREATE on the schema) in a database never migrated. A run that applies or reverts a
    migration (``changing``) also needs CREATE on the schema and the privileges of the owner of
    everything the migrations made: the owner role. So a runtime role is refused, and a role
    that keeps the records but does not own the schema may run a ``migrate`` that finds
    nothing to do.

    Raises :class:`MigrationError` naming the role, the database and every missing right.
    """
    who = Session.of(conn)
    if who.schema is None:
        raise MigrationError(
            f"role {who.role} cannot run migrations in database {who.database}: no schema of "
            f"its search_path exists; nothing was changed"
        )
    params = {"tables": list(TABLES + YOYO_TABLES), "prefix": FUNCTION_PREFIX}
    made = conn.execute(_MADE, params).fetchall()
    yoyo = [row for row in made if row[1] in YOYO_TABLES]
    unwritable = [name for _kind, name, _owner, _owned, writable in yoyo if not writable]
    not_owned = [(kind, name, owner) for kind, name, owner, owned, _ in made if not owned]
    owners = list(dict.fromkeys(owner for *_, owner in not_owned))

    # Each missing right, and whether a run that changes nothing needs it too.
    missing: list[tuple[str, bool]] = []
    if not who.may_create:
        missing.append(
            ("it may not create tables there (no CREATE privilege)", len(yoyo) < len(YOYO_TABLES))
        )
    if unwritable:
        missing.append((f"it may not write yoyo's migration records ({abridge(unwritable)})", True))
    if not_owned:
        kind, name, _owner = not_owned[0]
        more = f" and {len(not_owned) - 1} more" if len(not_owned) > 1 else ""
        missing.append((f"it does not own {kind} {name}{more} (owner: {', '.join(owners)})", False))
    if any(needed or changing for _right, needed in missing):
        owner_role = f" ({', '.join(owners)})" if owners else ""
        raise MigrationError(
            f"role {who.role} cannot run migrations in schema {who.schema} of database "
            f"{who.database}: {'; '.join(right for right, _ in missing)}. Migrations run as the "
            f"owner role{owner_role}, not as a runtime role; nothing was changed"
        )
    return who


def abridge(items: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``items`` and how many more, for a message."""
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class _Run:
    """A run holding the advisory lock, on ``conn``, as ``who``."""

    conn: psycopg.Connection[Any]
    who: Session

    def require_owner(self) -> None:
        """Before applying or reverting: the owner role's rights (see require_rights)."""
        require_rights(self.conn, changing=True)


@contextlib.contextmanager
def _serialised(dsn: Dsn, lock_wait_s: float) -> Iterator[_Run]:
    conn = connect(dsn)
    try:
        who = require_rights(conn, changing=False)
        conn.execute(f"SET lock_timeout = {int(lock_wait_s * 1000)}")
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        except psycopg.errors.LockNotAvailable as exc:
            raise MigrationError(
                f"another migration run has held the lock for over {lock_wait_s:.0f}s; "
                "nothing was applied"
            ) from exc
        try:
            yield _Run(conn, who)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.close()


@contextlib.contextmanager
def _failing_as(dsn: Dsn, doing: str, who: Session) -> Iterator[None]:
    # yoyo runs each migration in its own transaction: a failing one is rolled back whole and
    # the ones before it stay applied.
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        # Past require_rights: a migration needs a right the owner role lacks (or the rights
        # changed meanwhile).
        raise MigrationError(
            f"{doing} migrations on {dsn} failed: role {who.role} lacks a privilege in schema "
            f"{who.schema} of database {who.database}: {dsn.scrub(str(exc))}"
        ) from exc
    except psycopg.Error as exc:
        raise MigrationError(
            f"{doing} migrations on {dsn} failed: {dsn.scrub(type(exc).__name__ + ': ' + str(exc))}"
        ) from exc
    except LockTimeout as exc:
        # yoyo's own lock row, left by a killed run or held by a plain yoyo client (runs of
        # this module are serialised by the advisory lock before they reach it).
        raise MigrationError(
            f"{doing} migrations on {dsn}: yoyo_lock holds another run's lock row ({exc}); "
            f"nothing was done"
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
    ``target``, for a role without the rights the run needs (see :func:`require_rights`), for a
    failing migration; :class:`DatabaseUnavailable` when the database cannot be reached.
    """
    migrations = _migrations(source)
    if target is not None:
        ids = [m.id for m in migrations]
        if target not in ids:
            raise MigrationError(f"no migration {target!r}; known: {', '.join(ids)}")
        migrations = type(migrations)(
            list(migrations)[: ids.index(target) + 1], migrations.post_apply
        )
    with (
        _serialised(dsn, lock_wait_s) as run,
        _failing_as(dsn, "applying", run.who),
        _backend(dsn) as backend,
        backend.lock(),
    ):
        pending = backend.to_apply(migrations)
        if pending:
            run.require_owner()
        backend.apply_migrations(pending)
        return [m.id for m in pending]


def rollback(
    dsn: Dsn,
    *,
    count: int = 1,
    source: Path | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
) -> list[str]:
    """Revert the latest ``count`` applied migrations (default: exactly one). Raises as
    :func:`apply` does."""
    if count < 1:
        raise MigrationError(f"count must be >= 1 (got {count})")
    migrations = _migrations(source)
    with (
        _serialised(dsn, lock_wait_s) as run,
        _failing_as(dsn, "rolling back", run.who),
        _backend(dsn) as backend,
        backend.lock(),
    ):
        latest = backend.to_rollback(migrations)[:count]
        if latest:
            run.require_owner()
        backend.rollback_migrations(latest)
        return [m.id for m in latest]


def status(dsn: Dsn, *, source: Path | None = None) -> list[MigrationState]:
    """Every migration this version ships, in order, and whether it is applied. Needs the
    rights to keep yoyo's records (see :func:`require_rights`): yoyo creates or upgrades its
    own tables before reading them, under a lock row it writes."""
    migrations = _migrations(source)
    # Also the typed, scrubbed error when the database cannot be reached.
    with contextlib.closing(connect(dsn)) as conn:
        who = require_rights(conn, changing=False)
    with _failing_as(dsn, "reading", who), _backend(dsn) as backend:
        applied = backend.get_applied_migration_hashes()
        return [MigrationState(m.id, m.hash in applied) for m in migrations]
