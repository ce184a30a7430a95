"""`exportwatch demo`: the whole product on one machine, no AWS account.

moto in server mode stands in for AWS (resources created from template.yaml's own definitions), the
Intercom emulator serves real HTTP, and an SQS queue subscribed to the topic shows what a subscriber gets.
Jobs are tracked and polled through the real CLI commands until every one has settled. Then a second emulator
serves workspace `eu` with its own token: a week of backfill in both workspaces is polled to a complete ledger
(`exportwatch coverage`), and the demo fails unless every window is archived with no gap, each emulator saw only
its own token, and no workspace ever had two exports active. `eu` also has reporting ids (app/client id): the same
week of its `conversation` dataset is backfilled beside the content, to a gap-free ledger of its own, with at most
5 reporting exports pending at once.

`exportwatch demo --keep` (`make sandbox`) then keeps moto and the emulator running and prints the `export`
lines for another shell, so every CLI command can be tried by hand against them until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from exportwatch.model import Event, human_size

POLL_ROUNDS = 10


@dataclass(frozen=True)
class DemoJob:
    scenario: str
    expect: tuple[Event, ...]  # every notification the job gets, in order (an early warning, then the outcome)
    what: str
    options: dict[str, Any]
    tracked_hours_ago: float = 0.0  # > 0: written to the table as if `exportwatch track` had run that long ago


DEMO_JOBS = [
    DemoJob("completed", (Event.COMPLETED,), "pending -> in_progress -> completed, ZIP of CSVs", {}),
    DemoJob("complete_legacy", (Event.COMPLETED,), "older spelling 'complete', gzip body", {}),
    DemoJob("html_504", (Event.COMPLETED,), "two HTML 504s from Intercom's edge (transient), then completed", {}),
    DemoJob("rate_limited", (Event.COMPLETED,), "429 with X-RateLimit-Reset first, then completed", {}),
    DemoJob("failed", (Event.FAILED,), "ran over 12 hours: HTTP 504 with a JSON 'failed' body", {}),
    DemoJob("not_found", (Event.NOT_FOUND,), "Intercom answers 404 not_found", {}),
    DemoJob("no_data", (Event.NO_DATA,), "nothing was sent in the range", {}),
    DemoJob("canceled", (Event.CANCELED,), "canceled at Intercom", {}),
    DemoJob("expired", (Event.EXPIRED,), "completed three days ago: Intercom's copy is gone", {}),
    DemoJob("foreign_url", (Event.FAILED,), "download_url on another origin: the token is not sent there", {}),
    # Early warnings: each job gets its warning once, then its outcome.
    DemoJob(
        "failed",
        (Event.STUCK, Event.FAILED),
        "tracked 13 hours ago and still pending: export.stuck, then Intercom gives up (failed)",
        {"steps": ["pending", "pending", "in_progress", "failed"]},
        tracked_hours_ago=13,
    ),
    DemoJob(
        "completed",
        (Event.EXPIRING, Event.COMPLETED),
        "completed, 4 hours left, the first two downloads break off: export.expiring, then copied",
        {"steps": ["completed"], "expires_in": 4 * 3600.0, "flaky_downloads": 2},
    ),
]


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """`env` set in os.environ for the block, and every variable as it was (or unset) again after it."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _say(text: str = "") -> None:
    print(text, flush=True)


def _heading(text: str) -> None:
    _say()
    _say(f"== {text} " + "=" * max(0, 76 - len(text)))


