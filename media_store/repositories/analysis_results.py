"""Analysis results. Same order as sql/analysis_results.sql."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from media_store.db.queries import Query, query
from media_store.models.schemas import AnalysisResult, AnalysisResultCreate
from media_store.repositories.job_outputs import ChildReads, ChildRepository

_UUID = uuid.UUID


class AnalysisResultReads(ChildReads[AnalysisResult]):
    """The reads of analysis results (get, list_for_job): what
    ``store.replica.analysis_results`` offers."""

    __slots__ = ()

    row_model = AnalysisResult
    _get_query = query("get_analysis_result", returns=AnalysisResult, params=(_UUID,))
    _list_for_job_query = query(
        "list_analysis_results_for_job", returns=AnalysisResult, params=(_UUID,)
    )
    queries: ClassVar[tuple[Query, ...]] = (_get_query, _list_for_job_query)


class AnalysisResultRepository(
    AnalysisResultReads, ChildRepository[AnalysisResultCreate, AnalysisResult]
):
    """Analysis results: the reads of :class:`AnalysisResultReads`, and the writes."""

    __slots__ = ()

    create_model = AnalysisResultCreate
    _create_query = query(
        "create_analysis_result",
        returns=AnalysisResult,
        params=(
            _UUID,
            str,
            str | None,
            dict[str, Any] | None,
            float | None,
            str | None,
            str | None,
            int | None,
            int | None,
        ),
    )
    _create_many_query = query(
        "create_analysis_results",
        returns=AnalysisResult,
        params=(
            list[_UUID],
            list[str],
            list[str],
            list[dict[str, Any]],
            list[float],
            list[str],
            list[str],
            list[int],
            list[int],
        ),
    )
    _delete_query = query("delete_analysis_result", returns=[("id", _UUID)], params=(_UUID,))
    queries = (
        _create_query,
        _create_many_query,
        AnalysisResultReads._get_query,
        AnalysisResultReads._list_for_job_query,
        _delete_query,
    )

    def _params(self, item: AnalysisResultCreate) -> tuple[Any, ...]:
        return (
            item.job_id,
            item.analysis_type,
            item.summary,
            item.detailed_analysis,
            item.confidence_score,
            item.model_used,
            item.prompt_used,
            item.input_tokens,
            item.output_tokens,
        )

    async def create_many(
        self, items: Sequence[AnalysisResultCreate | Mapping[str, Any]]
    ) -> list[AnalysisResult]:
        """Insert many results in one statement, all or nothing, in the given order."""
        return await self._create_many(items)
