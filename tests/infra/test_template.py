"""template.yaml: SAM transform + cfn-lint in-process, then the security and wiring properties we rely on."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any

from cfnlint.api import lint
from hypothesis import given, settings
from hypothesis import strategies as st

from exportwatch.archive import ZIP, object_key
from exportwatch.config import ConfigError, Settings
from exportwatch.store import DUE_INDEX
from exportwatch_local.localstack import load_template
from support.template import as_list, policy_statements, referenced_ids, resources_of_type, sam_transform

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    "DEFAULT_DAILY_START",
    "DEFAULT_WINDOW_DAYS",
    "WINDOW_MAX_ATTEMPTS",
    "INTERCOM_APP_ID",
    "INTERCOM_CLIENT_ID",
    "DEFAULT_DAILY_DATASETS",
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
# Parameters that may narrow a resource of the stack (never stand for one on their own).
NARROWING_PARAMETERS = {"ExportPrefix"}
# Parameters that name resources outside the stack, by the action's service prefix: the workspaces' token secrets
# (non-empty name prefix; test_template_workspaces.py checks what the grant covers).
EXTERNAL_PREFIX_PARAMETERS = {"secretsmanager": {"WorkspaceTokenSecretPrefix"}}
# Metrics go out as EMF in the logs, so no statement needs a "*" resource.
STAR_ALLOWED_ACTIONS: set[str] = set()
SAM_DEFAULT_MANAGED_POLICIES = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


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


def design_section_names(heading: str) -> set[str]:
    """Backticked identifiers in the docs/design.md section whose `## ` heading starts with `heading`."""
    text = DESIGN.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"design.md has no section {heading!r}"
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", match.group(1)))


# ------------------------------------------------------------------------------------- transform + lint


def test_transforms_and_lints_clean(cfn: dict[str, Any]) -> None:
    assert lint_errors(cfn) == []


def test_source_template_lints_clean() -> None:
    """cfn-lint on template.yaml itself too (it runs its own SAM transform)."""
    matches = lint(TEMPLATE.read_text(encoding="utf-8"), regions=[REGION])
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def test_pipeline_catches_a_ref_typo(tmp_path: Path) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "Resource: !GetAtt JobsTable.Arn" in text
    broken = tmp_path / "template.yaml"
    broken.write_text(
        text.replace("Resource: !GetAtt JobsTable.Arn", "Resource: !GetAtt JobTable.Arn"), encoding="utf-8"
    )
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
            refs = referenced_ids(resource) - NARROWING_PARAMETERS
            allowed = set().union(
                *(SCOPED_TARGETS.get(s, set()) | EXTERNAL_PREFIX_PARAMETERS.get(s, set()) for s in services)
            )
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
        "s3:PutObject": {"ExportBucket", "ExportPrefix"},
        "s3:AbortMultipartUpload": {"ExportBucket", "ExportPrefix"},
        "sns:Publish": {"NotifyTopic"},
        "secretsmanager:GetSecretValue": {"IntercomTokenSecret", "WorkspaceTokenSecretPrefix"},
        "dynamodb:GetItem": {"JobsTable"},
        "dynamodb:ConditionCheckItem": {"JobsTable"},
    }
    for action, targets in expected.items():
        assert by_action.get(action) == targets, (action, by_action.get(action))
    # Publishing to the encrypted topic needs its key (the statement is checked in the scoping test above).
    assert "kms:GenerateDataKey" in by_action and "kms:Decrypt" in by_action


def test_sam_uses_policy_templates_and_only_default_managed_policy(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    policies = sam["Resources"]["PollerFunction"]["Properties"]["Policies"]
    templates = {next(iter(p)) for p in policies}
    # No DynamoDBCrudPolicy or S3WritePolicy: they grant more than the poller calls (test_poller_role_* below).
    assert templates == {"Statement", "SNSPublishMessagePolicy", "AWSSecretsManagerGetSecretValuePolicy"}
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
    assert types == {"job_identifier": "S", "due_shard": "S", "next_check_at": "N", "ledger": "S", "ledger_sort": "S"}
    gsi, _ledger = props["GlobalSecondaryIndexes"]  # ledger-index: test_template_workspaces.py
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
    assert set(functions) == {"PollerFunction", "SlackNotifierFunction"}  # Slack: test_template_slack.py
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


# ------------------------------------------------------------------------------------- least privilege
# Nothing running as the poller can expire, expose or delete the archive, forge a notification's sender, or
# read the token it does not need; the parameters these rest on are checked against the app's own rules.

ACCOUNT = "123456789012"
BUCKET = "exportwatch-exports-abc"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:exportwatch-NotifyTopic-AbC"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:IntercomTokenSecret-AbCdEf"
POLLER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/exportwatch-PollerFunctionRole-AbC123"
# Other principals of the account: an administrator, the account root, a role whose name starts like the poller's.
OTHERS = (
    f"arn:aws:iam::{ACCOUNT}:role/Admin",
    f"arn:aws:iam::{ACCOUNT}:root",
    f"arn:aws:iam::{ACCOUNT}:user/alice",
    f"{POLLER_ROLE}-copy",
)
# What a stack resolves names to (a stand-in for CloudFormation); parameters are added per test.
STACK_NAMES: dict[str, Any] = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "ExportBucket": BUCKET,
    "ExportBucket.Arn": f"arn:aws:s3:::{BUCKET}",
    "JobsTable": "exportwatch-JobsTable-AbC",
    "JobsTable.Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/exportwatch-JobsTable-AbC",
    "NotifyTopic": TOPIC_ARN,
    "NotifyTopic.TopicName": TOPIC_ARN.rsplit(":", 1)[1],
    "IntercomTokenSecret": SECRET_ARN,
    "PollerFunctionRole.Arn": POLLER_ROLE,
    "SlackNotifierFunctionRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/exportwatch-SlackNotifierFunctionRole-X",
}
# A valid environment for Settings.from_env: the app's rules are the other side of each parameter's constraint.
APP_ENV = {
    "JOBS_TABLE": "exportwatch-jobs",
    "EXPORT_BUCKET": BUCKET,
    "NOTIFY_TOPIC_ARN": TOPIC_ARN,
    "INTERCOM_TOKEN_SECRET": SECRET_ARN,
}
# Actions that could expire, expose or delete exports or the job records (concrete names and families).
FORBIDDEN_ACTIONS = (
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutBucketVersioning",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketOwnershipControls",
    "s3:PutEncryptionConfiguration",
    "s3:PutReplicationConfiguration",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "dynamodb:DeleteItem",
    "dynamodb:Scan",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteTable",
    "dynamodb:UpdateTable",
    "dynamodb:UpdateTimeToLive",
)
FORBIDDEN_FAMILIES = (
    "s3:Delete*",
    "s3:PutBucket*",
    "s3:*Configuration",
    "s3:*Acl",
    "dynamodb:Delete*",
    "dynamodb:Batch*",
)


def resolve(value: Any, names: dict[str, Any], conditions: dict[str, Any] | None = None) -> Any:
    """Evaluate a template value's intrinsics the way CloudFormation would for a stack whose Ref/GetAtt/Sub names
    resolve through `names`; Fn::If evaluates the template's `conditions`. An unknown name raises KeyError."""
    conditions = conditions or {}

    def ev(v: Any) -> Any:
        if isinstance(v, list):
            return [ev(item) for item in v]
        if not isinstance(v, dict):
            return v
        if len(v) != 1 or not (next(iter(v)) in ("Ref", "Condition") or next(iter(v)).startswith("Fn::")):
            return {k: ev(item) for k, item in v.items()}
        ((key, arg),) = v.items()
        match key:
            case "Ref":
                return names[arg]
            case "Fn::GetAtt":
                return names[".".join(arg) if isinstance(arg, list) else arg]
            case "Fn::Sub":
                text, variables = (arg[0], ev(arg[1])) if isinstance(arg, list) else (arg, {})
                return re.sub(
                    r"\$\{([^}!]+)\}", lambda m: str(variables[m[1]] if m[1] in variables else names[m[1]]), text
                )
            case "Fn::Join":
                return arg[0].join(str(item) for item in _flat(ev(arg[1])))
            case "Fn::Split":
                return str(ev(arg[1])).split(arg[0])
            case "Fn::If":
                return ev(arg[1] if ev(conditions[arg[0]]) else arg[2])
            case "Condition":
                return ev(conditions[arg])
            case "Fn::Equals":
                return ev(arg[0]) == ev(arg[1])
            case "Fn::Not":
                return not ev(arg[0])
            case "Fn::Or":
                return any(ev(a) for a in arg)
            case "Fn::And":
                return all(ev(a) for a in arg)
        raise NotImplementedError(key)

    return ev(value)