def run_demo(exportwatch: Callable[[Sequence[str]], int], template: str | None = None, *, keep: bool = False) -> int:
    """Run the demo; `exportwatch` runs one CLI command (cli.main, handed in by `exportwatch demo`, so this module
    never imports the CLI back)."""
    import logging

    from exportwatch_local.emulator import IntercomEmulator
    from exportwatch_local.localstack import (
        MotoServer,
        aws_client,
        create_resources,
        find_template,
        receive_notifications,
        subscribe_queue,
    )

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    template_path = find_template(template)
    token = "demo-" + secrets.token_urlsafe(24)
    _heading("exportwatch demo: moto server + Intercom emulator on 127.0.0.1, no AWS account")
    with MotoServer() as moto, IntercomEmulator(token=token) as intercom:
        stack = create_resources(moto.endpoint_url, token, template=template_path)
        queue_url = subscribe_queue(moto.endpoint_url, stack.topic_arn)
        env = stack.env(INTERCOM_API_URL=intercom.base_url, POLL_INTERVAL_MINUTES="5")
        with _environ(env):
            _say(f"AWS (moto):        {moto.endpoint_url}  (resources from {template_path.name})")
            _say(f"  table {stack.table_name}, bucket {stack.bucket}")
            _say(f"  topic {stack.topic_arn}")
            _say(f"Intercom emulator: {intercom.base_url}")
            _say("Subscriber:        an SQS queue subscribed to the topic")

            _heading("tracking one job per outcome, and one per early warning")
            expected: dict[str, DemoJob] = {}
            for demo_job in DEMO_JOBS:
                job_id = intercom.add_job(demo_job.scenario, **demo_job.options)
                expected[job_id] = demo_job
                label = "/".join(e.value.removeprefix("export.") for e in demo_job.expect)
                if demo_job.tracked_hours_ago:
                    _say(f"(tracked {demo_job.tracked_hours_ago:g} hours ago)  {job_id}    # {label}: {demo_job.what}")
                    _track_in_the_past(stack.table_name, job_id, demo_job.tracked_hours_ago)
                else:
                    _say(f"$ exportwatch track {job_id}    # {label}: {demo_job.what}")
                    exportwatch(["track", job_id])
            _say("$ exportwatch track not/a/job    # bad input: one line, exit 2, nothing written")
            code = exportwatch(["track", "not/a/job"])
            _say(f"  (exit code {code})")
            _say("$ exportwatch start --since 2026-11-01 --until 2026-11-07    # create an export, then track it")
            exportwatch(["start", "--since", "2026-11-01", "--until", "2026-11-07"])
            _say("$ exportwatch start --since 2026-11-08 --until 2026-11-09    # one active job per workspace")
            code = exportwatch(["start", "--since", "2026-11-08", "--until", "2026-11-09"])
            _say(f"  (exit code {code})")

            _heading("polling until every job has settled")
            for round_no in range(1, POLL_ROUNDS + 1):
                _say(f"$ exportwatch poll --all    # round {round_no}")
                exportwatch(["poll", "--all"])
                store_jobs = _jobs(stack.table_name)
                if all(j.settled for j in store_jobs):
                    break
                time.sleep(1.1)  # lets the emulator's rate-limit window reset

            _heading("exportwatch list")
            exportwatch(["list"])

            _heading("S3 objects (exact bytes from Intercom)")
            s3 = aws_client("s3", moto.endpoint_url)
            for obj in s3.list_objects_v2(Bucket=stack.bucket).get("Contents", []):
                head = s3.head_object(Bucket=stack.bucket, Key=obj["Key"])
                _say(
                    f"s3://{stack.bucket}/{obj['Key']}  {human_size(obj['Size'])}  {head['ContentType']}  "
                    f"metadata={head['Metadata']}"
                )

            _heading("notifications as the subscriber received them")
            total = sum(len(j.expect) for j in expected.values()) + 1  # + the job made with `start`
            received = receive_notifications(moto.endpoint_url, queue_url, expect=total, timeout=10)
            seen: dict[str, list[tuple[str, str]]] = {}
            for note in received:
                _say(f"Subject: {note.subject}")
                _say(f"  attributes: {note.attributes}")
                _say(f"  body: {note.message}")
                job_id = note.attributes.get("job_identifier", "")
                occurred = str(note.body.get("occurred_at", "")) if isinstance(note.body, dict) else ""
                seen.setdefault(job_id, []).append((occurred, note.attributes.get("event", "")))

            _heading("check")
            ok = True
            for job_id, demo_job in expected.items():
                got = [event for _, event in sorted(seen.get(job_id, []))]  # SQS does not keep order: by time
                good = got == [e.value for e in demo_job.expect]
                ok &= good
                _say(f"{'ok ' if good else 'BAD'} {job_id}  {demo_job.scenario:<16} -> {', '.join(got) or 'nothing'}")
            leaked = [r for r in intercom.requests if token in str(r.headers) and r.path.startswith("/_")]
            ok &= not leaked
            _say(
                "every outcome and every early warning notified exactly once"
                if ok
                else "some outcome or warning is missing or duplicated"
            )

            # Notifications for people: the email text and the Slack message (see _show_people_notifications).
            ok &= _show_people_notifications(moto.endpoint_url, stack.topic_arn, received, template_path)
            ok &= _two_workspaces(exportwatch, moto.endpoint_url, stack, queue_url, (intercom, token))
            if keep:
                _keep_running(env, intercom)
            return 0 if ok else 1


