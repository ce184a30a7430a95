"""The `exportwatch` command line. Same configuration and code path as the Lambda.

Exit codes (a contract for scripts):
  0  success.
  1  the operation failed: Intercom or AWS refused or broke (a refused connection, a timeout, an HTTP error), a
     job cannot be cancelled (already finished, or unknown to Intercom), or `poll` could not copy or notify
     because the bucket or topic its variable names does not exist.
  2  bad input, nothing was written: arguments, a job id, or configuration (every missing or bad variable, one
     line each; no AWS region; a table, bucket, topic or secret that does not exist, named by its variable).
130 interrupted (Ctrl-C).

Errors are one line each on stderr and never a traceback, except with --debug or LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from exportwatch.config import ConfigError, OperatorSettings, PollerSettings, StoreSettings
from exportwatch.intercom import ActiveJobExists, IntercomError
from exportwatch.model import InvalidJobId, Job, human_size, iso, utcnow, validate_job_id
from exportwatch.reporting import InvalidReporting, validate_dataset
from exportwatch.safetext import one_line
from exportwatch.store import JobStore
from exportwatch.windows import parse_day
from exportwatch.workspaces import DEFAULT_WORKSPACE, InvalidWorkspace, validate_name
from exportwatch_local.clibase import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    known_workspace,
    reach,
    reporting_request,
    settings_for,
)

if TYPE_CHECKING:
    from exportwatch.intercom import StatusReport
    from exportwatch.poll import CycleSummary, JobResult

DEBUG_HINT = "run with --debug or LOG_LEVEL=DEBUG to see the traceback"
_JOB_ID_COMMANDS = ("track", "cancel")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, exit 2: scripts and people both read the first line only.
        message = one_line(message, 500)
        self.exit(EXIT_USAGE, f"exportwatch: error: {message} (see exportwatch --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="exportwatch", description="Watch Intercom data export jobs; copy finished exports to S3.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log progress to stderr (-vv: debug)")
    parser.add_argument("--debug", action="store_true", help="debug logs and Python tracebacks (also: LOG_LEVEL=DEBUG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("track", help="watch an existing Intercom export job")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--workspace", default=DEFAULT_WORKSPACE, metavar="NAME", help="its workspace (default: default)")
    p.add_argument("--dataset", metavar="ID", help="a reporting export of this dataset (default: a content export)")

    p = sub.add_parser("start", help="create an export at Intercom and track it")
    p.add_argument("--since", required=True, metavar="DATE", help="first day (YYYY-MM-DD) or ISO 8601 time, UTC")
    p.add_argument("--until", required=True, metavar="DATE", help="last day, inclusive (YYYY-MM-DD) or ISO time")
    p.add_argument("--workspace", default=DEFAULT_WORKSPACE, metavar="NAME", help="its workspace (default: default)")
    p.add_argument("--dataset", metavar="ID", help="a reporting export of this dataset (whole days only)")
    p.add_argument("--attributes", metavar="A,B,...", help="with --dataset: exactly these (default: every attribute)")

    p = sub.add_parser("poll", help="run one poll cycle now (the code path the Lambda runs)")
    p.add_argument(
        "--all", action="store_true", help="all due work of every workspace now: every unfinished job, every window"
    )
    p.add_argument("--json", action="store_true", help="print the cycle summary as JSON")

    p = sub.add_parser("list", help="list tracked jobs and their states")
    p.add_argument("--json", action="store_true", help="print JSON lines, one job per line")

    p = sub.add_parser("cancel", help="cancel a job at Intercom (the next poll reports export.canceled)")
    p.add_argument("job_id", metavar="JOB_ID")
    p.add_argument("--workspace", metavar="NAME", help="for a job not tracked here (a tracked job's own by default)")

    from exportwatch_local.ledger_cli import add_parsers

    add_parsers(sub)

    p = sub.add_parser("demo", help="run everything locally: moto server + Intercom emulator, no AWS account")
    p.add_argument("--template", help="path to template.yaml (default: ./template.yaml)")
    p.add_argument(
        "--keep",
        action="store_true",
        help="then keep the local stack running and print the `export` lines to use it from another shell",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        _check_dash_job_id(args_list)
    except InvalidJobId as exc:
        return _fail(EXIT_USAGE, str(exc))
    args = build_parser().parse_args(args_list)
    level, debug = _log_level(args)
    with _logging(level, debug):
        try:
            return int(COMMANDS[args.command](args))
        except ConfigError as exc:
            for line in exc.lines:  # every problem at once, one line each
                _fail(EXIT_USAGE, line)
            return EXIT_USAGE
        except (UsageError, InvalidJobId, InvalidWorkspace, InvalidReporting) as exc:
            return _fail(EXIT_USAGE, str(exc))
        except ActiveJobExists as exc:
            return _fail(EXIT_FAILED, str(exc))
        except IntercomError as exc:
            return _fail(EXIT_FAILED, f"Intercom: {exc}")
        except KeyboardInterrupt:
            return _fail(EXIT_INTERRUPTED, "interrupted")
        except BrokenPipeError:  # `exportwatch list | head`: the reader left, which is not an error
            _silence_stdout()
            return EXIT_OK
        except Exception as exc:
            known = _aws_error(exc)
            if known is not None:
                return _fail(*known)
            # The unexpected: one line and how to see more; the traceback only when asked for.
            if debug:
                traceback.print_exc(file=sys.stderr)
            text = f"{type(exc).__name__}: {one_line(str(exc), 300)}"
            return _fail(EXIT_FAILED, text if debug else f"{text} ({DEBUG_HINT})")


def _fail(code: int, message: str) -> int:
    print(f"exportwatch: error: {message}", file=sys.stderr)
    return code


def _check_dash_job_id(argv: list[str]) -> None:
    """`track -abc`: argparse reads "-abc" as an option and would say "unrecognized arguments" or "JOB_ID is
    required". When the only thing after track/cancel looks like an option, it is the job id: say which rule
    it breaks (model.validate_job_id is the one rule)."""
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command_at is None or argv[command_at] not in _JOB_ID_COMMANDS:
        return
    rest = argv[command_at + 1 :]
    if any(a in ("-h", "--help") for a in rest) or "--" in rest:
        return  # help wins; after "--" argparse passes the id on and the command validates it
    dashed = [a for a in rest if a.startswith("-")]
    if dashed and len(dashed) == len(rest):
        validate_job_id(dashed[0])


# -- logging ----------------------------------------------------------------------------------------------


def _log_level(args: argparse.Namespace) -> tuple[int, bool]:
    """(level, debug). Debug (tracebacks in logs and errors): --debug, -vv, or LOG_LEVEL=DEBUG."""
    from_env = logging.getLevelNamesMapping().get(os.environ.get("LOG_LEVEL", "").strip().upper(), logging.WARNING)
    level = min(from_env, [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)])
    if args.debug:
        level = logging.DEBUG
    return level, level <= logging.DEBUG


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (the demo and tests swap it), not the one seen at setup."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _OneLineFormatter(logging.Formatter):
    """A log line is one line: no traceback (the poll cycle logs expected retries with exc_info, e.g. a
    download that breaks off). An error logged with a traceback says how to see it."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            text = one_line(super().format(record), 2000)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        if saved[0] and record.levelno >= logging.ERROR:
            text += f" ({DEBUG_HINT})"
        return text


