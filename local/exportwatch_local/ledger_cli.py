"""`exportwatch workspace`, `backfill` and `coverage`: the workspace registry and the coverage ledger (ledger.py).

Same exit codes as every command (cli.py): 0 done, 1 AWS or Intercom failed, 2 bad input and nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import date
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from exportwatch.config import DEFAULT_API_URL, StoreSettings
from exportwatch.ledger import LedgerStore, Window
from exportwatch.model import iso, utcnow
from exportwatch.reporting import REPORTING_ID_RE, find_dataset, validate_dataset, validate_reporting_id
from exportwatch.safetext import one_line
from exportwatch.schedule import cover_days
from exportwatch.windows import DAY, MAX_BACKFILL_DAYS, Span, WindowState, parse_day, yesterday
from exportwatch.workspaces import (
    DEFAULT_WORKSPACE,
    SECRET_ID_RE,
    InvalidWorkspace,
    Workspace,
    validate_api_url,
    validate_name,
    validate_secret_id,
    validate_window_days,
)
from exportwatch_local.clibase import EXIT_OK, UsageError, known_workspace, reach, reporting_request, settings_for

if TYPE_CHECKING:
    from exportwatch.intercom import IntercomClient

_SECRETS_NOTE = "the poller reads it only if its name starts with the stack's WorkspaceTokenSecretPrefix"


def add_parsers(sub: Any) -> None:
    """The parsers of `workspace`, `backfill` and `coverage` (sub: cli.build_parser's subparsers)."""
    p = sub.add_parser("workspace", help="add, list or remove Intercom workspaces (each its own host and token)")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=type(p))
    add = verbs.add_parser("add", help="create or update a workspace")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--api-url", required=True, metavar="URL", help="https://api.intercom.io, api.eu or api.au")
    add.add_argument("--token-secret", required=True, metavar="SECRET", help="Secrets Manager name or ARN")
    add.add_argument("--daily", action="store_true", help="queue every whole UTC day from --start, then one a day")
    add.add_argument("--start", metavar="YYYY-MM-DD", help="the first day of the daily windows")
    add.add_argument("--window-days", type=int, default=1, metavar="N", help="days per window (default 1)")
    add.add_argument("--app-id", metavar="ID", help="the workspace's Intercom app id (reporting exports need it)")
    add.add_argument("--client-id", metavar="ID", help="the client id the reporting status call needs")
    add.add_argument(
        "--daily-dataset",
        action="append",
        default=[],
        metavar="ID",
        help="archive this reporting dataset daily from --start (repeatable; needs --app-id and --client-id)",
    )
    lst = verbs.add_parser("list", help="list the workspaces (default included)")
    lst.add_argument("--json", action="store_true", help="a JSON array, one object per workspace")
    rm = verbs.add_parser("remove", help="remove a workspace (its windows and jobs stay in the ledger)")
    rm.add_argument("name", metavar="NAME")

    p = sub.add_parser("backfill", help="queue whole UTC days as windows; the poller exports them one at a time")
    p.add_argument("--workspace", required=True, metavar="NAME")
    p.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="first day, UTC")
    p.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="last day, included, UTC")
    p.add_argument("--window-days", type=int, default=1, metavar="N", help="days per window (default 1)")
    p.add_argument("--dataset", metavar="ID", help="windows of this reporting dataset (default: content)")
    p.add_argument("--attributes", metavar="A,B,...", help="with --dataset: exactly these (default: every attribute)")

    p = sub.add_parser("datasets", help="the reporting datasets a workspace can export, with their attributes")
    p.add_argument("--workspace", default=DEFAULT_WORKSPACE, metavar="NAME", help="default: default")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per dataset")

    p = sub.add_parser("coverage", help="the ledger: which days are archived, running, queued, empty or failed")
    p.add_argument("--workspace", metavar="NAME", help="one workspace (default: all)")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per window")


def _ledger() -> LedgerStore:
    from exportwatch.wiring import aws_clients

    settings = settings_for(StoreSettings)
    return LedgerStore(aws_clients(services=("dynamodb",))["dynamodb"], settings.jobs_table)


