"""Replication positions, for the lag bound of the read replicas. Same order as
sql/replication.sql. Used by :mod:`media_store.replicas`, not exposed on the Store."""

from __future__ import annotations

from dataclasses import dataclass

from media_store.db.queries import query
from media_store.repositories.base import Repository

_WAL_POSITION = query("get_wal_position", returns=[("wal_position", int)], params=())
_REPLAY_POSITION = query(
    "get_replay_position",
    returns=[("replay_position", int | None), ("in_recovery", bool)],
    params=(),
)


@dataclass(frozen=True, slots=True)
class ReplayPosition:
    """How far a replica has replayed (bytes of WAL), None when it is not a standby."""

    position: int | None
    in_recovery: bool


class ReplicationRepository(Repository):
    """WAL positions of the primary and of a replica (each on its own executor)."""

    __slots__ = ()

    queries = (_WAL_POSITION, _REPLAY_POSITION)

    async def wal_position(self) -> int:
        """The primary's WAL write position. Raises as any statement does."""
        return int(await self._fetchval(_WAL_POSITION))

    async def replay_position(self) -> ReplayPosition:
        """How far this server has replayed the primary's WAL."""
        row = await self._fetchrow(_REPLAY_POSITION)
        assert row is not None
        return ReplayPosition(row["replay_position"], bool(row["in_recovery"]))
