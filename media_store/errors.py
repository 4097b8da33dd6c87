"""The library's exceptions, and the one place where driver errors become them.

Driver errors are matched on their class (SQLSTATE), severity and constraint name, never on
message text. Every error translated from a statement keeps the driver error as ``__cause__``;
errors of connecting (opening a pool, or a pool opening a connection) do not, because the
driver's frames hold the connection parameters, the password among them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import asyncpg

# Constraint and rule names the code matches on. They are created by migrations/0001.
JOB_TRANSITION_RULE = "jobs_status_transition"
JOB_FOREIGN_KEYS = frozenset(
    {
        "media_assets_job_id_fkey",
        "transcriptions_job_id_fkey",
        "analysis_results_job_id_fkey",
    }
)


class MediaStoreError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(MediaStoreError):
    """The library was given no usable configuration (e.g. no DSN)."""


class ValidationError(MediaStoreError, ValueError):
    """Bad input, refused before anything was written (or refused by a constraint).

    ``errors`` holds one entry per problem: ``{"loc": ..., "msg": ...}``.
    """

    def __init__(self, message: str, errors: list[Mapping[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[Mapping[str, object]] = list(errors or [])


class NotFound(MediaStoreError, LookupError):
    """A row the operation needs does not exist."""


class JobNotFound(NotFound):
    """The job does not exist (or was deleted)."""

    def __init__(self, job_id: uuid.UUID | None, message: str | None = None) -> None:
        super().__init__(message or f"job {job_id} does not exist")
        self.job_id = job_id


class InvalidTransition(MediaStoreError):
    """The job lifecycle forbids this status change; nothing was changed."""

    def __init__(self, job_id: uuid.UUID | None, current: str | None, target: str) -> None:
        super().__init__(f"job {job_id} cannot move from {current} to {target}")
        self.job_id = job_id
        self.current = current
        self.target = target


class LeaseLost(MediaStoreError):
    """The worker no longer holds the job's lease; nothing was changed."""

    def __init__(self, job_id: uuid.UUID, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} does not hold the lease on job {job_id}")
        self.job_id = job_id
        self.worker_id = worker_id


class JobCancelled(LeaseLost):
    """The job was cancelled while the worker held it: its outcome (completion, failure) is
    refused and nothing was changed. A :class:`LeaseLost`, since the worker no longer holds
    it."""

    def __init__(self, job_id: uuid.UUID, worker_id: str) -> None:
        MediaStoreError.__init__(
            self, f"job {job_id} was cancelled while worker {worker_id!r} held it"
        )
        self.job_id = job_id
        self.worker_id = worker_id


class Conflict(MediaStoreError):
    """The write conflicts with existing data (unique key, overlapping append, ...)."""


class DuplicateJob(Conflict):
    """Another job holds the idempotency key (a creation asked to raise rather than return
    it); nothing was written. ``job_id`` and ``status`` are the holder's, ``index`` the
    position of the refused item in a batch (None for one job)."""

    def __init__(self, key: str, job_id: uuid.UUID, status: str, index: int | None = None) -> None:
        where = "" if index is None else f"item {index}: "
        super().__init__(f"{where}job {job_id} ({status}) holds the idempotency key {key!r}")
        self.key = key
        self.job_id = job_id
        self.status = status
        self.index = index


class JobNotPending(MediaStoreError):
    """The operation applies to pending jobs only and the job is not pending; nothing was
    changed."""

    def __init__(self, job_id: uuid.UUID, status: str) -> None:
        super().__init__(f"job {job_id} is {status}, not pending")
        self.job_id = job_id
        self.status = status


class TranscriptionNotFound(NotFound):
    """The transcription does not exist (or was deleted)."""

    def __init__(self, transcription_id: uuid.UUID) -> None:
        super().__init__(f"transcription {transcription_id} does not exist")
        self.transcription_id = transcription_id


class WordOrderConflict(Conflict):
    """An appended batch starts before the last stored word starts; nothing was written.

    The rule: a batch may be appended when its first word starts at or after the start of
    the last word stored (the same non-decreasing-start rule as within one batch, so the
    words of a transcription are always what a single valid batch could have held).
    """

    def __init__(self, transcription_id: uuid.UUID, stored_last_start: float, first: float):
        super().__init__(
            f"transcription {transcription_id}: the appended batch starts at {first}, before "
            f"the last stored word (start {stored_last_start})"
        )
        self.transcription_id = transcription_id
        self.stored_last_start = stored_last_start
        self.first_start = first