def _flat(value: Any) -> list[Any]:
    return [x for item in as_list(value) for x in _flat(item)] if isinstance(value, list) else [value]


def _matches(value: str, patterns: Any) -> bool:
    """IAM's wildcard match (* and ?), case-insensitive as action names are."""
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in as_list(patterns))


def resource_policy_decision(statements: list[dict[str, Any]], principal: str | None, action: str) -> str:
    """'deny', 'allow' or 'none' for `principal` (None: an AWS service, which has no aws:PrincipalArn) calling
    `action`, from resolved resource-policy statements alone. Knows Principal "*" / {"AWS": arn} and the
    negated ARN operators on aws:PrincipalArn; any other condition fails the test rather than being guessed."""
    decisions = set()
    for statement in statements:
        if not _matches(action, statement["Action"]):
            continue
        who = statement["Principal"]
        if who != "*" and who != {"AWS": "*"} and principal not in as_list(who.get("AWS", [])):
            continue
        applies = True
        for operator, tests in statement.get("Condition", {}).items():
            ((key, values),) = tests.items()
            assert key.lower() == "aws:principalarn" and operator in ("ArnNotEquals", "ArnNotLike"), (operator, key)
            # A negated operator is true when the key is absent, or matches none of the values.
            matches_one = principal is not None and (
                principal in as_list(values) if operator == "ArnNotEquals" else _matches(principal, values)
            )
            applies = applies and not matches_one
        if applies:
            decisions.add(statement["Effect"].lower())
    return "deny" if "deny" in decisions else "allow" if "allow" in decisions else "none"


