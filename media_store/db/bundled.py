"""Where the SQL files and migrations are: inside the installed package, or the checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _find(name: str) -> Path:
    # A wheel carries sql/ and migrations/ inside the package (pyproject force-include);
    # a checkout (or an editable install) has them at the top of the repository.
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"media_store cannot find its {name}/ directory near {_PACKAGE_DIR}")


def sql_dir() -> Path:
    return _find("sql")


def migrations_dir() -> Path:
    return _find("migrations")
