"""The fault harness: track jobs, inject one fault, drive real poll runs, then judge the end state.

Every fault test follows the same shape. It registers jobs in the Intercom emulator (each with what its
end state must be, an `Expect`), scripts a fault (an emulator option, a botocore event hook on the poller's own
AWS client, a competing lease, a killed process), drives runs (`exportwatch poll` subprocesses, or `run_cycle`
in-process) against moto server, and ends with `verify()`. verify() reads the end state from the outside: the
notifications a queue subscribed to the topic received, the objects under the job's key in S3 (sha256 against
the emulator's bytes), the download requests the emulator recorded and the job's table item. It computes the
report's numbers from that state (lost, duplicated), hands them to the report, then asserts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from exportwatch.archive import CopySettings
from exportwatch.config import Settings
from exportwatch.model import Job, iso, utcnow
from exportwatch.poll import CycleSummary, Poller, run_cycle
from exportwatch.wiring import aws_clients, build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, ReceivedNotification, aws_client, receive_notifications
from support.digests import emulator_digest, object_digest
from support.outcomes import item
from support.readback import archive_key, keys_of_job

MiB = 1024 * 1024
_EXPORTWATCH = Path(sys.executable).with_name("exportwatch")  # the console script in the venv
CLI: tuple[str, ...] = (str(_EXPORTWATCH),) if _EXPORTWATCH.exists() else (sys.executable, "-m", "exportwatch")
_EXTENSIONS = {"zip": "zip", "gzip": "gz"}
_deser = TypeDeserializer()


@dataclass(frozen=True)
class Expect:
    """How one job must end."""

    event: str = "export.completed"
    downloads: int = 1  # download requests the fault makes necessary (a broken download is retried once)
    body_sha256: str | None = None  # the bytes that must land in S3; None: exactly what the emulator serves
    body_format: str = "zip"

    @property
    def state(self) -> str:
        return self.event.removeprefix("export.")


@dataclass
class JobVerdict:
    """One job's end state, as read from the queue, S3, the emulator and the table."""

    job_identifier: str
    expect: Expect
    events: list[str]
    downloads: int
    object_problem: str | None  # None: the object is right (or, for other outcomes, rightly absent)
    item_problems: list[str]

    @property
    def lost(self) -> bool:
        """Ended without its notification, or (completed) without the exact bytes at its final key."""
        return self.expect.event not in self.events or self.object_problem is not None

    @property
    def duplicated(self) -> bool:
        """Announced more than once, or downloaded more often than the fault requires."""
        return len(self.events) > 1 or self.downloads > self.expect.downloads

    def problems(self) -> list[str]:
        out = []
        if self.events != [self.expect.event]:
            out.append(f"notifications {self.events}, wanted [{self.expect.event!r}]")
        if self.downloads != self.expect.downloads:
            out.append(f"{self.downloads} download requests, wanted {self.expect.downloads}")
        if self.object_problem:
            out.append(self.object_problem)
        out += self.item_problems
        return [f"{self.job_identifier}: {p}" for p in out]


@dataclass(frozen=True)
class Row:
    """One line of the reliability report."""

    fault: str
    runs: int
    jobs: int
    lost: int | None
    duplicated: int | None
    outcome: str
    nodeid: str


@dataclass(frozen=True)
class CliRun:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        """The cycle summary printed by `poll --json`."""
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data

    def job(self, job_id: str) -> dict[str, Any]:
        [found] = [j for j in self.summary["jobs"] if j["job_identifier"] == job_id]
        return dict(found)


def injected_error(operation: str, code: str = "InternalError") -> ClientError:
    """What a failing AWS call raises (botocore's own exception type, so the code under test cannot tell)."""
    return ClientError({"Error": {"Code": code, "Message": f"injected fault in {operation}"}}, operation)


