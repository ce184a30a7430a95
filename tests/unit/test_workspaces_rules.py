"""A workspace's rules (exportwatch.workspaces): its name, its API URL (Intercom's three hosts, or loopback for local
runs), its token secret's id (never the token itself) and its window size. Each refusal is InvalidWorkspace, whose
text says which rule was broken; the same rules are applied again to every record read back from the table."""

from __future__ import annotations

from datetime import date

import pytest

from exportwatch.workspaces import (
    DEFAULT_WORKSPACE,
    INTERCOM_HOSTS,
    MAX_WINDOW_DAYS,
    InvalidWorkspace,
    Workspace,
    validate_api_url,
    validate_name,
    validate_secret_id,
    validate_window_days,
)

# -- names -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "0", "eu", "acme-us-2", "9lives", "a-", "a--b", "a" * 63, "a" + "-" * 62])
def test_a_good_name_is_kept_as_it_is(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "-a",  # must start with a letter or digit
        "a" * 64,  # 64 characters
        "Eu",
        "EU",
        "a_b",
        "a.b",
        "a b",
        " a",
        "a ",
        "a\n",
        "a/b",
        "a#b",  # '#' separates the ledger's keys
        "\u00e9u",  # non-ASCII letter
        "\uff41",  # fullwidth 'a'
        "\u0661",  # Arabic-Indic digit one
    ],
)
def test_a_bad_name_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidWorkspace, match="lowercase letters, digits and '-'"):
        validate_name(name)


@pytest.mark.parametrize("value", [None, 5, b"eu", ["eu"]])
def test_a_name_that_is_not_text_is_refused_by_type(value: object) -> None:
    with pytest.raises(InvalidWorkspace, match=type(value).__name__):
        validate_name(value)


def test_a_long_bad_name_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidWorkspace) as caught:
        validate_name("X" * 500)
    assert "X" * 100 not in str(caught.value) and "500-character value" in str(caught.value)


def test_default_is_a_valid_name() -> None:
    assert validate_name(DEFAULT_WORKSPACE) == "default"  # the CLI refuses to add it; the rule does not


# -- API URLs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", INTERCOM_HOSTS)
@pytest.mark.parametrize("tail", ["", "/", ":443", ":443/"])
def test_intercoms_three_hosts_are_accepted_as_a_bare_origin(host: str, tail: str) -> None:
    assert validate_api_url(f"https://{host}{tail}") == f"https://{host}"


def test_the_three_hosts_are_us_eu_and_au() -> None:
    assert INTERCOM_HOSTS == ("api.intercom.io", "api.eu.intercom.io", "api.au.intercom.io")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:8443/", "http://[::1]:8443"),
        ("https://localhost", "https://localhost"),
        ("http://127.0.0.2:1", "http://127.0.0.2:1"),  # 127.0.0.0/8
        (" https://api.eu.intercom.io ", "https://api.eu.intercom.io"),  # surrounding spaces are trimmed
    ],
)
def test_a_loopback_url_is_allowed_for_local_runs(url: str, origin: str) -> None:
    assert validate_api_url(url) == origin


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "https://api.intercom.io.example.com",
        "https://intercom.io",
        "https://api.intercom.io.",  # a trailing dot is another name
        "https://api.eu.intercom.io:8443",  # another port
        "https://api.intercom.io:80",
        "https://10.0.0.1",
        "http://169.254.169.254",  # the metadata service
        "http://0.0.0.0:8080",
    ],
)
def test_a_host_that_is_not_intercoms_is_refused_and_the_hosts_are_named(url: str) -> None:
    with pytest.raises(InvalidWorkspace) as caught:
        validate_api_url(url)
    text = str(caught.value)
    assert "is not an Intercom API host" in text and all(host in text for host in INTERCOM_HOSTS)


@pytest.mark.parametrize("host", INTERCOM_HOSTS)
def test_plain_http_to_intercom_is_refused(host: str) -> None:
    with pytest.raises(InvalidWorkspace, match="not an Intercom API host"):
        validate_api_url(f"http://{host}")


@pytest.mark.parametrize(
    "url",
    [
        "https://user@api.intercom.io",
        "https://user:pass@api.intercom.io",
        "https://:pass@api.intercom.io",
        "https://api.intercom.io/v2",
        "https://evil.example/api.intercom.io",
        "https://api.intercom.io//",
        "https://api.intercom.io/export/content/data",
        "https://api.intercom.io?token=x",
        "https://api.intercom.io/?x=1",
        "https://api.intercom.io#frag",
        "http://user@127.0.0.1:8080",  # loopback follows the same shape rules
        "http://127.0.0.1:8080/api",
    ],
)
def test_userinfo_paths_queries_and_fragments_are_refused(url: str) -> None:
    with pytest.raises(InvalidWorkspace, match="bare origin"):
        validate_api_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.intercom.io\\@evil.example",  # backslash: browsers and urllib disagree about the host
        "https://api.intercom.io\\",
        "http://127.0.0.1:8080\\x",
        "https://\u0430pi.intercom.io",  # a Cyrillic 'a'
        "https://api.intercom.io/\u00e9",
        "https://api.\u00efntercom.io",
        "ftp://api.intercom.io",
        "file:///etc/passwd",
        "api.intercom.io",
        "//api.intercom.io",
        "https://",
        "https://:443",
        "https://api.intercom.io:99999",  # port out of range
        "https://api.intercom.io:abc",
        "https://[::1",  # unbalanced bracket
        "",
        "   ",
    ],
)
def test_what_is_not_an_ascii_http_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidWorkspace, match="--api-url"):
        validate_api_url(url)


