"""What the three per-job repositories share: their reads (get, list_for_job) in
:class:`ChildReads`, their writes (create, create_many, delete) in :class:`ChildRepository`.

Each table's ``*Reads`` class names its read queries; its repository inherits it, names the
write queries and says how a validated input becomes query parameters. The replica view is
built from the ``*Reads`` classes (:mod:`media_store.replicas`): a read method written there
is on the view too, and a write is not.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from media_store.db.queries import Query
from media_store.errors import JobNotFound
from media_store.models import arguments
from media_store.models.fields import Input, Row
from media_store.models.inputs import validate_batch, validate_input
from media_store.models.rows import from_row
from media_store.repositories.base import Repository

CreateT = TypeVar("CreateT", bound=Input)
RowT = TypeVar("RowT", bound=Row)

MAX_BATCH = 10_000


class ChildReads(Repository, Generic[RowT]):
    """Reads of rows that belong to a job. Every method runs on the executor alone and writes
    nothing: a ``*Reads`` class is what the replica view offers."""

    __slots__ = ()

    row_model: ClassVar[type[Any]]
    _get_query: ClassVar[Query]
    _list_for_job_query: ClassVar[Query]

    async def get(self, row_id: uuid.UUID) -> RowT | None:
        """One row, or None. Raises :class:`ValidationError` when ``row_id`` is no UUID."""
        row = await self._fetchrow(self._get_query, arguments.identifier("row_id", row_id))
        if row is None:
            return None
        result: RowT = from_row(self.row_model, row)
        return result

    async def list_for_job(self, job_id: uuid.UUID) -> list[RowT]:
        """The job's rows in creation order."""
        job_id = arguments.identifier("job_id", job_id)
        return [
            from_row(self.row_model, row)
            for row in await self._fetch(self._list_for_job_query, job_id)
        ]


class ChildRepository(ChildReads[RowT], Generic[CreateT, RowT]):
    """Rows that belong to a job and go when it goes (ON DELETE CASCADE): the reads, and the
    writes. A table's repository is ``class XRepository(XReads, ChildRepository[...])``."""

    __slots__ = ()

    create_model: ClassVar[type[Any]]
    _create_query: ClassVar[Query]
    _create_many_query: ClassVar[Query | None] = None
    _delete_query: ClassVar[Query]

    def _params(self, item: CreateT) -> tuple[Any, ...]:
        raise NotImplementedError

    async def create(self, data: CreateT | Mapping[str, Any]) -> RowT:
        """Insert one row. Raises :class:`ValidationError` before any SQL on bad input and
        :class:`JobNotFound` when its job does not exist."""
        item: CreateT = validate_input(self.create_model, data)
        try:
            row = await self._fetchrow(self._create_query, *self._params(item))
        except JobNotFound as exc:
            raise JobNotFound(getattr(item, "job_id", None)) from exc
        assert row is not None
        result: RowT = from_row(self.row_model, row)
        return result

    async def _create_many(self, items: Sequence[CreateT | Mapping[str, Any]]) -> list[RowT]:
        if self._create_many_query is None:  # pragma: no cover - subclasses that batch set it
            raise NotImplementedError
        arguments.sequence("items", items, MAX_BATCH)
        # Every item is validated before the single INSERT: one bad item writes nothing.
        valid: list[CreateT] = validate_batch(self.create_model, items)
        if not valid:
            return []
        columns = list(zip(*(self._params(item) for item in valid), strict=True))
        try:
            rows = await self._fetch(self._create_many_query, *map(list, columns))
        except JobNotFound as exc:
            missing = {getattr(item, "job_id", None) for item in valid}
            raise JobNotFound(
                None,
                f"a job these rows belong to does not exist (one of {sorted(map(str, missing))})",
            ) from exc
        return [from_row(self.row_model, row) for row in rows]

    async def delete(self, row_id: uuid.UUID) -> bool:
        """Delete one row. True if it existed."""
        row_id = arguments.identifier("row_id", row_id)
        return await self._fetchval(self._delete_query, row_id) is not None