# -- workspace ------------------------------------------------------------------------------------------------


def cmd_workspace(args: argparse.Namespace) -> int:
    return {"add": _add, "list": _list, "remove": _remove}[args.verb](args)


def _day_arg(raw: str, flag: str) -> date:
    day = parse_day(raw.strip())
    if day is None:
        raise UsageError(f"{flag} {raw[:40]!r} is not a day (YYYY-MM-DD)")
    return day


def _add(args: argparse.Namespace) -> int:
    # Every rule first: bad input writes nothing.
    name = validate_name(args.name)
    if name == DEFAULT_WORKSPACE:
        raise UsageError(
            "the default workspace is the one the environment describes (INTERCOM_API_URL, INTERCOM_TOKEN_SECRET; "
            "its daily windows: the DefaultDailyStart template parameter); add others by name"
        )
    if args.start is not None and not (args.daily or args.daily_dataset):
        raise UsageError("--start is the first day of --daily (or --daily-dataset) windows: add --daily")
    workspace = Workspace(
        name=name,
        api_url=validate_api_url(args.api_url),
        token_secret=validate_secret_id(args.token_secret),
        daily=args.daily,
        start=None if args.start is None else _day_arg(args.start, "--start"),
        window_days=validate_window_days(args.window_days),
        app_id=None if args.app_id is None else validate_reporting_id(args.app_id, "--app-id"),
        client_id=None if args.client_id is None else validate_reporting_id(args.client_id, "--client-id"),
        daily_datasets=tuple(dict.fromkeys(validate_dataset(d) for d in args.daily_dataset)),
    )
    from exportwatch.wiring import aws_clients

    settings = settings_for(StoreSettings)
    clients = aws_clients(services=("dynamodb", "secretsmanager"))
    _check_secret_exists(clients["secretsmanager"], workspace.token_secret)
    if workspace.daily_datasets:  # Intercom must have them: asked with the workspace's own host and token
        catalogue = _intercom_of(workspace, clients["secretsmanager"]).get_datasets()
        for dataset in workspace.daily_datasets:
            find_dataset(catalogue, dataset)
    created = LedgerStore(clients["dynamodb"], settings.jobs_table).put_workspace(workspace, iso(utcnow()))
    what = "added" if created else "updated"
    daily = f"; daily windows from {workspace.start}" if workspace.daily else ""
    if workspace.daily_datasets:
        daily += f"; daily {', '.join(workspace.daily_datasets)} windows from {workspace.start}"
    print(f"workspace {name} {what}: {workspace.api_url}, token from secret {workspace.token_secret}{daily}")
    return EXIT_OK


def _check_secret_exists(secrets: Any, secret_id: str) -> None:
    """The secret must exist (its value is never read here). No permission to look: said, not fatal."""
    from botocore.exceptions import ClientError

    try:
        secrets.describe_secret(SecretId=secret_id)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "ResourceNotFoundException":
            raise InvalidWorkspace(
                f"--token-secret {secret_id!r} does not exist (check the name and the region)"
            ) from None
        if code in ("AccessDeniedException", "AccessDenied"):
            print(f"exportwatch: warning: cannot check that secret {secret_id!r} exists ({code})", file=sys.stderr)
            return
        raise


def _intercom_of(workspace: Workspace, secrets: Any) -> IntercomClient:
    from exportwatch.config import DEFAULT_INTERCOM_VERSION
    from exportwatch.wiring import build_workspace_source

    version = os.environ.get("INTERCOM_VERSION", "").strip() or DEFAULT_INTERCOM_VERSION
    client = build_workspace_source(workspace, secrets, version=version, timeout=30.0, pool_size=1)
    client.ensure_token()
    return client