_logging_depth = 0  # the demo runs commands through main(): the outermost call's logging settings hold


@contextmanager
def _logging(level: int, debug: bool) -> Iterator[None]:
    global _logging_depth
    root = logging.getLogger()
    if _logging_depth:
        _logging_depth += 1
        try:
            yield
        finally:
            _logging_depth -= 1
        return
    handler = _StderrHandler()
    handler.setLevel(level)
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if debug else _OneLineFormatter(fmt))
    saved_level = root.level
    root.addHandler(handler)
    # Only ever more verbose: a handler someone else put on the root logger (a test's capture) keeps its records.
    root.setLevel(min(root.level or logging.WARNING, level))
    quieter = {name: logging.WARNING for name in ("botocore", "boto3", "s3transfer", "werkzeug")}
    # urllib3 logs each connection retry as a WARNING: a retry is normal, and its outcome is reported anyway.
    quieter["urllib3"] = logging.WARNING if debug else logging.ERROR
    saved = {name: logging.getLogger(name).level for name in quieter}
    for name, quiet in quieter.items():
        logging.getLogger(name).setLevel(quiet)
    _logging_depth = 1
    try:
        yield
    finally:
        _logging_depth = 0
        root.removeHandler(handler)
        root.setLevel(saved_level)
        for name, was in saved.items():  # an in-process caller (a test, the demo) gets its loggers back as they were
            logging.getLogger(name).setLevel(was)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit-time flush would fail on the closed pipe again
    except (OSError, ValueError):
        pass