def role_grants(cfn: dict[str, Any], role_id: str) -> list[tuple[str, Any]]:
    """(action, resource) for every Allow of one role's inline policies."""
    grants = []
    for rid, statement in policy_statements(cfn):
        if rid == role_id and statement["Effect"] == "Allow":
            grants += [(a, r) for a in as_list(statement["Action"]) for r in as_list(statement["Resource"])]
    return grants


def app_settings(**env: str) -> Settings | None:
    """Settings the app builds with these variables set, or None if it refuses them."""
    try:
        return Settings.from_env(APP_ENV | env)
    except ConfigError:
        return None


def test_poller_role_grants_exactly_what_the_poller_calls(cfn: dict[str, Any]) -> None:
    """store.py (Query on due-index, PutItem, UpdateItem), archive.py (PutObject, multipart upload: its parts are
    s3:PutObject, the abort on a broken stream s3:AbortMultipartUpload), notifier.py (Publish), wiring.py
    (GetSecretValue), and the SNS key for the encrypted topic. Nothing else, no wildcard action."""
    actions = {action for action, _ in role_grants(cfn, "PollerFunctionRole")}
    assert actions == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "sns:Publish",
        "secretsmanager:GetSecretValue",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }


def test_poller_role_has_no_bucket_configuration_acl_or_delete_action(cfn: dict[str, Any]) -> None:
    """The issue's example: S3WritePolicy's s3:PutLifecycleConfiguration let code running as the poller add an
    expiry rule deleting every export. Checked both ways, so a granted wildcard (s3:Put*) is caught too."""
    granted = {action for action, _ in role_grants(cfn, "PollerFunctionRole")}
    for action in granted:
        assert not _matches(action, FORBIDDEN_FAMILIES), action
    for forbidden in FORBIDDEN_ACTIONS:
        assert not any(_matches(forbidden, action) for action in granted), forbidden


def test_poller_dynamodb_actions_are_listed_one_by_one(cfn: dict[str, Any]) -> None:
    """Item reads and writes on the table (GetItem and ConditionCheckItem: the scheduler's workspace read and its
    TransactWriteItems), Queries on its two indexes only: no Scan, DeleteItem, BatchWriteItem."""
    grants = {
        (action, resolve(resource, STACK_NAMES))
        for action, resource in role_grants(cfn, "PollerFunctionRole")
        if action.startswith("dynamodb:")
    }
    table = STACK_NAMES["JobsTable.Arn"]
    assert grants == {
        ("dynamodb:GetItem", table),
        ("dynamodb:PutItem", table),
        ("dynamodb:UpdateItem", table),
        ("dynamodb:ConditionCheckItem", table),
        ("dynamodb:Query", f"{table}/index/due-index"),
        ("dynamodb:Query", f"{table}/index/ledger-index"),
    }
    index = cfn["Resources"]["JobsTable"]["Properties"]["GlobalSecondaryIndexes"][0]["IndexName"]
    assert index == DUE_INDEX == "due-index"  # the index the poller queries is the one granted


