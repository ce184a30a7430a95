"""Settings.from_env: defaults, every variable's validation, and the one-line ConfigError naming the variable."""

from __future__ import annotations

import pytest

from exportwatch.config import ConfigError, Settings, region_from_env

BASE = {
    "JOBS_TABLE": "exportwatch-jobs",
    "EXPORT_BUCKET": "exportwatch-exports",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:exportwatch-notify",
    "INTERCOM_TOKEN_SECRET": "exportwatch/intercom-token",
}
REQUIRED = tuple(BASE)


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE, **overrides})


def config_error(variable: str, **overrides: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings(**overrides)
    err = info.value
    text = str(err)
    assert err.variable == variable
    assert text.startswith(f"{variable}: "), text
    assert "\n" not in text and len(text.splitlines()) == 1 and len(text) < 300, text
    return err


def test_defaults() -> None:
    s = settings()
    assert (s.jobs_table, s.export_bucket, s.notify_topic_arn, s.intercom_token_secret) == tuple(BASE.values())
    assert s.intercom_api_url == "https://api.intercom.io"
    assert s.intercom_version == "2.16"
    assert s.export_prefix == "intercom-exports/"
    assert s.poll_interval_seconds == 300
    assert s.lease_seconds == 900
    assert s.http_timeout_seconds == 30.0
    assert s.max_check_delay_seconds == 1800
    assert s.settled_ttl_days == 30
    assert s.poll_concurrency == 4


def test_blank_optional_values_mean_default() -> None:
    s = settings(INTERCOM_VERSION="  ", POLL_INTERVAL_MINUTES="", LEASE_SECONDS=" ", INTERCOM_API_URL="")
    assert (s.intercom_version, s.poll_interval_seconds, s.lease_seconds) == ("2.16", 300, 900)
    assert s.intercom_api_url == "https://api.intercom.io"


def test_reads_os_environ_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POLL_CONCURRENCY", "7")
    assert Settings.from_env().poll_concurrency == 7


@pytest.mark.parametrize("variable", REQUIRED)
@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_required_variable_missing(variable: str, value: str | None) -> None:
    env = {k: v for k, v in BASE.items() if k != variable}
    if value is not None:
        env[variable] = value
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert info.value.variable == variable
    assert str(info.value) == f"{variable}: is not set"


def test_values_are_stripped() -> None:
    s = settings(JOBS_TABLE="  my-table\n", EXPORT_BUCKET=" my-bucket ", INTERCOM_TOKEN_SECRET=" s ")
    assert (s.jobs_table, s.export_bucket, s.intercom_token_secret) == ("my-table", "my-bucket", "s")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOBS_TABLE", "ab"),
        ("JOBS_TABLE", "my table"),
        ("JOBS_TABLE", "t" * 256),
        ("JOBS_TABLE", "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"),
        ("EXPORT_BUCKET", "My-Bucket"),
        ("EXPORT_BUCKET", "ab"),
        ("EXPORT_BUCKET", "-bucket"),
        ("EXPORT_BUCKET", "bucket-"),
        ("EXPORT_BUCKET", "b" * 64),
        ("EXPORT_BUCKET", "s3://bucket"),
        ("NOTIFY_TOPIC_ARN", "exportwatch-notify"),
        ("NOTIFY_TOPIC_ARN", "arn:aws:sqs:us-east-1:123456789012:queue"),
        ("NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:12345:topic"),
        ("NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:"),
        ("NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:topic/sub"),
        ("INTERCOM_VERSION", "v2.16"),
        ("INTERCOM_VERSION", "2"),
        ("INTERCOM_VERSION", "latest"),
    ],
)
def test_bad_values_are_named(variable: str, value: str) -> None:
    config_error(variable, **{variable: value})


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sns:eu-west-1:123456789012:t",
        "arn:aws-cn:sns:cn-north-1:123456789012:topic_1",
        "arn:aws-us-gov:sns:us-gov-west-1:123456789012:topic-1",
        "arn:aws:sns:us-east-1:123456789012:events.fifo",
    ],
)
def test_topic_arns_of_every_partition_are_accepted(arn: str) -> None:
    assert settings(NOTIFY_TOPIC_ARN=arn).notify_topic_arn == arn


