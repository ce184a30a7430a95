"""template.yaml: SAM transform + cfn-lint in-process, then the security and wiring properties we rely on."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from cfnlint.api import lint
from samtranslator.translator.transform import transform

from exportwatch.localstack import load_template

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "template.yaml"
DESIGN = REPO_ROOT / "docs" / "design.md"
REGION = "us-east-1"
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"

EXPECTED_ENV = {
    "JOBS_TABLE",
    "EXPORT_BUCKET",
    "NOTIFY_TOPIC_ARN",
    "INTERCOM_TOKEN_SECRET",
    "INTERCOM_API_URL",
    "INTERCOM_VERSION",
    "EXPORT_PREFIX",
    "POLL_INTERVAL_MINUTES",
    "LEASE_SECONDS",
    "EXPIRY_WARNING_HOURS",
    "STUCK_AFTER_HOURS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
# The stack's own resources a policy may point at, by the action's service prefix.
SCOPED_TARGETS = {
    "dynamodb": {"JobsTable"},
    "s3": {"ExportBucket"},
    "sns": {"NotifyTopic"},
    "secretsmanager": {"IntercomTokenSecret", "SlackWebhookSecretId"},  # the Slack secret: by its name parameter
    "sqs": {"SlackNotifierDeadLetterQueue"},
    "lambda": {"PollerFunction"},  # the scheduler's role may invoke the poller, nothing else
}
# Metrics go out as EMF in the logs, so no statement needs a "*" resource.
STAR_ALLOWED_ACTIONS: set[str] = set()
SAM_DEFAULT_MANAGED_POLICIES = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


class _NoIamPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader without its IAM client: the template names no
    managed policy by name (SAM only loads this map to resolve one), so the map can be empty."""

    def load(self) -> dict[str, str]:
        return {}


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    """SAM -> CloudFormation in-process, with s3:// placeholders for the local CodeUri/ContentUri."""
    sam = copy.deepcopy(template)
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://exportwatch-artifacts/{logical_id}.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = f"s3://exportwatch-artifacts/{logical_id}.zip"
    cfn: dict[str, Any] = transform(sam, {}, _NoIamPolicyLoader())
    return cfn


def lint_errors(cfn: dict[str, Any]) -> list[str]:
    """cfn-lint's errors (rule ids E*) for a transformed template."""
    matches = lint(json.dumps(cfn), regions=[REGION])
    return [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches if m.rule.id.startswith("E")]


def check(template: dict[str, Any]) -> list[str]:
    """The whole pipeline: transform, then lint. Returns the problems (empty when the template is good)."""
    try:
        cfn = sam_transform(template)
    except Exception as exc:  # samtranslator raises InvalidDocumentException & co.
        return [f"sam transform: {exc}"]
    return lint_errors(cfn)


def resources_of_type(cfn: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == type_}


def design_section_names(heading: str) -> set[str]:
    """Backticked identifiers in the docs/design.md section whose `## ` heading starts with `heading`."""
    text = DESIGN.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"design.md has no section {heading!r}"
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", match.group(1)))


def referenced_ids(value: Any, local: frozenset[str] = frozenset()) -> set[str]:
    """Logical ids (and parameters) an intrinsic expression refers to; pseudo parameters are left out."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= referenced_ids(item, local)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    base = name.split(".")[0]
                    if base not in variables:
                        found.add(base)
                found |= referenced_ids(list(variables.values()), local)
            else:
                found |= referenced_ids(arg, local)
    return {name for name in found if not name.startswith("AWS::")}


def policy_statements(cfn: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for role_id, role in resources_of_type(cfn, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                out.append((role_id, statement))
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------------------------- transform + lint


def test_transforms_and_lints_clean(cfn: dict[str, Any]) -> None:
    assert lint_errors(cfn) == []


def test_source_template_lints_clean() -> None:
    """cfn-lint on template.yaml itself too (it runs its own SAM transform)."""
    matches = lint(TEMPLATE.read_text(encoding="utf-8"), regions=[REGION])
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def test_pipeline_catches_a_ref_typo(tmp_path: Path) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "TableName: !Ref JobsTable" in text
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace("TableName: !Ref JobsTable", "TableName: !Ref JobTable"), encoding="utf-8")
    problems = check(load_template(broken))
    assert problems, "a Ref to a missing resource must fail the transform+lint pipeline"
    assert any("JobTable" in p for p in problems), problems
    assert check(load_template(TEMPLATE)) == []


def test_design_logical_ids_exist(sam: dict[str, Any]) -> None:
    """Every name the design's template section mentions is in the template: a resource, or (as the section says
    which parameter and variable the Slack resources hang on) a parameter or a function's environment variable."""
    env_names = {
        name
        for resource in sam["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for name in resource["Properties"].get("Environment", {}).get("Variables", {})
    }
    names = design_section_names("Template logical ids")
    assert {n for n in names if n[0].isupper() and not n.isupper()} <= set(sam["Resources"]) | set(sam["Parameters"])
    assert names <= set(sam["Resources"]) | set(sam["Parameters"]) | env_names
    assert {"JobsTable", "ExportBucket", "NotifyTopic", "PollerFunction", "SlackNotifierFunction"} <= names


# ------------------------------------------------------------------------------------- IAM


def assert_kms_only_for_the_topic(role_id: str, statement: dict[str, Any]) -> None:
    """The one KMS grant: the AWS-managed SNS key (alias/aws/sns) of this account and region, via SNS only."""
    assert role_id == "PollerFunctionRole", role_id
    assert set(as_list(statement["Action"])) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "sns.${AWS::Region}.amazonaws.com"}},
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/aws/sns"},
    }


