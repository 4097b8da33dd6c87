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

Every statement of a migration runs under a short ``lock_timeout`` (:class:`LockPolicy`). DDL
asks for ACCESS EXCLUSIVE locks, and PostgreSQL queues every later lock request on the table
behind a waiting one: a migration stuck behind one long transaction (a report holding
``jobs``) would stop every worker's claim, heartbeat and completion for as long as it waited.
With the timeout a migration waits at most ``timeout_s`` at a time, is rolled back whole, and
is tried again after a pause in which the workers run; after ``retries`` retries it gives up
with :class:`MigrationLockTimeout`, naming the sessions that held the lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from media_store.config import Dsn
from media_store.db.bundled import migrations_dir
from media_store.errors import DatabaseUnavailable, MediaStoreError

log = logging.getLogger(__name__)
_N = TypeVar("_N", int, float)

# An arbitrary, fixed advisory-lock key: "media_store migrations".
_LOCK_KEY = 0x6D656469615F6D69
# How long a run waits for another migration run (the advisory lock): nothing else waits on
# that lock, so a long wait harms no one.
DEFAULT_LOCK_WAIT_S = 120.0

# The variables LockPolicy.from_env reads (kept here, not in media_store.config: they concern
# only the operator's migration runs, never a worker).
LOCK_TIMEOUT_ENV = "MEDIA_STORE_MIGRATION_LOCK_TIMEOUT"
LOCK_RETRIES_ENV = "MEDIA_STORE_MIGRATION_LOCK_RETRIES"
# A pause between attempts never grows past this: an operator waiting for a deploy should see
# it end or fail within minutes.
_MAX_PAUSE_S = 30.0
# What the migration connections call themselves in pg_stat_activity, unless the URL names
# them: an operator looking for what holds up the workers finds "media-store migrations".
APPLICATION_NAME = "media-store migrations"

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
    "job_trace_contexts",
    "transcription_word_search",
    "transcription_search_configs",
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


class MigrationLockTimeout(MigrationError):
    """A migration could not get its locks within the policy's attempts; it was rolled back
    whole (the migrations of the run before it stay applied, listed in ``done``).

    ``blockers`` are the sessions that held locks on the schema's tables for longer than the
    lock timeout when the run gave up: the likely cause.
    """

    def __init__(
        self, message: str, *, migration: str, done: list[str], blockers: list[Blocker]
    ) -> None:
        super().__init__(message)
        self.migration = migration
        self.done = done
        self.blockers = blockers


@dataclass(frozen=True)
class LockPolicy:
    """How a migration waits for the locks its statements need.

    Each attempt runs the migration under ``lock_timeout = timeout_s``: a statement that cannot
    get its lock by then fails, and the migration's transaction is rolled back, releasing the
    queue of workers that formed behind its lock request. After attempt ``n`` (from 1) the run
    pauses ``timeout_s * 2**(n-1)`` seconds (at most 30), so the workers get at least as much
    time to run as they were held up, then tries again, ``retries`` times in all. The longest a
    migration can wait for locks is ``worst_case_s``; a worker is held up at most
    ``timeout_s`` at a time.
    """

    timeout_s: float = 3.0
    retries: int = 3

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise MigrationError(f"the lock timeout must be > 0 seconds (got {self.timeout_s})")
        if self.retries < 0:
            raise MigrationError(f"lock retries must be >= 0 (got {self.retries})")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> LockPolicy:
        """The policy of ``MEDIA_STORE_MIGRATION_LOCK_TIMEOUT`` (seconds) and
        ``MEDIA_STORE_MIGRATION_LOCK_RETRIES`` (a count), each overridden by the argument
        given (a command-line option), else the defaults. Raises :class:`MigrationError` for
        a value that is not a number or out of range."""
        env = os.environ if env is None else env
        default = cls()
        if timeout_s is None:
            timeout_s = _number(env, LOCK_TIMEOUT_ENV, float, default.timeout_s)
        if retries is None:
            retries = _number(env, LOCK_RETRIES_ENV, int, default.retries)
        return cls(timeout_s=timeout_s, retries=retries)

    def pause_after(self, attempt: int) -> float:
        """The pause after failed attempt ``attempt`` (counted from 1)."""
        return min(self.timeout_s * 2.0 ** (attempt - 1), _MAX_PAUSE_S)

    @property
    def worst_case_s(self) -> float:
        """The longest one migration can take to give up (its statements' own work aside)."""
        attempts = self.retries + 1
        return attempts * self.timeout_s + sum(map(self.pause_after, range(1, attempts)))

    @property
    def timeout_ms(self) -> int:
        return max(1, round(self.timeout_s * 1000))  # 0 would mean no timeout at all


