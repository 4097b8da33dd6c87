"""The sharding path stays open (docs/scaling.md): every named query that touches a per-job
table filters that table by its distribution key (``jobs.id``, ``job_id`` elsewhere), so that
on Citus it runs on the one shard holding the job; the queries that must visit every shard
are listed below, each with its reason.

Queries are read with PostgreSQL's own parser (pglast, libpg_query). In each statement (and
separately in each subquery and CTE), every reference to a per-job table must be pinned by an
equality on its key: to a parameter (``= $1``, ``= any($2)``), to the key of another per-job
table (a co-located join), or to a scalar subquery returning a ``job_id``. An INSERT is routed
by the key it inserts (a job's id comes from its default, evaluated before routing).

Only an equality that is a top-level conjunct of the statement's WHERE or of a JOIN's ON counts
(``a AND key = $1 AND b``): under OR or NOT, or inside a function or a CASE, it does not hold for
every row the statement touches (``job_id = $1 OR language IS NULL`` reads every shard).

Every query, a listed fan-out too, joins the per-job tables of one statement with each other on
their keys: a join of co-located tables that leaves the key out (``s.transcription_id = t.id``
alone) pairs rows across shards, which Citus plans as a repartition join, or refuses.

The queries are those of every ``sql/*.sql`` file (``QUERIES``), and a fan-out is listed by the
query's name, whichever file holds it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pglast
import pytest
from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType

from media_store.db.bundled import sql_dir
from media_store.db.queries import QUERIES

SQL_DIR = sql_dir()

# The distribution column of every per-job table (docs/scaling.md, "Distribution").
DISTRIBUTION_KEYS = {
    "jobs": "id",
    "media_assets": "job_id",
    "transcriptions": "job_id",
    "analysis_results": "job_id",
    "transcription_word_segments": "job_id",
    "transcription_word_search": "job_id",
}

# SQL functions of the migrations that read per-job tables: a query selecting from one visits
# every shard of those tables (the function is not given a job).
FUNCTION_TABLES = {
    "media_store_claim_jobs": ["jobs"],
    # migrations/0015: a worker's writes by id, with index paths only
    "media_store_heartbeat_jobs": ["jobs"],
    "media_store_complete_jobs": ["jobs"],
    "media_store_release_jobs": ["jobs"],
    # migrations/0016: a search, across every transcription
    "media_store_search_segments": [
        "transcription_word_search",
        "transcriptions",
        "jobs",
        "transcription_word_segments",
    ],
}

# Queries that deliberately visit every shard, and why (docs/scaling.md, "Fan-out").
FAN_OUTS = {
    # the queue: a claim takes the oldest runnable jobs, wherever they are
    "claim_jobs": "claim: oldest runnable jobs of any job (or of some types)",
    "claim_traced_jobs": "claim_jobs for a traced worker, with each job's trace context",
    # search: where a phrase was said, in any job's transcriptions
    "search_word_segments": "search across every transcription",
    "reclaim_expired_jobs": "maintenance: expired leases of any job",
    # listings and statistics across jobs
    "get_jobs_by_status": "listing across jobs",
    "get_all_jobs": "listing across jobs",
    "count_jobs_by_status": "statistics",
    # a worker's batch of jobs: the ids are given (the CTE finds them by id = any($2)), the
    # update joins that CTE, which Citus plans as an intermediate result: every shard
    "heartbeat_jobs": "a worker's jobs, on any shards",
    "complete_many_jobs": "a worker's jobs, on any shards",
    "release_jobs": "a worker's jobs, on any shards",
    # the operator's queue (issue 12)
    "enqueue_job": "idempotency key: unique across all jobs, one global index",
    "get_key_holders": "the jobs holding idempotency keys: the key check is global",
    "get_other_key_holder": "the job holding a job's idempotency key: the key check is global",
    "cancel_job": "by job id, through a locking CTE the check does not follow",
    "requeue_failed_jobs": "an operator's batch over failed jobs of any job",
    "count_requeue_blocked": "an operator's count over failed jobs of any job",
    "list_jobs_of_type": "listing across jobs",
    "list_jobs_in_status": "listing across jobs",
    "list_jobs_with_key": "listing across jobs (by idempotency key)",
    "purge_finished_jobs": "retention over finished jobs of any job, children by cascade",
    "count_purgeable_jobs": "retention's dry run over finished jobs of any job",
    "get_job_stats": "statistics",
    # a child row or a transcription addressed by its own id: one index probe on each shard
    # (single-shard once callers pass the job id too)
    "get_media_asset": "by row id",
    "delete_media_asset": "by row id",
    "get_transcription": "by row id",
    "delete_transcription": "by row id",
    "get_analysis_result": "by row id",
    "delete_analysis_result": "by row id",
    "lock_transcription_words": "by transcription id (returns its job for the rest)",
    "list_word_segments": "by transcription id, its segments joined on the job",
    "list_word_segments_between": "by transcription id, its segments pinned to its job",
    "count_words": "by transcription id, its segments joined on the job",
}

# Queries that join co-located tables without the key today, each to be fixed in its sql file
# (not this test's to change); listed so that the check holds every other query now, and so
# that an entry fails the suite once its query is fixed (then delete it).
KNOWN_UNJOINED: dict[str, str] = {}

_STATEMENTS = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)


def _children(node: Any) -> Iterator[ast.Node]:
    for slot in node.__slots__:
        value = getattr(node, slot, None)
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, ast.Node):
                yield item
            elif isinstance(item, list | tuple):
                stack.extend(item)


def _walk(node: ast.Node, *, into_statements: bool = True) -> Iterator[ast.Node]:
    yield node
    for child in _children(node):
        if not into_statements and isinstance(child, _STATEMENTS):
            continue
        yield from _walk(child, into_statements=into_statements)


def _fields(ref: ast.ColumnRef) -> tuple[str, ...]:
    return tuple(str(f.sval) for f in ref.fields or () if isinstance(f, ast.String))


def _uncast(node: Any) -> Any:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node


def _scope(stmt: ast.Node) -> tuple[list[ast.RangeVar], list[ast.Node]]:
    """The per-job tables a statement reads or writes itself (not in its subqueries), and its
    conditions (WHERE and JOIN ... ON)."""
    sources: list[Any] = []
    quals: list[Any] = []
    if isinstance(stmt, ast.SelectStmt):
        sources += list(stmt.fromClause or ())
        quals.append(stmt.whereClause)
    elif isinstance(stmt, ast.UpdateStmt):
        sources += [stmt.relation, *(stmt.fromClause or ())]
        quals.append(stmt.whereClause)
    elif isinstance(stmt, ast.DeleteStmt):
        sources += [stmt.relation, *(stmt.usingClause or ())]
        quals.append(stmt.whereClause)
    tables: list[ast.RangeVar] = []
    while sources:
        source = sources.pop()
        if isinstance(source, ast.RangeVar) and source.relname in DISTRIBUTION_KEYS:
            tables.append(source)
        elif isinstance(source, ast.JoinExpr):
            sources += [source.larg, source.rarg]
            quals.append(source.quals)
    return tables, [q for q in quals if q is not None]


def _is_value(node: Any) -> bool:
    """A parameter, or a scalar subquery returning a ``job_id`` (checked on its own)."""
    node = _uncast(node)
    if isinstance(node, ast.ParamRef):
        return True
    if isinstance(node, ast.SubLink) and isinstance(node.subselect, ast.SelectStmt):
        targets: tuple[Any, ...] = tuple(node.subselect.targetList or ())
        value = _uncast(targets[0].val) if len(targets) == 1 else None
        return isinstance(value, ast.ColumnRef) and _fields(value)[-1] == "job_id"
    return False


def _conjuncts(qual: Any) -> Iterator[Any]:
    """The top-level conjuncts of a condition: ``a AND (b AND c)`` gives a, b, c; an OR, a NOT
    or anything else is one conjunct, looked into no further."""
    if isinstance(qual, ast.BoolExpr) and qual.boolop == BoolExprType.AND_EXPR:
        for arg in qual.args or ():
            yield from _conjuncts(arg)
    else:
        yield qual


def _equalities(quals: list[ast.Node]) -> Iterator[tuple[Any, Any]]:
    """Both orders of every equality that is a top-level conjunct of one of ``quals``: only
    those hold for every row the statement reads or writes."""
    for qual in quals:
        for node in _conjuncts(qual):
            if (
                isinstance(node, ast.A_Expr)
                and node.kind in (A_Expr_Kind.AEXPR_OP, A_Expr_Kind.AEXPR_OP_ANY)
                and [n.sval for n in node.name] == ["="]
            ):
                yield _uncast(node.lexpr), _uncast(node.rexpr)
                yield _uncast(node.rexpr), _uncast(node.lexpr)


def _name(table: ast.RangeVar) -> str:
    return str(table.alias.aliasname) if table.alias else str(table.relname)


def _key_of(tables: list[ast.RangeVar], ref: Any) -> ast.RangeVar | None:
    """The table of ``tables`` whose distribution key ``ref`` names, if it names one."""
    if not isinstance(ref, ast.ColumnRef):
        return None
    fields = _fields(ref)
    for table in tables:
        named = len(fields) == 2 and fields[0] == _name(table)
        if fields[-1] == DISTRIBUTION_KEYS[table.relname] and (
            named or (len(fields) == 1 and len(tables) == 1)
        ):
            return table
    return None


def _unpinned(tables: list[ast.RangeVar], quals: list[ast.Node]) -> list[str]:
    """The tables of one statement not pinned to a single key: by an equality of their key to
    a value, or to the key of a table pinned already (a co-located join)."""

    def key_of(ref: Any) -> ast.RangeVar | None:
        return _key_of(tables, ref)

    names = {_name(t) for t in tables}

    def outer_job_id(ref: Any) -> bool:
        # a correlated subquery's equality to its outer statement's job_id (checked there)
        if not isinstance(ref, ast.ColumnRef):
            return False
        fields = _fields(ref)
        return len(fields) == 2 and fields[1] == "job_id" and fields[0] not in names

    pairs = list(_equalities(quals))
    pinned = {
        id(t)
        for t in tables
        for side, other in pairs
        if key_of(side) is t and (_is_value(other) or outer_job_id(other))
    }
    changed = True
    while changed:
        changed = False
        for side, other in pairs:
            mine, theirs = key_of(side), key_of(other)
            joined = mine is not None and theirs is not None and id(theirs) in pinned
            if joined and id(mine) not in pinned:
                pinned.add(id(mine))
                changed = True
    return [t.relname for t in tables if id(t) not in pinned]


def _unjoined(tables: list[ast.RangeVar], quals: list[ast.Node]) -> list[str]:
    """The tables of one statement not joined on the key, directly or through others, to the
    one written first: its per-job tables must form one co-located group. A statement on one
    table has nothing to join."""
    if len(tables) < 2:
        return []
    tables = sorted(tables, key=lambda table: int(table.location or 0))
    joined = {id(tables[0])}
    pairs = [(_key_of(tables, a), _key_of(tables, b)) for a, b in _equalities(quals)]
    changed = True
    while changed:
        changed = False
        for mine, theirs in pairs:
            linked = mine is not None and theirs is not None and id(theirs) in joined
            if linked and id(mine) not in joined:
                joined.add(id(mine))
                changed = True
    return [t.relname for t in tables if id(t) not in joined]


def _functions(stmt: ast.Node) -> list[str]:
    """The per-job tables read by the functions a statement selects from (FUNCTION_TABLES)."""
    found = []
    for source in getattr(stmt, "fromClause", None) or ():
        # The function may be one side of a join (claim_traced_jobs' lateral read).
        for ranged in _walk(source, into_statements=False):
            if not isinstance(ranged, ast.RangeFunction):
                continue
            for node in _walk(ranged):
                if isinstance(node, ast.FuncCall):
                    name = [n.sval for n in node.funcname][-1]
                    found += FUNCTION_TABLES.get(name, [])
    return found


def unpinned_tables(sql: str) -> list[str]:
    """The per-job tables some statement of ``sql`` does not pin to one distribution key."""
    found: list[str] = []
    for raw in pglast.parse_sql(sql):
        for stmt in _walk(raw.stmt):
            if isinstance(stmt, ast.InsertStmt):
                table = stmt.relation.relname
                key = DISTRIBUTION_KEYS.get(table)
                columns = [c.name for c in stmt.cols or ()]
                if key is not None and key not in columns and table != "jobs":
                    found.append(table)
                continue
            if not isinstance(stmt, _STATEMENTS):
                continue
            tables, quals = _scope(stmt)
            found += _unpinned(tables, quals) + _functions(stmt)
    return found


def unjoined_tables(sql: str) -> list[str]:
    """The per-job tables some statement of ``sql`` joins with others but not on the key."""
    found: list[str] = []
    for raw in pglast.parse_sql(sql):
        for stmt in _walk(raw.stmt):
            if isinstance(stmt, _STATEMENTS) and not isinstance(stmt, ast.InsertStmt):
                found += _unjoined(*_scope(stmt))
    return found


def test_every_query_on_a_per_job_table_filters_by_its_distribution_key() -> None:
    unpinned = {
        name: tables
        for name, query in QUERIES.items()
        if name not in FAN_OUTS and (tables := unpinned_tables(query.sql))
    }
    assert unpinned == {}, (
        "these queries would visit every shard on Citus: filter by the distribution key "
        f"(docs/scaling.md) or list them in FAN_OUTS with the reason: {unpinned}"
    )


def test_every_query_joins_per_job_tables_on_their_key_even_a_fan_out() -> None:
    unjoined = {
        name: tables
        for name, query in QUERIES.items()
        if name not in KNOWN_UNJOINED and (tables := unjoined_tables(query.sql))
    }
    assert unjoined == {}, (
        "these queries join co-located tables without the distribution key, a join across "
        f"shards on Citus: join on job_id (jobs.id) as well: {unjoined}"
    )


def test_every_known_unjoined_query_exists_and_still_is() -> None:
    fixed = [name for name in KNOWN_UNJOINED if not unjoined_tables(QUERIES[name].sql)]
    assert fixed == [], f"joined on the key now: delete from KNOWN_UNJOINED: {fixed}"


def test_the_queries_are_those_of_every_sql_file() -> None:
    # The fan-outs are listed by query name; a query moved to another file keeps its entry,
    # and a new file is read without being named here.
    files = sorted(SQL_DIR.glob("*.sql"))
    assert files
    named = {
        match.group(1)
        for path in files
        for match in re.finditer(r"^-- name: (\w+)", path.read_text(), re.MULTILINE)
    }
    assert named == set(QUERIES)


def test_every_listed_fan_out_exists_and_does_fan_out() -> None:
    # A stale entry would let a query that should be single-shard slip through later.
    assert set(FAN_OUTS) <= set(QUERIES)
    routed = [name for name in FAN_OUTS if not unpinned_tables(QUERIES[name].sql)]
    assert routed == []


@pytest.mark.parametrize(
    ("sql", "unpinned"),
    [
        ("SELECT id FROM media_assets WHERE job_id = $1::uuid", []),
        ("SELECT id FROM media_assets WHERE id = $1::uuid", ["media_assets"]),
        ("SELECT id FROM jobs WHERE id = any($1::uuid[])", []),
        ("SELECT id FROM jobs WHERE status = 'pending'", ["jobs"]),
        (
            "SELECT s.seq FROM transcriptions t JOIN transcription_word_segments s"
            " ON s.job_id = t.job_id AND s.transcription_id = t.id WHERE t.job_id = $1",
            [],
        ),
        (  # the segments joined by transcription only: not co-located
            "SELECT s.seq FROM transcriptions t JOIN transcription_word_segments s"
            " ON s.transcription_id = t.id WHERE t.job_id = $1",
            ["transcription_word_segments"],
        ),
        (  # a correlated subquery pinned to its outer statement's job
            "SELECT a.id FROM media_assets a WHERE a.job_id = $1 AND EXISTS"
            " (SELECT 1 FROM transcriptions t WHERE t.job_id = a.job_id)",
            [],
        ),
        (  # a join on the key pins nothing by itself
            "SELECT s.seq FROM transcriptions t JOIN transcription_word_segments s"
            " ON s.job_id = t.job_id WHERE t.id = $1",
            ["transcription_word_segments", "transcriptions"],
        ),
        ("SELECT id FROM media_store_claim_jobs($1, $2, $3, $4)", ["jobs"]),
        (  # a function on one side of a join (claim_traced_jobs), counted once
            "SELECT c.id FROM media_store_claim_jobs($1, $2, $3, $4) AS c"
            " LEFT JOIN LATERAL (SELECT x.traceparent FROM job_trace_contexts x"
            " WHERE x.job_id = c.id LIMIT 1) AS t ON true",
            ["jobs"],
        ),
        (  # a function in a subquery of FROM: the subquery's own, once
            "SELECT s.id FROM (SELECT id FROM media_store_claim_jobs($1, $2, $3, $4)) AS s",
            ["jobs"],
        ),
        (  # a subquery is checked on its own
            "SELECT id FROM jobs WHERE id = $1 AND EXISTS"
            " (SELECT 1 FROM media_assets a WHERE a.file_path = 'x')",
            ["media_assets"],
        ),
        ("INSERT INTO media_assets (job_id, file_path) VALUES ($1, $2)", []),
        ("INSERT INTO media_assets (file_path) VALUES ($1)", ["media_assets"]),
        ("UPDATE transcriptions SET language = 'en' WHERE id = $1", ["transcriptions"]),
        ("DELETE FROM analysis_results WHERE job_id = $1", []),
        (  # issue 20 item 18: an equality under OR holds for some rows only
            "SELECT id FROM transcriptions WHERE job_id = $1 OR language IS NULL",
            ["transcriptions"],
        ),
        ("SELECT id FROM jobs WHERE NOT (id = $1)", ["jobs"]),
        ("SELECT id FROM jobs WHERE coalesce(id = $1, true)", ["jobs"]),
        (  # conjuncts nested in AND still count
            "SELECT id FROM transcriptions WHERE (language = 'en' AND (job_id = $1 AND true))",
            [],
        ),
        (  # the join's key equality under OR does not join the segments to the job
            "SELECT s.seq FROM transcriptions t JOIN transcription_word_segments s"
            " ON (s.job_id = t.job_id OR s.transcription_id = t.id) WHERE t.job_id = $1",
            ["transcription_word_segments"],
        ),
    ],
)
def test_the_check_itself(sql: str, unpinned: list[str]) -> None:
    assert unpinned_tables(sql) == unpinned


# list_word_segments (a fan-out: by transcription id) without its `s.job_id = t.job_id`
SEGMENTS_JOINED_BY_TRANSCRIPTION_ONLY = """
SELECT s.transcription_id, s.words
FROM transcriptions AS t
JOIN transcription_word_segments AS s ON s.transcription_id = t.id
WHERE t.id = $1::uuid
ORDER BY s.seq
"""


@pytest.mark.parametrize(
    ("sql", "unjoined"),
    [
        (SEGMENTS_JOINED_BY_TRANSCRIPTION_ONLY, ["transcription_word_segments"]),
        (
            SEGMENTS_JOINED_BY_TRANSCRIPTION_ONLY.replace(
                "ON s.transcription_id", "ON s.job_id = t.job_id AND s.transcription_id"
            ),
            [],
        ),
        (  # the key under OR does not join them
            "SELECT s.seq FROM transcriptions t JOIN transcription_word_segments s"
            " ON s.job_id = t.job_id OR s.transcription_id = t.id",
            ["transcription_word_segments"],
        ),
        (  # joined through a third table, on the key each time
            "SELECT a.id FROM jobs j JOIN media_assets a ON a.job_id = j.id"
            " JOIN analysis_results r ON r.job_id = a.job_id WHERE j.status = 'pending'",
            [],
        ),
        (  # a comma join with the key in WHERE
            "SELECT a.id FROM jobs j, media_assets a WHERE a.job_id = j.id AND j.status = 'x'",
            [],
        ),
        (
            "UPDATE jobs AS j SET error = 'x' FROM analysis_results AS r"
            " WHERE r.id = $1 AND r.analysis_type = j.job_type",
            ["analysis_results"],
        ),
        ("SELECT id FROM jobs WHERE status = 'pending'", []),  # one table: nothing to join
    ],
)
def test_the_join_check_itself(sql: str, unjoined: list[str]) -> None:
    assert unjoined_tables(sql) == unjoined


def test_the_bad_examples_of_issue_20_are_caught_though_their_name_is_a_fan_out() -> None:
    # A fan-out entry exempts a query from pinning, not from joining on the key.
    assert "list_word_segments" in FAN_OUTS
    assert unjoined_tables(SEGMENTS_JOINED_BY_TRANSCRIPTION_ONLY) == ["transcription_word_segments"]
    assert unpinned_tables(
        "SELECT id FROM transcriptions WHERE job_id = $1::uuid OR language IS NULL"
    ) == ["transcriptions"]