def test_every_policy_statement_is_scoped_to_this_stack(cfn: dict[str, Any]) -> None:
    statements = policy_statements(cfn)
    assert statements
    for role_id, statement in statements:
        actions = as_list(statement["Action"])
        assert statement["Effect"] == "Allow", (role_id, statement)
        assert not any(a == "*" or a.endswith(":*") for a in actions), (role_id, actions)
        services = {a.split(":")[0] for a in actions}
        if "kms" in services:
            assert_kms_only_for_the_topic(role_id, statement)
            continue
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert set(actions) <= STAR_ALLOWED_ACTIONS, f"{role_id}: '*' resource for {actions}"
                continue
            assert isinstance(resource, dict), f"{role_id}: literal resource {resource!r}"
            refs = referenced_ids(resource)
            allowed = set().union(*(SCOPED_TARGETS.get(s, set()) for s in services))
            assert refs and refs <= allowed, f"{role_id}: {actions} on {resource} refers to {refs}"


def test_policy_statements_cover_what_the_poller_needs(cfn: dict[str, Any]) -> None:
    by_action: dict[str, set[str]] = {}
    for role_id, statement in policy_statements(cfn):
        if role_id != "PollerFunctionRole":
            continue
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                by_action.setdefault(action, set()).update({"*"} if resource == "*" else referenced_ids(resource))
    expected = {
        "dynamodb:Query": {"JobsTable"},
        "dynamodb:UpdateItem": {"JobsTable"},
        "dynamodb:PutItem": {"JobsTable"},
        "s3:PutObject": {"ExportBucket"},
        "s3:AbortMultipartUpload": {"ExportBucket"},
        "s3:ListMultipartUploadParts": {"ExportBucket"},
        "sns:Publish": {"NotifyTopic"},
        "secretsmanager:GetSecretValue": {"IntercomTokenSecret"},
    }
    for action, targets in expected.items():
        assert by_action.get(action) == targets, (action, by_action.get(action))
    # Publishing to the encrypted topic needs its key (the statement is checked in the scoping test above).
    assert "kms:GenerateDataKey" in by_action and "kms:Decrypt" in by_action