class FailOnce:
    """A botocore `before-call` hook: the `nth` matching call (and the `times - 1` after it) raises, once.

    Raising in before-call happens before botocore sends anything, and is not retried by botocore: to the
    code under test it is AWS refusing that call. Calls come from several threads (s3transfer, the cycle).
    """

    def __init__(self, operation: str, nth: int = 1, times: int = 1) -> None:
        self.operation = operation
        self.nth = nth
        self.times = times
        self.calls = 0
        self.raised = 0
        self._lock = threading.Lock()

    def __call__(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1
            fail = self.nth <= self.calls < self.nth + self.times
            self.raised += fail
        if fail:
            raise injected_error(self.operation)


@dataclass
class FaultHarness:
    """One fault test's world: the stack, the emulator, the poller's environment, and what the runs produced."""

    fault: str
    stack: LocalStack
    emulator: IntercomEmulator
    env: dict[str, str]
    settings: Settings
    queue_url: str
    token: str
    workdir: Path
    runs: int = 0
    detail: str = ""  # how the jobs got to their end state, for the report (the test says, from its runs)
    expected: dict[str, Expect] = field(default_factory=dict)
    received: list[ReceivedNotification] = field(default_factory=list)
    verdicts: list[JobVerdict] | None = None
    _digests: dict[str, str] = field(default_factory=dict)

    # -- jobs ---------------------------------------------------------------------------------------------

    def add(self, scenario: str = "completed", expect: Expect | None = None, **options: Any) -> str:
        """A job in the emulator, with the end state it must reach."""
        job_id = self.emulator.add_job(scenario, **options)
        fmt = str(options.get("body_format", "gzip" if scenario == "complete_legacy" else "zip"))
        self.expected[job_id] = expect or Expect(body_format=fmt)
        return job_id

    def track(self, *job_ids: str, next_check_at: int | Sequence[int] = 0) -> None:
        """Track jobs as `exportwatch track` does (due at once unless told otherwise)."""
        store = self.poller().store
        at = [next_check_at] * len(job_ids) if isinstance(next_check_at, int) else list(next_check_at)
        for job_id, when in zip(job_ids, at, strict=True):
            assert store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=when))

    # -- runs ---------------------------------------------------------------------------------------------

    def poller(
        self,
        *,
        clients: dict[str, Any] | None = None,
        copy_settings: CopySettings | None = None,
        **settings: Any,
    ) -> Poller:
        """A poller built as the Lambda builds it (wiring.build_poller); `clients` lets a test hook them."""
        values = dataclasses.replace(self.settings, **settings) if settings else self.settings
        return build_poller(values, clients, copy_settings=copy_settings)

    @staticmethod
    def clients(hooks: dict[str, Callable[..., Any]] | None = None) -> dict[str, Any]:
        """Fresh AWS clients for a poller, with botocore event hooks, e.g. {"before-call.sns.Publish": f}."""
        clients = aws_clients()
        for event, handler in (hooks or {}).items():
            service = event.split(".")[1]
            clients[service].meta.events.register(event, handler)
        return clients

    def cycle(self, poller: Poller, *, all_jobs: bool = True, owner: str | None = None) -> CycleSummary:
        """One in-process cycle (what the Lambda handler runs)."""
        self.runs += 1
        return run_cycle(poller, all_jobs=all_jobs, owner=owner)

    def cli_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **self.env, **(extra or {})}

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> CliRun:
        """One `exportwatch` process (default `poll --all --json`); it must exit 0 and never print the token."""
        argv = (*CLI, *(args or ("poll", "--all", "--json")))
        self.runs += 1
        proc = subprocess.run(
            argv, env=self.cli_env(env), capture_output=True, text=True, timeout=timeout, cwd=self.workdir
        )
        run = CliRun(argv, proc.returncode, proc.stdout, proc.stderr)
        assert run.returncode == 0, f"{' '.join(argv)} exited {run.returncode}: {run.stderr[-2000:]}"
        assert self.token not in run.stdout + run.stderr, "the token was printed"
        return run

    def start_cli(self, *args: str, env: dict[str, str] | None = None, name: str = "poll") -> subprocess.Popen[bytes]:
        """An `exportwatch` process left running (output to files in the test's directory)."""
        argv = (*CLI, *(args or ("poll", "--all", "--json")))
        self.runs += 1
        with (self.workdir / f"{name}.out").open("wb") as out, (self.workdir / f"{name}.err").open("wb") as err:
            return subprocess.Popen(argv, env=self.cli_env(env), stdout=out, stderr=err, cwd=self.workdir)

    # -- observing ----------------------------------------------------------------------------------------

    def new_notes(self) -> list[ReceivedNotification]:
        """Notifications delivered since the last look (moto delivers SNS -> SQS within Publish), read until
        the queue answers empty."""
        notes: list[ReceivedNotification] = []
        while batch := receive_notifications(self.stack.endpoint_url, self.queue_url, timeout=0.9):
            notes += batch
        self.received += notes
        return notes

    def notes_for(self, job_id: str) -> list[ReceivedNotification]:
        """Every notification about this job received so far."""
        self.new_notes()
        return [n for n in self.received if n.body["job_identifier"] == job_id]

    def events_for(self, job_id: str) -> list[str]:
        return [n.body["event"] for n in self.notes_for(job_id)]

    def downloads(self, job_id: str) -> int:
        return sum(1 for r in self.emulator.requests_for(job_id) if r.path.startswith("/download/"))

    def item(self, job_id: str) -> dict[str, Any]:
        return item(self.stack, job_id)

    def key(self, job_id: str) -> str:
        ext = _EXTENSIONS[self.expected[job_id].body_format]
        return archive_key(self.stack, job_id, ext, self.settings.export_prefix)

    def objects_for(self, job_id: str) -> list[str]:
        return keys_of_job(self.stack, job_id, self.settings.export_prefix)

    def uploads(self) -> list[dict[str, Any]]:
        """Multipart uploads started and neither completed nor aborted."""
        s3 = aws_client("s3", self.stack.endpoint_url)
        return list(s3.list_multipart_uploads(Bucket=self.stack.bucket).get("Uploads", []))

    def assert_watching(self, job_id: str, error_part: str | None = None) -> dict[str, Any]:
        """Mid-test check: the job is kept (due, unannounced, nothing at its key), with this error recorded."""
        it = self.item(job_id)
        assert it["state"] == "watching" and it.get("due_shard") == "due", it
        assert "notified_at" not in it and "lease_owner" not in it, it
        if error_part is not None:
            assert error_part in it.get("last_error", ""), it
        assert self.objects_for(job_id) == []
        assert self.events_for(job_id) == []
        return it

    # -- the verdict --------------------------------------------------------------------------------------

    def _expected_sha(self, job_id: str) -> str:
        if job_id not in self._digests:
            want = self.expected[job_id].body_sha256
            self._digests[job_id] = want or emulator_digest(self.emulator, job_id)[1]
        return self._digests[job_id]

    def _all_keys(self) -> list[str]:
        s3 = aws_client("s3", self.stack.endpoint_url)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.stack.bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def _all_items(self) -> dict[str, dict[str, Any]]:
        ddb = aws_client("dynamodb", self.stack.endpoint_url)
        pages = ddb.get_paginator("scan").paginate(TableName=self.stack.table_name, ConsistentRead=True)
        items = ({k: _deser.deserialize(v) for k, v in i.items()} for page in pages for i in page["Items"])
        return {str(i["job_identifier"]): i for i in items}

    def judge(self) -> list[JobVerdict]:
        """Read every tracked job's end state (no assertions): the numbers of the report."""
        self.new_notes()
        requests = self.emulator.requests  # before the digests below add downloads of their own
        downloads = Counter(r.job_identifier for r in requests if r.path.startswith("/download/"))
        all_keys, items = self._all_keys(), self._all_items()
        verdicts = []
        for job_id, expect in self.expected.items():
            keys = [k for k in all_keys if k.rsplit("/", 1)[-1].startswith(f"{job_id}.")]
            object_problem: str | None = None
            if expect.event == "export.completed":
                if keys != [self.key(job_id)]:
                    object_problem = f"objects {keys}, wanted [{self.key(job_id)!r}]"
                else:
                    size, sha, _ = object_digest(self.stack, keys[0])
                    if sha != self._expected_sha(job_id):
                        object_problem = f"the object's sha256 {sha} ({size} bytes) is not the export's"
            elif keys:
                object_problem = f"objects {keys} for an {expect.event} job"
            verdicts.append(
                JobVerdict(
                    job_identifier=job_id,
                    expect=expect,
                    events=[n.body["event"] for n in self.received if n.body["job_identifier"] == job_id],
                    downloads=downloads[job_id],
                    object_problem=object_problem,
                    item_problems=self._item_problems(job_id, expect, items.get(job_id, {})),
                )
            )
        self.verdicts = verdicts
        return verdicts

    def _item_problems(self, job_id: str, expect: Expect, it: dict[str, Any]) -> list[str]:
        if not it:
            return ["no item in the table"]
        problems = []
        if it.get("state") != expect.state:
            problems.append(f"table state {it.get('state')!r}, wanted {expect.state!r}")
        if not it.get("notified_at"):
            problems.append("no notified_at in the table")
        for name in ("due_shard", "lease_owner", "lease_until"):
            if name in it:
                problems.append(f"{name} still set once settled")
        if expect.event == "export.completed":
            if it.get("s3_uri") != f"s3://{self.stack.bucket}/{self.key(job_id)}":
                problems.append(f"table s3_uri {it.get('s3_uri')!r}")
            elif it.get("sha256") != self._expected_sha(job_id):
                problems.append("table sha256 is not the export's")
        return problems

    def verify(self, *, orphan_uploads: int = 0) -> list[JobVerdict]:
        """The end state: every job announced once with the right event, its bytes at its key (completed),
        its table item settled; and no multipart upload left over (beyond `orphan_uploads` a killed process
        left, which the bucket's lifecycle rule aborts)."""
        verdicts = self.judge()
        problems = [p for v in verdicts for p in v.problems()]
        leftover = self.uploads()
        if len(leftover) != orphan_uploads:
            problems.append(f"{len(leftover)} incomplete multipart uploads, wanted {orphan_uploads}")
        assert not problems, "\n".join(problems)
        return verdicts

    def row(self, nodeid: str, passed: bool, failure: str = "") -> Row:
        verdicts = self.verdicts
        if verdicts is None and self.expected:
            try:  # the test stopped early: still report what its jobs came to
                verdicts = self.judge()
            except Exception:
                verdicts = None
        lost = None if verdicts is None else sum(v.lost for v in verdicts)
        duplicated = None if verdicts is None else sum(v.duplicated for v in verdicts)
        events = Counter(e for v in verdicts or [] for e in v.events)
        shown = ", ".join(f"{n} {e}" for e, n in sorted(events.items())) or "no notification"
        outcome = f"pass: {shown}" if passed else f"FAIL: {failure or shown}"
        if passed and self.detail:
            outcome += f"; {self.detail}"
        return Row(self.fault, self.runs, len(self.expected), lost, duplicated, outcome, nodeid)