def _number(env: Mapping[str, str], name: str, kind: Callable[[str], _N], default: _N) -> _N:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise MigrationError(f"{name} must be {what}, got {raw!r}") from None


@dataclass(frozen=True)
class Blocker:
    """A session holding locks on the schema's tables in a transaction older than the lock
    timeout. ``transaction_s`` and ``state`` are None when the role may not see them (another
    role's session, without pg_read_all_stats)."""

    pid: int
    application: str
    role: str | None
    state: str | None
    transaction_s: float | None
    tables: tuple[str, ...]

    def describe(self) -> str:
        held = (
            "transaction age unknown"
            if self.transaction_s is None
            else f"in a transaction for {self.transaction_s:.0f}s"
        )
        state = f", {self.state}" if self.state else ""
        return (
            f"pid {self.pid} (application {self.application or '(none)'!r}, role "
            f"{self.role or '(unknown)'}, {held}{state}, holding {abridge(list(self.tables))})"
        )


# Sessions other than this one holding a granted lock on a table (or index) of the current
# schema, in a transaction opened longer ago than the lock timeout: a migration that timed out
# waited that long, so whatever it waited for is among them. A worker's short transactions are
# not. Sessions of other roles show no transaction start without pg_read_all_stats: listed.
_BLOCKERS = """
SELECT a.pid, coalesce(a.application_name, ''), a.usename::text, a.state,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
       array_agg(DISTINCT coalesce(i.indrelid, c.oid)::regclass::text
                 ORDER BY coalesce(i.indrelid, c.oid)::regclass::text)
FROM pg_locks AS l
JOIN pg_class AS c ON c.oid = l.relation
LEFT JOIN pg_index AS i ON i.indexrelid = c.oid
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND c.relnamespace = current_schema()::regnamespace
  AND l.pid <> pg_backend_pid()
  AND (a.xact_start IS NULL
       OR a.xact_start <= clock_timestamp() - %(timeout_ms)s * interval '1 millisecond')
GROUP BY a.pid, a.application_name, a.usename, a.state, a.xact_start
ORDER BY a.xact_start NULLS LAST, a.pid
"""


def blockers(conn: psycopg.Connection[Any], policy: LockPolicy) -> list[Blocker]:
    """The sessions likely to have held up a migration on ``conn``'s database (see _BLOCKERS)."""
    rows = conn.execute(_BLOCKERS, {"timeout_ms": policy.timeout_ms}).fetchall()
    return [
        Blocker(pid, app, role, state, age, tuple(tables))
        for pid, app, role, state, age, tables in rows
    ]


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


def yoyo_url(dsn: Dsn, policy: LockPolicy | None = None) -> str:
    """Translate a ``postgresql://`` URL to the ``postgresql+psycopg://`` form yoyo needs.

    With a ``policy``, its lock timeout joins the URL's ``options`` (startup parameters): yoyo
    opens a new connection for every migration, so only a setting in the URL reaches them all,
    and a startup parameter survives the ROLLBACK that undoes a ``SET`` made in a transaction.
    """
    _scheme, rest = dsn.reveal().split("://", 1)
    if policy is not None:
        base, _, query = rest.partition("?")
        args = dict(parse_qsl(query, keep_blank_values=True))
        setting = f"-c lock_timeout={policy.timeout_ms}"
        args["options"] = f"{args['options']} {setting}" if args.get("options") else setting
        args.setdefault("application_name", APPLICATION_NAME)
        rest = f"{base}?{urlencode(args, quote_via=quote)}"
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
def _backend(dsn: Dsn, policy: LockPolicy | None = None) -> Iterator[Any]:
    backend = get_backend(yoyo_url(dsn, policy))
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
    locks: LockPolicy | None = None,
) -> list[str]:
    """Apply every pending migration, in order, or those up to and including ``target``.

    Each migration waits for its locks as ``locks`` says (default: :meth:`LockPolicy.from_env`).
    Returns the ids applied (maybe none). Raises :class:`MigrationLockTimeout` when a migration
    could not get its locks (it is rolled back whole; those before it stay applied),
    :class:`MigrationError` for an unknown ``target``, for a role without the rights the run
    needs (see :func:`require_rights`), for a failing migration; :class:`DatabaseUnavailable`
    when the database cannot be reached.
    """
    policy = locks or LockPolicy.from_env()
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
        _backend(dsn, policy) as backend,
        backend.lock(),
    ):
        pending = backend.to_apply(migrations)
        if pending:
            run.require_owner()
        done: list[str] = []
        for migration in pending:
            _patiently(run, dsn, policy, "applying", migration, done, backend.apply_one)
        if done:
            backend.run_post_apply(pending)
        return done