class DatabaseUnavailable(MediaStoreError, ConnectionError):
    """The database could not be reached or the connection was lost."""


class PoolExhausted(DatabaseUnavailable):
    """No connection of the pool became free within the acquire timeout: every one is held
    (by long or stuck transactions, or more concurrent callers than the pool's size).

    Retrying later may succeed; a pool that is often exhausted is too small, or something
    holds its connections too long (``MEDIA_STORE_POOL_ACQUIRE_TIMEOUT``,
    ``MEDIA_STORE_POOL_MAX_SIZE``).
    """

    def __init__(self, max_size: int, timeout: float | None) -> None:
        super().__init__(
            f"connection pool exhausted: all {max_size} connections stayed in use for "
            f"{timeout} s (the acquire timeout, MEDIA_STORE_POOL_ACQUIRE_TIMEOUT); raise "
            f"MEDIA_STORE_POOL_MAX_SIZE or release connections sooner"
        )
        self.max_size = max_size
        self.timeout = timeout


class PreparedStatementConflict(ConfigurationError):
    """The server did not find (or found another) prepared statement where the driver's cache
    put one: a pooler in transaction mode (PgBouncer) sits between the library and PostgreSQL
    and the statement cache is on. Retrying does not help; the configuration must change."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(
            f"prepared statement conflict ({sqlstate}): statements prepared on one server "
            f"connection were used on another, as happens behind a connection pooler in "
            f"transaction mode (PgBouncer). Set MEDIA_STORE_STATEMENT_CACHE_SIZE=0 "
            f"(Settings.statement_cache_size=0), or leave it unset (auto) so media_store "
            f"detects the pooler"
        )
        self.sqlstate = sqlstate


class DatabaseError(MediaStoreError):
    """Any other database failure."""


class DatabaseTimeout(DatabaseError):
    """The server gave up on a statement after a time limit of its own; the statement did
    nothing (its transaction, if the caller opened one, must be rolled back), the connection
    stays usable, and the call may be retried: :class:`StatementTimeout` or
    :class:`LockTimeout`, told apart by SQLSTATE. A :class:`DatabaseError`, as these were
    before they had a class of their own, so ``except DatabaseError`` still catches them.

    Not the client's ``command_timeout`` (``Settings.command_timeout``): that one is the
    driver's, and a plain :class:`DatabaseError` ("database command timed out").
    """

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class StatementTimeout(DatabaseTimeout):
    """SQLSTATE 57014 (query_canceled): the server cancelled the statement, as
    ``statement_timeout`` does when a statement runs longer. A cancel request from another
    session (``pg_cancel_backend``) ends a statement with the same SQLSTATE, and only the
    message, which is never matched, tells them apart; either way the statement did nothing."""


class LockTimeout(DatabaseTimeout):
    """SQLSTATE 55P03 (lock_not_available): a lock the statement needed stayed held by
    another transaction for longer than ``lock_timeout`` (or at once, under ``NOWAIT``)."""


class ReadOnlyError(DatabaseError):
    """A write reached a session that refuses writes: a hot standby, a connection of the
    Store's read-replica pools (read-only sessions whatever the server is), or a read-only
    transaction. Nothing was written; writes belong on the primary (``store.jobs`` etc.)."""


# Everything a driver call can raise that translate() turns into a library error.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    OSError,
)


def connection_lost(executor: object) -> bool:
    """True when ``executor`` (a pool, a connection or a pooled connection) has lost its
    server connection. asyncpg detaches a pooled connection whose socket died, after which
    every call on it raises InterfaceError; this tells that case from misuse."""
    if isinstance(executor, asyncpg.pool.PoolConnectionProxy):
        # No public accessor: a detached proxy has dropped its connection (asyncpg 0.29-0.32).
        con = getattr(executor, "_con", None)
        return con is None or bool(con.is_closed())
    if isinstance(executor, asyncpg.Connection):
        return bool(executor.is_closed())
    return False


# What the server says when a statement name the driver cached means nothing, or something
# else, on the server connection the statement reached (see PreparedStatementConflict).
_STATEMENT_CACHE_CONFLICTS = (
    asyncpg.InvalidSQLStatementNameError,  # 26000: prepared statement does not exist
    asyncpg.DuplicatePreparedStatementError,  # 42P05: prepared statement already exists
)


def _severity(exc: asyncpg.PostgresError) -> str | None:
    # severity_en is never localized (PostgreSQL >= 9.6); poolers send only severity.
    return exc.severity_en or exc.severity


def translate(exc: BaseException, executor: object = None) -> MediaStoreError:
    """Map a driver (or socket) exception to a :class:`MediaStoreError`.

    ``executor`` is what the failed call ran on, if known. The caller raises the result
    ``from exc``. An ``InternalClientError`` (the driver lost track of the protocol state,
    as when the server's termination notice arrives on an idle connection) means the
    connection cannot be used again: :class:`DatabaseUnavailable`, and the caller
    (:mod:`media_store.db`) closes the connection so the pool replaces it.
    """
    if isinstance(exc, MediaStoreError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        constraint = getattr(exc, "constraint_name", None)
        if isinstance(exc, _STATEMENT_CACHE_CONFLICTS):
            return PreparedStatementConflict(exc.sqlstate)
        if isinstance(exc, asyncpg.ProtocolViolationError) and _severity(exc) == "ERROR":
            # 08P01 as a plain ERROR leaves the session alive: the server refused one message,
            # as a Bind to a cached statement that is another one on this server connection
            # ("bind message supplies 0 parameters"). A pooler's own 08P01 errors (timeouts,
            # limits) are FATAL and end the session: those are outages, below.
            return PreparedStatementConflict(exc.sqlstate)
        if isinstance(exc, asyncpg.ForeignKeyViolationError) and constraint in JOB_FOREIGN_KEYS:
            return JobNotFound(None, "the job this row belongs to does not exist")
        if isinstance(exc, asyncpg.CheckViolationError) and constraint == JOB_TRANSITION_RULE:
            return InvalidTransition(None, None, "a status the lifecycle forbids")
        if isinstance(exc, asyncpg.UniqueViolationError):
            return Conflict(f"duplicate key violates {constraint}")
        if isinstance(
            exc,
            asyncpg.CheckViolationError
            | asyncpg.NotNullViolationError
            | asyncpg.ForeignKeyViolationError,
        ):
            return ValidationError(f"refused by constraint {constraint}")
        if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):  # 25006
            return ReadOnlyError(
                f"a write reached a read-only session ({exc.sqlstate}: a standby, a replica "
                f"connection or a read-only transaction)"
            )
        if isinstance(exc, asyncpg.DataError):  # SQLSTATE class 22
            return ValidationError(f"refused by the database: {exc.sqlstate}")
        if isinstance(exc, _UNAVAILABLE):
            return DatabaseUnavailable(f"database connection lost ({exc.sqlstate})")  # type: ignore[union-attr]
        # Both server-side: the driver's own timeout (command_timeout) and a cancellation of
        # the caller's task send the server a cancel too, but the driver then raises
        # TimeoutError (below) or CancelledError (never translated) and drops the server's
        # 57014 answer, so a 57014 that reaches here is the server's own doing.
        if isinstance(exc, asyncpg.QueryCanceledError):  # 57014
            return StatementTimeout(
                f"statement cancelled by the server ({exc.sqlstate}: statement_timeout, or a "
                f"cancel request)",
                exc.sqlstate,
            )
        if isinstance(exc, asyncpg.LockNotAvailableError):  # 55P03
            return LockTimeout(
                f"a lock was not available in time ({exc.sqlstate}: lock_timeout, or NOWAIT)",
                exc.sqlstate,
            )
        return DatabaseError(f"database error {exc.sqlstate}: {type(exc).__name__}")
    # Before _UNAVAILABLE: TimeoutError is an OSError, but a command timeout is no outage.
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return DatabaseError("database command timed out")
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"database connection lost: {type(exc).__name__}")
    if isinstance(exc, asyncpg.InternalClientError):
        return DatabaseUnavailable(
            "database connection broken: the driver lost track of the protocol "
            "(InternalClientError), as after the server ended the session"
        )
    if isinstance(exc, asyncpg.InterfaceError) and connection_lost(executor):
        return DatabaseUnavailable(f"database connection lost: {type(exc).__name__}")
    if isinstance(exc, asyncpg.InterfaceError):
        # Misuse of a connection (closed, released, busy): a bug in the caller, not an outage.
        return DatabaseError(f"connection misuse: {type(exc).__name__}")
    return DatabaseError(f"unexpected driver error: {type(exc).__name__}")


def connection_broken(exc: BaseException) -> bool:
    """True when, after ``exc``, the connection the statement ran on must not be used again
    even though its socket may still be open (see :func:`translate`)."""
    return isinstance(exc, asyncpg.InternalClientError)
