"""Table health, for the metrics (:mod:`media_store.metrics`) and operators: dead tuples and
last autovacuum, size with indexes, and the oldest open transaction (what keeps vacuum from
removing dead tuples). Only statistics views and catalogs are read. Same order as
sql/health.sql.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from media_store.db.queries import Query, query
from media_store.repositories.base import Repository

# The tables whose health the metrics report: the hot queue, and the largest (word segments).
WATCHED_TABLES: Final = ("jobs", "transcription_word_segments")

_TABLE_HEALTH = query(
    "get_table_health",
    returns=[
        ("table_name", str),
        ("dead_tuples", int),
        ("live_tuples", int),
        ("last_autovacuum", datetime | None),
        ("total_bytes", int),
    ],
    params=(list[str],),
)
_OLDEST_TRANSACTION = query(
    "get_oldest_transaction_age", returns=[("age_s", float | None)], params=()
)


@dataclass(frozen=True, slots=True)
class TableHealth:
    """One table: dead and live tuples (the statistics collector's estimates), its last
    autovacuum (None: never since the statistics were reset), its size with its indexes and
    TOAST, in bytes."""

    table: str
    dead_tuples: int
    live_tuples: int
    last_autovacuum: datetime | None
    total_bytes: int


class HealthReads(Repository):
    """Reads of the statistics views; nothing of the library's tables is read."""

    __slots__ = ()

    queries: ClassVar[tuple[Query, ...]] = (_TABLE_HEALTH, _OLDEST_TRANSACTION)

    async def tables(self, names: Iterable[str] = WATCHED_TABLES) -> list[TableHealth]:
        """The health of each of the tables ``names`` that exists, in that order."""
        rows = await self._fetch(_TABLE_HEALTH, list(names))
        return [
            TableHealth(
                row["table_name"],
                row["dead_tuples"],
                row["live_tuples"],
                row["last_autovacuum"],
                row["total_bytes"],
            )
            for row in rows
        ]

    async def oldest_transaction_age(self) -> float | None:
        """Seconds since the oldest open transaction that holds back vacuum began (see
        sql/health.sql), None when there is none."""
        age: float | None = await self._fetchval(_OLDEST_TRANSACTION)
        return age
