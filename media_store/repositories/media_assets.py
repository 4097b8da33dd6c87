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
    _get_query = query("get_media_asset", returns=MediaAsset, params=(_UUID,))
    _list_for_job_query = query("list_media_assets_for_job", returns=MediaAsset, params=(_UUID,))
    _delete_query = query("delete_media_asset", returns=[("id", _UUID)], params=(_UUID,))
    queries = (
        _create_query,
        _create_many_query,
        _get_query,
        _list_for_job_query,
        _delete_query,
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