def rollback(
    dsn: Dsn,
    *,
    count: int = 1,
    source: Path | None = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    locks: LockPolicy | None = None,
) -> list[str]:
    """Revert the latest ``count`` applied migrations (default: exactly one), each waiting for
    its locks as ``locks`` says (see :func:`apply`). Raises as :func:`apply` does."""
    policy = locks or LockPolicy.from_env()
    if count < 1:
        raise MigrationError(f"count must be >= 1 (got {count})")
    migrations = _migrations(source)
    with (
        _serialised(dsn, lock_wait_s) as run,
        _failing_as(dsn, "rolling back", run.who),
        _backend(dsn, policy) as backend,
        backend.lock(),
    ):
        latest = backend.to_rollback(migrations)[:count]
        if latest:
            run.require_owner()
        done: list[str] = []
        for migration in latest:
            _patiently(run, dsn, policy, "rolling back", migration, done, backend.rollback_one)
        return done


def _patiently(
    run: _Run,
    dsn: Dsn,
    policy: LockPolicy,
    doing: str,
    migration: Any,
    done: list[str],
    step: Any,
) -> None:
    """Run ``step(migration)`` (yoyo's apply_one or rollback_one) under the lock policy and
    append its id to ``done``; raise :class:`MigrationLockTimeout` once the attempts are spent.

    A lock timeout fails the statement, and yoyo rolls the migration's transaction back whole,
    so an attempt either did everything or nothing and the next one starts clean.
    """
    migration.load()  # use_transactions is known once the file is read
    attempt = 1
    while True:
        try:
            step(migration)
        except psycopg.errors.LockNotAvailable:
            if not migration.use_transactions or attempt > policy.retries:
                break
            pause = policy.pause_after(attempt)
            log.warning(
                "%s %s: no lock within %.1fs (attempt %d of %d); trying again in %.1fs",
                doing,
                migration.id,
                policy.timeout_s,
                attempt,
                policy.retries + 1,
                pause,
            )
            time.sleep(pause)
            attempt += 1
        else:
            done.append(migration.id)
            return
    # Outside the handler: the driver's error adds nothing the message does not say.
    held = blockers(run.conn, policy)
    raise MigrationLockTimeout(
        _gave_up(dsn, policy, doing, migration, attempt, done, held),
        migration=migration.id,
        done=list(done),
        blockers=held,
    )


def _gave_up(
    dsn: Dsn,
    policy: LockPolicy,
    doing: str,
    migration: Any,
    attempts: int,
    done: list[str],
    held: list[Blocker],
) -> str:
    if held:
        cause = "held up by " + "; ".join(b.describe() for b in held)
        pids = ", ".join(str(b.pid) for b in held)
        remedy = (
            f"let that transaction finish, or end it (SELECT pg_terminate_backend(pid) for pid "
            f"{pids}), then run again"
        )
    else:
        cause = (
            "the session that held the lock is gone or could not be seen (look in pg_locks "
            "and pg_stat_activity)"
        )
        remedy = "run again"
    if migration.use_transactions:
        undone = (
            f"nothing of {migration.id} was applied"
            if doing == "applying"
            else f"{migration.id} is still applied (its rollback was undone whole)"
        )
    else:
        # A migration outside a transaction is not retried: yoyo undid the statements it had
        # run through their rollback steps, which may not restore everything.
        undone = (
            f"{migration.id} runs outside a transaction: not retried, its completed statements "
            f"were reverted by its rollback steps"
        )
    before = f"; earlier in this run: {', '.join(done)} (kept)" if done else ""
    return (
        f"{doing} {migration.id} on {dsn}: gave up after {attempts} attempt(s), each waiting "
        f"{policy.timeout_s:g}s for a lock (lock_timeout); {cause}. {undone}{before}. To go "
        f"on, {remedy}, or allow longer waits with --lock-timeout/--lock-retries "
        f"({LOCK_TIMEOUT_ENV}/{LOCK_RETRIES_ENV}), which hold up the workers' statements as "
        f"long at each attempt"
    )


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
