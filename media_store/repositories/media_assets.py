"""Media assets. Same order as sql/media_assets.sql."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from media_store.models import MediaAsset, MediaAssetCreate
from media_store.queries import query
from media_store.repositories.children import ChildRepository

_UUID = uuid.UUID


class MediaAssetRepository(ChildRepository[MediaAssetCreate, MediaAsset]):
    __slots__ = ()

    create_model = MediaAssetCreate
    row_model = MediaAsset
    _insert = query(
        "create_media_asset",
        returns=MediaAsset,
        params=(_UUID, str, str, int | None, str | None, dict[str, Any]),
    )
    _insert_many = query(
        "create_media_assets",
        returns=MediaAsset,
        params=(list[_UUID], list[str], list[str], list[int], list[str], list[dict[str, Any]]),
    )
    _get = query("get_media_asset", returns=MediaAsset, params=(_UUID,))
    _list = query("list_media_assets_for_job", returns=MediaAsset, params=(_UUID,))
    _delete = query("delete_media_asset", returns=[("id", _UUID)], params=(_UUID,))

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