# -- AWS errors that mean a wrong setting -----------------------------------------------------------------

# ClientError code -> the variable that names the resource and what it is. ResourceNotFoundException is
# DynamoDB's and Secrets Manager's; the operation tells them apart.
_SECRET_OPERATIONS = frozenset({"GetSecretValue", "DescribeSecret"})
_RESOURCES = dict(  # pairs, not a dict literal: bandit reads "INTERCOM_TOKEN_SECRET": "..." as a password
    (
        ("JOBS_TABLE", "DynamoDB table"),
        ("EXPORT_BUCKET", "S3 bucket"),
        ("NOTIFY_TOPIC_ARN", "SNS topic"),
        ("INTERCOM_TOKEN_SECRET", "Secrets Manager secret"),
    )
)


def _missing_variable(code: str, operation: str) -> str | None:
    if code == "ResourceNotFoundException":
        return "INTERCOM_TOKEN_SECRET" if operation in _SECRET_OPERATIONS else "JOBS_TABLE"
    if code == "NoSuchBucket":
        return "EXPORT_BUCKET"
    if code in ("NotFound", "NotFoundException") and operation in ("Publish", "GetTopicAttributes"):
        return "NOTIFY_TOPIC_ARN"
    return None


def _missing_text(variable: str, code: str) -> str:
    """'<VARIABLE>: <what> <value> does not exist in <region> (<code>)': one line naming the variable."""
    value = os.environ.get(variable, "").strip()
    # The secret's id is echoed only when it is plainly an ARN: a token pasted into the variable must not be.
    shown = repr(value) if value and (variable != "INTERCOM_TOKEN_SECRET" or value.startswith("arn:")) else ""
    what = " ".join(p for p in (_RESOURCES[variable], shown) if p)
    return f"{variable}: {what} does not exist{_in_region()} ({code}); check the name and the region"


def _in_region() -> str:
    try:
        from exportwatch.wiring import aws_region

        region = aws_region()
    except Exception:
        return ""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    return f" in {region}" + (f" at {one_line(endpoint, 80)}" if endpoint else "")


def _aws_error(exc: Exception) -> tuple[int, str] | None:
    """(exit code, one line) for AWS errors that have a plain meaning; None for anything else."""
    try:
        from botocore import exceptions as bce
    except ImportError:  # pragma: no cover - botocore comes with boto3, a dependency
        return None
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        variable = _missing_variable(code, exc.operation_name)
        if variable is not None:
            return EXIT_USAGE, _missing_text(variable, code)
        return EXIT_FAILED, f"AWS {exc.operation_name}: {code}: {one_line(str(error.get('Message', '')), 200)}"
    if isinstance(exc, bce.NoRegionError):  # wiring.aws_region prevents it; kept for clients made elsewhere
        return EXIT_USAGE, "AWS_DEFAULT_REGION: is not set, nor AWS_REGION (e.g. us-east-1)"
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError | bce.ProfileNotFound):
        fix = "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        return EXIT_USAGE, f"AWS credentials: {one_line(str(exc), 200)} ({fix})"
    if isinstance(exc, bce.ConnectTimeoutError | bce.ReadTimeoutError):
        return EXIT_FAILED, f"AWS did not answer in time ({one_line(str(exc), 200)})"
    if isinstance(exc, bce.EndpointConnectionError):
        why = "connection refused" if _refused(exc) else "could not connect"
        source = " (from AWS_ENDPOINT_URL)" if os.environ.get("AWS_ENDPOINT_URL", "").strip() else ""
        return EXIT_FAILED, f"AWS: {why}: {one_line(str(exc), 200)}{source}"
    return None


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in str(current):
            return True
        kwargs = getattr(current, "kwargs", None)
        inner = kwargs.get("error") if isinstance(kwargs, dict) else None
        stack.extend([current.__cause__, current.__context__, inner if isinstance(inner, BaseException) else None])
    return False


