"""Each entry point built from its own settings: `track` and `list` with JOBS_TABLE alone, and the Slack
notifier's webhook built through wiring (the secrets client from aws_clients, so the AWS_REGION rule applies)
against moto's Secrets Manager and the local Slack receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exportwatch.config import ConfigError, SlackSettings
from exportwatch.events import parse_sns_event
from exportwatch.slack import handle_sns_event, uninstall_log_redaction
from exportwatch.wiring import build_slack_webhook
from exportwatch_local.localstack import DUMMY_CREDENTIALS, LocalStack
from exportwatch_local.slack_receiver import SlackReceiver
from support.aws import store_webhook_secret
from support.lambda_handler import event as saved_event
from support.paths import REPO_ROOT


@pytest.fixture(autouse=True)
def _redaction_stays_in_this_test() -> Any:
    yield
    uninstall_log_redaction()


# -- track and list: JOBS_TABLE and the AWS environment, nothing else --------------------------------------


def table_only_env(stack: LocalStack, tmp_path: Path, **extra: str) -> dict[str, str]:
    """JOBS_TABLE, the AWS endpoint, region and credentials: no bucket, topic, token secret or API URL."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "JOBS_TABLE": stack.table_name,
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "AWS_REGION": stack.region,  # AWS_REGION alone: the rule aws_region() applies for every client
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        **DUMMY_CREDENTIALS,
        **extra,
    }
    for name in ("EXPORT_BUCKET", "NOTIFY_TOPIC_ARN", "INTERCOM_TOKEN_SECRET", "INTERCOM_API_URL"):
        assert name not in env
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exportwatch", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_track_and_list_work_with_only_the_table_set(stack: LocalStack, tmp_path: Path) -> None:
    env = table_only_env(stack, tmp_path)

    tracked = run_cli(env, "track", "orzzsbd7hk67xyu")
    assert (tracked.returncode, tracked.stderr) == (0, ""), tracked
    assert tracked.stdout == "tracking orzzsbd7hk67xyu: the next poll checks it\n"

    listed = run_cli(env, "list")
    assert (listed.returncode, listed.stderr) == (0, ""), listed
    assert listed.stdout.splitlines()[1].split()[:3] == ["orzzsbd7hk67xyu", "watching", "-"]

    as_json = run_cli(env, "list", "--json")
    assert as_json.returncode == 0, as_json
    assert [json.loads(line)["job_identifier"] for line in as_json.stdout.splitlines()] == ["orzzsbd7hk67xyu"]


def test_a_bad_bucket_or_topic_does_not_stop_track_or_list(stack: LocalStack, tmp_path: Path) -> None:
    """Not read, so not checked: a variable only the poller uses is the poller's to report."""
    env = table_only_env(stack, tmp_path)
    env.update(EXPORT_BUCKET="NOT A BUCKET", NOTIFY_TOPIC_ARN="not-an-arn", INTERCOM_API_URL="ftp://x")
    assert run_cli(env, "track", "abc123").returncode == 0
    assert run_cli(env, "list").returncode == 0


def test_without_the_table_track_names_the_table_alone(stack: LocalStack, tmp_path: Path) -> None:
    env = table_only_env(stack, tmp_path)
    del env["JOBS_TABLE"]
    result = run_cli(env, "track", "abc123")
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == ["exportwatch: error: JOBS_TABLE: is not set"]


def test_without_a_region_the_table_and_the_region_are_named_together(stack: LocalStack, tmp_path: Path) -> None:
    env = table_only_env(stack, tmp_path)
    del env["JOBS_TABLE"], env["AWS_REGION"]
    result = run_cli(env, "list")
    assert result.returncode == 2, result
    named = [line.removeprefix("exportwatch: error: ").split(":", 1)[0] for line in result.stderr.splitlines()]
    assert named == ["JOBS_TABLE", "AWS_DEFAULT_REGION"]


# -- the Slack notifier's webhook, built through wiring -----------------------------------------------------


@pytest.fixture
def slack_env(stack: LocalStack, slack_receiver: SlackReceiver, monkeypatch: pytest.MonkeyPatch) -> str:
    """A webhook on the local receiver, its URL in moto's Secrets Manager; AWS_REGION is the only region set."""
    url = slack_receiver.new_webhook()
    name = store_webhook_secret(stack, url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", stack.region)
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET", name)
    return url


def test_the_webhook_is_built_from_slack_settings_through_wiring(
    slack_env: str, slack_receiver: SlackReceiver, stack: LocalStack
) -> None:
    webhook = build_slack_webhook(SlackSettings.from_env())
    event = saved_event("sns_failed.json")

    posted = handle_sns_event(parse_sns_event(event), webhook)

    assert [p.kind for p in posted] == ["exportwatch"]
    assert len(slack_receiver.payloads) == 1
    assert webhook._url() == slack_env  # the URL from the secret, read through the one secret provider


def test_the_secrets_client_comes_from_aws_clients(
    slack_env: str, slack_receiver: SlackReceiver, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_REGION alone is enough (botocore by itself reads only AWS_DEFAULT_REGION) and the read timeout is the
    Slack function's, not the poller's."""
    from exportwatch import wiring

    made: list[dict[str, Any]] = []
    real = wiring.aws_clients

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any]:
        clients = real(*args, **kwargs)
        made.append(clients)
        return clients

    monkeypatch.setattr(wiring, "aws_clients", recording)
    build_slack_webhook(SlackSettings.from_env()).post({"text": "hello"})
    (clients,) = made
    assert list(clients) == ["secretsmanager"]  # the Slack function makes no DynamoDB, S3 or SNS client
    assert clients["secretsmanager"].meta.region_name == stack.region
    assert clients["secretsmanager"].meta.config.read_timeout == wiring.SLACK_SECRETS_READ_TIMEOUT
    assert slack_receiver.payloads == [{"text": "hello"}]


def test_no_region_at_all_is_a_config_error_naming_both_variables(
    slack_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError) as info:
        build_slack_webhook(SlackSettings.from_env())
    assert str(info.value).startswith("AWS_DEFAULT_REGION: is not set, nor AWS_REGION")


def test_a_missing_secret_is_named_but_a_pasted_url_never_is(slack_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_SECRET", "exportwatch/no-such-secret")
    with pytest.raises(ConfigError, match="cannot read secret 'exportwatch/no-such-secret'"):
        build_slack_webhook(SlackSettings.from_env())._url()

    monkeypatch.setenv("SLACK_WEBHOOK_SECRET", slack_env)  # the URL itself, pasted where its secret's id belongs
    with pytest.raises(ConfigError) as info:
        build_slack_webhook(SlackSettings.from_env())._url()
    assert str(info.value).startswith("SLACK_WEBHOOK_SECRET: ")
    secret_part = slack_env.rsplit("/", 1)[1]
    assert secret_part not in str(info.value) and "/services/" not in str(info.value)
