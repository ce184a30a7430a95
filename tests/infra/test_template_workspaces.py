"""template.yaml for workspaces and the coverage ledger (issue 10): the ledger-index GSI, the daily-window and
workspace-secret parameters, the poller's new environment variables, and the poller role's new grants, which
stay least privilege (evaluated on resolved ARNs, IAM's wildcard matching)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from support.template import as_list, policy_statements

REGION = "us-east-1"
ACCOUNT = "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/exportwatch-JobsTable-AbC"
SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"
# What a stack resolves names to (a stand-in for CloudFormation), with the parameters' defaults.
NAMES: dict[str, Any] = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "JobsTable": "exportwatch-JobsTable-AbC",
    "JobsTable.Arn": TABLE_ARN,
    "ExportBucket": "exportwatch-exports-abc",
    "ExportBucket.Arn": "arn:aws:s3:::exportwatch-exports-abc",
    "ExportPrefix": "intercom-exports/",
    "NotifyTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:exportwatch-NotifyTopic-AbC",
    "NotifyTopic.TopicName": "exportwatch-NotifyTopic-AbC",
    "IntercomTokenSecret": f"{SECRETS}IntercomTokenSecret-AbCdEf",
    "WorkspaceTokenSecretPrefix": "exportwatch/",
}


def _resolve(value: Any, names: dict[str, Any]) -> Any:
    """Ref, GetAtt and Sub (all the poller role's resources use) resolved through `names`; anything else raises."""
    if isinstance(value, str):
        return value
    ((key, arg),) = value.items()
    if key == "Ref":
        return names[arg]
    if key == "Fn::GetAtt":
        return names[".".join(arg) if isinstance(arg, list) else arg]
    if key == "Fn::Sub":  # "text", or [text, {variable: value}] as SAM's policy templates write it
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: _resolve(v, names) for k, v in variables.items()}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: str(local[m[1]] if m[1] in local else names[m[1]]), text)
    raise NotImplementedError(key)


def _matches(value: str, pattern: str) -> bool:
    """IAM's wildcards (* and ?); fnmatch's [..] never occurs in these ARNs."""
    return fnmatch.fnmatchcase(value, pattern)


def poller_allows(cfn: dict[str, Any], action: str, resource: str, names: dict[str, Any] | None = None) -> bool:
    """Whether the poller's role's inline policies allow `action` on `resource` (they hold Allows only)."""
    names = NAMES | (names or {})
    for role_id, statement in policy_statements(cfn):
        if role_id != "PollerFunctionRole" or statement["Effect"] != "Allow":
            continue
        if "Condition" in statement:  # the SNS key grant only (test_template.py checks it): not about these
            continue
        if any(_matches(action.lower(), a.lower()) for a in as_list(statement["Action"])) and any(
            _matches(resource, _resolve(r, names)) for r in as_list(statement["Resource"])
        ):
            return True
    return False


# ------------------------------------------------------------------------------------- the table