# -- commands ---------------------------------------------------------------------------------------------


def cmd_track(args: argparse.Namespace) -> int:
    job_id = validate_job_id(args.job_id)  # before anything else: bad input writes nothing
    validate_name(args.workspace)
    if args.dataset is not None:
        return _track_reporting(job_id, args)
    from exportwatch.ledger import LedgerStore
    from exportwatch.wiring import aws_clients

    settings = settings_for(StoreSettings)
    db = aws_clients(services=("dynamodb",))["dynamodb"]
    workspace = known_workspace(LedgerStore(db, settings.jobs_table), args.workspace)
    return _track(
        JobStore(db, settings.jobs_table), Job(job_id, tracked_at=iso(utcnow()), next_check_at=0, workspace=workspace)
    )


def _track_reporting(job_id: str, args: argparse.Namespace) -> int:
    """`track ID --dataset ID`: a reporting export started elsewhere; the workspace must have its reporting ids and
    Intercom must know the dataset (checked before anything is written)."""
    validate_dataset(args.dataset)
    target = reach(args.workspace)
    dataset, _ = reporting_request(target, args.dataset, None)
    job = Job(
        job_id, tracked_at=iso(utcnow()), next_check_at=0, workspace=target.name, kind="reporting", dataset=dataset
    )
    settings = settings_for(StoreSettings)
    return _track(JobStore(target.clients["dynamodb"], settings.jobs_table), job)


def _track(store: JobStore, job: Job) -> int:
    job_id = job.job_identifier
    if store.track(job):
        where = "" if job.workspace == DEFAULT_WORKSPACE else f" in workspace {job.workspace}"
        what = f" ({job.dataset} reporting export)" if job.dataset else ""
        print(f"tracking {job_id}{what}{where}: the next poll checks it")
    else:
        existing = store.get(job_id)
        state = existing.state.value if existing else "unknown"
        print(f"{job_id} is already tracked (state: {state}); nothing changed")
    return EXIT_OK


def cmd_start(args: argparse.Namespace) -> int:
    if args.dataset is None and args.attributes is not None:
        raise UsageError("--attributes goes with --dataset (a reporting export)")
    if args.dataset is not None:
        since, until = _whole_day(args.since, "--since", False), _whole_day(args.until, "--until", True)
    else:
        since, until = _parse_when(args.since, "--since", end_of_day=False), _parse_when(args.until, "--until", True)
    if since > until:
        raise UsageError(f"--since ({iso(since)}) is after --until ({iso(until)})")
    if since > utcnow():
        raise UsageError(f"--since ({iso(since)}) is in the future")
    validate_name(args.workspace)
    if args.dataset is not None:
        validate_dataset(args.dataset)
    settings = settings_for(OperatorSettings)
    target = reach(args.workspace, settings)
    # The table is read before Intercom is asked: a wrong JOBS_TABLE must not leave an untracked export
    # holding the workspace's one active job.
    store = JobStore(target.clients["dynamodb"], settings.jobs_table)
    store.get("exportwatch-preflight")
    first, last = int(since.timestamp()), int(until.timestamp())
    kind, dataset = "content", None
    if args.dataset is not None:
        dataset, attributes = reporting_request(target, args.dataset, args.attributes)
        report, kind = target.intercom.enqueue(dataset, attributes, first, last), "reporting"
    else:
        report = target.intercom.create(first, last)
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
        workspace=target.name,
        kind=kind,
        dataset=dataset,
        api_version=settings.intercom_version,
    )
    try:
        store.track(job)
    except Exception as exc:
        # The export exists at Intercom now: never lose its id.
        print(job.job_identifier)
        known = _aws_error(exc)
        why = known[1] if known else f"{type(exc).__name__}: {one_line(str(exc), 200)}"
        again = f" --dataset {dataset}" if dataset else ""
        return _fail(
            EXIT_FAILED,
            f"created {job_id} but could not track it ({why}); run: exportwatch track {job_id}{again}",
        )
    print(job.job_identifier)
    what = f"{dataset} reporting export" if dataset else "export"
    print(f"created {what} {job.job_identifier} for {iso(since)} .. {iso(until)}; tracking it", file=sys.stderr)
    return EXIT_OK