def test_poller_writes_objects_only_under_the_export_prefix(cfn: dict[str, Any]) -> None:
    """Every S3 resource of the poller's role is bucket/<ExportPrefix>*, for an empty prefix and for nested ones:
    the key the poller writes is covered, a key beside or above the prefix and the bucket itself are not."""
    statements = [(a, r) for a, r in role_grants(cfn, "PollerFunctionRole") if a.startswith("s3:")]
    assert statements
    bucket_arn = STACK_NAMES["ExportBucket.Arn"]
    for prefix in ("intercom-exports/", "", "exports/2026/"):
        configured = app_settings(EXPORT_PREFIX=prefix)
        assert configured is not None and configured.export_prefix == prefix
        written = f"{bucket_arn}/{object_key(configured.export_prefix, 'orzzsbd7hk67xyu', ZIP)}"
        for action, resource in statements:
            arn = resolve(resource, STACK_NAMES | {"ExportPrefix": prefix})
            assert arn == f"{bucket_arn}/{prefix}*", (action, prefix, arn)
            assert _matches(written, arn), (action, prefix)
            assert not _matches(bucket_arn, arn), (action, prefix)
            if prefix:
                for outside in (f"{prefix[:-1]}-other/x.zip", "x.zip", f"other/{prefix}x.zip"):
                    assert not _matches(f"{bucket_arn}/{outside}", arn), (action, prefix, outside)


EXPORT_PREFIX_SAMPLES = (
    "",
    "intercom-exports/",
    "exports/2026/",
    "a.b/c_d/(x)!'/",
    "./",
    "intercom-exports",  # config.py would write under intercom-exports/, the ARN would be intercom-exports*
    "/abs/",
    "a//b/",
    "../up/",
    "a/../b/",
    "a..b/",
    "a*/",
    "*",
    "a b/",
    "a?/",
    "x" * 899 + "/",
    "x" * 900 + "/",
)


def _export_prefix_accepts(sam: dict[str, Any]) -> Any:
    param = sam["Parameters"]["ExportPrefix"]
    pattern = re.compile(param["AllowedPattern"])
    return lambda value: pattern.fullmatch(value) is not None and len(value) <= param["MaxLength"]


def test_export_prefix_parameter_is_exactly_the_prefix_the_app_writes_under(sam: dict[str, Any]) -> None:
    """What the template accepts, the app uses unchanged (no '/' appended, nothing refused) and holds no IAM
    wildcard, so ExportBucket/${ExportPrefix}* is the folder the exports go to and nothing beside it."""
    accepts = _export_prefix_accepts(sam)
    for value in EXPORT_PREFIX_SAMPLES:
        if accepts(value):
            configured = app_settings(EXPORT_PREFIX=value)
            assert configured is not None and configured.export_prefix == value, value
            assert not set(value) & set("*?$"), value  # wildcards and ${policy variables} in the ARN
    assert accepts(sam["Parameters"]["ExportPrefix"]["Default"])
    for value in ("", "intercom-exports/", "exports/2026/", "x" * 899 + "/"):
        assert accepts(value), value
    for value in ("intercom-exports", "/abs/", "a//b/", "../up/", "a/../b/", "a*/", "*", "x" * 900 + "/"):
        assert not accepts(value), value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.!_'()*?/- $", max_size=10))
def test_any_export_prefix_the_template_accepts_the_app_uses_unchanged(sam: dict[str, Any], value: str) -> None:
    if _export_prefix_accepts(sam)(value):
        configured = app_settings(EXPORT_PREFIX=value)
        assert configured is not None and configured.export_prefix == value
        assert not set(value) & set("*?$")


def test_only_the_poller_role_may_publish_to_the_notify_topic(cfn: dict[str, Any]) -> None:
    """A topic policy: the poller's role publishes; every other principal of the account (an admin, the root user,
    an AWS service) is denied sns:Publish, whatever its IAM grants; managing the topic is not denied."""
    policies = resources_of_type(cfn, "AWS::SNS::TopicPolicy")
    (policy,) = [p for p in policies.values() if {"Ref": "NotifyTopic"} in p["Properties"]["Topics"]]
    assert policy["Properties"]["Topics"] == [{"Ref": "NotifyTopic"}]
    statements = resolve(policy["Properties"]["PolicyDocument"]["Statement"], STACK_NAMES)
    assert all(s["Resource"] == TOPIC_ARN for s in statements)
    assert resource_policy_decision(statements, POLLER_ROLE, "sns:Publish") == "allow"
    for principal in (*OTHERS, STACK_NAMES["SlackNotifierFunctionRole.Arn"], None):
        assert resource_policy_decision(statements, principal, "sns:Publish") == "deny", principal
        for action in ("sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:SetTopicAttributes"):
            assert resource_policy_decision(statements, principal, action) != "deny", (principal, action)
    # No statement lets anyone but the poller's role publish.
    for statement in statements:
        if statement["Effect"] == "Allow" and _matches("sns:Publish", statement["Action"]):
            assert statement["Principal"] == {"AWS": POLLER_ROLE}, statement
    # The alarms' topic keeps its default policy: CloudWatch publishes to it.
    assert all(p["Properties"]["Topics"] == [{"Ref": "NotifyTopic"}] for p in policies.values())


