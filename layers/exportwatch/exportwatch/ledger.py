"""The workspace registry and the coverage ledger, kept in the jobs table beside the jobs (no other table).

Records are told apart by their key, which a job id can never contain ('#'), and by `record`:

    workspace#<name>                   a workspace: its host, token secret and schedule, and its scheduler state
                                       (active_job, daily_through; due_shard "sched" + next_check_at: when the
                                       scheduler looks at it next; a lease like a job's)
    window#<workspace>#content#<day>   a window of whole UTC days and its state (windows.WindowState)

Two indexes find them. `ledger-index` (ledger, ledger_sort) lists the workspaces ("#workspaces") and each
workspace's windows in day order (coverage, backfill). The jobs' sparse `due-index` also holds, under their own
partition keys, the workspaces the scheduler should look at ("sched") and each workspace's queued windows
("queue#<workspace>#content", sorted by first second): so an idle cycle costs a Query, and the oldest queued window
of a workspace is a Query with Limit 1.

Every record read back is checked again (names, days, states): a bad one is skipped and logged, never trusted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from exportwatch.model import Job
from exportwatch.reporting import (
    DATASET_RE,
    MAX_PENDING,
    Kind,
    family,
    ledger_kind,
    validate_dataset,
    validate_reporting_id,
)
from exportwatch.store import applied, claim_item, due_keys, to_item
from exportwatch.windows import Span, WindowState, parse_day
from exportwatch.workspaces import (
    DEFAULT_WORKSPACE,
    InvalidWorkspace,
    Workspace,
    validate_api_url,
    validate_name,
    validate_secret_id,
    validate_window_days,
)

log = logging.getLogger(__name__)

LEDGER_INDEX = "ledger-index"
KIND_CONTENT = "content"
SCHED_SHARD = "sched"
_WORKSPACES = "#workspaces"
_ser, _deser = TypeSerializer(), TypeDeserializer()


def workspace_key(name: str) -> str:
    return f"workspace#{name}"


def window_key(workspace: str, start: date, lkind: str = KIND_CONTENT) -> str:
    """`lkind`: the ledger kind, "content" or "reporting:<dataset>" (reporting.ledger_kind)."""
    return f"window#{workspace}#{lkind}#{start.isoformat()}"


def queue_shard(workspace: str, kind: str = KIND_CONTENT) -> str:
    """One queue per workspace and family (content, reporting): the oldest window of the family starts first."""
    return f"queue#{workspace}#{family(kind)}"


def _entry(job_id: str, window: str) -> str:
    """A reporting slot in the workspace's `active_reporting` set: the job and its window ('|' is in neither)."""
    return f"{job_id}|{window}"


def _k(key: str) -> dict[str, Any]:
    return {"job_identifier": {"S": key}}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deser.deserialize(v) for k, v in item.items()}


def _item(plain: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in plain.items() if v is not None}


@dataclass(frozen=True)
class WorkspaceRecord:
    """A workspace's record: its configuration (None for `default`, which the environment describes) and the
    scheduler's state."""

    name: str
    config: Workspace | None
    active_job: str | None = None
    active_window: str | None = None
    daily_through: date | None = None
    next_check_at: int = 0
    # The reporting family: up to reporting.MAX_PENDING exports at once, as (job id, window key); and how far the
    # daily schedule of each dataset has queued.
    active_reporting: tuple[tuple[str, str], ...] = ()
    reporting_through: dict[str, date] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """One window of the ledger: `coverage --json` prints to_dict()."""

    key: str
    workspace: str
    span: Span
    state: WindowState
    kind: str = KIND_CONTENT  # the family: content or reporting
    export_job: str | None = None
    attempts: int = 0
    round_attempts: int = 0
    s3_uri: str | None = None
    last_error: str | None = None
    dataset: str | None = None  # a reporting window's dataset
    attributes: tuple[str, ...] = ()  # a reporting window's attribute ids, as queued (every export of it asks these)
    api_version: str | None = None  # the Intercom-Version of the export that archived it

    @property
    def lkind(self) -> str:
        return ledger_kind(self.kind, self.dataset)

    def to_dict(self) -> dict[str, object]:
        return {
            "workspace": self.workspace,
            "kind": self.kind,
            "dataset": self.dataset,
            "start": self.span.start.isoformat(),
            "end": self.span.end.isoformat(),
            "state": self.state.value,
            "job_identifier": self.export_job,
            "s3_uri": self.s3_uri if self.state is WindowState.ARCHIVED else None,
            "attempts": self.attempts,
            "api_version": self.api_version if self.state is WindowState.ARCHIVED else None,
        }


