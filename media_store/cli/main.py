"""media-store: migrate and inspect the schema, grant a runtime role, check the queries, import
ASR output, see and steer the job queue, write captions, serve Prometheus metrics, run
the demo.

The database is DATABASE_URL, never a command-line argument (which would show the password in
process listings). Only the demo falls back to an embedded development PostgreSQL when
DATABASE_URL is unset.
"""

# This docstring is the description of `media-store --help`: plain text, no markup.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from media_store.cli import captions as captions_cli
from media_store.cli import importer
from media_store.cli import jobs as jobs_cli
from media_store.config import DATABASE_URL, Dsn, Settings
from media_store.demo.embedded import DEFAULT_DIR, embedded_url, start_embedded
from media_store.demo.output import row
from media_store.demo.run import EmbeddedServer, bundled_psql, run_demo
from media_store.errors import MediaStoreError
from media_store.ops import grants
from media_store.ops import migrations as migrate
from media_store.ops.schema_check import check_database
from media_store.store import Store

_GRANT_HELP = """\
Give ROLE the rights a worker needs on DATABASE_URL, and no more: CONNECT on the database,
USAGE on the schema, SELECT/INSERT/UPDATE/DELETE on the library's tables, EXECUTE on its
functions. Run it as the owner role (the one that runs the migrations), after every migrate:
a migration that adds a table gives ROLE nothing on it. Idempotent. ROLE must exist and must
not be a superuser or the owner role."""

_ROLLBACK_HELP = """\
Revert the latest --count applied migrations (default 1), newest first. Reverting the first
migration drops every table and all their data: that needs --yes."""

_DEMO_HELP = """\
Migrate DATABASE_URL and run the example flow: a job and what it produced, streamed word
timestamps, and two workers sharing a queue (in a private database the demo creates and drops,
so that its workers claim only the demo's own jobs). With DATABASE_URL unset it starts an
embedded development PostgreSQL whose data lives in .dev-postgres/ and keeps it running."""


def _dsn() -> Dsn:
    return Settings.from_env().dsn


# A migration that gave up waiting for its locks: a temporary failure, worth running again
# later (sysexits' EX_TEMPFAIL), told apart from a failing migration or a wrong role (2).
EXIT_LOCKED = 75

_LOCKS_HELP = """\
Each migration waits at most --lock-timeout seconds at a time for the locks it needs (every
worker statement on the table queues behind the wait), is rolled back whole if it gets none,
and is tried again --lock-retries times after growing pauses; then the command exits 75
naming the sessions that held the locks."""


def _lock_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-timeout",
        type=float,
        metavar="SECONDS",
        help=f"longest wait for a lock at each attempt (default: ${migrate.LOCK_TIMEOUT_ENV}, "
        f"else {migrate.LockPolicy().timeout_s:g})",
    )
    parser.add_argument(
        "--lock-retries",
        type=int,
        metavar="N",
        help=f"attempts after the first (default: ${migrate.LOCK_RETRIES_ENV}, "
        f"else {migrate.LockPolicy().retries})",
    )


def _locks(args: argparse.Namespace) -> migrate.LockPolicy:
    return migrate.LockPolicy.from_env(timeout_s=args.lock_timeout, retries=args.lock_retries)


