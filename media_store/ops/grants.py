"""Least privilege: the rights a runtime role needs to use the library, and nothing more.

Two roles share a database. The owner role runs the migrations (:mod:`media_store.ops.migrations`)
and owns every table and function they create. Workers, importers and anything else that only
reads and writes rows connect as a runtime role, which :func:`grant_runtime` (run as the owner
role, by ``media-store grant ROLE``) gives exactly:

- CONNECT on the database and USAGE on the schema;
- SELECT, INSERT, UPDATE, DELETE on the library's tables
  (:data:`media_store.ops.migrations.TABLES`).
  UPDATE is also what ``FOR UPDATE`` row locks need (claims, word appends);
- EXECUTE on the library's functions that queries and CHECK constraints call
  (:data:`RUNTIME_FUNCTIONS`). Trigger functions are left out: a trigger runs its function
  without checking EXECUTE, and nobody can call one directly.

Nothing else: no CREATE, TRUNCATE, REFERENCES or TRIGGER, no ownership, nothing on yoyo's
tables (so the runtime role cannot migrate, and ``media-store migrate`` run as it says so).
There are no sequences (every key is a UUID); LISTEN and NOTIFY need no privilege.

A migration that adds a table or a function gives the runtime role nothing on it: run
``media-store grant ROLE`` again after every ``media-store migrate`` (it is idempotent). The
library does not use ``ALTER DEFAULT PRIVILEGES``: those would also grant on whatever else the
owner role creates in the schema, yoyo's tables among them.

The rights are on the owner role's current schema (where the migrations put the tables); a
runtime role must find the tables on its own search_path (``ALTER ROLE ... SET search_path``
when the schema is not ``public``).

Granting never formats a value into SQL: the role, database, schema, table and function names
are identifiers, quoted by :class:`psycopg.sql.Identifier`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
from psycopg import sql

from media_store.config import Dsn
from media_store.errors import ConfigurationError, DatabaseError, ValidationError
from media_store.ops.migrations import TABLES, Session, abridge, connect

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")

# The functions the runtime role calls, in the order the migrations create them: the
# lifecycle rule (sql/jobs.sql), the word decoders (CHECK constraints, and for reading words
# from SQL), the readable-time rule (CHECK constraints), the claim and the purge's walk
# (sql/jobs.sql), a holder's heartbeat, batch completion and release (sql/queue.sql). A test
# compares the list with the non-trigger functions of a migrated schema.
RUNTIME_FUNCTIONS = (
    "media_store_job_transition_allowed",
    "media_store_float8_at",
    "media_store_unpack_float8",
    "media_store_unpack_words",
    "media_store_time_readable",
    "media_store_claim_jobs",
    "media_store_unpack_speakers",
    "media_store_finished_jobs",
    "media_store_heartbeat_jobs",
    "media_store_complete_jobs",
    "media_store_release_jobs",
    "media_store_search_config",
    "media_store_search_query",
    "media_store_search_segments",
)

# The role that would receive the rights: (is a superuser, the owner roles of the library's
# tables whose privileges it has, through membership or by being one).
_GRANTEE = """
SELECT r.rolsuper,
       coalesce(array_agg(DISTINCT pg_get_userbyid(c.relowner) ORDER BY
                          pg_get_userbyid(c.relowner))
                FILTER (WHERE c.oid IS NOT NULL), '{}')
FROM pg_roles AS r
LEFT JOIN pg_class AS c
       ON c.relnamespace = current_schema()::regnamespace
      AND c.relkind IN ('r', 'p')
      AND c.relname = any(%(tables)s::text[])
      AND pg_has_role(r.oid, c.relowner, 'USAGE')
WHERE r.rolname = %(role)s
GROUP BY r.rolsuper
"""

# Whether the connected role may grant what the runtime role needs: one row per object, with
# the owner and whether it exists and is grantable ("may_grant" NULL: missing).
_GRANTABLE = """
SELECT 'database' AS kind, current_database()::text AS name,
       pg_get_userbyid(d.datdba) AS owner,
       has_database_privilege(d.oid, 'CONNECT WITH GRANT OPTION') AS may_grant,
       has_database_privilege(%(role)s, d.oid, 'CONNECT') AS held
FROM pg_database AS d WHERE d.datname = current_database()
UNION ALL
SELECT 'schema', n.nspname::text, pg_get_userbyid(n.nspowner),
       has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION'),
       has_schema_privilege(%(role)s, n.oid, 'USAGE')
FROM pg_namespace AS n WHERE n.oid = current_schema()::regnamespace
UNION ALL
SELECT 'table', t.name, pg_get_userbyid(c.relowner),
       has_table_privilege(c.oid, 'SELECT WITH GRANT OPTION')
       AND has_table_privilege(c.oid, 'INSERT WITH GRANT OPTION')
       AND has_table_privilege(c.oid, 'UPDATE WITH GRANT OPTION')
       AND has_table_privilege(c.oid, 'DELETE WITH GRANT OPTION'),
       NULL
FROM unnest(%(tables)s::text[]) AS t (name)
LEFT JOIN pg_class AS c
       ON c.relnamespace = current_schema()::regnamespace
      AND c.relkind IN ('r', 'p')
      AND c.relname = t.name
