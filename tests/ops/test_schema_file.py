"""migrations/current/schema.sql, the live schema written out to read, is what the migrations
build.

One database is migrated (``db_url``: the migrations applied by ``migrate.apply``), another,
made by this module, runs the schema file alone; the two are compared through catalog queries,
facet by facet, and a failure prints every difference. Not through pg_dump: the suite runs on the
system PostgreSQL and on pgserver's embedded one, of another major version than the
machine's pg_dump. ``test_the_comparison_reports_*`` alters one thing at a time in the migrated
database and shows the comparison names it: a check that cannot fail checks nothing.

When a migration changes the schema, change the schema file in the same commit; this test
says where they part.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from media_store import Dsn, migrate
from tests.support.harness import Server, random_name, with_database


def _checkout_root() -> Path:
    # The nearest folder above this file holding pyproject.toml: this file may move deeper.
    return next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())


SCHEMA_FILE = _checkout_root() / "migrations" / "current" / "schema.sql"

# yoyo's bookkeeping tables (and their keys, row types) are not part of the schema.
_YOYO = r"(_yoyo_|yoyo_lock)"
_NOT_YOYO_REL = "{rel} !~ '^" + _YOYO + "'"
# Objects made by a user, not the system: PostgreSQL gives them oids from 16384 on.
_FIRST_USER_OID = 16384
# The catalogs of the objects a user can make in a database (pg_identify_object names each).
_CATALOGS = (
    "pg_namespace", "pg_class", "pg_proc", "pg_type", "pg_constraint", "pg_trigger",
    "pg_rewrite", "pg_policy", "pg_statistic_ext", "pg_extension", "pg_operator", "pg_opclass",
    "pg_opfamily", "pg_cast", "pg_collation", "pg_conversion", "pg_language",
    "pg_event_trigger", "pg_foreign_data_wrapper", "pg_foreign_server", "pg_publication",
    "pg_ts_config", "pg_ts_dict", "pg_default_acl",
)  # fmt: skip
# Made by the system for an object compared elsewhere, under a name holding an oid: the
# triggers that enforce a foreign key.
_INTERNAL = {"pg_trigger": " AND NOT tgisinternal"}


@dataclass(frozen=True)
class Facet:
    """One catalog query: each row is keyed by its first ``keys`` columns; the rest are the
    attributes compared."""

    sql: str
    keys: int = 2


FACETS: Mapping[str, Facet] = {
    # Tables, views, sequences, composite types, foreign tables: how each is stored and who
    # may use it.
    "relations": Facet(
        f"""
        SELECT c.relname AS relation, c.relkind::text AS kind,
               c.relpersistence::text AS persistence, am.amname AS access_method,
               c.reloptions::text AS options,
               (SELECT t.reloptions::text FROM pg_class t WHERE t.oid = c.reltoastrelid)
                   AS toast_options,
               c.relreplident::text AS replica_identity,
               c.relrowsecurity AS row_security, c.relforcerowsecurity AS force_row_security,
               ts.spcname AS tablespace, c.relacl::text AS acl,
               pg_get_partkeydef(c.oid) AS partition_key,
               pg_get_expr(c.relpartbound, c.oid) AS partition_bound,
               (SELECT array_agg(i.inhparent::regclass::text ORDER BY i.inhseqno)
                FROM pg_inherits i WHERE i.inhrelid = c.oid)::text AS inherits,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS view_query
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_am am ON am.oid = c.relam
        LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
          AND {_NOT_YOYO_REL.format(rel="c.relname")}
        ORDER BY 1""",
        keys=1,
    ),
    # Position counts visible columns only: SELECT * and the claim function's SETOF jobs see
    # that order; a dropped column's hole does not matter. Options leave out pg_attver, which
    # some server builds (this machine's PostgreSQL 15) stamp on every column with a value of
    # their own, whatever the DDL said.
    "columns": Facet(
        f"""
        SELECT c.relname AS relation, a.attname AS column,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
               format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
               pg_get_expr(d.adbin, d.adrelid) AS default,
               a.attidentity::text AS identity, a.attgenerated::text AS generated,
               CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS collation,
               a.attstorage::text AS storage, a.attcompression::text AS compression,
               a.attstattarget::text AS statistics,
               (SELECT array_agg(o ORDER BY o) FROM unnest(a.attoptions) AS o
                WHERE o !~ '^pg_attver=')::text AS options,
               a.attacl::text AS acl
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
          AND a.attnum > 0 AND NOT a.attisdropped
          AND {_NOT_YOYO_REL.format(rel="c.relname")}
        ORDER BY 1, 3""",
    ),
    "sequences": Facet(
        """
        SELECT s.seqrelid::regclass::text AS sequence, format_type(s.seqtypid, NULL) AS type,
               s.seqstart AS start, s.seqincrement AS increment, s.seqmin AS min,
               s.seqmax AS max, s.seqcache AS cache, s.seqcycle AS cycle,
               (SELECT d.refobjid::regclass::text || '.' || a.attname
                FROM pg_depend d
                JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
                   AS owned_by
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
        ORDER BY 1""",
        keys=1,
    ),
    # Of tables and of domains.
    "constraints": Facet(
        f"""
        SELECT coalesce(c.relname, t.typname) AS owner, k.conname AS constraint,
               k.contype::text AS kind, pg_get_constraintdef(k.oid) AS definition
        FROM pg_constraint k
        JOIN pg_namespace n ON n.oid = k.connamespace
        LEFT JOIN pg_class c ON c.oid = k.conrelid
        LEFT JOIN pg_type t ON t.oid = k.contypid
        WHERE n.nspname = 'public'
          AND {_NOT_YOYO_REL.format(rel="coalesce(c.relname, t.typname)")}
        ORDER BY 1, 2""",
    ),
    # pg_get_indexdef names the schema and table, never the database.
    "indexes": Facet(
        f"""
        SELECT t.relname AS relation, c.relname AS index,
               pg_get_indexdef(i.indexrelid) AS definition,
               i.indisclustered AS clustered, i.indisreplident AS replica_identity,
               i.indisvalid AS valid
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = 'public' AND {_NOT_YOYO_REL.format(rel="t.relname")}
        ORDER BY 1, 2""",
    ),
    # Every function, procedure and aggregate in public. pg_get_functiondef states the
    # language, volatility, strictness, parallel safety, SET clauses, cost, rows and body.
    "functions": Facet(
        """
        SELECT p.proname AS function, pg_get_function_identity_arguments(p.oid) AS arguments,
               p.prokind::text AS kind,
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END
                   AS definition,
               p.proacl::text AS acl
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
        ORDER BY 1, 2""",
    ),
    "triggers": Facet(
        f"""
        SELECT c.relname AS relation, t.tgname AS trigger,
               pg_get_triggerdef(t.oid) AS definition, t.tgenabled::text AS enabled
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal
          AND {_NOT_YOYO_REL.format(rel="c.relname")}
        ORDER BY 1, 2""",
    ),
    # Enums, domains, ranges, multiranges and base types (a table's own row type is the
    # table's, compared above).
    "types": Facet(
        """
        SELECT t.typname AS type, t.typtype::text AS kind,
               format_type(t.typbasetype, t.typtypmod) AS base, t.typnotnull AS not_null,
               t.typdefault AS default,
               (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                FROM pg_enum e WHERE e.enumtypid = t.oid)::text AS labels,
               (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r
                WHERE r.rngtypid = t.oid) AS range_of,
               t.typacl::text AS acl
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('b', 'e', 'd', 'r', 'm')
          AND t.typelem = 0 AND t.typrelid = 0
        ORDER BY 1""",
        keys=1,
    ),
    "rules_and_policies": Facet(
        """
        SELECT tablename AS relation, 'rule ' || rulename AS name, definition
        FROM pg_rules WHERE schemaname = 'public'
        UNION ALL
        SELECT tablename, 'policy ' || policyname,
               concat_ws(' ', permissive, cmd, roles::text, qual, with_check)
        FROM pg_policies WHERE schemaname = 'public'
        ORDER BY 1, 2""",
    ),
    "statistics": Facet(
        """
        SELECT s.stxname AS name, pg_get_statisticsobjdef(s.oid) AS definition,
               s.stxstattarget::text AS target
        FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
        WHERE n.nspname = 'public'
        ORDER BY 1""",
        keys=1,
    ),
    # Comments on anything a user made: tables, columns, functions, constraints, indexes...
    "comments": Facet(
        f"""
        SELECT o.type AS kind, o.identity AS object, d.description AS comment
        FROM pg_description d
        CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) AS o
        WHERE d.objoid >= {_FIRST_USER_OID} AND o.identity !~ '{_YOYO}'
        ORDER BY 1, 2""",
    ),
    # Everything else a user made, by name only, in whatever schema: an extension, a schema,
    # an operator, a cast... that no facet above looks at still shows here.
    "objects": Facet(
        f"""
        SELECT o.type AS kind, o.identity AS object
        FROM ({
            " UNION ALL ".join(
                f"SELECT '{catalog}'::regclass AS classid, oid AS objid FROM {catalog}"
                f" WHERE oid >= {_FIRST_USER_OID}{_INTERNAL.get(catalog, '')}"
                for catalog in _CATALOGS
            )
        }) AS made
        CROSS JOIN LATERAL pg_identify_object(made.classid, made.objid, 0) AS o
        WHERE o.identity !~ '{_YOYO}'
          AND coalesce(o.schema, o.identity) !~ '^pg_(toast$|temp_|toast_temp_)'
        ORDER BY 1, 2""",
    ),
}

# facet -> key -> attribute -> value
Catalog = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


async def read_catalog(url: str) -> Catalog:
    """Every facet of the database at ``url``, yoyo's bookkeeping left out."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
    try:
        catalog: Catalog = {}
        for name, facet in FACETS.items():
            rows: dict[tuple[Any, ...], dict[str, Any]] = {}
            for record in await conn.fetch(facet.sql):
                row = dict(record.items())
                key = tuple(row.pop(column) for column in list(row)[: facet.keys])
                rows[key] = row
            catalog[name] = rows
        return catalog
    finally:
        await conn.close()