def test_lease_outlasts_the_poller_timeout(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    """A cycle still working on a job (up to the function's Timeout) cannot have its lease taken over."""
    lease = sam["Parameters"]["LeaseSeconds"]
    timeout = cfn["Resources"]["PollerFunction"]["Properties"]["Timeout"]
    assert lease["MinValue"] > timeout
    assert lease["MinValue"] <= lease["Default"] <= lease["MaxValue"]
    for value in (lease["MinValue"], lease["MaxValue"]):  # both bounds are values the app takes
        configured = app_settings(LEASE_SECONDS=str(value))
        assert configured is not None and configured.lease_seconds == value
    assert cfn["Resources"]["PollerFunction"]["Properties"]["Environment"]["Variables"]["LEASE_SECONDS"] == {
        "Ref": "LeaseSeconds"
    }


def test_intercom_version_parameter_is_checked_like_the_app_checks_it(sam: dict[str, Any]) -> None:
    param = sam["Parameters"]["IntercomVersion"]
    pattern = re.compile(param["AllowedPattern"])
    for value in (param["Default"], "2.16", "2.9", "10.0", "Unstable"):
        assert pattern.fullmatch(value), value
        configured = app_settings(INTERCOM_VERSION=value)
        assert configured is not None and configured.intercom_version == value
    for value in ("", "2", "v2.16", "2.16.1", "unstable", "2.16 ", " 2.16", "2.16\n", "latest", "2.16;x"):
        assert not pattern.fullmatch(value), value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0129.Unstablev \n", max_size=8))
def test_any_intercom_version_the_template_accepts_the_app_accepts(sam: dict[str, Any], value: str) -> None:
    if re.fullmatch(sam["Parameters"]["IntercomVersion"]["AllowedPattern"], value):
        configured = app_settings(INTERCOM_VERSION=value)
        assert configured is not None and configured.intercom_version == value


def test_only_the_poller_role_and_named_operators_read_the_token(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    """A resource policy on the token secret denies GetSecretValue to every principal but the poller's role (and the
    ARNs in TokenReaderArns, empty by default). It denies nothing else: operators still put the token in, and can
    change or delete the policy to recover."""
    (policy,) = resources_of_type(cfn, "AWS::SecretsManager::ResourcePolicy").values()
    props = policy["Properties"]
    assert props["SecretId"] == {"Ref": "IntercomTokenSecret"}
    assert props["BlockPublicPolicy"] is True
    assert all(s["Effect"] == "Deny" for s in props["ResourcePolicy"]["Statement"])  # grants nothing itself

    operator = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Operator_0123abcd"
    default_readers = sam["Parameters"]["TokenReaderArns"]["Default"].split(",")  # CloudFormation: "" -> [""]
    for readers, allowed in (
        (default_readers, {POLLER_ROLE}),
        ([operator], {POLLER_ROLE, operator}),
        (
            [f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Operator_*"],
            {POLLER_ROLE, operator},
        ),
    ):
        names = STACK_NAMES | {"TokenReaderArns": readers}
        statements = resolve(props["ResourcePolicy"]["Statement"], names, cfn["Conditions"])
        for principal in (POLLER_ROLE, operator, *OTHERS, None):
            denied = resource_policy_decision(statements, principal, "secretsmanager:GetSecretValue") == "deny"
            assert denied == (principal not in allowed), (readers, principal)
            for action in (
                "secretsmanager:PutSecretValue",
                "secretsmanager:DescribeSecret",
                "secretsmanager:PutResourcePolicy",
                "secretsmanager:DeleteResourcePolicy",
            ):
                assert resource_policy_decision(statements, principal, action) == "none", (principal, action)

    pattern = re.compile(sam["Parameters"]["TokenReaderArns"]["AllowedPattern"])  # applied to each list item
    for value in ("", operator, f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:role/ops-*"):
        assert pattern.fullmatch(value), value
    # aws:PrincipalArn of an assumed role is the role's ARN: a session ARN or a bare id would never match.
    for value in ("*", "AROAEXAMPLEID", f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/alice", "ops"):
        assert not pattern.fullmatch(value), value

    skips = sam["Resources"]["IntercomTokenSecret"]["Metadata"]["checkov"]["skip"]
    (kms_skip,) = [s for s in skips if s["id"] == "CKV_AWS_149"]
    assert "IntercomTokenSecretPolicy" in kms_skip["comment"]  # the reason names what restricts the readers
