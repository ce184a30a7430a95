"""template.yaml for the reporting datasets (issue 11): the default workspace's Intercom app and client ids and
its daily reporting datasets as parameters, their constraints (checked against rules written out here, not read
from the template), the poller's environment after the SAM transform, the Rule that ties daily datasets to a
start day and to both ids, and the poller's role, which needs nothing new."""

from __future__ import annotations

import re
import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from support.paths import REPO_ROOT
from support.template import policy_statements, referenced_ids, resources_of_type

ID_PARAMETERS = ("IntercomAppId", "IntercomClientId")
NEW_PARAMETERS = (*ID_PARAMETERS, "DefaultDailyDatasets")
NEW_ENV = {
    "INTERCOM_APP_ID": "IntercomAppId",
    "INTERCOM_CLIENT_ID": "IntercomClientId",
    "DEFAULT_DAILY_DATASETS": "DefaultDailyDatasets",
}
ARCHIVE_DOC = REPO_ROOT / "docs" / "archive.md"

# The contracts' rules, written out character by character (no regular expression shared with the template).
ID_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
DATASET_FIRST = frozenset(string.ascii_lowercase + string.digits)
DATASET_REST = DATASET_FIRST | {"_"}


def id_ok(value: str) -> bool:
    """app_id / client_id: empty (not set), or 1 to 64 of [A-Za-z0-9_-]."""
    return value == "" or (len(value) <= 64 and set(value) <= ID_CHARS)


def dataset_ok(item: str) -> bool:
    """A dataset id: [a-z0-9] then up to 63 of [a-z0-9_]."""
    return 1 <= len(item) <= 64 and item[0] in DATASET_FIRST and set(item[1:]) <= DATASET_REST


def datasets_ok(value: str) -> bool:
    """Empty (off), or dataset ids joined by single commas (no spaces, no empty item)."""
    return value == "" or all(dataset_ok(item) for item in value.split(","))


def _accepts(sam: dict[str, Any], name: str) -> Any:
    """How CloudFormation checks a String parameter: the whole value against AllowedPattern (and MaxLength)."""
    param = sam["Parameters"][name]
    pattern = re.compile(param["AllowedPattern"])
    return lambda value: pattern.fullmatch(value) is not None and len(value) <= param.get("MaxLength", 10**6)


# ------------------------------------------------------------------------------------- parameters


def test_new_parameters_are_optional_strings(sam: dict[str, Any]) -> None:
    for name in NEW_PARAMETERS:
        param = sam["Parameters"][name]
        assert param["Type"] == "String", name
        assert param["Default"] == "", name  # empty = not set: a stack without reporting deploys as before
        assert param["Description"].strip(), name
        assert _accepts(sam, name)(param["Default"]), name
    assert "status" in sam["Parameters"]["IntercomAppId"]["Description"]
    assert "DefaultDailyStart" in sam["Parameters"]["DefaultDailyDatasets"]["Description"]


ID_SAMPLES_OK = ("", "a", "abc123", "ab_cd-EF", "Z9", "x" * 64, "-", "_")
ID_SAMPLES_BAD = ("x" * 65, "a b", " abc", "abc ", "abc\n", "a.b", "a/b", "a:b", "a,b", "é", "*", "${id}", "a?")


def test_id_parameters_accept_and_refuse_the_samples(sam: dict[str, Any]) -> None:
    for name in ID_PARAMETERS:
        accepts = _accepts(sam, name)
        for value in ID_SAMPLES_OK:
            assert id_ok(value) and accepts(value), (name, value)
        for value in ID_SAMPLES_BAD:
            assert not id_ok(value) and not accepts(value), (name, value)


DATASETS_OK = (
    "",
    "conversation",
    "conversation,ticket",
    "conversation,ticket,call,team_inbox_performance",
    "0day",
    "a" * 64,
    ",".join(["a" * 64] * 3),
)
DATASETS_BAD = (
    ",",
    "conversation,",
    ",conversation",
    "conversation,,ticket",
    "conversation, ticket",
    " conversation",
    "conversation\n",
    "Conversation",
    "_conversation",
    "conversation-ticket",
    "conversation.ticket",
    "conversation;ticket",
    "a" * 65,
    "conversation," + "a" * 65,
    "conversation.conversation_id",
    "*",
)


def test_daily_datasets_parameter_accepts_and_refuses_the_samples(sam: dict[str, Any]) -> None:
    accepts = _accepts(sam, "DefaultDailyDatasets")
    for value in DATASETS_OK:
        assert datasets_ok(value) and accepts(value), value
    for value in DATASETS_BAD:
        assert not datasets_ok(value) and not accepts(value), value


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="aZ9_-. /é", max_size=70))
def test_id_patterns_agree_with_the_rule(sam: dict[str, Any], value: str) -> None:
    for name in ID_PARAMETERS:
        assert _accepts(sam, name)(value) == id_ok(value), (name, value)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="az09_,-A .", max_size=12),
        st.lists(st.text(alphabet="a0_", min_size=0, max_size=66), max_size=4).map(",".join),
    )
)
def test_datasets_pattern_agrees_with_the_rule(sam: dict[str, Any], value: str) -> None:
    assert _accepts(sam, "DefaultDailyDatasets")(value) == datasets_ok(value), value