def cmd_poll(args: argparse.Namespace) -> int:
    from exportwatch.poll import StopReason, run_cycle
    from exportwatch.wiring import build_poller

    summary = run_cycle(build_poller(settings_for(PollerSettings)), all_jobs=args.all)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, default=str))
    else:
        for r in summary.results:
            print(f"{r.job_identifier}  {r.state or '-':<10} {_describe_result(r)}")
        # A workspace may be looked at twice in a cycle (before and after the jobs): its last word stands.
        last = {w.workspace: w for w in summary.workspaces}
        for w in last.values():
            if w.action.value not in ("idle", "skipped"):
                window = f" window {w.window}" if w.window else ""
                job = f" export {w.job_identifier}" if w.job_identifier else ""
                detail = f" ({w.detail})" if w.detail else ""
                print(f"workspace {w.workspace}: {w.action.value}{window}{job}{detail}")
        totals = ", ".join(f"{n} {a}" for a, n in sorted(summary.actions.items())) or "nothing to do"
        print(
            f"poll: {summary.due} due, {len(summary.results)} processed ({totals})"
            + (f"; {summary.left_for_next_cycle} left for the next cycle" if summary.left_for_next_cycle else "")
            + (f"; stopped: {summary.stopped}" if summary.stopped else "")
        )
    missing = _missing_in_cycle(summary)
    for line in missing:
        _fail(EXIT_FAILED, line)
    return EXIT_FAILED if missing or summary.stop_reason is StopReason.UNAUTHORIZED else EXIT_OK


# A job's retry detail as poll.py writes it: "copy: ... (NoSuchBucket) ...", "publish export.x: ... (NotFound)
# when calling the Publish operation ...". Retried every cycle, they never succeed until the variable is fixed.
_CODE_IN_DETAIL = re.compile(r"\((?P<code>[A-Za-z]+)\) when calling the (?P<operation>[A-Za-z]+) operation")


def _missing_in_cycle(summary: CycleSummary) -> list[str]:
    """One line per missing bucket or topic that made jobs fail this cycle, naming its variable."""
    jobs: dict[tuple[str, str], int] = {}
    for r in summary.results:
        match = _CODE_IN_DETAIL.search(r.detail or "")
        if match is None:
            continue
        variable = _missing_variable(match["code"], match["operation"])
        if variable is not None:
            jobs[variable, match["code"]] = jobs.get((variable, match["code"]), 0) + 1
    return [
        f"{_missing_text(variable, code)}; {n} job{'s stay' if n > 1 else ' stays'} due, retried every cycle"
        for (variable, code), n in jobs.items()
    ]


def _describe_result(r: JobResult) -> str:
    """One phrase per job for people; `poll --json` has every field for scripts."""
    from exportwatch.results import Action

    parts = []
    if r.bytes_copied:
        parts.append(f"copied {human_size(r.bytes_copied)} to S3")
    if r.event:
        parts.append(f"notified {r.event}")
    if r.warning:
        parts.append(f"warned {r.warning}")
    if r.action in (Action.RETRY, Action.DEFERRED, Action.SKIPPED, Action.ERROR):
        parts.append(f"{'will retry' if r.action is Action.RETRY else r.action.value}: {r.detail}")
    elif r.detail:
        parts.append(r.detail)
    return ", ".join(parts) or r.action.value


