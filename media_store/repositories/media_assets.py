"""Media assets. Same order as sql/media_assets.sql."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import asyncpg

from media_store.db.boundary import RoutedExecutor
from media_store.db.queries import Query, query
from media_store.errors import ValidationError
from media_store.models import arguments
from media_store.models.fields import shown
from media_store.models.rows import from_row
from media_store.models.schemas import MediaAsset, MediaAssetCreate
from media_store.repositories.job_outputs import ChildReads, ChildRepository

_UUID = uuid.UUID
_SHA256 = re.compile(r"[0-9a-f]{64}")


class MediaAssetReads(ChildReads[MediaAsset]):
    """The reads of media assets (get, list_for_job): what ``store.replica.media_assets``
    offers."""

    __slots__ = ()

    row_model = MediaAsset
    _get_query = query("get_media_asset", returns=MediaAsset, params=(_UUID,))
    _list_for_job_query = query("list_media_assets_for_job", returns=MediaAsset, params=(_UUID,))
    queries: ClassVar[tuple[Query, ...]] = (_get_query, _list_for_job_query)


class MediaAssetRepository(MediaAssetReads, ChildRepository[MediaAssetCreate, MediaAsset]):
    """Media assets: the reads of :class:`MediaAssetReads`, the writes, and imports."""

    __slots__ = ()

    create_model = MediaAssetCreate
    _create_query = query(
        "create_media_asset",
        returns=MediaAsset,
        params=(_UUID, str, str, int | None, str | None, dict[str, Any]),
    )
    _create_many_query = query(
        "create_media_assets",
        returns=MediaAsset,
        params=(list[_UUID], list[str], list[str], list[int], list[str], list[dict[str, Any]]),
    )
    _delete_query = query("delete_media_asset", returns=[("id", _UUID)], params=(_UUID,))
    _lock_import_query = query(
        "lock_asset_import", returns=[("lock_key", int)], params=(_UUID, str)
    )
    _find_import_query = query("find_imported_asset", returns=MediaAsset, params=(_UUID, str))
    queries = (
        _create_query,
        _create_many_query,
        MediaAssetReads._get_query,
        MediaAssetReads._list_for_job_query,
        _delete_query,
        _lock_import_query,
        _find_import_query,
    )

    def _params(self, item: MediaAssetCreate) -> tuple[Any, ...]:
        return (
            item.job_id,
            item.asset_type.value,
            item.file_path,
            item.file_size_bytes,
            item.mime_type,
            item.metadata,
        )

    async def create_many(
        self, items: Sequence[MediaAssetCreate | Mapping[str, Any]]
    ) -> list[MediaAsset]:
        """Insert many assets in one statement, all or nothing, in the given order."""
        return await self._create_many(items)

    # --- imports of source files (media-store import) ---------------------------------------

    async def lock_import(self, job_id: uuid.UUID, sha256: str) -> MediaAsset | None:
        """Wait until no other transaction is importing the file with this SHA-256 (lowercase
        hex) into the job, hold that until this transaction ends, then return the asset of
        an earlier import of it whose transcription still exists (None: import it now).

        Must run on a transaction's repositories (``store.transaction()``): the lock is
        released when the transaction commits or rolls back, so whoever waited then sees
        the committed import. Only the same file into the same job waits. Raises
        :class:`ValidationError` on the pool (the lock would end with its statement) and for
        a ``sha256`` that is not 64 lowercase hex digits.
        """
        job_id, sha256 = self._import_key(job_id, sha256)
        db = self._db
        if isinstance(db, asyncpg.Pool | RoutedExecutor) or not db.is_in_transaction():
            raise ValidationError(
                "lock_import must run inside a transaction (store.transaction()): outside "
                "one the lock would be released as soon as it is taken"
            )
        await self._fetchval(self._lock_import_query, job_id, sha256)
        # A statement of its own, after the lock: under READ COMMITTED it sees what the
        # importer we waited for committed.
        return await self.find_import(job_id, sha256)

    async def find_import(self, job_id: uuid.UUID, sha256: str) -> MediaAsset | None:
        """The asset of the newest import of the file with this SHA-256 into the job whose
        transcription still exists, or None. Takes no lock: a cheap check before parsing a
        file; :meth:`lock_import` decides, inside the import's transaction."""
        job_id, sha256 = self._import_key(job_id, sha256)
        row = await self._fetchrow(self._find_import_query, job_id, sha256)
        return None if row is None else from_row(MediaAsset, row)

    @staticmethod
    def _import_key(job_id: uuid.UUID, sha256: str) -> tuple[uuid.UUID, str]:
        job_id = arguments.identifier("job_id", job_id)
        if not isinstance(sha256, str) or _SHA256.fullmatch(sha256) is None:
            raise ValidationError(
                f"sha256 must be 64 lowercase hex digits (hashlib's hexdigest()), "
                f"got {shown(sha256)}"
            )
        return job_id, sha256
