"""Named queries, loaded once from ``sql/*.sql``.

A file holds queries under headers::

    -- name: claim_jobs
    -- Claim up to $2 pending jobs, oldest first; SKIP LOCKED so workers never wait.
    WITH ...

The first comment line after the header is the query's description. Everything up to the
next header is the query. A duplicate name, an empty query, a malformed header, or a name the
code asks for that no file defines fails at import, naming the file and line.

Nothing here records who asked for what: each repository lists the queries it uses in its
``queries`` attribute, and :mod:`media_store.ops.schema_check` reads those lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from media_store.db.bundled import sql_dir

_HEADER = re.compile(r"^--\s*name\s*:\s*(?P<name>.*?)\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


class QueryFileError(Exception):
    """A query file is malformed, or code asks for a query no file defines."""


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    description: str
    sql: str
    path: Path
    line: int
    # What the code declares about the query, checked against a live schema by
    # media_store.ops.schema_check: the model its rows fill, and the Python types of its parameters.
    returns: Any = None
    params: tuple[Any, ...] | None = None

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


def parse_file(path: Path) -> list[Query]:
    """Parse one ``.sql`` file into its queries. Raises :class:`QueryFileError`."""
    queries: list[Query] = []
    name: str | None = None
    start = 0
    body: list[str] = []

    def finish() -> None:
        if name is None:
            if any(line.strip() and not line.strip().startswith("--") for line in body):
                raise QueryFileError(f"{path}:{start}: SQL before the first '-- name:' header")
            return
        description = ""
        statement: list[str] = []
        for line in body:
            stripped = line.strip()
            if not statement and stripped.startswith("--"):
                if not description:
                    description = stripped.lstrip("-").strip()
                continue
            statement.append(line)
        sql = "\n".join(statement).strip().rstrip(";").strip()
        if not sql:
            raise QueryFileError(f"{path}:{start}: query {name!r} is empty")
        if not description:
            raise QueryFileError(f"{path}:{start}: query {name!r} has no description line")
        queries.append(Query(name, description, sql, path, start))

    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().lower().startswith("-- name") or line.lstrip().startswith("--name"):
            match = _HEADER.match(line.strip())
            if match is None or not _NAME.match(match["name"]):
                raise QueryFileError(
                    f"{path}:{lineno}: malformed header {line.strip()!r}; "
                    "expected '-- name: verb_noun'"
                )
            finish()
            name, start, body = match["name"], lineno, []
        else:
            body.append(line)
    finish()
    return queries


def load_dir(directory: Path) -> dict[str, Query]:
    """Load every ``*.sql`` file of ``directory``; names are unique across files."""
    found: dict[str, Query] = {}
    for path in sorted(directory.glob("*.sql")):
        for query in parse_file(path):
            if query.name in found:
                raise QueryFileError(
                    f"{query.location}: duplicate query name {query.name!r} "
                    f"(first defined at {found[query.name].location})"
                )
            found[query.name] = query
    return found


QUERIES: dict[str, Query] = load_dir(sql_dir())


def query(name: str, *, returns: Any = None, params: tuple[Any, ...] | None = None) -> Query:
    """The query called ``name``, with what the code declares about it: ``returns``, the
    model each row becomes (its fields must be the query's columns, in order), and
    ``params``, the Python types the code passes. ``media-store check`` verifies both against
    a database for every query a repository lists in its ``queries``.

    Called where a repository module is imported, so a name no file defines fails at import
    (the traceback names the line that asked). Raises :class:`QueryFileError`.
    """
    try:
        found = QUERIES[name]
    except KeyError:
        raise QueryFileError(f"no query named {name!r} in {sql_dir()}") from None
    return replace(found, returns=returns, params=params)