def cmd_list(args: argparse.Namespace) -> int:
    from exportwatch.wiring import build_store

    jobs = sorted(build_store(settings_for(StoreSettings)).scan_all(), key=lambda j: j.tracked_at or "")
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
                one_line(detail, 100),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    job_id = validate_job_id(args.job_id)
    from exportwatch.intercom import Outcome
    from exportwatch.wiring import aws_clients

    settings = settings_for(OperatorSettings)
    clients = aws_clients(services=("dynamodb", "secretsmanager"))
    store = JobStore(clients["dynamodb"], settings.jobs_table)
    tracked = store.get(job_id)  # also checks JOBS_TABLE before anything is asked of Intercom
    if tracked is not None and args.workspace is not None and args.workspace != tracked.workspace:
        raise UsageError(f"{job_id} is tracked in workspace {tracked.workspace}, not {args.workspace}")
    if tracked is not None and tracked.reporting:
        return _fail(EXIT_FAILED, f"{job_id} is a reporting export: Intercom has no way to cancel those")
    wanted = tracked.workspace if tracked is not None else (args.workspace or DEFAULT_WORKSPACE)
    intercom = reach(wanted, settings).intercom
    # Intercom documents no answer for cancelling a job that has finished (the emulator accepts it and turns
    # a completed export into a canceled one), so ask first and cancel only a job that is still running.
    before = intercom.get_status(job_id)
    if before.outcome is not Outcome.RUNNING:
        return _not_cancelable(job_id, before)
    report = intercom.cancel(job_id)
    if report.outcome is not Outcome.CANCELED:
        return _not_cancelable(job_id, report)
    if tracked is None:
        print(
            f"{job_id}: canceled at Intercom; it is not tracked here, so nothing is notified "
            f"(exportwatch track {job_id} to get export.canceled)"
        )
        return EXIT_OK
    store.make_due(job_id)  # the next poll, not the one after the job's back-off, reports the cancel
    print(f"{job_id}: canceled at Intercom; the next poll reports export.canceled")
    return EXIT_OK


def _not_cancelable(job_id: str, report: StatusReport) -> int:
    from exportwatch.intercom import Outcome

    if report.outcome is Outcome.NOT_FOUND:
        said = one_line(report.message, 160).removeprefix("not_found: ")
        return _fail(
            EXIT_FAILED,
            f"{job_id}: not_found: Intercom has no export job with this id" + (f" ({said})" if said else ""),
        )
    return _fail(EXIT_FAILED, f"{job_id} is already finished (status: {report.status}); nothing to cancel")


def cmd_demo(args: argparse.Namespace) -> int:
    from exportwatch_local.demo import run_demo
    from exportwatch_local.localstack import find_template

    try:
        import moto  # noqa: F401  # the demo's AWS; not in the Lambda layer
        import yaml  # noqa: F401  # reads template.yaml
    except ImportError as exc:
        fix = "make install, or pip install 'exportwatch[local]'"
        raise UsageError(f"exportwatch demo needs {exc.name} ({fix})") from None
    try:
        template = find_template(args.template)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    return run_demo(main, template=str(template), keep=args.keep)


def cmd_workspace(args: argparse.Namespace) -> int:
    from exportwatch_local import ledger_cli

    return ledger_cli.cmd_workspace(args)


def cmd_backfill(args: argparse.Namespace) -> int:
    from exportwatch_local import ledger_cli

    return ledger_cli.cmd_backfill(args)


def cmd_coverage(args: argparse.Namespace) -> int:
    from exportwatch_local import ledger_cli

    return ledger_cli.cmd_coverage(args)


def cmd_datasets(args: argparse.Namespace) -> int:
    from exportwatch_local import ledger_cli

    return ledger_cli.cmd_datasets(args)


COMMANDS = {
    "workspace": cmd_workspace,
    "backfill": cmd_backfill,
    "coverage": cmd_coverage,
    "datasets": cmd_datasets,
    "track": cmd_track,
    "start": cmd_start,
    "poll": cmd_poll,
    "list": cmd_list,
    "cancel": cmd_cancel,
    "demo": cmd_demo,
}


# -- helpers ----------------------------------------------------------------------------------------------


def _whole_day(raw: str, flag: str, end_of_day: bool) -> datetime:
    """A reporting range is whole UTC days: YYYY-MM-DD only; its first second, or its last (`end_of_day`)."""
    day = parse_day(raw.strip())
    if day is None:
        raise UsageError(f"{flag} {raw[:40]!r} is not a day (YYYY-MM-DD): a reporting range is whole UTC days")
    return datetime.combine(day, dtime(23, 59, 59) if end_of_day else dtime(0, 0, 0), UTC)


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