@pytest.mark.parametrize("version", ["2.7", "2.16", "Unstable"])
def test_intercom_versions(version: str) -> None:
    assert settings(INTERCOM_VERSION=version).intercom_version == version


def test_a_long_bad_value_is_not_echoed() -> None:
    # A token pasted into the wrong variable must not end up in a log line.
    pasted = "dG9rOjEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTA=" * 3
    for variable in ("JOBS_TABLE", "EXPORT_BUCKET", "NOTIFY_TOPIC_ARN", "INTERCOM_VERSION"):
        err = config_error(variable, **{variable: pasted})
        assert pasted[:40] not in str(err)


# -- integers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "expected"),
    [
        ("POLL_INTERVAL_MINUTES", "1", "poll_interval_seconds", 60),
        ("POLL_INTERVAL_MINUTES", "1440", "poll_interval_seconds", 86400),
        ("LEASE_SECONDS", "60", "lease_seconds", 60),
        ("HTTP_TIMEOUT_SECONDS", "5", "http_timeout_seconds", 5.0),
        ("MAX_CHECK_DELAY_MINUTES", "720", "max_check_delay_seconds", 43200),
        ("SETTLED_TTL_DAYS", " 3650 ", "settled_ttl_days", 3650),
        ("POLL_CONCURRENCY", "64", "poll_concurrency", 64),
    ],
)
def test_integers_in_range(variable: str, raw: str, attribute: str, expected: float) -> None:
    value = getattr(settings(**{variable: raw}), attribute)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("POLL_INTERVAL_MINUTES", "0"),
        ("POLL_INTERVAL_MINUTES", "1441"),
        ("POLL_INTERVAL_MINUTES", "five"),
        ("POLL_INTERVAL_MINUTES", "2.5"),
        ("LEASE_SECONDS", "-1"),
        ("LEASE_SECONDS", "86401"),
        ("HTTP_TIMEOUT_SECONDS", "0"),
        ("HTTP_TIMEOUT_SECONDS", "30s"),
        ("MAX_CHECK_DELAY_MINUTES", "721"),
        ("SETTLED_TTL_DAYS", "0"),
        ("POLL_CONCURRENCY", "0"),
        ("POLL_CONCURRENCY", "65"),
        ("POLL_CONCURRENCY", "9" * 5000),
    ],
)
def test_integers_out_of_range_or_not_numbers(variable: str, raw: str) -> None:
    config_error(variable, **{variable: raw})


# -- INTERCOM_API_URL -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://api.intercom.io", "https://api.intercom.io"),
        ("https://api.intercom.io/", "https://api.intercom.io"),
        ("  https://api.intercom.io \n", "https://api.intercom.io"),
        ("https://api.eu.intercom.io", "https://api.eu.intercom.io"),
        ("https://api.au.intercom.io/", "https://api.au.intercom.io"),
        ("HTTPS://api.eu.intercom.io", "https://api.eu.intercom.io"),
        ("https://api.intercom.io:443", "https://api.intercom.io:443"),
    ],
)
def test_intercom_hosts_accepted(raw: str, expected: str) -> None:
    assert settings(INTERCOM_API_URL=raw).intercom_api_url == expected


@pytest.mark.parametrize(
    "raw",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10:1",
        "http://localhost:4010",
        "http://LOCALHOST:4010",
        "http://[::1]:8765",
    ],
)
def test_plain_http_is_allowed_for_loopback_only(raw: str) -> None:
    assert settings(INTERCOM_API_URL=raw).intercom_api_url == raw


