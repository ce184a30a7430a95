"""The `exportwatch` command line. Same configuration and code path as the Lambda.

Exit codes (a contract for scripts): 0 success; 1 the operation failed (Intercom or AWS refused or broke);
2 bad input (arguments, job id, configuration), nothing was written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, NoReturn

from exportwatch.config import ConfigError, Settings
from exportwatch.intercom import ActiveJobExists, IntercomError
from exportwatch.model import InvalidJobId, Job, human_size, iso, utcnow, validate_job_id

if TYPE_CHECKING:
    from exportwatch.poll import JobResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, exit 2: scripts and people both read the first line only.
        message = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)
        self.exit(EXIT_USAGE, f"exportwatch: error: {message} (see exportwatch --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="exportwatch", description="Watch Intercom data export jobs; copy finished exports to S3.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress to stderr (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("track", help="watch an existing Intercom export job")
    p.add_argument("job_id", metavar="JOB_ID")

    p = sub.add_parser("start", help="create an export at Intercom and track it")
    p.add_argument("--since", required=True, metavar="DATE", help="first day (YYYY-MM-DD) or ISO 8601 time, UTC")
    p.add_argument("--until", required=True, metavar="DATE", help="last day, inclusive (YYYY-MM-DD) or ISO time")

    p = sub.add_parser("poll", help="run one poll cycle now (the code path the Lambda runs)")
    p.add_argument("--all", action="store_true", help="check every unfinished job now, ignoring back-off")
    p.add_argument("--json", action="store_true", help="print the cycle summary as JSON")

    p = sub.add_parser("list", help="list tracked jobs and their states")
    p.add_argument("--json", action="store_true", help="print JSON lines, one job per line")

    p = sub.add_parser("cancel", help="cancel a job at Intercom (the next poll reports export.canceled)")
    p.add_argument("job_id", metavar="JOB_ID")

    p = sub.add_parser("demo", help="run everything locally: moto server + Intercom emulator, no AWS account")
    p.add_argument("--template", help="path to template.yaml (default: ./template.yaml)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(COMMANDS[args.command](args))
    except (UsageError, InvalidJobId, ConfigError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except ActiveJobExists as exc:
        return _fail(EXIT_FAILED, str(exc))
    except IntercomError as exc:
        return _fail(EXIT_FAILED, f"Intercom: {exc}")
    except KeyboardInterrupt:
        return _fail(130, "interrupted")
    except Exception as exc:  # AWS errors and the unexpected: one line, no traceback unless -v
        if args.verbose:
            logging.exception("failed")
        return _fail(EXIT_FAILED, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


def _fail(code: int, message: str) -> int:
    print(f"exportwatch: error: {message}", file=sys.stderr)
    return code


# -- commands ---------------------------------------------------------------------------------------------


def cmd_track(args: argparse.Namespace) -> int:
    job_id = validate_job_id(args.job_id)  # before anything else: bad input writes nothing
    from exportwatch.wiring import build_store

    store = build_store(Settings.from_env())
    if store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=0)):
        print(f"tracking {job_id}: the next poll checks it")
    else:
        existing = store.get(job_id)
        state = existing.state.value if existing else "unknown"
        print(f"{job_id} is already tracked (state: {state}); nothing changed")
    return EXIT_OK


def cmd_start(args: argparse.Namespace) -> int:
    since, until = (
        _parse_when(args.since, "--since", end_of_day=False),
        _parse_when(args.until, "--until", True),
    )
    if since > until:
        raise UsageError(f"--since ({iso(since)}) is after --until ({iso(until)})")
    if since > utcnow():
        raise UsageError(f"--since ({iso(since)}) is in the future")
    from exportwatch.wiring import aws_clients, build_intercom

    settings = Settings.from_env()
    clients = aws_clients()
    store_db = clients["dynamodb"]
    intercom = build_intercom(settings, clients["secretsmanager"])
    intercom.ensure_token()
    report = intercom.create(int(since.timestamp()), int(until.timestamp()))
    try:
        job_id = validate_job_id(report.job_identifier)
    except InvalidJobId as exc:
        # The export exists at Intercom now: say so (exit 1), never pretend nothing happened.
        return _fail(EXIT_FAILED, f"Intercom created a job but its id is unusable ({exc}); nothing was tracked")
    job = Job(
        job_identifier=job_id,
        tracked_at=iso(utcnow()),
        next_check_at=0,
        intercom_status=report.status,
        created_at_after=iso(since),
        created_at_before=iso(until),
    )
    from exportwatch.store import JobStore

    try:
        JobStore(store_db, settings.jobs_table).track(job)
    except Exception as exc:
        # The export exists at Intercom now: never lose its id.
        print(job.job_identifier)
        return _fail(
            EXIT_FAILED,
            f"created {job.job_identifier} but could not track it ({exc}); run: exportwatch track {job.job_identifier}",
        )
    print(job.job_identifier)
    print(f"created export {job.job_identifier} for {iso(since)} .. {iso(until)}; tracking it", file=sys.stderr)
    return EXIT_OK


def cmd_poll(args: argparse.Namespace) -> int:
    from exportwatch.poll import run_cycle
    from exportwatch.wiring import build_poller

    summary = run_cycle(build_poller(Settings.from_env()), all_jobs=args.all)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        for r in summary.results:
            print(f"{r.job_identifier}  {r.state or '-':<10} {_describe_result(r)}")
        totals = ", ".join(f"{n} {a}" for a, n in sorted(summary.actions.items())) or "nothing to do"
        print(
            f"poll: {summary.due} due, {len(summary.results)} processed ({totals})"
            + (f"; {summary.left_for_next_cycle} left for the next cycle" if summary.left_for_next_cycle else "")
            + (f"; stopped: {summary.stopped}" if summary.stopped else "")
        )
    return EXIT_FAILED if summary.stopped and "401" in summary.stopped else EXIT_OK


def _describe_result(r: JobResult) -> str:
    """One phrase per job for people; `poll --json` has every field for scripts."""
    parts = []
    if r.bytes_copied:
        parts.append(f"copied {human_size(r.bytes_copied)} to S3")
    if r.event:
        parts.append(f"notified {r.event}")
    if r.warning:
        parts.append(f"warned {r.warning}")
    if r.action in ("retry", "deferred", "skipped", "error"):
        parts.append(f"{'will retry' if r.action == 'retry' else r.action}: {r.detail}")
    elif r.detail:
        parts.append(r.detail)
    return ", ".join(parts) or r.action


def cmd_list(args: argparse.Namespace) -> int:
    from exportwatch.wiring import build_store

    jobs = sorted(build_store(Settings.from_env()).scan_all(), key=lambda j: j.tracked_at or "")
    if args.json:
        for job in jobs:
            print(json.dumps(_job_dict(job), default=str, sort_keys=True))
        return EXIT_OK
    if not jobs:
        print("no tracked jobs (exportwatch track JOB_ID, or exportwatch start --since ... --until ...)")
        return EXIT_OK
    rows = [("JOB", "STATE", "INTERCOM", "NOTIFIED", "COPY / REASON")]
    for job in jobs:
        detail = (
            f"{job.s3_uri} ({human_size(job.size_bytes or 0)})"
            if job.s3_uri
            else (job.outcome_reason or job.last_error or "")
        )
        rows.append(
            (
                job.job_identifier,
                job.state.value,
                job.intercom_status or "-",
                job.notified_at or "-",
                detail[:100],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    job_id = validate_job_id(args.job_id)
    from exportwatch.wiring import aws_clients, build_intercom

    settings = Settings.from_env()
    report = build_intercom(settings, aws_clients()["secretsmanager"]).cancel(job_id)
    print(f"{job_id}: {report.status}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from exportwatch.demo import run_demo

    return run_demo(template=args.template)


COMMANDS = {
    "track": cmd_track,
    "start": cmd_start,
    "poll": cmd_poll,
    "list": cmd_list,
    "cancel": cmd_cancel,
    "demo": cmd_demo,
}


# -- helpers ----------------------------------------------------------------------------------------------


def _parse_when(raw: str, flag: str, end_of_day: bool) -> datetime:
    text = raw.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:  # a calendar day, in any ISO form (2024-01-31, 20240131, 2024-W05-3)
        return datetime.combine(day, dtime(23, 59, 59) if end_of_day else dtime(0, 0, 0), UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {raw[:40]!r} is not a date (YYYY-MM-DD) or ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _job_dict(job: Job) -> dict[str, Any]:
    from dataclasses import asdict

    data = {k: v for k, v in asdict(job).items() if v is not None and k != "extra"}
    data["state"] = job.state.value
    data["settled"] = job.settled
    return data


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