def test_sam_uses_policy_templates_and_only_default_managed_policy(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    policies = sam["Resources"]["PollerFunction"]["Properties"]["Policies"]
    templates = {next(iter(p)) for p in policies}
    assert templates == {
        "DynamoDBCrudPolicy",
        "S3WritePolicy",
        "Statement",
        "SNSPublishMessagePolicy",
        "AWSSecretsManagerGetSecretValuePolicy",
    }
    for role in resources_of_type(cfn, "AWS::IAM::Role").values():
        assert set(role["Properties"].get("ManagedPolicyArns", [])) <= SAM_DEFAULT_MANAGED_POLICIES


# ------------------------------------------------------------------------------------- schedule


def test_schedule_is_scheduler_v2_at_the_parameter_rate(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    param = sam["Parameters"]["PollIntervalMinutes"]
    assert param["Type"] == "Number" and param["Default"] == 5 and param["MinValue"] == 2
    events = sam["Resources"]["PollerFunction"]["Properties"]["Events"]
    assert len(events) == 1
    (event,) = events.values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Fn::Sub": "rate(${PollIntervalMinutes} minutes)"}
    assert event["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] in (0, 1)

    assert not resources_of_type(cfn, "AWS::Events::Rule")
    (schedule,) = resources_of_type(cfn, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["PollerFunction", "Arn"]}
    assert schedule["Properties"]["ScheduleExpression"] == {"Fn::Sub": "rate(${PollIntervalMinutes} minutes)"}

    env = sam["Resources"]["PollerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["POLL_INTERVAL_MINUTES"] == {"Ref": "PollIntervalMinutes"}


def test_schedule_input_matches_the_sample_event(cfn: dict[str, Any]) -> None:
    (schedule,) = resources_of_type(cfn, "AWS::Scheduler::Schedule").values()
    delivered = json.loads(schedule["Properties"]["Target"]["Input"])
    sample = json.loads((REPO_ROOT / "events" / "poller_schedule.json").read_text(encoding="utf-8"))
    assert set(sample) == set(delivered)
    assert sample["source"] == delivered["source"]
    assert "all" not in delivered  # a scheduled cycle only checks due jobs
    assert json.loads((REPO_ROOT / "events" / "poller_poll_all.json").read_text(encoding="utf-8")) == {"all": True}


def test_async_invoke_config(cfn: dict[str, Any]) -> None:
    configs = resources_of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
    (config,) = [c for c in configs if c["Properties"]["FunctionName"] == {"Ref": "PollerFunction"}]
    assert config["Properties"]["MaximumRetryAttempts"] == 1
    assert config["Properties"]["MaximumEventAgeInSeconds"] == 900


# ------------------------------------------------------------------------------------- storage


def test_table_matches_design(sam: dict[str, Any]) -> None:
    table = sam["Resources"]["JobsTable"]
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "job_identifier", "KeyType": "HASH"}]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert types == {"job_identifier": "S", "due_shard": "S", "next_check_at": "N"}
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi == {
        "IndexName": "due-index",
        "KeySchema": [
            {"AttributeName": "due_shard", "KeyType": "HASH"},
            {"AttributeName": "next_check_at", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


def test_bucket_is_private_encrypted_and_tls_only(cfn: dict[str, Any]) -> None:
    bucket = cfn["Resources"]["ExportBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(
        r["Status"] == "Enabled" and r.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 1}
        for r in rules
    )
    assert any(r["Status"] == "Enabled" and "NoncurrentVersionExpiration" in r for r in rules)

    (policy,) = resources_of_type(cfn, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "ExportBucket"}
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": ["ExportBucket", "Arn"]}, {"Fn::Sub": "${ExportBucket.Arn}/*"}]


def test_token_secret_holds_no_token(sam: dict[str, Any]) -> None:
    props = sam["Resources"]["IntercomTokenSecret"]["Properties"]
    assert "put-secret-value" in props["Description"]
    assert "GenerateSecretString" not in props
    if "SecretString" in props:
        assert json.loads(props["SecretString"]) == {"token": ""}


# ------------------------------------------------------------------------------------- function


def test_runtime_and_layer_build_follow_the_venv_python(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    functions = resources_of_type(cfn, "AWS::Lambda::Function")
    assert set(functions) == {"PollerFunction", "SlackNotifierFunction"}  # Slack: tests/test_template_slack.py
    function = functions["PollerFunction"]["Properties"]
    assert function["Runtime"] == RUNTIME
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "app.lambda_handler"
    assert function["Timeout"] == 600 and function["MemorySize"] == 512

    layer = sam["Resources"]["ExportwatchLayer"]
    assert layer["Metadata"]["BuildMethod"] == RUNTIME
    assert layer["Properties"]["CompatibleRuntimes"] == [RUNTIME]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["ContentUri"] == "layers/exportwatch/"
    assert sam["Resources"]["PollerFunction"]["Properties"]["Layers"] == [{"Ref": "ExportwatchLayer"}]


def test_env_var_names_are_the_design_ones(sam: dict[str, Any]) -> None:
    env = sam["Resources"]["PollerFunction"]["Properties"]["Environment"]["Variables"]
    assert set(env) == EXPECTED_ENV
    design = design_section_names("Environment")
    assert {n for n in env if not n.startswith("POWERTOOLS_")} <= design
    assert env["JOBS_TABLE"] == {"Ref": "JobsTable"}
    assert env["EXPORT_BUCKET"] == {"Ref": "ExportBucket"}
    assert env["NOTIFY_TOPIC_ARN"] == {"Ref": "NotifyTopic"}
    assert env["INTERCOM_TOKEN_SECRET"] == {"Ref": "IntercomTokenSecret"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "exportwatch"


def test_log_group_has_retention(cfn: dict[str, Any]) -> None:
    groups = resources_of_type(cfn, "AWS::Logs::LogGroup").values()
    assert any(
        g["Properties"].get("LogGroupName") == {"Fn::Sub": "/aws/lambda/${PollerFunction}"}
        and g["Properties"].get("RetentionInDays") == 30
        for g in groups
    )


def test_email_subscription_only_under_a_condition(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    assert sam["Parameters"]["NotificationEmail"]["Default"] == ""
    subscriptions = resources_of_type(cfn, "AWS::SNS::Subscription")
    assert set(subscriptions) == {
        "NotifyEmailSubscription",
        "SlackNotifierFunctionNotification",
        "AlarmEmailSubscription",  # the operators' alarm e-mail (test_alarms_* below)
    }
    subscription = subscriptions["NotifyEmailSubscription"]
    assert subscription["Condition"] == "HasEmail"
    assert subscription["Properties"]["Protocol"] == "email"
    assert cfn["Conditions"]["HasEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "NotificationEmail"}, ""]}]}


def test_parameters_and_outputs(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    assert params["IntercomApiUrl"]["Default"] == "https://api.intercom.io"
    assert set(params["IntercomApiUrl"]["AllowedValues"]) == {
        "https://api.intercom.io",
        "https://api.eu.intercom.io",
        "https://api.au.intercom.io",
    }
    assert params["IntercomVersion"]["Default"] == "2.16"
    assert params["ExportPrefix"]["Default"] == "intercom-exports/"
    assert params["LeaseSeconds"]["Default"] == 900
    assert params["LogLevel"]["Default"] == "INFO"
    outputs = {o["Value"]["Ref"] for o in sam["Outputs"].values() if "Condition" not in o}
    assert outputs == {"JobsTable", "ExportBucket", "NotifyTopic", "IntercomTokenSecret", "PollerFunction"}


# ------------------------------------------------------------------------------------- early warnings


def test_warning_thresholds_are_parameters_passed_to_the_poller(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    env = sam["Resources"]["PollerFunction"]["Properties"]["Environment"]["Variables"]
    for param, variable, high in (
        ("ExpiryWarningHours", "EXPIRY_WARNING_HOURS", 47),
        ("StuckAfterHours", "STUCK_AFTER_HOURS", 168),
    ):
        assert params[param]["Type"] == "Number" and params[param]["Default"] == 12
        assert (params[param]["MinValue"], params[param]["MaxValue"]) == (1, high)  # the bounds config.py enforces
        assert env[variable] == {"Ref": param}


# ------------------------------------------------------------------------------------- operations: alarms

ALARMS = {"PollerErrorsAlarm", "PollerNotRunningAlarm", "ExportNotCopiedAlarm", "SlackDeadLetterAlarm"}
ALARM_ACTIONS = {
    "Fn::If": [
        "HasAlarmAction",
        [
            {"Fn::If": ["HasAlarmEmail", {"Ref": "AlarmTopic"}, {"Ref": "AWS::NoValue"}]},
            {"Fn::If": ["HasAlarmTopicArn", {"Ref": "AlarmTopicArn"}, {"Ref": "AWS::NoValue"}]},
        ],
        {"Ref": "AWS::NoValue"},
    ]
}


def test_alarms_exist_and_notify_the_optional_alarm_topic(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    alarms = resources_of_type(cfn, "AWS::CloudWatch::Alarm")
    assert set(alarms) == ALARMS
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == ALARM_ACTIONS and props["OKActions"] == ALARM_ACTIONS, logical_id
        assert props["AlarmDescription"].startswith("exportwatch: "), logical_id
    assert alarms["SlackDeadLetterAlarm"]["Condition"] == "HasSlack"
    assert all("Condition" not in alarms[a] for a in ALARMS - {"SlackDeadLetterAlarm"})

    params = sam["Parameters"]
    assert params["AlarmEmail"]["Default"] == "" and params["AlarmTopicArn"]["Default"] == ""
    pattern = re.compile(params["AlarmTopicArn"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("arn:aws:sns:eu-west-1:123456789012:oncall")
    assert not pattern.fullmatch("oncall@example.com")
    conditions = cfn["Conditions"]
    assert conditions["HasAlarmAction"] == {
        "Fn::Or": [{"Condition": "HasAlarmEmail"}, {"Condition": "HasAlarmTopicArn"}]
    }
    topic = cfn["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and topic["Condition"] == "HasAlarmEmail"
    subscription = cfn["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_alarm_on_poller_errors(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["PollerErrorsAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PollerFunction"}}]
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert props["TreatMissingData"] == "notBreaching"


def test_alarm_when_the_poller_has_not_run_for_three_intervals(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["PollerNotRunningAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Invocations", "Sum")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PollerFunction"}}]
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "LessThanThreshold")
    assert props["EvaluationPeriods"] == props["DatapointsToAlarm"] == 3
    assert props["TreatMissingData"] == "breaching"  # no invocation means no data point at all
    # Period = PollIntervalMinutes * 60, picked from a list by the parameter: check it for every allowed value.
    index, (delimiter, listing) = props["Period"]["Fn::Select"][0], props["Period"]["Fn::Select"][1]["Fn::Split"]
    assert index == {"Ref": "PollIntervalMinutes"}
    periods = [int(p) for p in listing.split(delimiter)]
    interval = sam["Parameters"]["PollIntervalMinutes"]
    for minutes in range(interval["MinValue"], interval["MaxValue"] + 1):
        assert periods[minutes] == minutes * 60
    assert 3 * periods[interval["MaxValue"]] <= 86400  # CloudWatch: evaluation range at most one day


def test_alarm_on_an_export_not_copied_within_an_hour(cfn: dict[str, Any]) -> None:
    from exportwatch.observability import cycle_metrics
    from exportwatch.poll import CycleSummary, JobResult

    props = cfn["Resources"]["ExportNotCopiedAlarm"]["Properties"]
    # The metric is what the poller sends for an export waiting for its copy (name and unit).
    waiting = CycleSummary(owner="t", due=1, results=[JobResult("abc", "retry", uncopied_seconds=4000)])
    assert (props["MetricName"], "Seconds", 4000) in cycle_metrics(waiting)
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (
        "exportwatch",
        "OldestUncopiedAge",
        "Maximum",
    )
    env = cfn["Resources"]["PollerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "exportwatch" and env["POWERTOOLS_SERVICE_NAME"] == "exportwatch"
    assert props["Dimensions"] == [{"Name": "service", "Value": "exportwatch"}]  # Powertools' default dimension
    assert (props["Threshold"], props["ComparisonOperator"]) == (3600, "GreaterThanOrEqualToThreshold")
    assert props["TreatMissingData"] == "notBreaching"  # sent only while an export waits for its copy


def test_alarm_on_the_slack_dead_letter_queue(cfn: dict[str, Any]) -> None:
    props = cfn["Resources"]["SlackDeadLetterAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert props["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["SlackNotifierDeadLetterQueue", "QueueName"]}}
    ]
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_no_tracer(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    """Tracer (X-Ray) is off: its import costs ~0.5 s of cold start (a comment in template.yaml says so)."""
    assert "Tracing" not in sam.get("Globals", {}).get("Function", {})
    for function in resources_of_type(cfn, "AWS::Lambda::Function").values():
        assert "TracingConfig" not in function["Properties"]
        assert not any(k.startswith("POWERTOOLS_TRACE") for k in function["Properties"]["Environment"]["Variables"])
    assert "no Tracer" in TEMPLATE.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------- security checks


def test_topic_is_encrypted_with_the_aws_managed_sns_key(sam: dict[str, Any]) -> None:
    assert sam["Resources"]["NotifyTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"


def test_every_checkov_skip_has_a_written_reason(sam: dict[str, Any]) -> None:
    """`make security` (checkov) passes only because of these skips: each must say why, on its resource."""
    skips = []
    for logical_id, resource in sam["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips.append((logical_id, skip))
            assert set(skip) == {"id", "comment"}, (logical_id, skip)
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
            comment = " ".join(str(skip["comment"]).split())
            assert len(comment) >= 40 and comment.endswith((".", ")")), (logical_id, skip["id"], comment)
    assert skips
    ids = [(logical_id, skip["id"]) for logical_id, skip in skips]
    assert len(ids) == len(set(ids))  # one reason per check per resource
    # Fixed rather than skipped: the notification topic's encryption (CKV_AWS_26).
    assert ("NotifyTopic", "CKV_AWS_26") not in ids