def default_workspace_from_env() -> Workspace:
    """`default` as this shell's environment describes it (the poller's may differ: it is the stack's)."""
    api = os.environ.get("INTERCOM_API_URL", "").strip() or DEFAULT_API_URL
    secret = os.environ.get("INTERCOM_TOKEN_SECRET", "").strip()
    start = parse_day(os.environ.get("DEFAULT_DAILY_START", "").strip())
    try:
        days = validate_window_days(int(os.environ.get("DEFAULT_WINDOW_DAYS", "1").strip() or "1"))
    except (ValueError, InvalidWorkspace):
        days = 1
    app_id = os.environ.get("INTERCOM_APP_ID", "").strip()
    client_id = os.environ.get("INTERCOM_CLIENT_ID", "").strip()
    return Workspace(
        name=DEFAULT_WORKSPACE,
        app_id=app_id if REPORTING_ID_RE.fullmatch(app_id) else None,
        client_id=client_id if REPORTING_ID_RE.fullmatch(client_id) else None,
        api_url=one_line(api, 200),
        # Shown only when it looks like a secret's name or ARN: a token pasted into the variable is never printed.
        token_secret=secret if SECRET_ID_RE.fullmatch(secret) else "",
        daily=start is not None,
        start=start,
        window_days=days,
    )


def _list(args: argparse.Namespace) -> int:
    named = [r.config for r in _ledger().workspaces() if r.config is not None]
    everyone = [default_workspace_from_env(), *sorted(named, key=lambda w: w.name)]
    if args.json:
        rows = [w.to_dict() for w in everyone]
        for row in rows:
            row["token_secret"] = row["token_secret"] or None
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    table = [("NAME", "API URL", "TOKEN SECRET", "DAILY FROM", "WINDOW DAYS")]
    for w in everyone:
        start = str(w.start) if w.daily and w.start else "-"
        table.append((w.name, w.api_url, w.token_secret or "-", start, str(w.window_days)))
    _print_table(table)
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    name = validate_name(args.name)
    if name == DEFAULT_WORKSPACE:
        raise UsageError("the default workspace cannot be removed: the environment describes it")
    ledger = _ledger()
    queued = sum(1 for w in ledger.windows(name) if w.state in (WindowState.QUEUED, WindowState.RUNNING))
    if not ledger.remove_workspace(name):
        raise InvalidWorkspace(f"workspace {name!r} is not registered (see exportwatch workspace list)")
    print(f"workspace {name} removed; its ledger stays")
    if queued:
        print(
            f"  {queued} of its windows are queued or running: they wait until the workspace is added again",
            file=sys.stderr,
        )
    return EXIT_OK


# -- backfill -------------------------------------------------------------------------------------------------


def cmd_backfill(args: argparse.Namespace) -> int:
    since, until = _day_arg(args.since, "--since"), _day_arg(args.until, "--until")
    window_days = validate_window_days(args.window_days)
    validate_name(args.workspace)
    if since > until:
        raise UsageError(f"--since ({since}) is after --until ({until})")
    last = yesterday(utcnow().timestamp())
    if until > last:
        raise UsageError(f"--until {until} is not over yet: the newest whole UTC day is {last}")
    if (until - since).days + 1 > MAX_BACKFILL_DAYS:
        raise UsageError(
            f"--since..--until spans {(until - since).days + 1} days; one backfill takes at most {MAX_BACKFILL_DAYS}"
        )
    if args.dataset is None and args.attributes is not None:
        raise UsageError("--attributes goes with --dataset (reporting windows)")
    kind, dataset = "content", None
    attributes: tuple[str, ...] = ()
    if args.dataset is not None:  # checked with Intercom first: an unknown dataset or attribute writes nothing
        validate_dataset(args.dataset)
        target = reach(args.workspace)
        ledger, name = target.ledger, target.name
        dataset, attributes = reporting_request(target, args.dataset, args.attributes)
        kind = "reporting"
    else:
        ledger = _ledger()
        name = known_workspace(ledger, args.workspace)
    now = iso(utcnow())
    if name == DEFAULT_WORKSPACE:
        ledger.ensure_workspace_state(name, now)
    # A failed window in the range gets a fresh set of attempts; every other window keeps its days.
    span = Span(since, until)
    cover = cover_days(ledger, name, span, window_days, now, kind=kind, dataset=dataset, attributes=attributes)
    queued, requeued = cover.queued, cover.requeued
    ledger.make_due(name)
    again = f", {requeued} of them failed before" if requeued else ""
    plural = "s" if queued != 1 else ""
    what = f" of {dataset}" if dataset else ""
    print(f"queued {queued} window{plural}{what} for workspace {name}, {span.label()} ({span.days} days{again})")
    return EXIT_OK