@pytest.mark.parametrize(
    "raw",
    [
        # plain http off the machine: the token would cross the network in clear text
        "http://api.intercom.io",
        "http://10.0.0.5:8080",
        "http://localhost.example.com",
        "http://[2001:db8::1]:80",
        # not a bare origin
        "https://api.intercom.io/v2",
        "https://api.intercom.io/export/content/data",
        "https://api.intercom.io?x=1",
        "https://api.intercom.io#frag",
        "https://user:pass@api.intercom.io",
        "https://token@api.intercom.io",
        # not a URL
        "api.intercom.io",
        "ftp://api.intercom.io",
        "https://",
        "https:///path",
        "not a url",
        "https://api.intercom.io:99999",
        "https://api.intercom.io:http",
        # found while writing these tests: used to escape as a bare ValueError / be accepted
        "https://[abc",
        "https://[::1",
        "https://api intercom.io",
        "https://api.intercom.io\x00",
        "   ",
    ],
)
def test_bad_api_urls_name_the_variable(raw: str) -> None:
    config_error("INTERCOM_API_URL", INTERCOM_API_URL=raw)


# -- EXPORT_PREFIX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("exports", "exports/"),
        ("exports/", "exports/"),
        ("intercom/exports", "intercom/exports/"),
        (" team-a/intercom_exports.v1 ", "team-a/intercom_exports.v1/"),
        ("", ""),  # the bucket's root: the template's ExportPrefix parameter may be empty
        ("a" * 899, "a" * 899 + "/"),
    ],
)
def test_prefix_normalisation(raw: str, expected: str) -> None:
    assert settings(EXPORT_PREFIX=raw).export_prefix == expected


@pytest.mark.parametrize(
    "raw",
    ["/exports", "a//b", "../x", "a/../b", "a b", "ex\nports", "exports?x", "prefix#", "é/", "a\\b", "a" * 1000],
)
def test_bad_prefixes_name_the_variable(raw: str) -> None:
    config_error("EXPORT_PREFIX", EXPORT_PREFIX=raw)


# -- every problem in one error ---------------------------------------------------------------------------


def test_every_missing_variable_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({})
    err = info.value
    assert isinstance(err, ValueError)
    assert err.variable == "JOBS_TABLE"  # the first one, for callers that name one variable
    assert str(err).splitlines() == [f"{name}: is not set" for name in REQUIRED]
    assert err.lines == str(err).splitlines()
    assert [variable for variable, _ in err.problems] == list(REQUIRED)


def test_missing_and_malformed_values_are_reported_together_in_reading_order() -> None:
    env = {
        "EXPORT_BUCKET": "X",
        "NOTIFY_TOPIC_ARN": BASE["NOTIFY_TOPIC_ARN"],
        "INTERCOM_API_URL": "http://api.intercom.io",
        "POLL_CONCURRENCY": "0",
        "EXPORT_PREFIX": "../x",
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    lines = str(info.value).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "JOBS_TABLE",
        "EXPORT_BUCKET",
        "INTERCOM_TOKEN_SECRET",
        "INTERCOM_API_URL",
        "EXPORT_PREFIX",
        "POLL_CONCURRENCY",
    ]
    # Each line is the text the variable's own check gives when it is the only problem.
    for line in lines:
        variable = line.split(":", 1)[0]
        alone = {**BASE, variable: env.get(variable, "")}
        with pytest.raises(ConfigError) as single:
            Settings.from_env(alone)
        assert str(single.value) == line


def test_combine_keeps_order_and_drops_repeats() -> None:
    a, b = ConfigError("A_VAR", "is not set"), ConfigError("B_VAR", "is bad")
    combined = ConfigError.combine([a, b, ConfigError.combine([b])])
    assert str(combined) == "A_VAR: is not set\nB_VAR: is bad"
    assert combined.variable == "A_VAR"
    with pytest.raises(ValueError, match="no configuration problems"):
        ConfigError.combine([])


# -- AWS region -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AWS_REGION": "eu-west-1"}, ("AWS_REGION", "eu-west-1")),
        ({"AWS_DEFAULT_REGION": "us-east-2"}, ("AWS_DEFAULT_REGION", "us-east-2")),
        ({"AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "eu-west-1"}, ("AWS_DEFAULT_REGION", "us-east-2")),
        ({"AWS_DEFAULT_REGION": " ", "AWS_REGION": " eu-west-1 "}, ("AWS_REGION", "eu-west-1")),
        ({}, None),
    ],
)
def test_region_from_env(env: dict[str, str], expected: tuple[str, str] | None) -> None:
    assert region_from_env(env) == expected