# ------------------------------------------------------------------------------------------------------------
# Notifications for people: the email text and the Slack message for each outcome. The Slack messages go
# through the real handler (functions/slack_notifier/app.py) to a local Slack-compatible receiver, with the
# webhook URL read from (moto's) Secrets Manager; a dead webhook ends in the dead-letter queue.
# ------------------------------------------------------------------------------------------------------------


def _load_slack_handler(template_path: Path) -> Any:
    """functions/slack_notifier/app.py beside template.yaml, imported as a module (`slack_notifier.app`, with
    functions/ on the path), the way the tests import it and Lambda imports `app`."""
    import importlib

    functions = template_path.parent / "functions"
    path = functions / "slack_notifier" / "app.py"
    if not path.is_file():
        raise FileNotFoundError(f"Slack handler not found at {path}")
    if str(functions) not in sys.path:
        sys.path.append(str(functions))
    return importlib.import_module("slack_notifier.app")


class _DemoContext:
    function_name = "exportwatch-SlackNotifierFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:exportwatch-SlackNotifierFunction"
    aws_request_id = "demo"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _show_people_notifications(endpoint_url: str, topic_arn: str, received: list[Any], template_path: Path) -> bool:
    import json

    from exportwatch.render import email_text, region_from_arn
    from exportwatch_local.asyncinvoke import create_dead_letter_queue, invoke_async, retry_attempts
    from exportwatch_local.localstack import aws_client, load_template
    from exportwatch_local.slack_receiver import CHANNEL_NOT_FOUND, SlackReceiver
    from exportwatch_local.snsevents import capture, lambda_event

    sns = aws_client("sns", endpoint_url)
    subscription_arn = next(
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        if s["Protocol"] == "sqs"
    )
    region = region_from_arn(topic_arn)
    ours = [n for n in received if isinstance(n.body, dict) and n.body.get("event") in {e.value for e in Event}]
    first_per_event: dict[str, Any] = {}
    for note in ours:
        first_per_event.setdefault(note.body["event"], note)

    secret_name = "exportwatch/slack-webhook-demo-" + secrets.token_hex(3)
    env = {"SLACK_WEBHOOK_SECRET": secret_name, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    ok = True
    with SlackReceiver() as slack:
        url = slack.new_webhook()
        aws_client("secretsmanager", endpoint_url).create_secret(
            Name=secret_name, SecretString=json.dumps({"url": url})
        )
        with _environ(env):
            app = _load_slack_handler(template_path)
            _heading("email and Slack, one outcome each (Slack: real handler -> local Slack receiver)")
            _say(f"Slack receiver: {slack.base_url} (webhook URL kept in Secrets Manager as {secret_name})")
            for event_name, note in sorted(first_per_event.items(), key=lambda kv: list(Event).index(Event(kv[0]))):
                before = len(slack.payloads)
                app.lambda_handler(lambda_event(note.envelope, subscription_arn=subscription_arn), _DemoContext())
                posted = slack.payloads[before:]
                ok &= len(posted) == 1
                _heading(f"{event_name}: email")
                _say(f"Subject: {note.subject}")
                _say()
                _say(email_text(note.body, region=region).rstrip("\n"))
                _heading(f"{event_name}: Slack payload as the receiver got it")
                for payload in posted:
                    _say(f"text: {payload['text']}")
                    for block in payload["blocks"]:
                        _say(f"  {json.dumps(block, ensure_ascii=False)}")
                    for attachment in payload.get("attachments", []):
                        _say(f"  attachment color {attachment.get('color')}:")
                        for block in attachment.get("blocks", []):
                            _say(f"    {json.dumps(block, ensure_ascii=False)}")

            _heading("a message from another publisher on the topic: posted as readable raw text")
            foreign = capture(endpoint_url, topic_arn, ["foreign_text"])["foreign_text"]
            app.lambda_handler(foreign, _DemoContext())
            _say(json.dumps(slack.payloads[-1], ensure_ascii=False))

            _heading("a dead webhook (404 channel_not_found): the function fails, the event lands in the DLQ")
            template = load_template(template_path)
            sqs = aws_client("sqs", endpoint_url)
            dlq = create_dead_letter_queue(endpoint_url, template, "exportwatch-slack-dlq-" + secrets.token_hex(3))
            slack.always(url, CHANNEL_NOT_FOUND)
            note = ours[0]
            outcome = invoke_async(
                app.lambda_handler,
                lambda_event(note.envelope, subscription_arn=subscription_arn),
                _DemoContext(),
                maximum_retry_attempts=retry_attempts(template),
                on_failure=lambda body: sqs.send_message(QueueUrl=dlq, MessageBody=body),
            )
            kept = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
            record = json.loads(kept[0]["Body"]) if kept else {}
            _say(f"attempts: {outcome.attempts} (1 + MaximumRetryAttempts from template.yaml), all failed")
            for error in outcome.errors[-1:]:
                _say(f"error: {type(error).__name__}: {error}")
            condition = record.get("requestContext", {}).get("condition")
            _say(f"dead-letter queue: {len(kept)} record, condition {condition}")
            kept_event = record.get("requestPayload", {})
            kept_ok = kept_event == lambda_event(note.envelope, subscription_arn=subscription_arn)
            _say("the SNS event is kept whole in the record (requestPayload), ready to redrive" if kept_ok else "BAD")
            leaked = any(url in json.dumps(r.payload or {}) for r in slack.posts) or (kept and url in kept[0]["Body"])
            ok &= kept_ok and not outcome.succeeded and not leaked
    _say("every outcome has an email text and reached Slack" if ok else "some Slack post is missing")
    return ok


# ------------------------------------------------------------------------------------------------------------
# Two workspaces: a second emulator (workspace `eu`, its own token, port and reporting ids), a week of backfill in
# each, and the same week of eu's `conversation` dataset, polled until every window is archived; then the ledgers,
# the tokens, the one-export and five-pending rules, the enqueues, the notifications and the S3 keys checked.
# ------------------------------------------------------------------------------------------------------------

WORKSPACE_ROUNDS = 30  # a week is 7 windows a workspace, two rounds each (pending, then completed), one retry;
# eu's conversation week runs beside its content week (up to 5 reporting exports pending at once)
EU_APP_ID = "demo-eu-app"
EU_CLIENT_ID = "demo-eu-client"
DATASET = "conversation"
DATASETS_SHOWN = 3  # attributes of each dataset shown by `exportwatch datasets` (the rest counted)


def _two_workspaces(
    exportwatch: Callable[[Sequence[str]], int],
    endpoint_url: str,
    stack: Any,
    queue_url: str,
    default: tuple[Any, str],
) -> bool:
    from exportwatch.reporting import ledger_kind
    from exportwatch_local.emulator import IntercomEmulator
    from exportwatch_local.localstack import aws_client, receive_notifications

    today = datetime.now(UTC).date()
    since, until = today - timedelta(days=7), today - timedelta(days=1)
    eu_token = "demo-eu-" + secrets.token_urlsafe(24)
    secret_name = "exportwatch/intercom-token-eu-" + secrets.token_hex(3)
    _heading("two workspaces: a week of backfill to a complete ledger")
    with IntercomEmulator(token=eu_token, workspace="eu", app_id=EU_APP_ID, client_id=EU_CLIENT_ID) as eu:
        emulators: dict[str, tuple[Any, str]] = {"default": default, "eu": (eu, eu_token)}
        creates_before = {name: len(emu.creates) for name, (emu, _) in emulators.items()}
        for emu, _ in emulators.values():
            # Pending when created, ready at the first status call: the demo stays short (Intercom takes minutes)
            # and each export holds its workspace's one slot until it is checked.
            emu.set_create_scenario("completed", steps=["pending", "completed"])
        eu.queue_create_scenarios(("failed", {"steps": ["pending", "failed"]}))
        eu.set_reporting_scenario("completed", steps=["pending", "complete"])  # reporting exports alike
        enqueues_before = len(eu.enqueues)
        _say(f"Intercom emulator for workspace eu: {eu.base_url} (its own token; its first export will fail)")
        _say(f"  reporting ids: app_id {EU_APP_ID}, client_id {EU_CLIENT_ID}")
        aws_client("secretsmanager", endpoint_url).create_secret(Name=secret_name, SecretString=eu_token)
        _say(f"eu's token is in Secrets Manager as {secret_name}")
        ok = _cli(
            exportwatch,
            *("workspace", "add", "eu", "--api-url", eu.base_url, "--token-secret", secret_name),
            *("--app-id", EU_APP_ID, "--client-id", EU_CLIENT_ID),
        )
        ok &= _cli(exportwatch, "workspace", "list")
        ok &= _cli_trimmed(exportwatch, DATASETS_SHOWN, "datasets", "--workspace", "eu")
        for name in emulators:
            ok &= _cli(exportwatch, "backfill", "--workspace", name, "--since", str(since), "--until", str(until))
        ok &= _cli(
            exportwatch,
            *("backfill", "--workspace", "eu", "--since", str(since), "--until", str(until), "--dataset", DATASET),
        )
        ledger = _ledger(stack.table_name)
        conversation = ledger_kind("reporting", DATASET)

        def all_windows() -> list[Any]:
            found: list[Any] = [w for name in emulators for w in ledger.windows(name)]
            return found + list(ledger.windows("eu", conversation))

        for round_no in range(1, WORKSPACE_ROUNDS + 1):
            _say(f"$ exportwatch poll --all    # round {round_no}")
            exportwatch(["poll", "--all"])
            if all(w.state.value == "archived" for w in all_windows()):
                break
        ok &= _cli(exportwatch, "coverage")
        notes = receive_notifications(endpoint_url, queue_url, timeout=5)  # the earlier ones have no window
        _heading("check: two workspaces")
        for name, (emu, own_token) in emulators.items():
            windows = ledger.windows(name)
            ok &= _check_ledger(name, windows, since, until)
            ok &= _check_emulator(name, emu, own_token, windows, emu.creates[creates_before[name] :])
        ok &= _check_window_notes(notes, {name: ledger.windows(name) for name in emulators})
        reporting_windows = ledger.windows("eu", conversation)
        ok &= _check_ledger(f"eu {DATASET}", reporting_windows, since, until)
        ok &= _check_api_versions(f"eu {DATASET}", reporting_windows)
        ok &= _check_enqueues("eu", eu, reporting_windows, eu.enqueues[enqueues_before:])
        ok &= _check_reporting_notes(notes, "eu", reporting_windows)
        prefix = os.environ.get("EXPORT_PREFIX", _default_prefix())
        s3 = aws_client("s3", endpoint_url)
        ok &= _check_reporting_keys(s3, stack.bucket, f"{prefix}eu/reporting/{DATASET}/dt=", reporting_windows)
    default[0].set_create_scenario("completed")  # as before this section, for `--keep`'s sandbox
    _say(
        f"a week in each workspace archived, and eu's week of {DATASET} beside it: no gaps, tokens kept apart"
        if ok
        else "the two-workspace run is BAD"
    )
    return ok


def _cli(exportwatch: Callable[[Sequence[str]], int], *argv: str) -> bool:
    """Show and run one command; it must exit 0."""
    _say("$ exportwatch " + " ".join(shlex.quote(a) for a in argv))
    code = exportwatch(list(argv))
    if code:
        _say(f"  BAD: exit code {code}")
    return code == 0


def _cli_trimmed(exportwatch: Callable[[Sequence[str]], int], per_block: int, *argv: str) -> bool:
    """Show and run one command (it must exit 0); of each block (an unindented line and the indented lines under
    it) only the first `per_block` indented lines are shown, the rest counted."""
    import io

    _say("$ exportwatch " + " ".join(shlex.quote(a) for a in argv))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = exportwatch(list(argv))
    hidden = 0
    shown = 0
    for line in [*out.getvalue().splitlines(), ""]:  # "" ends the last block
        if line.startswith(" "):
            shown += 1
            if shown <= per_block:
                _say(line)
            else:
                hidden += 1
            continue
        if hidden:
            _say(f"  ... ({hidden} more)")
        hidden = shown = 0
        if line:
            _say(line)
    if code:
        _say(f"  BAD: exit code {code}")
    return code == 0


def _check_ledger(name: str, windows: list[Any], since: Any, until: Any) -> bool:
    """Every window archived, and together they cover since..until with no gap and no overlap."""
    from exportwatch.windows import DAY

    expected, holes = since, []
    for window in sorted(windows, key=lambda w: w.span.start):
        if window.span.start != expected:
            holes.append(f"{expected} (next window starts {window.span.start})")
        expected = window.span.end + DAY
    if expected != until + DAY:
        holes.append(f"{expected}..{until} (after the last window)")
    not_archived = [f"{w.span.label()} {w.state.value}" for w in windows if w.state.value != "archived"]
    retried = [f"{w.span.label()} (attempts {w.attempts})" for w in windows if w.attempts > 1]
    good = not holes and not not_archived and bool(windows)
    detail = f"{len(windows)} windows {since}..{until}, all archived, no gap"
    if retried:
        detail += f"; retried: {', '.join(retried)}"
    if not good:
        detail = f"gaps: {', '.join(holes) or 'none'}; not archived: {', '.join(not_archived) or 'none'}"
    _say(f"{'ok ' if good else 'BAD'} {name}: ledger: {detail}")
    return good


def _check_emulator(name: str, emulator: Any, own_token: str, windows: list[Any], creates: list[Any]) -> bool:
    """Only its own token reached it, one export at a time, and each create asked for a window's exact range."""
    foreign = emulator.tokens_seen() - {own_token}
    peak = emulator.peak_active_exports
    ranges = {(w.span.first_second, w.span.last_second) for w in windows}
    made = [c for c in creates if c.status_code == 200]
    odd = [c for c in made if (c.created_at_after, c.created_at_before) not in ranges]
    good = not foreign and peak <= 1 and not odd and len(made) == sum(w.attempts for w in windows)
    _say(
        f"{'ok ' if good else 'BAD'} {name}: emulator: {len(foreign)} foreign token(s), at most {peak} export(s) "
        "active at once, "
        f"{len(made)} creates, each one window's first..last second" + (f" ({len(odd)} NOT)" if odd else "")
    )
    return good


def _check_window_notes(notes: list[Any], windows: dict[str, list[Any]]) -> bool:
    """One export.completed per content window, carrying its workspace (body and attribute), its days and
    kind=content (no dataset); the failed first attempt that was retried announced nothing."""
    got: dict[tuple[str, str], list[str]] = {}
    for note in notes:
        body = note.body if isinstance(note.body, dict) else {}
        if body.get("kind") == "reporting":
            continue  # _check_reporting_notes
        content = body.get("kind") == "content" and body.get("dataset") is None and "dataset" not in note.attributes
        if "window_start" in body and body.get("workspace") == note.attributes.get("workspace") and content:
            got.setdefault((str(body["workspace"]), str(body["window_start"])), []).append(str(body.get("event")))
    want = {(name, w.span.start.isoformat()): ["export.completed"] for name, ws in windows.items() for w in ws}
    good = got == want
    _say(
        f"{'ok ' if good else 'BAD'} notifications: {sum(len(v) for v in got.values())} for {len(want)} windows, "
        "one export.completed each with its workspace and window; the retried attempt announced nothing"
    )
    return good


def _check_api_versions(name: str, windows: list[Any]) -> bool:
    """Every archived window records the Intercom-Version of the export that archived it."""
    missing = [w.span.label() for w in windows if not w.api_version]
    versions = sorted({str(w.api_version) for w in windows if w.api_version})
    good = bool(windows) and not missing
    _say(
        f"{'ok ' if good else 'BAD'} {name}: api_version recorded on every window ({', '.join(versions) or 'none'})"
        + (f"; missing on {', '.join(missing)}" if missing else "")
    )
    return good


def _check_enqueues(name: str, emulator: Any, windows: list[Any], enqueues: list[Any]) -> bool:
    """Each enqueue asked for one window's exact range and every attribute of the dataset by qualified id, and
    at most 5 reporting exports were pending at once."""
    from exportwatch_local.emulator import DATASETS

    catalogued = next(d for d in DATASETS if d["id"] == DATASET)
    qualified = sorted(a["qualified_id"] for a in cast(list[Mapping[str, str]], catalogued["attributes"]))
    ranges = {(w.span.first_second, w.span.last_second) for w in windows}
    made = [e for e in enqueues if e.status_code == 200]
    refused = len(enqueues) - len(made)
    odd_range = [e for e in made if (e.start_time, e.end_time) not in ranges]
    odd_attrs = [e for e in made if e.dataset_id != DATASET or sorted(e.attribute_ids or ()) != qualified]
    peak = emulator.peak_pending_reporting
    good = bool(made) and not odd_range and not odd_attrs and peak <= 5
    good &= len(made) == sum(w.attempts for w in windows) and {(e.start_time, e.end_time) for e in made} == ranges
    _say(
        f"{'ok ' if good else 'BAD'} {name}: {len(made)} {DATASET} enqueues ({refused} refused), each one window's "
        f"first..last second"
        + (f" ({len(odd_range)} NOT)" if odd_range else "")
        + f" with all {len(qualified)} attributes by qualified id"
        + (f" ({len(odd_attrs)} NOT)" if odd_attrs else "")
        + f"; at most {peak} reporting export(s) pending at once (limit 5)"
    )
    return good


def _check_reporting_notes(notes: list[Any], name: str, windows: list[Any]) -> bool:
    """One export.completed per reporting window: kind and dataset in the body, dataset as a message attribute."""
    got: dict[str, list[str]] = {}
    for note in notes:
        body = note.body if isinstance(note.body, dict) else {}
        if body.get("kind") != "reporting" or "window_start" not in body:
            continue
        tagged = body.get("workspace") == name == note.attributes.get("workspace") and body.get(
            "dataset"
        ) == DATASET == note.attributes.get("dataset")
        got.setdefault(str(body["window_start"]), []).append(str(body.get("event")) if tagged else "untagged")
    want = {w.span.start.isoformat(): ["export.completed"] for w in windows}
    good = bool(want) and got == want
    _say(
        f"{'ok ' if good else 'BAD'} {name} {DATASET}: notifications: {sum(len(v) for v in got.values())} for "
        f"{len(want)} windows, one export.completed each with kind=reporting, dataset={DATASET} in the body and "
        "the dataset message attribute"
    )
    return good


def _check_reporting_keys(s3: Any, bucket: str, key_prefix: str, windows: list[Any]) -> bool:
    """Each window's copy is under {prefix}{workspace}/reporting/{dataset}/dt=, and is in the bucket."""
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key_prefix).get("Contents", [])}
    uris = [str(w.s3_uri or "") for w in windows]
    odd = [u for u in uris if not u.startswith(f"s3://{bucket}/{key_prefix}")]
    absent = [u for u in uris if u.removeprefix(f"s3://{bucket}/") not in listed]
    good = bool(windows) and not odd and not absent
    _say(
        f"{'ok ' if good else 'BAD'} S3: {len(uris)} {DATASET} copies under s3://{bucket}/{key_prefix}"
        + (f"; elsewhere: {', '.join(odd)}" if odd else "")
        + (f"; not in the bucket: {', '.join(absent)}" if absent else "")
    )
    for uri in sorted(uris)[:2]:
        _say(f"    {uri}")
    return good