def test_ledger_index_is_the_one_new_gsi(sam: dict[str, Any]) -> None:
    props = sam["Resources"]["JobsTable"]["Properties"]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types == {"job_identifier": "S", "due_shard": "S", "next_check_at": "N", "ledger": "S", "ledger_sort": "S"}
    indexes = {gsi["IndexName"]: gsi for gsi in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"due-index", "ledger-index"}  # CloudFormation adds one GSI per stack update
    assert indexes["ledger-index"] == {
        "IndexName": "ledger-index",
        "KeySchema": [
            {"AttributeName": "ledger", "KeyType": "HASH"},
            {"AttributeName": "ledger_sort", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }
    # The existing index is unchanged (an index change would be a replacement of it, not an addition).
    assert indexes["due-index"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert props["KeySchema"] == [{"AttributeName": "job_identifier", "KeyType": "HASH"}]


# ------------------------------------------------------------------------------------- parameters and env


def test_daily_start_parameter_is_empty_or_a_date(sam: dict[str, Any]) -> None:
    param = sam["Parameters"]["DefaultDailyStart"]
    assert param["Type"] == "String" and param["Default"] == "" and param["Description"]
    pattern = re.compile(param["AllowedPattern"])
    for value in ("", "2026-01-31", "2024-02-29"):
        assert pattern.fullmatch(value), value
    for value in ("2026-1-31", "20260131", "yesterday", " 2026-01-31", "2026-01-31 ", "2026-01-31T00:00:00Z"):
        assert not pattern.fullmatch(value), value


def test_window_parameters_are_bounded_numbers(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    for name, default, low, high in (("DefaultWindowDays", 1, 1, 31), ("WindowMaxAttempts", 3, 1, 10)):
        param = params[name]
        assert param["Type"] == "Number" and param["Description"], name
        assert (param["Default"], param["MinValue"], param["MaxValue"]) == (default, low, high), name


SECRET_PREFIX_SAMPLES_OK = ("exportwatch/", "exportwatch-", "team/exportwatch/", "a", "x.y_z+=@-/")
SECRET_PREFIX_SAMPLES_BAD = ("", "*", "exportwatch/*", "a?", "${aws:username}", "a b", "a:b", "é/")


def _prefix_accepts(sam: dict[str, Any]) -> Any:
    param = sam["Parameters"]["WorkspaceTokenSecretPrefix"]
    pattern = re.compile(param["AllowedPattern"])
    return lambda value: pattern.fullmatch(value) is not None and len(value) <= param.get("MaxLength", 10**6)


def test_workspace_secret_prefix_is_a_non_empty_name_prefix(sam: dict[str, Any]) -> None:
    """Non-empty (an empty one would grant every secret), and no IAM wildcard or ${policy variable}."""
    param = sam["Parameters"]["WorkspaceTokenSecretPrefix"]
    assert param["Type"] == "String" and param["Default"] == "exportwatch/" and param["Description"]
    accepts = _prefix_accepts(sam)
    assert accepts(param["Default"])
    for value in SECRET_PREFIX_SAMPLES_OK:
        assert accepts(value), value
    for value in SECRET_PREFIX_SAMPLES_BAD:
        assert not accepts(value), value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/_+=.@-*?${}: ", max_size=8))
def test_any_secret_prefix_the_template_accepts_holds_no_wildcard(sam: dict[str, Any], value: str) -> None:
    if _prefix_accepts(sam)(value):
        assert value and not set(value) & set("*?${}: ")


def test_poller_gets_the_window_settings(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    env = sam["Resources"]["PollerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DEFAULT_DAILY_START"] == {"Ref": "DefaultDailyStart"}
    assert env["DEFAULT_WINDOW_DAYS"] == {"Ref": "DefaultWindowDays"}
    assert env["WINDOW_MAX_ATTEMPTS"] == {"Ref": "WindowMaxAttempts"}
    # The registry is in the jobs table: no new table, no new variable naming one.
    assert not any("WORKSPACE" in name and "TABLE" in name for name in env)
    assert [t for t in cfn["Resources"].values() if t["Type"] == "AWS::DynamoDB::Table"] == [
        cfn["Resources"]["JobsTable"]
    ]


# ------------------------------------------------------------------------------------- the poller's role


def test_poller_may_query_the_ledger_and_get_items_but_not_scan_or_delete(cfn: dict[str, Any]) -> None:
    assert poller_allows(cfn, "dynamodb:Query", f"{TABLE_ARN}/index/ledger-index")
    assert poller_allows(cfn, "dynamodb:Query", f"{TABLE_ARN}/index/due-index")
    for action in ("dynamodb:GetItem", "dynamodb:ConditionCheckItem", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert poller_allows(cfn, action, TABLE_ARN), action
    # ... and still nothing that reads the whole table or deletes: no Scan, DeleteItem, batch or PartiQL.
    resources = (
        TABLE_ARN,
        f"{TABLE_ARN}/index/ledger-index",
        f"{TABLE_ARN}/index/due-index",
        f"{TABLE_ARN}/index/other-index",
    )
    for action in (
        "dynamodb:Scan",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PartiQLSelect",
        "dynamodb:DeleteTable",
        "dynamodb:UpdateTable",
    ):
        for resource in resources:
            assert not poller_allows(cfn, action, resource), (action, resource)
    assert not poller_allows(cfn, "dynamodb:Query", f"{TABLE_ARN}/index/other-index")
    # A table of another stack, or of another account, is not covered by any grant.
    other = TABLE_ARN.replace("JobsTable-AbC", "JobsTable-XyZ")
    assert not poller_allows(cfn, "dynamodb:GetItem", other)
    assert not poller_allows(cfn, "dynamodb:GetItem", TABLE_ARN.replace(ACCOUNT, "210987654321"))


def test_poller_reads_workspace_secrets_under_the_prefix_only(cfn: dict[str, Any]) -> None:
    read = "secretsmanager:GetSecretValue"
    for prefix in ("exportwatch/", "team/exportwatch-"):
        names = {"WorkspaceTokenSecretPrefix": prefix}
        assert poller_allows(cfn, read, f"{SECRETS}{prefix}eu-AbCdEf", names), prefix
        assert poller_allows(cfn, read, f"{SECRETS}{prefix}au/workspace-AbCdEf", names), prefix
        for outside in (
            f"{SECRETS}other-AbCdEf",
            f"{SECRETS}slack-webhook-AbCdEf",
            f"{SECRETS}x{prefix}eu-AbCdEf",
            f"{SECRETS}{prefix[:-1]}",  # the prefix without its last character
            f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{prefix}eu-AbCdEf",
            f"arn:aws:secretsmanager:{REGION}:210987654321:secret:{prefix}eu-AbCdEf",
        ):
            assert not poller_allows(cfn, read, outside, names), (prefix, outside)
        # Reading only: no way to change, list or delete a workspace's secret.
        for action in ("secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret", "secretsmanager:ListSecrets"):
            assert not poller_allows(cfn, action, f"{SECRETS}{prefix}eu-AbCdEf", names), action
    # The stack's own token secret is still readable.
    assert poller_allows(cfn, read, NAMES["IntercomTokenSecret"])
