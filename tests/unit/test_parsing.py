"""Property tests for everything that parses outside input: job ids, Intercom's job model, poller events, the
token secret. Each parser either returns a value or raises its own one-line error, never anything else."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from exportwatch.config import ConfigError
from exportwatch.events import InvalidEvent, PollRequest
from exportwatch.intercom import MalformedResponse, Outcome, StatusReport, parse_job
from exportwatch.model import InvalidJobId, validate_job_id
from exportwatch.wiring import parse_token

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

valid_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True)
# Characters no id may contain: '/', every kind of whitespace, every control or other non-printable character.
forbidden_chars = st.sampled_from("/ \t\n\r\v\f\x00\x1b\x7f\x85\xa0\u2028\u2029\u3000") | st.characters(
    categories=["Cc", "Cf", "Zs", "Zl", "Zp"]
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def one_line(text: str) -> bool:
    return bool(text) and "\n" not in text and len(text.splitlines()) == 1


# -- validate_job_id --------------------------------------------------------------------------------------


@given(valid_ids)
def test_every_id_of_the_documented_shape_is_accepted(job_id: str) -> None:
    assert validate_job_id(job_id) == job_id


@given(st.text(max_size=80))
@example("")
@example("x" * 64)
@example("x" * 65)
@example("orzzsbd7hk67xyu")
@example("abc\n")  # `$` would accept a trailing newline; the validator must not
@example("..")
@example("-rf")
@example("_x")
@example("\uff41\uff42\uff43")  # full-width letters: alphanumeric to Python, not to Intercom
@example("١٢٣")  # Arabic-Indic digits
def test_accepted_exactly_when_the_id_matches_the_pattern(value: str) -> None:
    if JOB_ID_RE.fullmatch(value) and not value.endswith("\n"):
        assert validate_job_id(value) == value
    else:
        with pytest.raises(InvalidJobId) as info:
            validate_job_id(value)
        assert one_line(str(info.value)) and str(info.value).isprintable()


@given(st.text(max_size=40), forbidden_chars, st.text(max_size=40))
@example("a", "/", "b")
@example("", "\x00", "x")
@example("..", "/", "x")
def test_slash_whitespace_and_control_characters_are_rejected_in_one_line(head: str, bad: str, tail: str) -> None:
    value = head + bad + tail
    with pytest.raises(InvalidJobId) as info:
        validate_job_id(value)
    message = str(info.value)
    assert one_line(message) and message.isprintable()


@given(st.integers(min_value=65, max_value=100_000))
def test_absurd_lengths_are_rejected_without_echoing_the_value(length: int) -> None:
    with pytest.raises(InvalidJobId) as info:
        validate_job_id("a" * length)
    assert one_line(str(info.value)) and len(str(info.value)) < 200


@given(json_values.filter(lambda v: not isinstance(v, str)))
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(InvalidJobId) as info:
        validate_job_id(value)
    assert one_line(str(info.value))


# -- intercom.parse_job -----------------------------------------------------------------------------------

statuses = st.sampled_from(["pending", "in_progress", "completed", "complete", "failed", "no_data", "canceled"])
job_models = st.fixed_dictionaries(
    {},
    optional={
        "job_identifier": valid_ids | json_values,
        "job_identfier": valid_ids | json_values,
        "status": statuses | json_values,
        "download_url": st.just("") | st.just("https://api.intercom.io/download/content/data/x") | json_values,
        "download_expires_at": st.just("")
        | st.integers(min_value=1, max_value=10**11).map(str)
        | st.integers()
        | json_values,
        "type": json_values,
    },
)


@given(json_values | job_models, st.none() | valid_ids)
@example(
    {"job_identifier": "a", "status": "completed", "download_expires_at": 10**400}, "a"
)  # used to escape as OverflowError
@example({"job_identifier": "a", "status": "completed", "download_expires_at": float("nan")}, None)
@example({"job_identifier": "a", "status": "completed", "download_expires_at": "1e400"}, None)
@example({"job_identifier": "a", "status": "completed", "download_expires_at": [1674917488]}, None)
@example({"job_identifier": "a", "status": "archived"}, None)
@example({"job_identifier": "a", "status": "COMPLETED"}, None)
def test_parse_job_returns_a_report_or_raises_malformed_response(payload: object, expected: str | None) -> None:
    try:
        report = parse_job(payload, expected)
    except MalformedResponse as exc:
        assert one_line(str(exc))
        return
    assert isinstance(report, StatusReport)
    assert isinstance(report.outcome, Outcome) and report.outcome is not Outcome.NOT_FOUND
    assert isinstance(report.job_identifier, str) and report.job_identifier
    assert expected is None or report.job_identifier == expected
    assert isinstance(report.download_url, str)
    assert report.download_expires_at is None or report.download_expires_at.tzinfo is not None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("pending", Outcome.RUNNING),
        ("in_progress", Outcome.RUNNING),
        ("completed", Outcome.COMPLETED),
        ("complete", Outcome.COMPLETED),  # the status page's spelling
        ("failed", Outcome.FAILED),
        ("no_data", Outcome.NO_DATA),
        ("canceled", Outcome.CANCELED),
    ],
)
def test_status_values(status: str, outcome: Outcome) -> None:
    report = parse_job({"job_identifier": "abc", "status": status, "download_url": "", "download_expires_at": ""})
    assert (report.outcome, report.status) == (outcome, status)


@pytest.mark.parametrize("status", ["cancelled", "archived", "Completed", " completed", "", "done"])
def test_unknown_statuses_are_malformed(status: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_job({"job_identifier": "abc", "status": status})


def test_download_expires_at_empty_string_is_none() -> None:
    assert (
        parse_job({"job_identifier": "abc", "status": "pending", "download_expires_at": ""}).download_expires_at is None
    )
    assert parse_job({"job_identifier": "abc", "status": "pending"}).download_expires_at is None


def test_download_expires_at_is_a_string_of_epoch_seconds() -> None:
    report = parse_job(
        {
            "job_identifier": "abc",
            "status": "completed",
            "download_url": "https://api.intercom.io/download/content/data/abc",
            "download_expires_at": "1674917488",
        },
        "abc",
    )
    assert report.download_expires_at == datetime(2023, 1, 28, 14, 51, 28, tzinfo=UTC)
    assert report.download_url == "https://api.intercom.io/download/content/data/abc"


@given(st.integers(min_value=1, max_value=10**11 - 1), st.booleans())
def test_any_epoch_string_or_number_is_that_utc_time(seconds: int, as_string: bool) -> None:
    raw: object = str(seconds) if as_string else seconds
    report = parse_job({"job_identifier": "abc", "status": "completed", "download_expires_at": raw})
    assert report.download_expires_at == datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize("raw", [None, "", 0, "0"])
def test_unset_expiry_is_none(raw: object) -> None:
    report = parse_job({"job_identifier": "abc", "status": "pending", "download_expires_at": raw})
    assert report.download_expires_at is None


@pytest.mark.parametrize(
    "raw",
    [True, False, "soon", "-5", 1e11, pytest.param(10**400, id="huge-int"), float("inf"), {}, [1]],
)
def test_bad_expiry_is_malformed(raw: object) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse_job({"job_identifier": "abc", "status": "completed", "download_expires_at": raw})
    assert one_line(str(info.value))


@given(valid_ids, st.booleans())
def test_the_specs_misspelt_job_identfier_is_accepted(job_id: str, pass_expected: bool) -> None:
    payload = {"job_identfier": job_id, "status": "in_progress", "download_url": "", "download_expires_at": ""}
    report = parse_job(payload, job_id if pass_expected else None)
    assert report.job_identifier == job_id and report.outcome is Outcome.RUNNING


@given(valid_ids, valid_ids, st.sampled_from(["job_identifier", "job_identfier"]))
def test_an_answer_for_another_job_is_rejected(asked: str, answered: str, key: str) -> None:
    assume(asked != answered)
    with pytest.raises(MalformedResponse) as info:
        parse_job({key: answered, "status": "completed"}, asked)
    assert one_line(str(info.value))


@given(st.text(min_size=1, max_size=200))
def test_a_hostile_job_identifier_is_not_echoed_raw(answered: str) -> None:
    assume(answered != "abc")
    with pytest.raises(MalformedResponse) as info:
        parse_job({"job_identifier": answered, "status": "completed"}, "abc")
    message = str(info.value)
    assert one_line(message) and message.isprintable() and len(message) < 200


@pytest.mark.parametrize("payload", [None, [], "completed", 5, {"status": "completed"}, {"job_identifier": ""}])
def test_missing_job_identifier_without_expected_id_is_malformed(payload: object) -> None:
    with pytest.raises(MalformedResponse):
        parse_job(payload)


# -- events.PollRequest.from_event ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "all_jobs"),
    [
        (None, False),
        ({}, False),
        ({"all": False}, False),
        ({"all": True}, True),
        ({"all": True, "source": "operator"}, True),
        (
            {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
            False,
        ),
    ],
)
def test_poll_request_accepts(event: object, all_jobs: bool) -> None:
    assert PollRequest.from_event(event) == PollRequest(all_jobs=all_jobs)


@pytest.mark.parametrize("name", ["poller_schedule.json", "poller_poll_all.json"])
def test_poll_request_accepts_the_sample_events(name: str) -> None:
    event = json.loads((REPO_ROOT / "events" / name).read_text())
    assert PollRequest.from_event(event).all_jobs is (name == "poller_poll_all.json")


@given(json_values)
def test_poll_request_never_raises_anything_else(event: object) -> None:
    try:
        request = PollRequest.from_event(event)
    except InvalidEvent as exc:
        assert one_line(str(exc))
        assert not isinstance(event, dict) or not isinstance(event.get("all", False), bool)
        return
    assert event is None or (isinstance(event, dict) and request.all_jobs is event.get("all", False))


@pytest.mark.parametrize("event", [[], [{"all": True}], "all", "", 1, True, 0.5])
def test_non_object_events_are_rejected(event: object) -> None:
    with pytest.raises(InvalidEvent, match="JSON object"):
        PollRequest.from_event(event)


@pytest.mark.parametrize("value", [1, 0, "true", "false", None, [], {}])
def test_all_must_be_a_boolean(value: object) -> None:
    with pytest.raises(InvalidEvent, match='"all"'):
        PollRequest.from_event({"all": value})


# -- wiring.parse_token -----------------------------------------------------------------------------------

VAR = "INTERCOM_TOKEN_SECRET"
# What a token can be: printable ASCII without whitespace (Intercom's are base64 with '=' padding).
token_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
tokens = st.text(token_chars, min_size=1, max_size=80)


def token_error(value: str | bytes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_token(value)
    err = info.value
    assert err.variable == VAR and str(err).startswith(f"{VAR}: ") and one_line(str(err))
    return err


@pytest.mark.parametrize(
    ("secret", "token"),
    [
        ("dG9rOjEyMzQ1Njc4OTA=", "dG9rOjEyMzQ1Njc4OTA="),
        ("  dG9rOjEy=\n", "dG9rOjEy="),
        ('{"token": "dG9rOjEy="}', "dG9rOjEy="),
        ('  {"token": "  dG9rOjEy= ", "note": "rotated 2024-05"}\n', "dG9rOjEy="),
        (b"dG9rOjEy=", "dG9rOjEy="),
        (b'{"token": "dG9rOjEy="}', "dG9rOjEy="),
    ],
)
def test_token_shapes(secret: str | bytes, token: str) -> None:
    assert parse_token(secret) == token


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "   \n\t",
        b"",
        "{",
        '{"token": "abc"',
        "{}",
        '{"Token": "abc"}',
        '{"access_token": "abc"}',
        '{"token": ""}',
        '{"token": "   "}',
        '{"token": null}',
        '{"token": 12345}',
        '{"token": ["abc"]}',
        '{"token": {"value": "abc"}}',
        '{"token": "ab cd"}',
        '{"token": "ab\\u0000cd"}',
        "ab cd",
        "ab\x00cd",
        "ab\x1bcd",
        # found while writing these tests: these escaped as UnicodeDecodeError / RecursionError, or passed and then
        # broke every request with UnicodeEncodeError (http.client sends headers as latin-1)
        b"\xff\xfe\x00t",
        '{"token": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "tok\u20acen",
        "tokén",
    ],
)
def test_bad_secret_shapes(secret: str | bytes) -> None:
    token_error(secret)


@given(tokens, st.sampled_from(["", " ", "\n", "\t "]), st.sampled_from(["", " ", "\n", "\r\n"]))
def test_a_token_is_returned_raw_or_from_json_stripped(token: str, lead: str, trail: str) -> None:
    assume(not token.startswith("{"))
    assert parse_token(f"{lead}{token}{trail}") == token
    assert parse_token(json.dumps({"token": f"{lead}{token}{trail}"})) == token
    assert parse_token(f"{lead}{token}{trail}".encode()) == token


@given(st.text(min_size=8, max_size=60))
@example("dG9rOjEy=\nsecond-line-of-a-pasted-token")
@example("secret token with spaces")
def test_error_messages_never_contain_the_secret(value: str) -> None:
    stripped = value.strip()
    assume(len(stripped) >= 8)
    for secret in (
        value,
        json.dumps({"token": value}),
        json.dumps({"token": value, "extra": value})[:-1],  # JSON that does not parse
        json.dumps({"access_token": value}),
        value.encode("utf-8", "surrogatepass"),
    ):
        try:
            token = parse_token(secret)
        except ConfigError as exc:
            assert exc.variable == VAR and one_line(str(exc))
            assert stripped not in str(exc) and value not in repr(exc)
        else:
            assert token.isascii() and (token == stripped or stripped.startswith("{"))


@given(st.binary(max_size=60))
def test_arbitrary_bytes_give_a_token_or_a_config_error(secret: bytes) -> None:
    try:
        token = parse_token(secret)
    except ConfigError as exc:
        assert exc.variable == VAR
    else:
        assert token and token.isascii() and token.isprintable() and not any(ch.isspace() for ch in token)