def workspace_from(plain: dict[str, Any]) -> WorkspaceRecord:
    """A workspace record read back; InvalidWorkspace when any field breaks its rule."""
    name = validate_name(plain.get("name"))
    config: Workspace | None = None
    if name != DEFAULT_WORKSPACE:
        start = plain.get("start")
        config = Workspace(
            name=name,
            api_url=validate_api_url(plain.get("api_url")),
            token_secret=validate_secret_id(plain.get("token_secret")),
            daily=bool(plain.get("daily", False)),
            start=None if start is None else parse_day(start),
            window_days=validate_window_days(int(plain.get("window_days", 1))),
            app_id=_optional(plain.get("app_id"), "--app-id"),
            client_id=_optional(plain.get("client_id"), "--client-id"),
            daily_datasets=tuple(validate_dataset(d) for d in plain.get("daily_datasets") or ()),
        )
    active = plain.get("active_job")
    through = plain.get("daily_through_reporting")
    return WorkspaceRecord(
        name=name,
        config=config,
        active_job=active if isinstance(active, str) else None,
        active_window=plain.get("active_window") if isinstance(plain.get("active_window"), str) else None,
        daily_through=parse_day(plain.get("daily_through")),
        next_check_at=int(plain.get("next_check_at", 0)),
        active_reporting=_entries(plain.get("active_reporting")),
        reporting_through={
            k: d for k, v in (through.items() if isinstance(through, dict) else ()) if (d := parse_day(v)) is not None
        },
    )


def _entries(raw: object) -> tuple[tuple[str, str], ...]:
    """The reporting slots read back: (job id, window key) pairs, sorted."""
    pairs = (e.split("|", 1) for e in (raw if isinstance(raw, set) else ()) if isinstance(e, str) and e.count("|") == 1)
    return tuple(sorted((job, window) for job, window in pairs))


def _optional(value: object, flag: str) -> str | None:
    return None if value is None else validate_reporting_id(value, flag)


def window_from(plain: dict[str, Any]) -> Window | None:
    """A window record read back, or None (logged) when it is not one we could have written."""
    start, end = parse_day(plain.get("start")), parse_day(plain.get("end"))
    try:
        workspace = validate_name(plain.get("workspace"))
        state = WindowState(str(plain.get("state")))
    except (InvalidWorkspace, ValueError):
        start = None
    if start is None or end is None or end < start:
        log.warning("ledger row %r is not a window record; skipped", str(plain.get("job_identifier"))[:120])
        return None
    job = plain.get("export_job")
    uri = plain.get("s3_uri")
    error = plain.get("last_error")
    version = plain.get("api_version")
    kind = str(plain.get("kind", KIND_CONTENT))
    dataset = plain.get("dataset")
    if kind == Kind.REPORTING and not (isinstance(dataset, str) and DATASET_RE.fullmatch(dataset)):
        log.warning("ledger row %r has no valid dataset; skipped", str(plain.get("job_identifier"))[:120])
        return None
    listed = plain.get("attributes")
    return Window(
        key=str(plain["job_identifier"]),
        workspace=workspace,
        span=Span(start, end),
        state=state,
        kind=Kind.REPORTING.value if kind == Kind.REPORTING else KIND_CONTENT,
        export_job=job if isinstance(job, str) else None,
        attempts=int(plain.get("attempts", 0)),
        round_attempts=int(plain.get("round_attempts", 0)),
        s3_uri=uri if isinstance(uri, str) else None,
        last_error=error if isinstance(error, str) else None,
        dataset=dataset if kind == Kind.REPORTING else None,
        attributes=tuple(a for a in listed if isinstance(a, str)) if isinstance(listed, list) else (),
        api_version=version if isinstance(version, str) else None,
    )


