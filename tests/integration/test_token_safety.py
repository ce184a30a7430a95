"""The Intercom token (random per test) never leaks: not to logs, output, errors, notifications, S3 or the table,
and never to another origin, whatever `download_url` or a redirect says."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from exportwatch.config import ConfigError
from exportwatch.poll import CycleSummary, Poller, run_cycle
from exportwatch.wiring import build_poller
from exportwatch_local import cli
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, aws_client, receive_notifications
from support.foreign import ForeignServer
from support.readback import archive_key
from support.tracking import track

# A second origin that records what reaches it: the `foreign` fixture (support.foreign, see conftest.py).

# -- capturing everything --------------------------------------------------------------------------------------


@pytest.fixture
def debug_everything(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog at DEBUG for every logger, including ones others quietened, silenced or detached from the root."""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            monkeypatch.setattr(logger, "propagate", True)
            monkeypatch.setattr(logger, "disabled", False)
    return caplog


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record, with its raw args: botocore's DEBUG dump of GetSecretValue included."""
    fmt = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [fmt.format(r) + repr(r.args) + str(r.__dict__) for r in caplog.records]


def table_texts(stack: LocalStack) -> list[str]:
    ddb = aws_client("dynamodb", stack.endpoint_url)
    items = ddb.scan(TableName=stack.table_name, ConsistentRead=True)["Items"]
    return [json.dumps(i) for i in items]


def s3_texts(stack: LocalStack) -> list[str]:
    s3 = aws_client("s3", stack.endpoint_url)
    texts = []
    for obj in s3.list_objects_v2(Bucket=stack.bucket).get("Contents", []):
        head = s3.head_object(Bucket=stack.bucket, Key=obj["Key"])
        texts.append(json.dumps({"key": obj["Key"], "meta": head["Metadata"], "type": head["ContentType"]}))
    return texts


def notification_texts(stack: LocalStack, queue_url: str, expect: int) -> list[str]:
    notes = receive_notifications(stack.endpoint_url, queue_url, expect=expect, timeout=10)
    notes += receive_notifications(stack.endpoint_url, queue_url, timeout=0.9)
    assert len(notes) == expect
    return [json.dumps(n.envelope) + n.message + str(n.subject) + json.dumps(n.attributes) for n in notes]


def assert_absent(secret: str, texts: list[str], where: str) -> None:
    leaks = [t for t in texts if secret in t]
    assert not leaks, f"token found in {where}: {leaks[0][:300]}"


# -- the tests -------------------------------------------------------------------------------------------------

SCENARIOS: dict[str, dict[str, Any]] = {
    "completed": {"steps": ["completed"]},
    "complete_legacy": {"steps": ["complete"]},
    "failed": {"steps": ["failed"]},
    "html_504": {"html_504_count": 1},
    "server_errors": {"error_count": 3},
    "not_found": {},
    "no_data": {"steps": ["no_data"]},
    "canceled": {"steps": ["canceled"]},
    "expired": {},
    "download_gone": {},
    "rate_limited": {"reset_in": 1.0},
    "truncated": {"flaky_downloads": 1},
    "reset": {"reset_downloads": 1},
    "malformed": {},
    "wrong_types": {},
    "unknown_status": {},
}
FINAL_AFTER_TWO_CYCLES = len(SCENARIOS) - 3  # all but malformed, wrong_types and unknown_status