# -- datasets -------------------------------------------------------------------------------------------------


def cmd_datasets(args: argparse.Namespace) -> int:
    catalogue = reach(args.workspace).intercom.get_datasets()
    if args.json:
        print(json.dumps([d.to_dict() for d in catalogue], indent=2))
        return EXIT_OK
    if not catalogue:
        print("Intercom lists no reporting datasets for this workspace")
        return EXIT_OK
    for d in catalogue:
        time_attr = f", time attribute {d.default_time_attribute_id}" if d.default_time_attribute_id else ""
        print(f"{d.id}  {one_line(d.name, 60)} ({len(d.attributes)} attributes{time_attr})")
        for a in d.attributes:
            print(f"  {a.qualified_id}  {one_line(a.name, 60)}")
    return EXIT_OK


# -- coverage -------------------------------------------------------------------------------------------------


def cmd_coverage(args: argparse.Namespace) -> int:
    ledger = _ledger()
    if args.workspace is not None:
        names = [known_workspace(ledger, args.workspace)]
    else:
        names = [DEFAULT_WORKSPACE, *sorted(r.name for r in ledger.workspaces() if r.config is not None)]
    windows = {name: ledger.windows(name, None) for name in names}
    if args.json:
        print(json.dumps([w.to_dict() for name in names for w in windows[name]], indent=2))
        return EXIT_OK
    for name in names:
        if not windows[name]:
            print(f"{name}: no windows (exportwatch backfill --workspace {name} --since ... --until ...)")
        for lkind in sorted({w.lkind for w in windows[name]}, key=lambda k: (k != "content", k)):
            _print_coverage(name, [w for w in windows[name] if w.lkind == lkind])
    return EXIT_OK


def gaps(windows: list[Window]) -> list[Span]:
    """Days between the first window's start and the last window's end that no window covers."""
    found: list[Span] = []
    spans = sorted(w.span for w in windows)
    for before, after in pairwise(spans):
        if after.start > before.end + DAY:
            found.append(Span(before.end + DAY, after.start - DAY))
    return found


def _print_coverage(name: str, windows: list[Window]) -> None:
    """One ledger (content, or one dataset) of a workspace: a table, its gaps, a summary line."""
    what = windows[0].dataset or "content"
    table = [("START", "END", "STATE", "ATTEMPTS", "JOB", "S3 / LAST ERROR")]
    for w in windows:
        note = w.s3_uri if w.state is WindowState.ARCHIVED else (w.last_error or "")
        state = w.state.value.upper() if w.state is WindowState.FAILED else w.state.value
        table.append(
            (str(w.span.start), str(w.span.end), state, str(w.attempts), w.export_job or "-", one_line(note, 240))
        )
    print(f"workspace {name}, {what}")
    _print_table(table, indent="  ")
    holes = gaps(windows)
    for hole in holes:
        print(f"  GAP {hole.label()} ({hole.days} day{'s' if hole.days != 1 else ''} not covered by any window)")
    print("  " + summary_line(f"{name} {what}", windows, holes))


def summary_line(name: str, windows: list[Window], holes: list[Span]) -> str:
    counts = {state: sum(1 for w in windows if w.state is state) for state in WindowState}
    first, last = min(w.span.start for w in windows), max(w.span.end for w in windows)
    parts = ", ".join(f"{n} {state.value}" for state, n in counts.items() if n)
    missing = sum(h.days for h in holes)
    if counts[WindowState.FAILED] or missing:
        verdict = f"{counts[WindowState.FAILED]} failed, {missing} day{'s' if missing != 1 else ''} in gaps"
    elif counts[WindowState.QUEUED] or counts[WindowState.RUNNING]:
        verdict = "no gaps; in progress"
    else:
        verdict = "complete: no gaps"
    return f"{name}: {first}..{last}, {len(windows)} windows ({parts}); {verdict}"


def _print_table(rows: Sequence[Sequence[str]], indent: str = "") -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print(indent + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