def differences(migrated: Catalog, from_file: Catalog) -> dict[str, list[str]]:
    """What differs, facet by facet, as readable lines (- the migrations, + the schema file);
    empty when the two are the same."""
    found: dict[str, list[str]] = {}
    for facet in FACETS:
        ours, theirs = migrated[facet], from_file[facet]
        lines: list[str] = []
        for key in sorted(ours.keys() | theirs.keys(), key=repr):
            name = ".".join(str(part) for part in key)
            if key not in theirs:
                lines.append(f"- {name}: only in the migrated database {_brief(ours[key])}")
            elif key not in ours:
                lines.append(f"+ {name}: only in the schema file {_brief(theirs[key])}")
            else:
                for attribute, value in ours[key].items():
                    other = theirs[key][attribute]
                    if value != other:
                        lines.append(f"  {name} {attribute}:")
                        lines.extend(_value_diff(value, other))
        if lines:
            found[facet] = lines
    return found


def _brief(row: dict[str, Any]) -> str:
    shown = {k: v for k, v in row.items() if v is not None and v is not False}
    text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return f"({text[:300]}{'...' if len(text) > 300 else ''})" if text else ""


def _value_diff(migrated: Any, from_file: Any) -> list[str]:
    if isinstance(migrated, str) and isinstance(from_file, str) and "\n" in migrated + from_file:
        # A function's or view's text: the lines that differ, in context.
        diff = difflib.unified_diff(
            migrated.splitlines(), from_file.splitlines(), "migrations", "schema file", n=2,
            lineterm="",
        )  # fmt: skip
        return [f"      {line}" for line in diff]
    return [f"    - {migrated!r}", f"    + {from_file!r}"]


