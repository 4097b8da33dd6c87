"""The ``media-store`` command: :mod:`.main` (migrate, rollback, check, grants, demo), :mod:`.jobs`
(``media-store jobs``) and :mod:`.importer` (``media-store import``)."""

from media_store.cli.main import main

__all__ = ["main"]
