"""``media-store``: migrate, rollback, migrate-status, check, demo.

The database is ``DATABASE_URL`` (never a command-line argument, which would show the password
in process listings). ``demo`` alone falls back to an embedded development PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from media_store import migrate
from media_store.config import DATABASE_URL, Dsn, Settings
from media_store.errors import MediaStoreError


def _dsn() -> Dsn:
    return Settings.from_env().dsn


def _cmd_migrate(args: argparse.Namespace) -> int:
    dsn = _dsn()
    applied = migrate.apply(dsn)
    print(f"{dsn}: applied {len(applied)} migration(s)" + "".join(f"\n  + {m}" for m in applied))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    dsn = _dsn()
    reverted = migrate.rollback(dsn, count=args.count)
    if not reverted:
        print(f"{dsn}: nothing to roll back")
    else:
        print(f"{dsn}: rolled back" + "".join(f"\n  - {m}" for m in reverted))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    dsn = _dsn()
    print(f"{dsn}:")
    for state in migrate.status(dsn):
        print(f"  [{'applied' if state.applied else 'pending'}] {state.id}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from media_store.check import check_database

    dsn = _dsn()
    problems = asyncio.run(check_database(Settings.from_env(dsn)))
    if problems:
        print(f"{dsn}: {len(problems)} mismatch(es) between the queries and the schema:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"{dsn}: every named query matches its model")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from media_store.demo import run_demo

    server = None
    url = os.environ.get(DATABASE_URL)
    if url:
        dsn = Dsn(url)
        print(f"demo database: DATABASE_URL = {dsn}")
    else:
        from media_store.devdb import DEFAULT_DIR, embedded_url, start_embedded

        server = start_embedded(DEFAULT_DIR)
        dsn = Dsn(embedded_url(server))
        print(
            f"demo database: DATABASE_URL is unset, using the embedded development "
            f"PostgreSQL in {DEFAULT_DIR.resolve()} ({dsn})"
        )
    applied = migrate.apply(dsn)
    print(f"migrations applied now: {applied or 'none (already up to date)'}")
    asyncio.run(run_demo(dsn))
    del server  # the embedded server stops when this process exits
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="media-store", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply every pending migration").set_defaults(func=_cmd_migrate)
    rb = sub.add_parser("rollback", help="revert the latest migration")
    rb.add_argument("--count", type=int, default=1, help="how many to revert (default 1)")
    rb.set_defaults(func=_cmd_rollback)
    sub.add_parser("migrate-status", help="list applied and pending migrations").set_defaults(
        func=_cmd_status
    )
    sub.add_parser(
        "check", help="prepare every named query and compare it with its model"
    ).set_defaults(func=_cmd_check)
    sub.add_parser("demo", help="run the example worker flow").set_defaults(func=_cmd_demo)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except MediaStoreError as exc:
        print(f"media-store {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
