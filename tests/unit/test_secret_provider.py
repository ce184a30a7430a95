"""wiring.secret_provider: the one secret provider behind the Intercom token and the Slack webhook URL.

A fake Secrets Manager client (no sockets in this tier) stands in for boto3's: Powertools' SecretsProvider calls
its get_secret_value, and turns what it raises into GetParameterError, as it does with botocore's errors.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from exportwatch.config import ConfigError
from exportwatch.redaction import uninstall_log_redaction
from exportwatch.wiring import SECRET_CACHE_SECONDS, secret_provider, token_provider, webhook_url_provider

NOT_FOUND = (
    "An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: "
    "Secrets Manager can't find the specified secret."
)


@dataclass
class FakeSecrets:
    """get_secret_value as boto3's client answers it: a SecretString, a SecretBinary, neither, or an error."""

    answer: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    calls: list[str] = field(default_factory=list)
    meta: Any = field(default_factory=lambda: SimpleNamespace(region_name="eu-west-1"))

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs["SecretId"])
        if self.error is not None:
            raise RuntimeError(self.error)
        return self.answer


@pytest.fixture(autouse=True)
def _redaction_stays_in_this_test() -> Iterator[None]:
    yield
    uninstall_log_redaction()


def error_of(get: Any) -> str:
    with pytest.raises(ConfigError) as info:
        get()
    return str(info.value)


# -- the generic provider ---------------------------------------------------------------------------------


def test_the_value_is_parsed_fetched_once_and_cached() -> None:
    client = FakeSecrets({"SecretString": "  value-one  "})
    get = secret_provider("SOME_SECRET", "app/some", client, parse=str.strip)
    assert [get(), get(), get()] == ["value-one"] * 3
    assert client.calls == ["app/some"]
    assert SECRET_CACHE_SECONDS == 300


def test_max_age_zero_fetches_every_time() -> None:
    client = FakeSecrets({"SecretString": "v"})
    get = secret_provider("SOME_SECRET", "app/some", client, parse=str, max_age=0)
    get(), get()
    assert client.calls == ["app/some", "app/some"]


def test_one_fetch_when_many_threads_ask_at_once() -> None:
    client = FakeSecrets({"SecretString": "v"})
    get = secret_provider("SOME_SECRET", "app/some", client, parse=str)
    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.calls == ["app/some"]


def test_a_binary_secret_reaches_parse_as_bytes() -> None:
    seen: list[object] = []

    def parse(value: str | bytes) -> str:
        seen.append(value)
        return "parsed"

    assert secret_provider("V", "s", FakeSecrets({"SecretBinary": b"raw"}), parse=parse)() == "parsed"
    assert seen == [b"raw"]


def test_a_secret_without_a_value() -> None:
    get = secret_provider("SOME_SECRET", "s", FakeSecrets({"SecretBinary": None}), parse=str)
    assert error_of(get) == "SOME_SECRET: the secret has no string value"


def test_what_redact_names_is_rewritten_in_botocore_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    value = "https://hooks.example/hook/T0/B0/abcdefghijkl"
    get = secret_provider(
        "V", "s", FakeSecrets({"SecretString": value}), parse=str, redact=lambda v: (v, "B0/abcdefgh")
    )
    get()
    caplog.set_level(logging.DEBUG, logger="botocore.endpoint")
    logging.getLogger("botocore.endpoint").debug("request to %s", value)
    logging.getLogger("botocore.endpoint").debug("path B0/abcdefgh seen")
    assert [r.getMessage() for r in caplog.records] == ["request to <redacted>", "path <redacted> seen"]


def test_parse_errors_pass_through() -> None:
    def parse(value: str | bytes) -> str:
        raise ConfigError("SOME_SECRET", "the secret's value is odd")

    get = secret_provider("SOME_SECRET", "s", FakeSecrets({"SecretString": "x"}), parse=parse)
    assert error_of(get) == "SOME_SECRET: the secret's value is odd"


# -- errors: the token's and the webhook's texts ------------------------------------------------------------


def test_the_token_names_neither_the_secret_nor_its_value_when_it_is_missing() -> None:
    client = FakeSecrets(error=NOT_FOUND)
    text = error_of(token_provider("pasted-token-by-mistake", client))
    assert text == (
        "INTERCOM_TOKEN_SECRET: the secret it names does not exist in eu-west-1 (ResourceNotFoundException); "
        "check the name and the region"
    )


def test_the_token_error_for_another_failure_is_botocores_first_line() -> None:
    client = FakeSecrets(error="An error occurred (AccessDeniedException): not allowed\nsecond line")
    text = error_of(token_provider("exportwatch/token", client))
    assert text.startswith("INTERCOM_TOKEN_SECRET: cannot read the secret it names: ")
    assert "AccessDeniedException" in text and "second line" not in text and "exportwatch/token" not in text


def test_the_token_value_is_parsed_as_before() -> None:
    client = FakeSecrets({"SecretString": json.dumps({"token": " tok-123 "})})
    assert token_provider("exportwatch/token", client)() == "tok-123"
    assert error_of(token_provider("t", FakeSecrets({"SecretString": "  "}))) == (
        "INTERCOM_TOKEN_SECRET: the secret's value is empty"
    )


@pytest.mark.parametrize(
    "secret_id", ["exportwatch/no-such-secret", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf"]
)
def test_the_webhook_error_names_a_secret_id(secret_id: str) -> None:
    text = error_of(webhook_url_provider(secret_id, FakeSecrets(error=NOT_FOUND)))
    assert text.startswith(f"SLACK_WEBHOOK_SECRET: cannot read secret {secret_id!r}: ")
    assert "ResourceNotFoundException" in text


@pytest.mark.parametrize(
    "pasted",
    [
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "{'url': 'https://hooks.slack.com/services/T0/B0/XXXXXXXXXXXX'}",
    ],
)
def test_a_webhook_url_pasted_into_the_variable_is_never_echoed(pasted: str) -> None:
    text = error_of(webhook_url_provider(pasted, FakeSecrets(error=NOT_FOUND)))
    assert text.startswith("SLACK_WEBHOOK_SECRET: the secret it names does not exist in eu-west-1")
    assert "XXXX" not in text and "hooks.slack.com" not in text


def test_the_webhook_value_is_parsed_and_its_path_redacted(caplog: pytest.LogCaptureFixture) -> None:
    url = "https://hooks.slack.com/services/T0/B0/SECRETSECRET"
    get = webhook_url_provider("exportwatch/slack", FakeSecrets({"SecretString": json.dumps({"url": url})}))
    assert get() == url
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug('"POST %s HTTP/1.1" 200 2', "/services/T0/B0/SECRETSECRET")
    assert "SECRETSECRET" not in caplog.text
