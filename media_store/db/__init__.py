"""The asyncpg plumbing: pools and connections with their codecs (:mod:`.connections`), the one
execution boundary every statement, borrow, transaction and COPY goes through
(:mod:`.boundary`), and the loader of the named queries in ``sql/`` (:mod:`.queries`)."""

from media_store.db.boundary import (
    RoutedExecutor,
    Target,
    borrowed,
    copy_records,
    listening,
    run,
    statement,
    transaction,
)
from media_store.db.connections import (
    Connection,
    Executor,
    IsolationLevel,
    ManagedPool,
    Pool,
    PooledConnection,
    connect,
    create_pool,
    init_connection,
)

__all__ = [
    "Connection",
    "Executor",
    "IsolationLevel",
    "ManagedPool",
    "Pool",
    "PooledConnection",
    "RoutedExecutor",
    "Target",
    "borrowed",
    "connect",
    "copy_records",
    "create_pool",
    "init_connection",
    "listening",
    "run",
    "statement",
    "transaction",
]