@pytest.mark.parametrize("value", [None, 443, b"https://api.intercom.io"])
def test_an_api_url_that_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidWorkspace, match="must be a URL"):
        validate_api_url(value)


def test_the_accepted_origin_is_always_lowercase_https_for_intercom() -> None:
    assert validate_api_url("HTTPS://API.EU.INTERCOM.IO/") == "https://api.eu.intercom.io"


# -- token secrets -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "exportwatch/intercom-token",
        "exportwatch/eu-token",
        "prod/intercom_eu+au=1.0@team",
        "a",
        "a" * 512,
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:exportwatch/eu-AbCdEf",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-1a2b3c",
        "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x",
    ],
)
def test_a_secret_name_or_arn_is_accepted(secret: str) -> None:
    assert validate_secret_id(secret) == secret
    assert validate_secret_id(f"  {secret}\n") == secret  # surrounding whitespace is trimmed


@pytest.mark.parametrize(
    "secret",
    [
        "Bearer dG9rZW46MTIzNDU2Nzg5MA==",  # a pasted Authorization header
        "dG9rZW46 MTIzNDU2Nzg5MA==",
        "my intercom token",
        "token\twith\ttabs",
        "a\nb",
        "",
        "   ",
        "a" * 513,
        "exportwatch:token",  # ':' only inside an ARN
        "arn:aws:secretsmanager:eu-west-1:12345:secret:x",  # account id is 12 digits
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:",  # no name
        "arn:aws:s3:::bucket",
        "exportwatch/t\u00f6ken",
        "exportwatch/token;rm -rf",
        "${TOKEN}",
    ],
)
def test_a_token_looking_value_or_a_bad_id_is_refused_and_the_value_not_echoed(secret: str) -> None:
    with pytest.raises(InvalidWorkspace) as caught:
        validate_secret_id(secret)
    text = str(caught.value)
    assert "never the token itself" in text
    assert secret.strip() == "" or secret not in text  # a pasted token must not reach the terminal or a log


@pytest.mark.parametrize("value", [None, 1, b"exportwatch/token"])
def test_a_secret_id_that_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidWorkspace, match="--token-secret"):
        validate_secret_id(value)


# -- window days and the record -----------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [1, 2, 7, MAX_WINDOW_DAYS])
def test_window_days_from_one_to_the_maximum(days: int) -> None:
    assert validate_window_days(days) == days


@pytest.mark.parametrize("days", [0, -1, MAX_WINDOW_DAYS + 1, 365, True, False, 1.0, 3.5, "3", None])
def test_other_window_days_are_refused(days: object) -> None:
    with pytest.raises(InvalidWorkspace, match=f"from 1 to {MAX_WINDOW_DAYS}"):
        validate_window_days(days)


def test_the_maximum_window_is_a_month() -> None:
    assert MAX_WINDOW_DAYS == 31


def test_a_daily_workspace_needs_its_first_day() -> None:
    with pytest.raises(InvalidWorkspace, match="--daily and --daily-dataset need --start"):
        Workspace("eu", "https://api.eu.intercom.io", "exportwatch/eu", daily=True)


def test_a_workspace_lists_its_secrets_id_and_its_defaults() -> None:
    plain = Workspace("eu", "https://api.eu.intercom.io", "exportwatch/eu")
    assert plain.to_dict() == {
        "name": "eu",
        "api_url": "https://api.eu.intercom.io",
        "token_secret": "exportwatch/eu",
        "daily": False,
        "start": None,
        "window_days": 1,
        "app_id": None,
        "client_id": None,
        "daily_datasets": [],
    }
    daily = Workspace("au", "https://api.au.intercom.io", "exportwatch/au", daily=True, start=date(2027, 1, 1))
    assert daily.to_dict()["start"] == "2027-01-01" and daily.to_dict()["daily"] is True


def test_daily_datasets_need_a_first_day_and_the_reporting_ids() -> None:
    with pytest.raises(InvalidWorkspace, match="need --start"):
        Workspace("eu", "https://api.eu.intercom.io", "exportwatch/eu", daily_datasets=("conversation",))
    with pytest.raises(InvalidWorkspace, match="--app-id and --client-id"):
        Workspace(
            "eu", "https://api.eu.intercom.io", "exportwatch/eu", start=date(2027, 1, 1), daily_datasets=("ticket",)
        )
