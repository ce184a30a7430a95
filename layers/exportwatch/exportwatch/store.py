"""The job table in DynamoDB: tracking, the due-work query, leases, and conditional saves.

Work is found with a Query on the sparse `due-index` GSI (only jobs that still need work carry `due_shard`),
so an idle cycle costs one small Query no matter how many settled jobs the table holds. Two pollers never
work on the same job at once: a worker first *claims* a job with a conditional write that takes a lease,
and every later save is conditional on still holding that lease.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from exportwatch.model import Job, JobState

log = logging.getLogger(__name__)

DUE_INDEX = "due-index"
DUE_SHARD = "due"  # one GSI partition: tracked exports are few (Intercom runs one at a time per workspace)

_FIELDS = {f.name for f in dataclasses.fields(Job)} - {"extra"}
_ser, _deser = TypeSerializer(), TypeDeserializer()


class LeaseLost(RuntimeError):
    """Our lease on a job was taken over (it lapsed): another worker owns the job now."""


def to_item(job: Job) -> dict[str, Any]:
    plain: dict[str, Any] = {k: v for k, v in job.extra.items()}
    for name in _FIELDS:
        value = getattr(job, name)
        if value is not None:
            plain[name] = value.value if isinstance(value, JobState) else value
    if not job.settled:
        plain["due_shard"] = DUE_SHARD
        plain.setdefault("next_check_at", 0)
    else:
        plain.pop("due_shard", None)
    return {k: _ser.serialize(v) for k, v in plain.items()}


def from_item(item: dict[str, Any]) -> Job:
    plain = {k: _deser.deserialize(v) for k, v in item.items()}
    known: dict[str, Any] = {}
    extra: dict[str, object] = {}
    for key, value in plain.items():
        if key in _FIELDS:
            known[key] = int(value) if key in _INT_FIELDS and value is not None else value
        elif key != "due_shard":
            extra[key] = value
    try:
        known["state"] = JobState(known.get("state", JobState.WATCHING))
    except ValueError:
        # A state written by a newer version: keep watching rather than lose the job.
        log.warning(
            "job %s has unknown state %r; treating it as watching",
            known.get("job_identifier"),
            known["state"],
        )
        known["state"] = JobState.WATCHING
    return Job(**known, extra=extra)


_INT_FIELDS = {"next_check_at", "attempts", "size_bytes", "lease_until", "ttl", "window_attempt"}


def due_keys(db: Any, table: str, shard: str, due_by: int | None, limit: int = 10_000) -> list[str]:
    """Keys in one partition of due-index (jobs' "due", the scheduler's workspaces, a workspace's queued windows),
    in next_check_at order, up to `due_by` (None: all of them), at most `limit`."""
    cond = "due_shard = :d"
    values: dict[str, Any] = {":d": {"S": shard}}
    if due_by is not None:
        cond += " AND next_check_at <= :t"
        values[":t"] = {"N": str(int(due_by))}
    keys: list[str] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": DUE_INDEX,
        "KeyConditionExpression": cond,
        "ExpressionAttributeValues": values,
        "ProjectionExpression": "job_identifier",
    }
    while len(keys) < limit:
        resp = db.query(**kwargs, Limit=min(1000, limit - len(keys)))
        keys.extend(item["job_identifier"]["S"] for item in resp.get("Items", []))
        if "LastEvaluatedKey" not in resp:
            break
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    return keys


def claim_item(
    db: Any, table: str, key: dict[str, Any], owner: str, now: int, lease_seconds: int, due_by: int | None
) -> dict[str, Any] | None:
    """Take the lease on an item that still needs work (it carries due_shard): its attributes after the write, or
    None if another worker holds the lease, it is not due by `due_by`, or it is gone. Jobs and workspaces alike."""
    cond = "attribute_exists(due_shard) AND (attribute_not_exists(lease_until) OR lease_until < :now)"
    values: dict[str, Any] = {
        ":owner": {"S": owner},
        ":until": {"N": str(now + lease_seconds)},
        ":now": {"N": str(now)},
    }
    if due_by is not None:
        # Re-check due-ness on the item itself: the GSI is eventually consistent, and another poller may
        # have just handled the item and pushed its next check into the future.
        cond += " AND next_check_at <= :due"
        values[":due"] = {"N": str(due_by)}
    try:
        resp = db.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET lease_owner = :owner, lease_until = :until",
            ConditionExpression=cond,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if is_conditional(exc):
            return None
        raise
    return dict(resp["Attributes"])


class JobStore:
    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._db = dynamodb  # a low-level client: thread-safe, unlike boto3 resources
        self.table = table_name

    def track(self, job: Job) -> bool:
        """Insert a new job. Returns False, writing nothing, if the job is already tracked."""
        return applied(
            lambda: self._db.put_item(
                TableName=self.table,
                Item=to_item(job),
                ConditionExpression="attribute_not_exists(job_identifier)",
            )
        )

    def get(self, job_id: str) -> Job | None:
        resp = self._db.get_item(TableName=self.table, Key=key_of(job_id), ConsistentRead=True)
        return from_item(resp["Item"]) if "Item" in resp else None

    def due_ids(self, due_by: int | None, limit: int = 10_000) -> list[str]:
        """Ids of jobs needing work whose next check is at or before `due_by` (None: all of them)."""
        return due_keys(self._db, self.table, DUE_SHARD, due_by, limit)

    def claim(self, job_id: str, owner: str, now: int, lease_seconds: int, due_by: int | None) -> Job | None:
        """Take the lease on a job that still needs work. None if another worker holds it or it is done."""
        item = claim_item(self._db, self.table, key_of(job_id), owner, now, lease_seconds, due_by)
        return None if item is None else from_item(item)

    def save(self, job: Job, owner: str, *, release: bool) -> None:
        """Write the whole job, only if we still hold its lease. `release` drops the lease in the same write."""
        if release:
            job.lease_owner, job.lease_until = None, None
        try:
            self._db.put_item(
                TableName=self.table,
                Item=to_item(job),
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if is_conditional(exc):
                raise LeaseLost(f"lease on job {job.job_identifier} was taken over by another worker") from None
            raise

    def release(self, job_id: str, owner: str) -> None:
        """Drop our lease without other changes (work was not started)."""
        self._update_if(
            job_id,
            "REMOVE lease_owner, lease_until",
            "lease_owner = :owner",
            {":owner": {"S": owner}},
        )

    def make_due(self, job_id: str) -> None:
        """Check an unsettled job on the next cycle, whatever its back-off said. A settled job (no due_shard) or
        an unknown id is left alone."""
        self._update_if(job_id, "SET next_check_at = :zero", "attribute_exists(due_shard)", {":zero": {"N": "0"}})

    def quarantine(self, job_id: str, reason: str, now: int) -> bool:
        """Take a row out of the due index for good (its id is unusable), recording why. True if this call did it:
        the caller logs and counts the row once, even with several pollers at work."""
        return self._update_if(
            job_id,
            "REMOVE due_shard SET quarantined_at = :now, quarantine_reason = :why",
            "attribute_exists(due_shard)",
            {":now": {"N": str(now)}, ":why": {"S": reason}},
        )

    def _update_if(self, job_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        """One conditional UpdateItem: True if it was applied, False if the condition did not hold."""
        return applied(
            lambda: self._db.update_item(
                TableName=self.table,
                Key=key_of(job_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        )

    def scan_all(self) -> Iterator[Job]:
        """Every tracked job, for `exportwatch list` (an operator command, not the poll path)."""
        # Workspace and window records share the table (ledger.py); they carry `record`, jobs never do.
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "attribute_not_exists(#record)",
            "ExpressionAttributeNames": {"#record": "record"},
        }
        while True:
            resp = self._db.scan(**kwargs)
            for item in resp.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def key_of(job_id: str) -> dict[str, Any]:
    return {"job_identifier": {"S": job_id}}


def applied(write: Callable[[], object]) -> bool:
    """Run one conditional write: True if it was applied, False if its condition did not hold (other errors raise)."""
    try:
        write()
    except ClientError as exc:
        if is_conditional(exc):
            return False
        raise
    return True


def is_conditional(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