def _default_prefix() -> str:
    from exportwatch.config import DEFAULT_EXPORT_PREFIX

    return DEFAULT_EXPORT_PREFIX


def _ledger(table: str) -> Any:
    from exportwatch.ledger import LedgerStore
    from exportwatch.wiring import aws_clients

    return LedgerStore(aws_clients()["dynamodb"], table)


# ------------------------------------------------------------------------------------------------------------
# --keep: the local stack stays up for the CLI in another shell.
# ------------------------------------------------------------------------------------------------------------

SANDBOX_READY = "the local stack is running"  # printed after the export lines (tests wait for it)


def _keep_running(env: Mapping[str, str], intercom: Any) -> None:
    """Print the environment and example commands, then wait for Ctrl-C (or SIGTERM) and return."""
    from exportwatch_local.emulator import SCENARIOS

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Set before the ready line is printed, so a Ctrl-C right after it still stops cleanly. SIGINT explicitly: a
    # shell starts background jobs with it ignored; SIGTERM: `kill` stops the stack as cleanly as Ctrl-C.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _print_sandbox(env, intercom, sorted(SCENARIOS))
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _say()
        _say("stopping moto and the Intercom emulator")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_sandbox(env: Mapping[str, str], intercom: Any, scenarios: list[str]) -> None:
    """What to paste into another shell, then example commands with real emulator job ids."""
    track_me = intercom.add_job("completed")  # pending -> in_progress -> completed over three status checks
    cancel_me = intercom.add_job("completed", steps=["pending", "in_progress"])  # runs until canceled
    today = datetime.now(UTC).date()
    last_week, yesterday = today - timedelta(days=7), today - timedelta(days=1)
    _heading("the local stack stays up: try the CLI from another shell")
    _say("# 1. in another shell, set the environment (dummy AWS credentials: moto accepts any):")
    if sys.prefix != sys.base_prefix:  # in a virtualenv: put its exportwatch on PATH
        _say(f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}")
    for name, value in env.items():
        _say(f"export {name}={shlex.quote(value)}")
    _say("# 2. then try:")
    for command, comment in (
        ("exportwatch list", "the demo's jobs and their states"),
        (f"exportwatch track {track_me}", "an emulator job that completes after three checks"),
        ("exportwatch poll", "one cycle: what the Lambda runs every few minutes"),
        ("exportwatch poll --all", "check every unfinished job now (again: the job moves on)"),
        (f"exportwatch track {cancel_me}", "a job that keeps running until canceled"),
        (f"exportwatch cancel {cancel_me}", "the next poll reports export.canceled"),
        (f"exportwatch start --since {last_week} --until {yesterday}", "create an export and track it"),
        ("exportwatch track -x", "bad input: one line, exit 2"),
    ):
        _say(f"{command:<64} # {comment}")
    _say("# more emulator jobs, one per scenario (then track the id it answers):")
    _say("""#   curl -s -X POST "$INTERCOM_API_URL/_emulator/jobs" -d '{"scenario": "failed"}'""")
    _say(f"#   scenarios: {', '.join(scenarios)}")
    _say(f"{SANDBOX_READY}; Ctrl-C stops it")


def _track_in_the_past(table: str, job_id: str, hours_ago: float) -> None:
    """What `exportwatch track` writes, as if it had run `hours_ago` hours ago (the demo cannot wait 12 hours)."""
    from exportwatch.model import Job, from_epoch, iso
    from exportwatch.store import JobStore
    from exportwatch.wiring import aws_clients

    tracked_at = iso(from_epoch(time.time() - hours_ago * 3600))
    JobStore(aws_clients()["dynamodb"], table).track(Job(job_identifier=job_id, tracked_at=tracked_at, next_check_at=0))


def _jobs(table: str) -> list[Any]:
    from exportwatch.store import JobStore
    from exportwatch.wiring import aws_clients

    return list(JobStore(aws_clients()["dynamodb"], table).scan_all())


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run the demo as `exportwatch demo` (or `make demo`): the CLI hands it the commands it runs")
