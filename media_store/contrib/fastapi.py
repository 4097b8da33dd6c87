"""FastAPI integration: one Store per process, the repositories or one transaction per request,
and the library's errors as HTTP answers, so that no endpoint writes its own try/except.

    from fastapi import FastAPI
    from media_store.fastapi import StoreDep, TransactionDep, exception_handlers, lifespan

    app = FastAPI(lifespan=lifespan, exception_handlers=exception_handlers())

    @app.get("/jobs/{job_id}")
    async def read_job(job_id: uuid.UUID, store: StoreDep) -> Job:
        ...

Installed with ``pip install media-store[fastapi]``. ``import media_store`` never imports this
module: the core keeps no web dependency.

Who owns what: :func:`lifespan` opens the one :class:`~media_store.store.Store` of the
application at start-up (its pool, sized by :class:`~media_store.config.Settings`), keeps it on
``app.state`` and closes it at shutdown, waiting for borrowed connections. Endpoints never open
or close anything: :data:`StoreDep` gives the pooled repositories (each call borrows a
connection for one statement), :data:`TransactionDep` gives the repositories bound to one
connection in one transaction, committed when the endpoint returns and rolled back when it
raises. The transaction ends before the response is sent (the dependency's ``scope`` is
``"function"``), so a client never receives a success whose commit then failed: a failed commit
is answered like any other error.

The error mapping (:func:`exception_handlers`), by the closest class of the error:

- a request FastAPI refuses (``RequestValidationError``: a bad body, query, path or header)
  and :class:`~media_store.errors.ValidationError`: 422, ``detail`` a list of
  ``{loc, msg, type}``. No error repeats the input: the client has it, ``loc`` points into
  it, and FastAPI's own handler, which echoes it, made a 10 MB answer of a 10 MB string and
  failed (a 500, the connection closed) on a number JSON cannot carry (NaN, Infinity,
  ``1e999``). A library check run on a parameter through :func:`checked_by` is answered
  with the parameter's ``loc``;
- :class:`~media_store.errors.NotFound` (a job, a transcription): 404;
- :class:`~media_store.errors.Conflict`, :class:`~media_store.errors.InvalidTransition`,
  :class:`~media_store.errors.LeaseLost`: 409;
- :class:`~media_store.errors.DatabaseUnavailable` (the server unreachable, the connection
  lost, the pool exhausted): 503 with ``Retry-After``;
- any other :class:`~media_store.errors.MediaStoreError` (:class:`~media_store.errors.DatabaseError`
  and the like): 500 with a fixed message; the error is logged, never shown to the client.

The 4xx answers carry the library's message, which describes the caller's input; the 5xx
answers carry none of the error's text (it may name the server, a SQLSTATE or a constraint).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from media_store.config import Settings
from media_store.db.connections import IsolationLevel
from media_store.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidTransition,
    LeaseLost,
    MediaStoreError,
    NotFound,
    ValidationError,
)
from media_store.store import Repositories, Store

log = logging.getLogger("media_store.fastapi")

# Where the lifespan keeps the application's Store: app.state.media_store.
STATE_KEY: Final = "media_store"
# Seconds a client is told to wait before retrying after a 503.
DEFAULT_RETRY_AFTER_S: Final = 1

UNAVAILABLE_DETAIL: Final = "the database is unavailable; retry later"
INTERNAL_DETAIL: Final = "internal database error"
# The longest msg of a 422 error, in characters: the library's messages abbreviate the values
# they name, but a validator of the application's own may put a whole value in its message.
MAX_ERROR_MESSAGE: Final = 1000

T = TypeVar("T")


@asynccontextmanager
async def lifespan(app: Starlette, settings: Settings | None = None) -> AsyncIterator[None]:
    """Open the application's Store at start-up and close it at shutdown.

    ``FastAPI(lifespan=lifespan)`` reads :meth:`Settings.from_env` (``DATABASE_URL``, the
    ``MEDIA_STORE_POOL_*`` variables); ``functools.partial(lifespan, settings=...)`` passes
    settings. An application with a lifespan of its own enters this one inside it:
    ``async with lifespan(app): yield``.

    Start-up fails, and the server does not start, with
    :class:`~media_store.errors.ConfigurationError` (no or bad ``DATABASE_URL``) or
    :class:`~media_store.errors.DatabaseUnavailable` (the server cannot be reached). Migrations
    are not applied: that is the operator's step (``media-store migrate``).
    """
    store = await Store.open(settings=settings)
    setattr(app.state, STATE_KEY, store)
    try:
        yield
    finally:
        delattr(app.state, STATE_KEY)
        await store.close()


def get_store(connection: HTTPConnection) -> Store:
    """The application's Store (a dependency; :data:`StoreDep` is the annotated form).

    Raises ``RuntimeError`` when the application was not started with :func:`lifespan`."""
    store = getattr(connection.app.state, STATE_KEY, None)
    if not isinstance(store, Store):
        raise RuntimeError(
            "no media_store Store on this application: create it with "
            "FastAPI(lifespan=media_store.fastapi.lifespan), or enter that lifespan in yours"
        )
    return store


# The pooled repositories (store.jobs, store.transcriptions, ...): every call borrows a
# connection for its statement. Also the Store itself, for store.transaction() in a block.
StoreDep = Annotated[Store, Depends(get_store)]


def transaction(
    *, isolation: IsolationLevel = "read_committed", readonly: bool = False
) -> params.Depends:
    """A dependency giving the repositories bound to one connection in one transaction:
    ``Annotated[Repositories, transaction(readonly=True)]``. :data:`TransactionDep` is the
    default (read committed, read-write).

    The transaction commits when the endpoint returns (after its response is built, before it
    is sent) and rolls back when the endpoint, or a dependency after this one, raises, an
    ``HTTPException`` included. The connection is held from the first dependency that needs it
    until the end of the endpoint: keep such endpoints short, and use :data:`StoreDep` for
    single statements.
    """

    async def in_transaction(store: StoreDep) -> AsyncIterator[Repositories]:
        async with store.transaction(isolation=isolation, readonly=readonly) as tx:
            yield tx

    # "function": exit (commit or roll back) when the endpoint returns, not after the
    # response is sent (FastAPI's default since 0.118), which would report a success first.
    return params.Depends(in_transaction, scope="function")


TransactionDep = Annotated[Repositories, transaction()]


def checked_by(check: Callable[[T], object]) -> AfterValidator:
    """Run a library check on a parameter as FastAPI reads it, so that its refusal names the
    parameter: ``after: Annotated[str | None, Query(), checked_by(JobCursor.decode)]``
    answers ``?after=garbage`` with 422 and ``loc: ["query", "after"]``, the library's
    message as ``msg``.

    ``check`` takes the value (after FastAPI's own conversion) and raises
    :class:`~media_store.errors.ValidationError` to refuse it; what it returns is ignored and
    the parameter keeps its value. A missing optional parameter (None) is not checked. The
    same call inside the endpoint would refuse the value too, but with ``loc: []``: the
    library does not know which parameter a value came from; FastAPI does.
    """

    def run(value: T) -> T:
        if value is not None:
            try:
                check(value)
            except ValidationError as exc:
                # A custom error type keeps the message as the library wrote it (a ValueError
                # would be shown as "Value error, ..."); "{reason}" so that braces in the
                # message are not read as a template.
                raise PydanticCustomError("value_error", "{reason}", {"reason": str(exc)}) from exc
        return value

    return AfterValidator(run)


# --- errors as HTTP answers -------------------------------------------------------------------

Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


def exception_handlers(
    retry_after: int = DEFAULT_RETRY_AFTER_S,
) -> dict[int | type[Exception], Handler]:
    """The handlers mapping the library's errors to HTTP, for
    ``FastAPI(exception_handlers=exception_handlers())`` or ``app.add_exception_handler``.

    Starlette picks the handler of the closest class in the error's MRO, so a subclass of a
    mapped error added later (say, a new kind of ``DatabaseUnavailable``) is mapped with it.
    ``retry_after``: the seconds sent in the ``Retry-After`` header of a 503.
    """

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("%s %s: 503, %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": UNAVAILABLE_DETAIL},
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    return {
        RequestValidationError: _request_refused,
        ValidationError: _unprocessable,
        NotFound: _not_found,
        Conflict: _conflict,
        InvalidTransition: _conflict,
        LeaseLost: _conflict,
        DatabaseUnavailable: unavailable,
        MediaStoreError: _internal,
    }


async def _request_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's own handler sends each error whole: its "input" (the refused value: as large
    # as the body, or a float JSON cannot encode, which made the answer itself fail), "ctx"
    # (which may hold an exception object) and "url". Only what names the fault is kept.
    detail = [
        _error(error.get("loc", ()), error.get("msg", ""), error.get("type", "value_error"))
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unprocessable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    # The shape of FastAPI's own 422 (a list of {loc, msg, type}), so that clients read both
    # alike. An argument check names its argument in the message and gives no loc.
    detail = [
        _error(error.get("loc", ()), error.get("msg", ""), "value_error") for error in exc.errors
    ] or [_error((), str(exc), "value_error")]
    return JSONResponse({"detail": detail}, status_code=422)


def _error(loc: object, msg: object, type_: object) -> dict[str, Any]:
    """One error of a 422, of values JSON can always encode: loc a list of str and int."""
    parts = loc if isinstance(loc, tuple | list) else (loc,)
    text = str(msg)
    if len(text) > MAX_ERROR_MESSAGE:
        text = text[: MAX_ERROR_MESSAGE - 1] + "…"
    return {
        "loc": [part if type(part) is int else str(part) for part in parts],
        "msg": text,
        "type": str(type_),
    }


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("%s %s: 500", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": INTERNAL_DETAIL}, status_code=500)


__all__ = [
    "DEFAULT_RETRY_AFTER_S",
    "MAX_ERROR_MESSAGE",
    "STATE_KEY",
    "StoreDep",
    "TransactionDep",
    "checked_by",
    "exception_handlers",
    "get_store",
    "lifespan",
    "transaction",
]
