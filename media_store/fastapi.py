"""``media_store.fastapi``: the FastAPI integration's public path (it lives in
:mod:`media_store.contrib.fastapi`; needs the ``fastapi`` extra)."""

from media_store.contrib.fastapi import (
    DEFAULT_RETRY_AFTER_S,
    MAX_ERROR_MESSAGE,
    STATE_KEY,
    StoreDep,
    TransactionDep,
    checked_by,
    exception_handlers,
    get_store,
    lifespan,
    transaction,
)

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