def test_token_appears_nowhere(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    token: str,
    foreign: ForeignServer,
    debug_everything: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ids = [emulator.add_job(scenario, **options) for scenario, options in SCENARIOS.items()]
    ids.append(emulator.add_job("foreign_url", download_origin=foreign.base_url))
    ids.append(emulator.add_job("redirect_foreign", redirect_to=foreign.base_url))
    track(poller, *ids)

    summaries: list[CycleSummary] = [run_cycle(poller, all_jobs=True) for _ in range(2)]
    print(json.dumps([s.to_dict() for s in summaries]))  # what `exportwatch poll --json` would show
    errors: list[str] = [r.detail for s in summaries for r in s.results] + [str(s.stopped) for s in summaries]
    # A secret that cannot be read: the error names the variable.
    aws_client("secretsmanager", stack.endpoint_url).delete_secret(
        SecretId=stack.secret_id, ForceDeleteWithoutRecovery=True
    )
    with pytest.raises(ConfigError) as missing:
        run_cycle(build_poller(poller.settings), all_jobs=True)  # malformed jobs are still due
    errors.append(str(missing.value))
    assert "INTERCOM_TOKEN_SECRET" in str(missing.value)

    # The run really exercised the token: every emulator call carried it, and outcomes were reached.
    assert all(r.headers.get("Authorization") == f"Bearer {token}" for r in emulator.requests)
    done = sum(1 for s in summaries for r in s.results if r.event)
    assert done == FINAL_AFTER_TWO_CYCLES + 2
    assert sum(1 for r in debug_everything.records if r.levelno == logging.DEBUG) > 0

    out, err = capfd.readouterr()
    assert out.strip(), "the summary was printed"
    assert_absent(token, [out, err], "stdout/stderr")
    assert_absent(token, log_texts(debug_everything), "a log record")
    assert_absent(token, errors, "an error text")
    assert_absent(token, notification_texts(stack, subscriber, expect=done), "a notification")
    assert_absent(token, s3_texts(stack), "S3 object metadata")
    assert_absent(token, table_texts(stack), "the job table")
    assert_absent(token, [json.dumps([vars(s) for s in foreign.seen])], "the foreign server's requests")


def test_secret_fetch_is_not_logged_at_debug(
    poller: Poller,
    emulator: IntercomEmulator,
    token: str,
    debug_everything: pytest.LogCaptureFixture,
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"])
    track(poller, job_id)
    assert run_cycle(poller).events == {"export.completed": 1}
    assert_absent(token, log_texts(debug_everything), "a log record")


def test_foreign_download_url_is_never_contacted(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    token: str,
    foreign: ForeignServer,
) -> None:
    job_id = emulator.add_job("foreign_url", download_origin=foreign.base_url)
    track(poller, job_id)

    summary = run_cycle(poller)

    assert foreign.seen == []
    [result] = summary.results
    assert (result.state, result.event) == ("failed", "export.failed")
    job = poller.store.get(job_id)
    assert job is not None and job.outcome_reason is not None
    assert foreign.base_url in job.outcome_reason  # names the foreign origin
    assert emulator.base_url in job.outcome_reason and "refusing to send the token" in job.outcome_reason
    [note] = receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)
    assert note.body["event"] == "export.failed" and note.body["reason"] == job.outcome_reason
    assert [r.path for r in emulator.requests_for(job_id)] == [f"/export/content/data/{job_id}"]
    assert s3_texts(stack) == []
    assert token not in note.message


def test_redirect_to_another_origin_drops_credentials(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    token: str,
    foreign: ForeignServer,
) -> None:
    job_id = emulator.add_job("redirect_foreign", redirect_to=foreign.base_url)
    track(poller, job_id)

    summary = run_cycle(poller)

    # Like a presigned URL: followed, but without Intercom's credentials or headers.
    assert [(s.method, s.path) for s in foreign.seen] == [("GET", f"/download/content/data/{job_id}")]
    headers = {k.lower(): v for k, v in foreign.seen[0].headers.items()}
    assert "authorization" not in headers and "intercom-version" not in headers
    assert headers["accept"] == "application/octet-stream"
    assert all(token not in v for v in headers.values())
    # The emulator (the API's own origin) got the token and version on every call, the download included.
    own = emulator.requests_for(job_id)
    assert [r.path.split("/")[1] for r in own] == ["export", "download"]
    assert all(r.headers.get("Authorization") == f"Bearer {token}" and r.headers.get("Intercom-Version") for r in own)
    assert summary.events == {"export.completed": 1}
    s3 = aws_client("s3", stack.endpoint_url)
    assert s3.get_object(Bucket=stack.bucket, Key=archive_key(stack, job_id, "zip"))["Body"].read() == foreign.body
    [note] = receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)
    assert note.body["event"] == "export.completed"


@pytest.fixture
def restore_cli_logging() -> Iterator[None]:
    """cli.main() quietens library loggers process-wide; put them back for the tests that follow."""
    names = ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug")
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def wrong_token(stack: LocalStack) -> str:
    """Put a revoked token in the secret (in setup: this test's own AWS call is not what is under test)."""
    wrong = f"revoked-token-{secrets.token_hex(12)}"
    aws_client("secretsmanager", stack.endpoint_url).put_secret_value(SecretId=stack.secret_id, SecretString=wrong)
    return wrong


def test_wrong_token_is_reported_by_variable_never_by_value(
    wrong_token: str,
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    token: str,
    debug_everything: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    restore_cli_logging: None,
) -> None:
    wrong = wrong_token
    job_ids = [emulator.add_job("completed", steps=["completed"]) for _ in range(3)]
    track(poller, *job_ids)

    summary = run_cycle(poller)

    assert summary.stopped is not None and "401" in summary.stopped
    assert summary.events == {}
    assert {r.action for r in summary.results} == {"retry"}
    assert emulator.requests and all(r.headers["Authorization"] == f"Bearer {wrong}" for r in emulator.requests)
    for job_id in job_ids:
        job = poller.store.get(job_id)
        if job is not None and job.last_error:
            assert "INTERCOM_TOKEN_SECRET" in job.last_error and "401" in job.last_error
    assert any("INTERCOM_TOKEN_SECRET" in r.detail for r in summary.results)

    code = cli.main(["poll", "--all"])  # what an operator sees
    assert code == cli.EXIT_FAILED
    out, err = capfd.readouterr()
    assert "INTERCOM_TOKEN_SECRET" in out

    texts = [out, err, summary.stopped, *[r.detail for r in summary.results]]
    texts += log_texts(debug_everything) + table_texts(stack)
    for secret in (token, wrong):
        assert_absent(secret, texts, "the 401 report")
    assert receive_notifications(stack.endpoint_url, subscriber, timeout=0.9) == []
