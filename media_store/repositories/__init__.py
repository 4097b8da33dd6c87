"""Thin repositories: choose a named query, pass parameters, turn rows into models."""

from media_store.repositories.analysis_results import AnalysisResultRepository
from media_store.repositories.base import Executor, Repository
from media_store.repositories.jobs import JobCursor, JobPage, JobRepository
from media_store.repositories.media_assets import MediaAssetRepository
from media_store.repositories.transcriptions import TranscriptionRepository

__all__ = [
    "AnalysisResultRepository",
    "Executor",
    "JobCursor",
    "JobPage",
    "JobRepository",
    "MediaAssetRepository",
    "Repository",
    "TranscriptionRepository",
]