def report(found: dict[str, list[str]]) -> str:
    lines = [
        f"{SCHEMA_FILE.name} differs from what the migrations build "
        f"(- migrated database, + schema file):"
    ]
    for facet, facet_lines in found.items():
        lines.append(f"[{facet}]")
        lines.extend(facet_lines)
    return "\n".join(lines)


async def run_schema_file(url: str) -> None:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(SCHEMA_FILE.read_text(encoding="utf-8"))
    finally:
        await conn.close()


async def _admin(server: Server, sql: str) -> None:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(server.admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def from_file(pg_server: Server) -> AsyncIterator[str]:
    """A fresh database built by the schema file alone (no yoyo), once for this module: no
    test changes it."""
    name = random_name("ms_test_schema_file")
    await _admin(pg_server, f'CREATE DATABASE "{name}"')
    try:
        url = with_database(pg_server.admin_url, name)
        await run_schema_file(url)
        yield url
    finally:
        await _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
async def file_catalog(from_file: str) -> Catalog:
    return await read_catalog(from_file)


def test_the_schema_file_is_no_migration() -> None:
    # yoyo reads the files directly in migrations/; the schema file is one folder down.
    top_level = sorted(
        path.name.removesuffix(".sql")
        for path in SCHEMA_FILE.parent.parent.glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )
    assert SCHEMA_FILE.is_file()
    assert migrate.migration_ids() == top_level
    assert all(re.fullmatch(r"\d{4}_\w+", mid) for mid in top_level), top_level


async def test_the_schema_file_builds_what_the_migrations_build(
    db_url: str, file_catalog: Catalog
) -> None:
    # db_url: a fresh database with every migration applied by migrate.apply.
    applied = [state.id for state in migrate.status(Dsn(db_url)) if state.applied]
    assert applied == migrate.migration_ids()
    migrated = await read_catalog(db_url)
    assert migrated["relations"], "the migrated database has no tables"

    found = differences(migrated, file_catalog)

    assert not found, report(found)


# One change each to the migrated database, a kind each that the comparison must catch: the
# facets that must report it, and a name the report must contain.
MUTATIONS: dict[str, tuple[str, set[str], str]] = {
    "column type": (
        "ALTER TABLE jobs ALTER COLUMN error TYPE varchar(500)",
        {"columns"},
        "jobs.error type",
    ),
    "column default": (
        "ALTER TABLE jobs ALTER COLUMN max_attempts SET DEFAULT 5",
        {"columns"},
        "jobs.max_attempts default",
    ),
    "nullability": (
        "ALTER TABLE analysis_results ALTER COLUMN summary SET NOT NULL",
        {"columns"},
        "analysis_results.summary not_null",
    ),
    "identity": (
        "ALTER TABLE analysis_results ALTER COLUMN input_tokens SET NOT NULL,"
        " ALTER COLUMN input_tokens ADD GENERATED BY DEFAULT AS IDENTITY",
        {"relations", "columns", "sequences", "objects"},
        "analysis_results.input_tokens identity",
    ),
    "generated column": (
        "ALTER TABLE media_assets ADD COLUMN kb bigint"
        " GENERATED ALWAYS AS (file_size_bytes / 1024) STORED",
        {"columns"},
        "media_assets.kb: only in the migrated database",
    ),
    "column order": (
        "ALTER TABLE job_cancel_requests DROP COLUMN holder;"
        " ALTER TABLE job_cancel_requests ADD COLUMN holder varchar(200) NOT NULL DEFAULT 'x';"
        " ALTER TABLE job_cancel_requests ALTER COLUMN holder DROP DEFAULT",
        {"columns"},
        "job_cancel_requests.holder position",
    ),
    "column storage": (
        "ALTER TABLE transcription_word_segments ALTER COLUMN confidences SET STORAGE EXTENDED",
        {"columns"},
        "transcription_word_segments.confidences storage",
    ),
    "column compression": (
        "ALTER TABLE transcription_word_segments ALTER COLUMN ends SET COMPRESSION pglz",
        {"columns"},
        "transcription_word_segments.ends compression",
    ),
    "column statistics": (
        "ALTER TABLE jobs ALTER COLUMN status SET STATISTICS 500",
        {"columns"},
        "jobs.status statistics",
    ),
    "constraint": (
        "ALTER TABLE jobs DROP CONSTRAINT jobs_priority_check,"
        " ADD CONSTRAINT jobs_priority_check CHECK (priority BETWEEN -10 AND 10)",
        {"constraints"},
        "jobs.jobs_priority_check definition",
    ),
    "index": ("DROP INDEX jobs_delayed_idx", {"indexes", "objects"}, "jobs.jobs_delayed_idx"),
    "function body": (
        "CREATE OR REPLACE FUNCTION media_store_time_readable(t timestamptz) RETURNS boolean"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS"
        " $$ SELECT t >= '0001-01-02 00:00:00+00'::timestamptz $$",
        {"functions"},
        "media_store_time_readable.t timestamp with time zone definition",
    ),
    "function setting": (
        "ALTER FUNCTION media_store_finished_jobs SET work_mem = '1MB'",
        {"functions"},
        "SET work_mem TO '1MB'",
    ),
    "trigger": (
        "ALTER TABLE jobs DISABLE TRIGGER jobs_notify_created",
        {"triggers"},
        "jobs.jobs_notify_created enabled",
    ),
    "table comment": (
        "COMMENT ON TABLE media_assets IS 'Files'",
        {"comments"},
        "table.public.media_assets comment",
    ),
    "column comment": (
        "COMMENT ON COLUMN jobs.priority IS NULL",
        {"comments"},
        "+ table column.public.jobs.priority: only in the schema file",
    ),
    "function comment": (
        "COMMENT ON FUNCTION media_store_unpack_words IS 'words'",
        {"comments"},
        "- function.public.media_store_unpack_words(pg_catalog.text,pg_catalog.bytea): only in",
    ),
    "table storage options": (
        "ALTER TABLE jobs SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01)",
        {"relations"},
        "jobs options",
    ),
    "toast options": (
        "ALTER TABLE transcription_word_segments SET (toast.autovacuum_enabled = off)",
        {"relations"},
        "transcription_word_segments toast_options",
    ),
    "view": (
        "CREATE VIEW pending_jobs AS SELECT id FROM jobs WHERE status = 'pending'",
        {"relations", "columns", "objects"},
        "pending_jobs: only in the migrated database",
    ),
    "sequence": (
        "CREATE SEQUENCE job_numbers START 10",
        {"relations", "sequences", "objects"},
        "job_numbers: only in the migrated database",
    ),
    "enum": (
        "CREATE TYPE job_kind AS ENUM ('video', 'audio')",
        {"types", "objects"},
        "job_kind: only in the migrated database",
    ),
    "privileges": ("GRANT SELECT ON jobs TO PUBLIC", {"relations"}, "jobs acl"),
    "schema": ("CREATE SCHEMA elsewhere", {"objects"}, "schema.elsewhere"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
async def test_the_comparison_reports_one_change(
    db_url: str, file_catalog: Catalog, mutation: str
) -> None:
    sql, facets, named = MUTATIONS[mutation]
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(db_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()

    found = differences(await read_catalog(db_url), file_catalog)

    text = report(found)
    assert set(found) == facets, text
    assert named in text, text
