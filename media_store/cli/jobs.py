"""``media-store jobs``: see and steer the job queue on DATABASE_URL.

Subcommands: ``stats`` (``--watch``: a live view), ``list`` (by status, type and idempotency
key, a keyset page at a time), ``show ID`` (the job with what it produced), ``requeue ID |
--failed``, ``cancel ID``, ``purge --older-than DURATION [--status S ...] [--dry-run]``.
Tables for people, ``--json`` for scripts.

Exit status: 0 done; 1 the job does not exist, or the queue refused the change (a finished
job cannot be cancelled, only a failed one requeued, not one whose idempotency key another
job holds now); 2 a usage error (bad arguments, a
status that is never purged) or no database (unset, unreachable). Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shlex
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from media_store.errors import (
    Conflict,
    InvalidTransition,
    JobNotFound,
    NotFound,
    ValidationError,
)
from media_store.models.schemas import FINISHED_STATUSES, Job, JobStats, JobStatus, JobType
from media_store.repositories.admin import MAX_BATCH
from media_store.repositories.jobs import MAX_PAGE, JobPage, Purged, QueueStats
from media_store.store import Store

# The most refreshes --count asks for (over a year of --watch at the shortest interval).
MAX_REFRESHES = 1_000_000_000
_UNITS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")

_DESCRIPTION = """\
See and steer the job queue on DATABASE_URL. Tables for people, --json for scripts.
Exit status: 0 done; 1 no such job, or the change was refused (a finished job cannot be
cancelled, only a failed one requeued, not one whose key another job holds; requeue --failed
skips those and says how many); 2 bad arguments or no database."""

_PURGE_HELP = """\
Delete finished jobs (completed, failed, cancelled; never pending or processing) that finished
more than --older-than ago, with their media assets, transcriptions and words, and analysis
results, a batch of jobs per transaction. --dry-run counts what would go and deletes nothing."""


def duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``45s``, ``2w`` or plain seconds, as a timedelta
    (an argparse type: a bad one is a usage error)."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if value and "".join(number + unit for number, unit in parts) == value:
            seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
        else:
            seconds = math.nan
    try:
        if math.isfinite(seconds) and seconds >= 0:
            return timedelta(seconds=seconds)
    except OverflowError:
        pass
    raise argparse.ArgumentTypeError(
        f"{text!r} is no duration: give seconds, or numbers with units (w, d, h, m, s), "
        f"e.g. 30d, 12h, 1d12h"
    )


def _interval(text: str) -> float:
    seconds = duration(text).total_seconds()
    if not 0.05 <= seconds <= 3_600:
        raise argparse.ArgumentTypeError("the refresh interval must be 0.05 s to 1 hour")
    return seconds


_DIGITS = re.compile(r"[0-9]{1,12}")


def _integer(high: int) -> Callable[[str], int]:
    """An argparse type: an integer from 1 to ``high`` written in plain digits. Anything
    else is a usage error (exit status 2) saying the range: ``1e30`` or a number beyond the
    range is refused, not cut down to ``high`` in silence; ``int()`` alone would also take
    ``1_000`` and digits of other scripts."""

    def parse(text: str) -> int:
        digits = text.strip()
        if _DIGITS.fullmatch(digits) and 1 <= int(digits) <= high:
            return int(digits)
        raise argparse.ArgumentTypeError(
            f"must be an integer from 1 to {high:,}, got {text[:40]!r}"
        )

    parse.__name__ = "integer"  # what argparse calls the type in its messages
    return parse


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a UUID)") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``jobs`` and its subcommands to ``subparsers`` (``parser.add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "jobs",
        help="see and steer the job queue (stats, list, show, requeue, cancel, purge)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="jobs_command", required=True, metavar="subcommand")

    def command(name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = sub.add_parser(
            name,
            help=summary,
            description=description or summary[0].upper() + summary[1:] + ".",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        made.add_argument("--json", action="store_true", help="print JSON instead of tables")
        return made

    stats = command(
        "stats",
        "the queue's figures per job type: pending, claimable, oldest pending, processing, "
        "expired leases, failed and cancelled in the last hour, completed in the last minute",
    )
    stats.add_argument(
        "--watch", action="store_true", help="a live view, refreshed until interrupted (Ctrl-C)"
    )
    stats.add_argument(
        "--interval",
        type=_interval,
        default=2.0,
        metavar="DURATION",
        help="refresh interval of --watch (default 2s)",
    )
    stats.add_argument(
        "--count",
        type=_integer(MAX_REFRESHES),
        metavar="N",
        help="with --watch: stop after N refreshes",
    )
    stats.set_defaults(jobs_func=_stats)

    listing = command("list", "jobs, newest first, a page at a time")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--type", dest="job_type", choices=[t.value for t in JobType])
    listing.add_argument(
        "--key", help="only the jobs created with this idempotency key (finished ones too)"
    )
    listing.add_argument(
        "--limit",
        type=_integer(MAX_PAGE),
        default=50,
        help=f"jobs a page (default 50, at most {MAX_PAGE})",
    )
    listing.add_argument(
        "--after", metavar="CURSOR", help="the cursor a previous page printed: the next page"
    )
    listing.set_defaults(jobs_func=_list)

    show = command("show", "a job with its media assets, transcriptions and analysis results")
    show.add_argument("job_id", type=_job_id, metavar="ID")
    show.set_defaults(jobs_func=_show)

    requeue = command(
        "requeue",
        "put a failed job (or every failed job) back to pending, with fresh attempts",
    )
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("job_id", type=_job_id, metavar="ID", nargs="?")
    which.add_argument("--failed", action="store_true", help="every failed job")
    requeue.add_argument(
        "--type", dest="job_type", choices=[t.value for t in JobType], help="with --failed"
    )
    requeue.set_defaults(jobs_func=_requeue)

    cancel = command(
        "cancel",
        "cancel a pending or processing job (its worker stops it at its next heartbeat)",
    )
    cancel.add_argument("job_id", type=_job_id, metavar="ID")
    cancel.set_defaults(jobs_func=_cancel)

    purge = command("purge", "delete old finished jobs and what they produced", _PURGE_HELP)
    purge.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="DURATION",
        help="finished more than this long ago: 30d, 12h, 1d12h, or seconds",
    )
    purge.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in JobStatus],
        help="only this finished status (repeatable; default all three)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    purge.add_argument(
        "--batch",
        type=_integer(MAX_BATCH),
        default=1_000,
        help=f"jobs deleted a transaction (default 1000, at most {MAX_BATCH})",
    )
    purge.set_defaults(jobs_func=_purge)
    parser.set_defaults(func=command_of)
    return parser


def command_of(args: argparse.Namespace) -> int:
    """Run the ``jobs`` subcommand ``args`` names; its exit status. A missing job or a refused
    change is reported here (exit status 1: a refused requeue whose idempotency key another
    job holds, DuplicateJob, included); other library errors reach ``media-store``'s
    main (exit status 2)."""
    # Piped or captured, rich would assume 80 columns and squeeze the ids; a terminal (or
    # COLUMNS) gives its own width.
    wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
    out = Console(highlight=False, soft_wrap=args.json, width=wide)
    try:
        code: int = asyncio.run(args.jobs_func(args, out))
    except (NotFound, InvalidTransition, Conflict) as exc:
        # A refusal is the operator's to act on: its message alone, which says what is allowed
        # and what the job is, without the exception's class (an internal name).
        print(f"media-store jobs {args.jobs_command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the way out of --watch; elsewhere, an interruption
        return 0 if getattr(args, "watch", False) else 130
    return code


def _print_json(out: Console, value: Any) -> None:
    out.print(json.dumps(value, indent=2, default=str), markup=False, highlight=False)


# --- stats ----------------------------------------------------------------------------------


async def _stats(args: argparse.Namespace, out: Console) -> int:
    async with await Store.open() as store:
        if not args.watch:
            stats = await store.jobs.stats()
            if args.json:
                _print_json(out, _stats_json(stats))
            else:
                out.print(_stats_view(stats))
            return 0
        refreshes = 0
        with Live(console=out, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    stats = await store.jobs.stats()
                    refreshes += 1
                    if args.json:  # one JSON document a line, for a pipe
                        out.print(json.dumps(_stats_json(stats), default=str), markup=False)
                    else:
                        live.update(_stats_view(stats), refresh=True)
                    if args.count is not None and refreshes >= args.count:
                        return 0
                    await asyncio.sleep(args.interval)
            except (KeyboardInterrupt, asyncio.CancelledError):
                return 0


def _stats_json(stats: QueueStats) -> dict[str, Any]:
    return {
        "at": stats.total.at.isoformat(),
        "types": [s.model_dump(mode="json", exclude={"at"}) for s in stats.types],
        "total": stats.total.model_dump(mode="json", exclude={"at"}),
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7_200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172_800:
        return f"{seconds / 3_600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


# The stats table's headers: short, two lines where one word would not do, so that the nine
# columns fit an 80-column terminal (--watch) with every header whole; _STATS_LEGEND spells
# them out.
STATS_HEADERS = (
    "type",
    "pending",
    "ready",
    "oldest\npending",
    "running",
    "expired\nleases",
    "failed\n1h",
    "cancel\n1h",
    "done\n1m",
)
_STATS_LEGEND = (
    "ready: claimable now; oldest pending: the age of the oldest job due; running: processing; "
    "1h, 1m: in the last hour, minute; k, M, G: thousands, millions, billions (exact: --json)"
)


def _count(value: int) -> str:
    """A count in at most 6 characters (a column of the stats table stays as narrow as its
    header): exact below 100,000, then 123k, 4.5M, 6.7G (rounded down: 999,999 is no 1000k)."""
    if value < 100_000:
        return f"{value:,}"
    if value < 1_000_000:
        return f"{value // 1_000}k"
    if value < 1_000_000_000:
        return f"{value // 100_000 / 10:.1f}M"
    return f"{value // 100_000_000 / 10:.1f}G"


def _stats_view(stats: QueueStats) -> Group:
    table = Table(
        title=f"jobs at {stats.total.at:%Y-%m-%d %H:%M:%S} UTC",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in STATS_HEADERS:
        table.add_column(name, justify="left" if name == "type" else "right")

    def cells(row: JobStats, name: str) -> list[str]:
        return [
            name,
            _count(row.pending),
            _count(row.claimable),
            _age(row.oldest_pending_s),
            _count(row.processing),
            _count(row.expired_leases),
            _count(row.failed_last_hour),
            _count(row.cancelled_last_hour),
            _count(row.completed_last_minute),
        ]

    for row in stats.types:
        table.add_row(*cells(row, row.job_type.value if row.job_type else "?"))
    table.add_section()
    table.add_row(*cells(stats.total, "all"), style="bold")
    total = stats.total
    if total.completed_estimate is None:
        note = Text(
            "finished in all: not estimated yet (the jobs table was never analyzed; "
            "autovacuum or ANALYZE does it)",
            style="dim",
        )
    else:
        note = Text(
            f"finished in all (estimated from the planner's statistics): "
            f"completed ~{total.completed_estimate:,}, failed ~{total.failed_estimate:,}, "
            f"cancelled ~{total.cancelled_estimate:,}",
            style="dim",
        )
    return Group(table, Text(_STATS_LEGEND, style="dim"), note)


# --- list -----------------------------------------------------------------------------------


async def _list(args: argparse.Namespace, out: Console) -> int:
    async with await Store.open() as store:
        page = await store.jobs.list_jobs(
            args.after,
            args.limit,
            status=args.status,
            job_type=args.job_type,
            key=args.key,
        )
    if args.json:
        _print_json(
            out,
            {
                "jobs": [job.model_dump(mode="json") for job in page.jobs],
                "next": None if page.next is None else page.next.encode(),
            },
        )
        return 0
    out.print(_jobs_table(page))
    if page.next is not None:
        again = ["media-store jobs list"]
        if args.status:
            again.append(f"--status {args.status}")
        if args.job_type:
            again.append(f"--type {args.job_type}")
        if args.key is not None:
            again.append(f"--key {shlex.quote(args.key)}")
        if args.limit != 50:
            again.append(f"--limit {args.limit}")
        again.append(f"--after {page.next.encode()}")
        out.print(Text(f"next page: {' '.join(again)}", style="dim"), soft_wrap=True)
    return 0


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _jobs_table(page: JobPage) -> Table:
    table = Table(title=f"{len(page.jobs)} job(s), newest first", title_justify="left")
    table.add_column("id", no_wrap=True)
    for name in ("type", "status", "attempts", "created (UTC)", "finished (UTC)", "error"):
        table.add_column(name, overflow="fold")
    for job in page.jobs:
        table.add_row(
            str(job.id),
            job.job_type.value,
            job.status.value,
            f"{job.attempts}/{job.max_attempts}",
            _when(job.created_at),
            _when(job.completed_at),
            (job.error or "")[:60],
        )
    return table


# --- show -----------------------------------------------------------------------------------


async def _show(args: argparse.Namespace, out: Console) -> int:
    async with await Store.open() as store:
        job = await store.jobs.get_by_id(args.job_id)
        if job is None:
            raise JobNotFound(args.job_id)
        assets = await store.media_assets.list_for_job(job.id)
        transcriptions = await store.transcriptions.list_for_job(job.id)
        results = await store.analysis_results.list_for_job(job.id)
    spoken = [
        (t.model_dump(mode="json", exclude={"word_timestamps"}), len(t.word_timestamps or []))
        for t in transcriptions
    ]
    if args.json:
        _print_json(
            out,
            {
                "job": job.model_dump(mode="json"),
                "media_assets": [a.model_dump(mode="json") for a in assets],
                "transcriptions": [{**fields, "word_count": n} for fields, n in spoken],
                "analysis_results": [r.model_dump(mode="json") for r in results],
            },
        )
        return 0
    out.print(_job_view(job))
    media = Table(title=f"media assets ({len(assets)})", title_justify="left")
    for name in ("id", "type", "path", "bytes", "mime"):
        media.add_column(name, overflow="fold")
    for asset in assets:
        media.add_row(
            str(asset.id),
            asset.asset_type.value,
            asset.file_path,
            "-" if asset.file_size_bytes is None else f"{asset.file_size_bytes:,}",
            asset.mime_type or "-",
        )
    words = Table(title=f"transcriptions ({len(spoken)})", title_justify="left")
    for name in ("id", "provider", "language", "words", "text"):
        words.add_column(name, overflow="fold")
    for fields, count in spoken:
        words.add_row(
            str(fields["id"]),
            str(fields["provider"]),
            str(fields["language"] or "-"),
            f"{count:,}",
            str(fields["text_content"])[:60],
        )
    analyses = Table(title=f"analysis results ({len(results)})", title_justify="left")
    for name in ("id", "type", "model", "tokens in/out", "summary"):
        analyses.add_column(name, overflow="fold")
    for result in results:
        analyses.add_row(
            str(result.id),
            result.analysis_type,
            result.model_used or "-",
            f"{result.input_tokens if result.input_tokens is not None else '-'}/"
            f"{result.output_tokens if result.output_tokens is not None else '-'}",
            (result.summary or "")[:60],
        )
    out.print(media, words, analyses)
    return 0


def _job_view(job: Job) -> Table:
    table = Table(title=f"job {job.id}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in job.model_dump(mode="json").items():
        if name == "id":
            continue
        shown = "-" if value is None else value
        if isinstance(shown, dict):
            shown = json.dumps(shown)
        table.add_row(name, str(shown))
    return table


# --- requeue, cancel ------------------------------------------------------------------------


async def _requeue(args: argparse.Namespace, out: Console) -> int:
    if args.job_id is not None and args.job_type is not None:
        raise ValidationError("--type goes with --failed, not with a job id")
    async with await Store.open() as store:
        if args.failed:
            count = await store.jobs.requeue_failed(args.job_type)
            if args.json:
                _print_json(out, {"requeued": int(count), "skipped": count.skipped})
            else:
                kind = f" {args.job_type}" if args.job_type else ""
                out.print(f"requeued {count:,} failed{kind} job(s)")
                if count.skipped:
                    out.print(f"skipped {count.skipped:,}: another job holds their idempotency key")
            return 0
        job = await store.jobs.requeue(args.job_id)
    if args.json:
        _print_json(out, {"requeued": 1, "job": job.model_dump(mode="json")})
    else:
        out.print(f"requeued job {job.id}: pending, attempts reset (0/{job.max_attempts})")
    return 0


async def _cancel(args: argparse.Namespace, out: Console) -> int:
    async with await Store.open() as store:
        job = await store.jobs.cancel(args.job_id)
    was_running = job.started_at is not None
    if args.json:
        _print_json(out, {"job": job.model_dump(mode="json"), "was_processing": was_running})
    elif was_running:
        out.print(
            f"cancelled job {job.id}, which was processing on {job.locked_by}: that worker "
            f"stops it at its next heartbeat, and its result will be refused"
        )
    else:
        out.print(f"cancelled job {job.id} (it was pending: it will never run)")
    return 0


# --- purge ----------------------------------------------------------------------------------


async def _purge(args: argparse.Namespace, out: Console) -> int:
    async with await Store.open() as store:
        purged = await store.jobs.purge(
            args.older_than,
            args.status,
            dry_run=args.dry_run,
            batch=args.batch,
        )
    if args.json:
        _print_json(out, _purged_json(purged))
        return 0
    verb = "would delete" if purged.dry_run else "deleted"
    out.print(f"{verb}: jobs finished before {purged.cutoff:%Y-%m-%d %H:%M:%S} UTC")
    table = Table()
    table.add_column("rows")
    table.add_column("count", justify="right")
    for name, count in _purged_counts(purged).items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    if purged.dry_run:
        out.print(Text("dry run: nothing was deleted", style="dim"))
    return 0


def _purged_counts(purged: Purged) -> dict[str, int]:
    return {
        **{f"jobs {s.value}": purged.by_status.get(s, 0) for s in FINISHED_STATUSES},
        "jobs": purged.jobs,
        "media_assets": purged.media_assets,
        "transcriptions": purged.transcriptions,
        "word segments": purged.word_segments,
        "words": purged.words,
        "analysis_results": purged.analysis_results,
    }


def _purged_json(purged: Purged) -> dict[str, Any]:
    return {
        "dry_run": purged.dry_run,
        "cutoff": purged.cutoff.isoformat(),
        "jobs": purged.jobs,
        "by_status": {s.value: n for s, n in purged.by_status.items()},
        "media_assets": purged.media_assets,
        "transcriptions": purged.transcriptions,
        "word_segments": purged.word_segments,
        "words": purged.words,
        "analysis_results": purged.analysis_results,
        "batches": purged.batches,
    }
