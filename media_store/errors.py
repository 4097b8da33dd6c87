"""The library's exceptions, and the one place where driver errors become them.

Driver errors are matched on their class (SQLSTATE) and constraint name, never on message
text. Every translated error keeps the driver error as ``__cause__``.
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


class Conflict(MediaStoreError):
    """The write conflicts with existing data (unique key, overlapping append, ...)."""


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


class DatabaseError(MediaStoreError):
    """Any other database failure."""


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


def translate(exc: BaseException, executor: object = None) -> MediaStoreError:
    """Map a driver (or socket) exception to a :class:`MediaStoreError`.

    ``executor`` is what the failed call ran on, if known. The caller raises the result
    ``from exc``.
    """
    if isinstance(exc, MediaStoreError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        constraint = getattr(exc, "constraint_name", None)
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
        if isinstance(exc, asyncpg.DataError):  # SQLSTATE class 22
            return ValidationError(f"refused by the database: {exc.sqlstate}")
        if isinstance(exc, _UNAVAILABLE):
            return DatabaseUnavailable(f"database connection lost ({exc.sqlstate})")  # type: ignore[union-attr]
        if isinstance(exc, asyncpg.QueryCanceledError):
            return DatabaseError(f"query cancelled or timed out ({exc.sqlstate})")
        return DatabaseError(f"database error {exc.sqlstate}: {type(exc).__name__}")
    # Before _UNAVAILABLE: TimeoutError is an OSError, but a command timeout is no outage.
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return DatabaseError("database command timed out")
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"database connection lost: {type(exc).__name__}")
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError) and connection_lost(
        executor
    ):
        return DatabaseUnavailable(f"database connection lost: {type(exc).__name__}")
    if isinstance(exc, asyncpg.InterfaceError):
        # Misuse of a connection (closed, released, busy): a bug in the caller, not an outage.
        return DatabaseError(f"connection misuse: {type(exc).__name__}")
    return DatabaseError(f"unexpected driver error: {type(exc).__name__}")