# ------------------------------------------------------------------------------------- the poller's environment


def test_poller_gets_the_reporting_settings_after_the_transform(cfn: dict[str, Any]) -> None:
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    env = functions["PollerFunction"]["Properties"]["Environment"]["Variables"]
    for variable, parameter in NEW_ENV.items():
        assert env[variable] == {"Ref": parameter}, variable
    # The poller only: the Slack notifier never talks to Intercom.
    for logical_id, function in functions.items():
        if logical_id != "PollerFunction":
            others = function["Properties"].get("Environment", {}).get("Variables", {})
            assert not set(NEW_ENV) & set(others), logical_id
    # Each new parameter is used (by the poller's environment, and by the Rule below).
    for parameter in NEW_PARAMETERS:
        assert parameter in referenced_ids(env), parameter


# ------------------------------------------------------------------------------------- the Rule


def _evaluate(value: Any, params: dict[str, str]) -> Any:
    """The rule functions the template uses (Ref, Fn::Equals, Fn::Not, Fn::And, Fn::Or) on parameter values."""
    if isinstance(value, str):
        return value
    ((key, arg),) = value.items()
    if key == "Ref":
        return params[arg]
    args = [_evaluate(a, params) for a in arg]
    if key == "Fn::Equals":
        return args[0] == args[1]
    if key == "Fn::Not":
        return not args[0]
    if key == "Fn::And":
        return all(args)
    if key == "Fn::Or":
        return any(args)
    raise NotImplementedError(key)


def _refused_by_rules(template: dict[str, Any], params: dict[str, str]) -> list[str]:
    """The AssertDescriptions of the Rules' assertions that fail for these parameter values."""
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()} | params
    failed = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not _evaluate(rule["RuleCondition"], values):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not _evaluate(a["Assert"], values)]
    return failed


COMPLETE = {
    "DefaultDailyDatasets": "conversation,ticket",
    "DefaultDailyStart": "2026-03-01",
    "IntercomAppId": "abc123",
    "IntercomClientId": "client-1",
}


def test_daily_datasets_need_a_start_day_and_both_ids(sam: dict[str, Any]) -> None:
    assert _refused_by_rules(sam, COMPLETE) == []
    for missing in ("DefaultDailyStart", "IntercomAppId", "IntercomClientId"):
        refused = _refused_by_rules(sam, COMPLETE | {missing: ""})
        assert len(refused) == 1 and missing in refused[0], (missing, refused)
    # Without daily datasets nothing is required (the defaults deploy; ids alone, for `start --dataset`, too).
    assert _refused_by_rules(sam, {}) == []
    assert _refused_by_rules(sam, {"IntercomAppId": "abc123", "IntercomClientId": "client-1"}) == []
    assert _refused_by_rules(sam, {"DefaultDailyStart": "2026-03-01"}) == []


def test_the_rule_survives_the_transform(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    """CloudFormation evaluates Rules on the processed template: the SAM transform must keep them."""
    assert cfn["Rules"] == sam["Rules"]
    assert _refused_by_rules(cfn, COMPLETE | {"DefaultDailyStart": ""})


# ------------------------------------------------------------------------------------- the poller's role


def test_the_new_parameters_grant_nothing(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    """Reporting jobs live in the same table, under the same prefix, with the same token: no IAM statement
    depends on the new parameters (they are ids sent to Intercom, never AWS resource names)."""
    assert set(NEW_PARAMETERS) <= set(sam["Parameters"])
    for role_id, statement in policy_statements(cfn):
        used = referenced_ids(statement)
        assert not set(NEW_PARAMETERS) & used, (role_id, statement)
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":  # the environment is checked above
            assert not set(NEW_PARAMETERS) & referenced_ids(resource.get("Properties", {})), logical_id


# ------------------------------------------------------------------------------------- docs/archive.md


def test_archive_doc_gives_the_reporting_layout() -> None:
    text = ARCHIVE_DOC.read_text(encoding="utf-8")
    assert "{prefix}{workspace}/reporting/{dataset}/dt=YYYY-MM-DD/{job_id}.{ext}" in text
    assert "api_version" in text and "2.16" in text
    assert "exportwatch datasets --workspace" in text and "--json" in text
    assert "/reporting/conversation/dt=${dt}/" in text  # an Athena table's storage.location.template