def _gave_up(command: str, exc: migrate.MigrationLockTimeout) -> int:
    print(f"media-store {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_LOCKED


def _cmd_migrate(args: argparse.Namespace) -> int:
    dsn = _dsn()
    try:
        applied = migrate.apply(dsn, locks=_locks(args))
    except migrate.MigrationLockTimeout as exc:
        return _gave_up("migrate", exc)
    print(f"{dsn}: applied {len(applied)} migration(s)" + "".join(f"\n  + {m}" for m in applied))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    dsn = _dsn()
    first = migrate.migration_ids()[0]
    applied = [state.id for state in migrate.status(dsn) if state.applied]
    doomed = applied[-args.count :] if args.count > 0 else []  # rollback() refuses count < 1
    # Checked before the rollback, outside its lock: a migration applied meanwhile by another
    # run only moves the first one further from the latest, never closer.
    if first in doomed and not args.yes:
        print(
            f"media-store rollback: reverting {', '.join(reversed(doomed))} on {dsn} would revert "
            f"{first}, which drops every table and all their data. Nothing was done; run again "
            f"with --yes to do it.",
            file=sys.stderr,
        )
        return 2
    try:
        reverted = migrate.rollback(dsn, count=args.count, locks=_locks(args))
    except migrate.MigrationLockTimeout as exc:
        return _gave_up("rollback", exc)
    if not reverted:
        print(f"{dsn}: nothing to roll back")
    else:
        print(f"{dsn}: rolled back" + "".join(f"\n  - {m}" for m in reverted))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    dsn = _dsn()
    states = migrate.status(dsn)  # before any output: a failure prints the error alone
    print(f"{dsn}:")
    for state in states:
        print(f"  [{'applied' if state.applied else 'pending'}] {state.id}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
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
    embedded = None
    url = os.environ.get(DATABASE_URL)
    if url:
        dsn = Dsn(url)
        row("database", f"DATABASE_URL = {dsn}")
    else:
        # Kept running after the demo, so that the psql command it prints at the end works;
        # the next `make demo` finds it running and uses it again.
        server = start_embedded(DEFAULT_DIR, keep_running=True)
        dsn = Dsn(embedded_url(server))
        embedded = EmbeddedServer(DEFAULT_DIR.resolve(), dsn, psql=bundled_psql())
        row("database", f"embedded development PostgreSQL (DATABASE_URL is unset): {dsn}")
    applied = migrate.apply(dsn)
    row("migrations", ", ".join(applied) + " applied" if applied else "up to date")
    asyncio.run(run_demo(dsn, embedded=embedded))
    return 0


def _cmd_grant(args: argparse.Namespace) -> int:
    dsn = _dsn()
    statements = grants.grant_runtime(dsn, args.role, dry_run=args.dry_run)
    done = "would run (nothing was run)" if args.dry_run else "granted"
    print(f"{dsn}: {done}" + "".join(f"\n  {statement};" for statement in statements))
    return 0


_METRICS_HELP = """\
Serve the queue's and its tables' figures, read from DATABASE_URL at each scrape by the cheap
statistics statements (never a table scan), in Prometheus' text format on http://LISTEN/metrics
until interrupted (SIGINT, SIGTERM). Needs the metrics extra: pip install media-store[metrics].
Workers export their own counters from their own processes (media_store.metrics.WorkerMetrics).
"""


def _listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9108`` for IPv6) as argparse's type."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _cmd_metrics(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the command needs the metrics extra, which the rest of
    # the CLI does not (import_module, since every import statement of the package must stand
    # at the top of its module: tests/test_layout.py).
    try:
        metrics: Any = importlib.import_module("media_store.contrib.metrics")
    except ImportError as exc:
        print(
            f"media-store metrics: needs the metrics extra (pip install media-store[metrics]): "
            f"{exc}",
            file=sys.stderr,
        )
        return 2
    host, port = args.listen
    settings = Settings.from_env()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with await Store.open(settings=settings) as store:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            print(f"{settings.dsn}: serving metrics on http://{where}/metrics", flush=True)
            await metrics.serve(store, host, port, timeout=args.timeout, stop=stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="media-store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=description or summary[0].upper() + summary[1:] + ".",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    migrate_cmd = command(
        "migrate",
        "apply every pending migration to DATABASE_URL",
        "Apply every pending migration to DATABASE_URL.\n\n" + _LOCKS_HELP,
    )
    _lock_options(migrate_cmd)
    migrate_cmd.set_defaults(func=_cmd_migrate)
    rollback = command(
        "rollback", "revert the latest migration(s)", _ROLLBACK_HELP + "\n\n" + _LOCKS_HELP
    )
    _lock_options(rollback)
    rollback.add_argument("--count", type=int, default=1, help="how many to revert (default 1)")
    rollback.add_argument(
        "--yes",
        action="store_true",
        help="confirm a rollback that reverts the first migration (drops every table)",
    )
    rollback.set_defaults(func=_cmd_rollback)
    command("migrate-status", "list the applied and pending migrations").set_defaults(
        func=_cmd_status
    )
    grant = command("grant", "give a runtime role the rights a worker needs", _GRANT_HELP)
    grant.add_argument("role", metavar="ROLE", help="the runtime role (it must exist)")
    grant.add_argument(
        "--dry-run", action="store_true", help="print the GRANT statements, run nothing"
    )
    grant.set_defaults(func=_cmd_grant)
    command(
        "check",
        "prepare every named query and compare it with its model",
        "Prepare every named query against DATABASE_URL (nothing runs) and compare its "
        "parameter and\nresult types with the model the rows become. Exits 1 on a mismatch.",
    ).set_defaults(func=_cmd_check)
    command("demo", "run the example flow", _DEMO_HELP).set_defaults(func=_cmd_demo)
    metrics_cmd = command("metrics", "serve the queue's figures to Prometheus", _METRICS_HELP)
    metrics_cmd.add_argument(
        "--listen",
        type=_listen_address,
        default=("127.0.0.1", 9108),
        metavar="HOST:PORT",
        help="address to serve on (default 127.0.0.1:9108)",
    )
    metrics_cmd.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="longest wait for the database's figures at a scrape (default 5)",
    )
    metrics_cmd.set_defaults(func=_cmd_metrics)
    importer.add_parser(sub)
    jobs_cli.add_parser(sub)
    captions_cli.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except MediaStoreError as exc:
        command = args.command + (f" {args.jobs_command}" if args.command == "jobs" else "")
        print(f"media-store {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
