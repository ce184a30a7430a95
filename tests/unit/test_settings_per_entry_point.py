"""Settings per entry point: each reads only its own variables, and a shared variable is checked one way.

PollerSettings (alias Settings) is covered variable by variable in test_config.py; here: StoreSettings (`track`,
`list`), OperatorSettings (`start`, `cancel`) and SlackSettings (the Slack notifier), and that a variable they
share with the poller is read, defaulted and worded exactly as the poller reads it.
"""

from __future__ import annotations

import pytest

from exportwatch.config import (
    ConfigError,
    OperatorSettings,
    PollerSettings,
    Settings,
    SlackSettings,
    StoreSettings,
)

POLLER_ENV = {
    "JOBS_TABLE": "exportwatch-jobs",
    "EXPORT_BUCKET": "exportwatch-exports",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:exportwatch-notify",
    "INTERCOM_TOKEN_SECRET": "exportwatch/intercom-token",
}
OPERATOR_ENV = {"JOBS_TABLE": "exportwatch-jobs", "INTERCOM_TOKEN_SECRET": "exportwatch/intercom-token"}


def problems(read: object, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        read.from_env(env)  # type: ignore[attr-defined]
    assert info.value.lines == str(info.value).splitlines()
    return info.value.lines


def test_settings_is_the_poller_settings() -> None:
    assert Settings is PollerSettings
    assert isinstance(Settings.from_env(POLLER_ENV), PollerSettings)


# -- track and list: the table alone ----------------------------------------------------------------------


def test_store_settings_need_only_the_table() -> None:
    assert StoreSettings.from_env({"JOBS_TABLE": " exportwatch-jobs\n"}) == StoreSettings("exportwatch-jobs")


def test_store_settings_ignore_every_other_variable() -> None:
    """A bad bucket, topic or API URL is the poller's business: `track` and `list` never read them."""
    env = {"JOBS_TABLE": "t-1", "EXPORT_BUCKET": "X", "NOTIFY_TOPIC_ARN": "nope", "INTERCOM_API_URL": "ftp://x"}
    assert StoreSettings.from_env(env).jobs_table == "t-1"


def test_store_settings_name_only_the_table_when_nothing_is_set() -> None:
    assert problems(StoreSettings, {}) == ["JOBS_TABLE: is not set"]


def test_store_settings_read_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_TABLE", "from-the-environment")
    assert StoreSettings.from_env().jobs_table == "from-the-environment"


# -- start and cancel: the table and Intercom -------------------------------------------------------------


def test_operator_settings_defaults_are_the_pollers() -> None:
    operator, poller = OperatorSettings.from_env(OPERATOR_ENV), PollerSettings.from_env(POLLER_ENV)
    for name in ("jobs_table", "intercom_token_secret", "intercom_api_url", "intercom_version", "http_timeout_seconds"):
        assert getattr(operator, name) == getattr(poller, name), name


def test_operator_settings_report_every_problem_at_once_in_reading_order() -> None:
    env = {"INTERCOM_API_URL": "http://api.intercom.io", "INTERCOM_VERSION": "v2", "HTTP_TIMEOUT_SECONDS": "0"}
    assert [line.split(":", 1)[0] for line in problems(OperatorSettings, env)] == [
        "JOBS_TABLE",
        "INTERCOM_TOKEN_SECRET",
        "INTERCOM_API_URL",
        "INTERCOM_VERSION",
        "HTTP_TIMEOUT_SECONDS",
    ]


def test_operator_settings_do_not_read_the_bucket_or_the_topic() -> None:
    assert OperatorSettings.from_env({**OPERATOR_ENV, "EXPORT_BUCKET": "X", "NOTIFY_TOPIC_ARN": "x"})


def test_intercom_pool_size() -> None:
    """One connection per poller worker; one for a command that makes one request at a time."""
    assert PollerSettings.from_env({**POLLER_ENV, "POLL_CONCURRENCY": "7"}).intercom_pool_size == 7
    assert OperatorSettings.from_env(OPERATOR_ENV).intercom_pool_size == 1


SHARED_PROBLEMS = [
    ("JOBS_TABLE", "ab"),
    ("JOBS_TABLE", "has space"),
    ("JOBS_TABLE", "x" * 300),  # long: not echoed, it may be a secret pasted into the wrong variable
    ("INTERCOM_TOKEN_SECRET", "  "),
    ("INTERCOM_API_URL", "http://api.intercom.io"),
    ("INTERCOM_API_URL", "https://api.intercom.io/v2"),
    ("INTERCOM_API_URL", "https://[abc"),
    ("INTERCOM_VERSION", "v2"),
    ("HTTP_TIMEOUT_SECONDS", "soon"),
    ("HTTP_TIMEOUT_SECONDS", "901"),
]


@pytest.mark.parametrize(("variable", "value"), SHARED_PROBLEMS)
def test_a_shared_variable_gets_the_same_problem_text_everywhere(variable: str, value: str) -> None:
    poller = problems(PollerSettings, {**POLLER_ENV, variable: value})
    operator = problems(OperatorSettings, {**OPERATOR_ENV, variable: value})
    assert poller == operator and len(poller) == 1 and poller[0].startswith(f"{variable}: ")
    if variable == "JOBS_TABLE":
        assert problems(StoreSettings, {variable: value}) == poller


# -- the Slack notifier -----------------------------------------------------------------------------------


def test_slack_settings_read_the_secret_id_only() -> None:
    env = {"SLACK_WEBHOOK_SECRET": " exportwatch/slack-webhook ", "JOBS_TABLE": "ab"}  # a bad table is not its business
    assert SlackSettings.from_env(env) == SlackSettings("exportwatch/slack-webhook")


@pytest.mark.parametrize("value", [None, "", "  \t"], ids=["unset", "empty", "blank"])
def test_slack_settings_missing_secret_keeps_its_text(value: str | None) -> None:
    env = {} if value is None else {"SLACK_WEBHOOK_SECRET": value}
    assert problems(SlackSettings, env) == [
        "SLACK_WEBHOOK_SECRET: not set (the Secrets Manager id of the Slack webhook URL)"
    ]