UNION ALL
SELECT 'function', f.name, pg_get_userbyid(min(p.proowner)),
       bool_and(has_function_privilege(p.oid, 'EXECUTE WITH GRANT OPTION')),
       NULL
FROM unnest(%(functions)s::text[]) AS f (name)
LEFT JOIN pg_proc AS p
       ON p.pronamespace = current_schema()::regnamespace
      AND p.proname = f.name
GROUP BY f.name
"""


def grant_runtime(dsn: Dsn, role: str, *, dry_run: bool = False) -> list[str]:
    """Give ``role`` the rights of a runtime role (see the module doc) on the database
    ``dsn`` names, in its current schema (where the migrations put the tables), in one
    transaction. Run it as the owner role, after the migrations. Idempotent.

    Returns the statements run (with ``dry_run``, the statements it would run, running
    nothing). CONNECT and USAGE that the connected role may not grant but ``role`` already
    holds (as every role does through PUBLIC, by default) are left as they are.

    Raises :class:`ValidationError` for a name that cannot be a role;
    :class:`ConfigurationError` when ``role`` does not exist, is a superuser or has the
    privileges of an owner of the tables (it would not be a least-privilege role), when a
    table or function is missing (run the migrations first) or when the connected role may not
    grant a right (run it as the owner role); :class:`DatabaseUnavailable` when the database
    cannot be reached.
    """
    if not isinstance(role, str) or not role or "\x00" in role:
        raise ValidationError(f"role must be a role's name (got {role!r})")
    with contextlib.closing(connect(dsn)) as conn:
        try:
            who = Session.of(conn)
            statements = _statements(conn, who, role)
            if not dry_run:
                with conn.transaction():
                    for statement in statements:
                        conn.execute(statement)
            return [statement.as_string(conn) for statement in statements]
        except psycopg.errors.InsufficientPrivilege as exc:
            # Past the checks below: the rights changed meanwhile.
            raise ConfigurationError(
                f"granting {role} its rights on {dsn} failed: {dsn.scrub(str(exc))}"
            ) from exc
        except psycopg.Error as exc:
            raise DatabaseError(
                f"granting {role} its rights on {dsn} failed: "
                f"{dsn.scrub(type(exc).__name__ + ': ' + str(exc))}"
            ) from exc


def _statements(conn: psycopg.Connection[Any], who: Session, role: str) -> list[sql.Composed]:
    """The GRANT statements that give ``role`` its rights, after checking that ``role`` is a
    runtime role and that ``who`` may grant them. Changes nothing."""
    if who.schema is None:
        raise ConfigurationError(
            f"role {who.role} has no schema in database {who.database}: no schema of its "
            f"search_path exists"
        )
    grantee = conn.execute(_GRANTEE, {"role": role, "tables": list(TABLES)}).fetchone()
    if grantee is None:
        raise ConfigurationError(
            f"role {role} does not exist: create it first (CREATE ROLE {role} LOGIN), then "
            f"grant it its rights"
        )
    superuser, owners = grantee
    if superuser or owners:
        why = (
            "is a superuser"
            if superuser
            else f"has the privileges of {', '.join(owners)}, the owner of the tables in schema "
            f"{who.schema} of database {who.database}"
        )
        raise ConfigurationError(
            f"role {role} {why}: a runtime role must be a role of its own that holds only the "
            f"rights granted here"
        )

    target = sql.Identifier(role)
    statements: list[sql.Composed] = []
    missing: list[str] = []
    forbidden: list[str] = []
    params = {"role": role, "tables": list(TABLES), "functions": list(RUNTIME_FUNCTIONS)}
    for kind, name, owner, may_grant, held in conn.execute(_GRANTABLE, params):
        if may_grant is None:
            missing.append(f"{kind} {name}")
        elif not may_grant and not held:
            forbidden.append(f"{kind} {name} (owner: {owner})")
        elif may_grant and kind in ("database", "schema"):
            # Granted even when held through PUBLIC: the runtime role keeps it if a DBA
            # revokes it from PUBLIC later. Held but not grantable: left as it is.
            statements.append(
                sql.SQL("GRANT {} ON {} {} TO {}").format(
                    sql.SQL("CONNECT" if kind == "database" else "USAGE"),
                    sql.SQL(kind.upper()),
                    sql.Identifier(name),
                    target,
                )
            )
    if missing:
        raise ConfigurationError(
            f"schema {who.schema} of database {who.database} has no {abridge(missing)}: "
            f"apply the migrations first (media-store migrate), then grant"
        )
    if forbidden:
        raise ConfigurationError(
            f"role {who.role} may not grant {role} its rights on {abridge(forbidden)} in "
            f"database {who.database}: grant as the owner role (and what it does not own, as "
            f"the owner named)"
        )
    statements.append(
        sql.SQL("GRANT {} ON TABLE {} TO {}").format(
            sql.SQL(", ").join(sql.SQL(privilege) for privilege in TABLE_PRIVILEGES),
            sql.SQL(", ").join(sql.Identifier(who.schema, table) for table in TABLES),
            target,
        )
    )
    statements.append(
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(who.schema, name) for name in RUNTIME_FUNCTIONS),
            target,
        )
    )
    return statements