class LedgerStore:
    """Workspaces and windows in the jobs table. Writes that the scheduler makes under a workspace's lease are
    conditional on holding it, like a job's saves."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb
        self.table = table_name

    # -- workspaces -------------------------------------------------------------------------------------------

    def put_workspace(self, ws: Workspace, now: str) -> bool:
        """Create or update a workspace's configuration; its scheduler looks at it next cycle. True if created."""
        values: dict[str, Any] = {
            ":record": "workspace",
            ":ledger": _WORKSPACES,
            ":name": ws.name,
            ":api": ws.api_url,
            ":secret": ws.token_secret,
            ":daily": ws.daily,
            ":days": ws.window_days,
            ":sched": SCHED_SHARD,
            ":zero": 0,
            ":now": now,
        }
        update = (
            "SET #record = :record, ledger = :ledger, ledger_sort = :name, #name = :name, api_url = :api, "
            "token_secret = :secret, daily = :daily, window_days = :days, due_shard = :sched, next_check_at = :zero, "
            "updated_at = :now, created_at = if_not_exists(created_at, :now)"
        )
        if ws.daily_datasets:
            update += ", daily_datasets = :datasets"
            values[":datasets"] = list(ws.daily_datasets)
        for attribute, value in (("#start", ws.start), ("app_id", ws.app_id), ("client_id", ws.client_id)):
            if value is not None:
                update += f", {attribute} = :{attribute.lstrip('#')}"
                values[f":{attribute.lstrip('#')}"] = value.isoformat() if isinstance(value, date) else value
        gone = [a for a, v in (("#start", ws.start), ("app_id", ws.app_id), ("client_id", ws.client_id)) if v is None]
        if not ws.daily_datasets:
            gone.append("daily_datasets")
        if gone:
            update += " REMOVE " + ", ".join(gone)
        resp = self._db.update_item(
            TableName=self.table,
            Key=_k(workspace_key(ws.name)),
            UpdateExpression=update,
            ExpressionAttributeNames={"#record": "record", "#name": "name", "#start": "start"},
            ExpressionAttributeValues={k: _ser.serialize(v) for k, v in values.items()},
            ReturnValues="UPDATED_OLD",
        )
        return "created_at" not in _plain(resp.get("Attributes", {}))

    def ensure_workspace_state(self, name: str, now: str) -> None:
        """A record for a workspace's scheduler state (the default workspace has none until it is needed)."""
        self._put_new(
            {
                "job_identifier": workspace_key(name),
                "record": "workspace",
                "ledger": _WORKSPACES,
                "ledger_sort": name,
                "name": name,
                "due_shard": SCHED_SHARD,
                "next_check_at": 0,
                "created_at": now,
            }
        )

    def get_workspace(self, name: str) -> WorkspaceRecord | None:
        resp = self._db.get_item(TableName=self.table, Key=_k(workspace_key(name)), ConsistentRead=True)
        return workspace_from(_plain(resp["Item"])) if "Item" in resp else None

    def remove_workspace(self, name: str) -> bool:
        """Delete a workspace's record (its windows and jobs stay: the ledger is history). False if unknown."""
        return applied(
            lambda: self._db.delete_item(
                TableName=self.table,
                Key=_k(workspace_key(name)),
                ConditionExpression="attribute_exists(job_identifier)",
            )
        )

    def workspaces(self) -> list[WorkspaceRecord]:
        """Every workspace record, by name (a record that breaks a rule is logged and skipped)."""
        records = []
        for plain in self._query_ledger(_WORKSPACES):
            try:
                records.append(workspace_from(plain))
            except (InvalidWorkspace, ValueError, TypeError) as exc:
                log.warning("workspace record %r is unusable (%s); skipped", str(plain.get("name"))[:80], exc)
        return records

    def make_due(self, name: str) -> None:
        """Have the scheduler look at a workspace on the next cycle (after its window's job settled, a backfill)."""
        self._update(
            workspace_key(name), "SET next_check_at = :zero", "attribute_exists(due_shard)", {":zero": {"N": "0"}}
        )

    def due_workspaces(self, due_by: int | None) -> list[str]:
        keys = due_keys(self._db, self.table, SCHED_SHARD, due_by)
        return [k.removeprefix("workspace#") for k in keys if k.startswith("workspace#")]

    def claim_workspace(
        self, name: str, owner: str, now: int, lease_seconds: int, due_by: int | None
    ) -> WorkspaceRecord | None:
        item = claim_item(self._db, self.table, _k(workspace_key(name)), owner, now, lease_seconds, due_by)
        return None if item is None else workspace_from(_plain(item))

    def release_workspace(
        self,
        name: str,
        owner: str,
        next_check_at: int,
        daily_through: date | None,
        reporting_through: dict[str, date] | None = None,
    ) -> None:
        """Drop our lease on a workspace, saying when its scheduler looks at it next (and, when they moved, how far
        the daily schedules have queued: content's, and the whole map of the datasets')."""
        sets = ["next_check_at = :next"]
        values: dict[str, Any] = {":owner": {"S": owner}, ":next": {"N": str(int(next_check_at))}}
        if daily_through is not None:
            sets.append("daily_through = :through")
            values[":through"] = {"S": daily_through.isoformat()}
        if reporting_through:
            sets.append("daily_through_reporting = :datasets")
            values[":datasets"] = _ser.serialize({k: v.isoformat() for k, v in reporting_through.items()})
        update = "SET " + ", ".join(sets) + " REMOVE lease_owner, lease_until"
        self._update(workspace_key(name), update, "lease_owner = :owner", values)

    # -- windows ----------------------------------------------------------------------------------------------

    def windows(self, workspace: str, lkind: str | None = KIND_CONTENT) -> list[Window]:
        """A workspace's windows of one ledger kind ("content", "reporting:<dataset>"; None: every kind), oldest
        first."""
        found = (window_from(p) for p in self._query_ledger(workspace, None if lkind is None else f"{lkind}#"))
        return sorted((w for w in found if w is not None), key=lambda w: (w.lkind, w.span))

    def get_window(self, key: str) -> Window | None:
        resp = self._db.get_item(TableName=self.table, Key=_k(key), ConsistentRead=True)
        return window_from(_plain(resp["Item"])) if "Item" in resp else None

    def queue(
        self,
        workspace: str,
        spans: list[Span],
        now: str,
        kind: str = KIND_CONTENT,
        dataset: str | None = None,
        attributes: tuple[str, ...] = (),
    ) -> int:
        """Queue new windows; one whose key exists already is left as it is. Returns how many were queued."""
        queued = 0
        lkind = ledger_kind(kind, dataset)
        for span in spans:
            plain = {
                "job_identifier": window_key(workspace, span.start, lkind),
                "record": "window",
                "ledger": workspace,
                "ledger_sort": f"{lkind}#{span.start.isoformat()}",
                "workspace": workspace,
                "kind": family(kind),
                "dataset": dataset if kind == Kind.REPORTING else None,
                "attributes": list(attributes) if kind == Kind.REPORTING else None,
                "start": span.start.isoformat(),
                "end": span.end.isoformat(),
                "state": WindowState.QUEUED.value,
                "attempts": 0,
                "round_attempts": 0,
                "queued_at": now,
                "updated_at": now,
                "due_shard": queue_shard(workspace, kind),
                "next_check_at": span.first_second,
            }
            queued += self._put_new(plain)
        return queued

    def _put_new(self, plain: dict[str, Any]) -> bool:
        """Write a record that does not exist yet; False (nothing written) when its key is taken."""
        return applied(
            lambda: self._db.put_item(
                TableName=self.table, Item=_item(plain), ConditionExpression="attribute_not_exists(job_identifier)"
            )
        )

    def requeue_failed(self, window: Window, now: str) -> bool:
        """A failed window queued again (by backfill), with a fresh set of attempts."""
        return self._update(
            window.key,
            "SET #state = :queued, round_attempts = :zero, updated_at = :now, due_shard = :shard, "
            "next_check_at = :first",
            "#state = :failed",
            {
                ":queued": {"S": WindowState.QUEUED.value},
                ":failed": {"S": WindowState.FAILED.value},
                ":zero": {"N": "0"},
                ":now": {"S": now},
                ":shard": {"S": queue_shard(window.workspace, window.kind)},
                ":first": {"N": str(window.span.first_second)},
            },
            names={"#state": "state"},
        )

    def oldest_queued(self, workspace: str, kind: str = KIND_CONTENT, limit: int = 1) -> list[Window]:
        """Up to `limit` queued windows of the family, oldest first (every dataset of the reporting family)."""
        keys = due_keys(self._db, self.table, queue_shard(workspace, kind), None, limit=limit)
        return [w for w in (self.get_window(k) for k in keys) if w is not None and w.state is WindowState.QUEUED]

    def start(self, name: str, owner: str, window: Window, job: Job, now: str) -> None:
        """One atomic write: the window's new export is tracked, the window is running, the workspace has an active
        export. Raises ClientError (TransactionCanceledException) when any condition fails: nothing was written."""
        self._db.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(job),
                        "ConditionExpression": "attribute_not_exists(job_identifier)",
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _k(window.key),
                        "UpdateExpression": (
                            "SET #state = :running, export_job = :job, attempts = attempts + :one, "
                            "round_attempts = round_attempts + :one, updated_at = :now "
                            "REMOVE due_shard, next_check_at, last_error"
                        ),
                        "ConditionExpression": "#state = :queued",
                        "ExpressionAttributeNames": {"#state": "state"},
                        "ExpressionAttributeValues": {
                            ":running": {"S": WindowState.RUNNING.value},
                            ":queued": {"S": WindowState.QUEUED.value},
                            ":job": {"S": job.job_identifier},
                            ":one": {"N": "1"},
                            ":now": {"S": now},
                        },
                    }
                },
                {"Update": self._slot(name, owner, window, job.job_identifier, take=True)},
            ]
        )

    def _slot(self, name: str, owner: str, window: Window, job_id: str, *, take: bool) -> dict[str, Any]:
        """The workspace's side of starting (`take`) or finishing a window's export, under our lease: content's one
        slot (active_job), or one of the reporting family's MAX_PENDING (the set active_reporting)."""
        values: dict[str, Any] = {":owner": {"S": owner}}
        if window.kind == Kind.REPORTING:
            values[":entry"] = {"SS": [_entry(job_id, window.key)]}
            if take:
                values[":max"] = {"N": str(MAX_PENDING)}
                update = "ADD active_reporting :entry"
                condition = "lease_owner = :owner AND "
                condition += "(attribute_not_exists(active_reporting) OR size(active_reporting) < :max)"
            else:
                values[":one"] = {"S": _entry(job_id, window.key)}
                update, condition = (
                    "DELETE active_reporting :entry",
                    "lease_owner = :owner AND contains(active_reporting, :one)",
                )
        elif take:
            values.update({":job": {"S": job_id}, ":window": {"S": window.key}})
            update = "SET active_job = :job, active_window = :window"
            condition = "lease_owner = :owner AND attribute_not_exists(active_job)"
        else:
            values[":job"] = {"S": job_id}
            update, condition = "REMOVE active_job, active_window", "lease_owner = :owner AND active_job = :job"
        return {
            "TableName": self.table,
            "Key": _k(workspace_key(name)),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }

    def finish(self, name: str, owner: str, window: Window, state: WindowState, job: Job | None, now: str) -> None:
        """One atomic write: the window's export is done (archived, empty, failed, or queued again for a retry) and
        its workspace's slot is free."""
        values: dict[str, Any] = {":state": state.value, ":now": now, ":running": WindowState.RUNNING.value}
        update = "SET #state = :state, updated_at = :now"
        if job is not None and state is WindowState.ARCHIVED:
            update += ", s3_uri = :uri, size_bytes = :size, sha256 = :sha, api_version = :version"
            values.update(
                {":uri": job.s3_uri, ":size": job.size_bytes, ":sha": job.sha256, ":version": job.api_version or ""}
            )
        if state is WindowState.QUEUED:
            update += ", due_shard = :shard, next_check_at = :first"
            values.update({":shard": queue_shard(window.workspace, window.kind), ":first": window.span.first_second})
        error = None if job is None else job.outcome_reason
        if state in (WindowState.QUEUED, WindowState.FAILED) and error:
            update += ", last_error = :error"
            values[":error"] = error[:500]
        self._db.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _k(window.key),
                        "UpdateExpression": update,
                        "ConditionExpression": "#state = :running",
                        "ExpressionAttributeNames": {"#state": "state"},
                        "ExpressionAttributeValues": {k: _ser.serialize(v) for k, v in values.items()},
                    }
                },
                {"Update": self._slot(name, owner, window, window.export_job or "", take=False)},
            ]
        )

    def note_error(self, window: Window, error: str, now: str) -> None:
        """Why a queued window could not be started this time (shown by coverage); the window stays queued."""
        self._update(
            window.key,
            "SET last_error = :error, updated_at = :now",
            "#state = :queued",
            {":error": {"S": error[:500]}, ":now": {"S": now}, ":queued": {"S": WindowState.QUEUED.value}},
            names={"#state": "state"},
        )

    def clear_active(self, name: str, owner: str, entry: tuple[str, str] | None = None) -> None:
        """Free a slot with nothing to reconcile (its window is gone or no longer running this job): content's, or
        the reporting `entry` (job id, window key)."""
        values: dict[str, Any] = {":owner": {"S": owner}}
        update = "REMOVE active_job, active_window"
        if entry is not None:
            update = "DELETE active_reporting :entry"
            values[":entry"] = {"SS": [_entry(*entry)]}
        self._update(workspace_key(name), update, "lease_owner = :owner", values)

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _update(
        self,
        key: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": _k(key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        return applied(lambda: self._db.update_item(**kwargs))

    def _query_ledger(self, ledger: str, prefix: str | None = None) -> list[dict[str, Any]]:
        cond = "ledger = :l"
        values: dict[str, Any] = {":l": {"S": ledger}}
        if prefix is not None:
            cond += " AND begins_with(ledger_sort, :p)"
            values[":p"] = {"S": prefix}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": LEDGER_INDEX,
            "KeyConditionExpression": cond,
            "ExpressionAttributeValues": values,
        }
        found: list[dict[str, Any]] = []
        while True:
            resp = self._db.query(**kwargs)
            found.extend(_plain(item) for item in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return found
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
