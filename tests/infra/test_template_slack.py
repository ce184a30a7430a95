"""template.yaml, the people-facing parts: the Slack notifier (conditional), its dead-letter queue, the filter policies.

Transform + cfn-lint of the whole template is in tests/infra/test_template.py; the helpers shared with it are in
tests/support/template.py, the `sam` and `cfn` fixtures in tests/infra/conftest.py.
"""

from __future__ import annotations

import re
from typing import Any

from exportwatch.model import Event
from exportwatch.notifier import Notifier, notification_for
from exportwatch.slack import CONNECT_TIMEOUT, MAX_RETRY_AFTER_WAIT, READ_TIMEOUT
from exportwatch_local.localstack import LocalStack, aws_client, receive_notifications, subscribe_queue
from exportwatch_local.samples import SAMPLE_JOBS
from support.template import as_list, policy_statements, referenced_ids, resources_of_type

ALL_EVENTS = {e.value for e in Event}
SLACK_RESOURCES = {
    "SlackNotifierFunction",
    "SlackNotifierFunctionRole",
    "SlackNotifierFunctionEventInvokeConfig",
    "SlackNotifierFunctionNotification",  # the SNS subscription
    "SlackNotifierFunctionNotificationPermission",  # SNS may invoke it
    "SlackNotifierDeadLetterQueue",
    "SlackNotifierLogGroup",
}


def test_outcome_parameters_default_to_every_event(sam: dict[str, Any]) -> None:
    for name in ("EmailEvents", "SlackEvents"):
        param = sam["Parameters"][name]
        assert param["Type"] == "CommaDelimitedList"
        assert param["Default"].split(",") == [e.value for e in Event]
        assert set(param["AllowedValues"]) == ALL_EVENTS  # a typo in an outcome fails the deployment


def test_webhook_secret_parameter_holds_an_id_never_a_url(sam: dict[str, Any]) -> None:
    param = sam["Parameters"]["SlackWebhookSecretId"]
    assert param["Type"] == "String" and param["Default"] == ""
    pattern = re.compile(param["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("exportwatch/slack-webhook")
    assert not pattern.fullmatch("https://hooks.slack.com/services/T0/B0/X")  # a URL is refused outright
    assert not pattern.fullmatch("arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf")  # name only
    assert not any("url" in name.lower() and "slack" in name.lower() for name in sam["Parameters"])


def test_slack_exists_only_under_has_slack(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    assert cfn["Conditions"]["HasSlack"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SlackWebhookSecretId"}, ""]}]}
    slack = {k for k in cfn["Resources"] if k.startswith("SlackNotifier")}
    assert slack == SLACK_RESOURCES
    for logical_id in slack:
        assert cfn["Resources"][logical_id].get("Condition") == "HasSlack", logical_id
    for output in ("SlackNotifierFunctionName", "SlackDeadLetterQueueUrl"):
        assert sam["Outputs"][output]["Condition"] == "HasSlack"
    # Nothing unconditional points at a conditional resource.
    for logical_id, resource in cfn["Resources"].items():
        if resource.get("Condition") != "HasSlack":
            assert not referenced_ids(resource.get("Properties", {})) & slack, logical_id


def test_subscriptions_filter_on_the_event_attribute(cfn: dict[str, Any]) -> None:
    subscriptions = resources_of_type(cfn, "AWS::SNS::Subscription")
    email = subscriptions["NotifyEmailSubscription"]["Properties"]
    slack = subscriptions["SlackNotifierFunctionNotification"]["Properties"]
    assert email["FilterPolicy"] == {"event": {"Ref": "EmailEvents"}}
    assert slack["FilterPolicy"] == {"event": {"Ref": "SlackEvents"}}
    for props in (email, slack):
        assert props["FilterPolicyScope"] == "MessageAttributes"
        assert props["TopicArn"] == {"Ref": "NotifyTopic"}
    assert slack["Protocol"] == "lambda"
    assert slack["Endpoint"] == {"Fn::GetAtt": ["SlackNotifierFunction", "Arn"]}
    permission = cfn["Resources"]["SlackNotifierFunctionNotificationPermission"]["Properties"]
    assert permission["Principal"] == "sns.amazonaws.com" and permission["SourceArn"] == {"Ref": "NotifyTopic"}


def test_failed_posts_are_retried_then_kept_in_the_dead_letter_queue(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    source = sam["Resources"]["SlackNotifierFunction"]["Properties"]["EventInvokeConfig"]
    assert source["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    config = cfn["Resources"]["SlackNotifierFunctionEventInvokeConfig"]["Properties"]
    assert config["FunctionName"] == {"Ref": "SlackNotifierFunction"}
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] >= 3600
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["SlackNotifierDeadLetterQueue", "Arn"]
    }
    queue = cfn["Resources"]["SlackNotifierDeadLetterQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True


def test_slack_role_can_read_its_secret_and_write_its_queue_and_nothing_else(
    sam: dict[str, Any], cfn: dict[str, Any]
) -> None:
    policies = sam["Resources"]["SlackNotifierFunction"]["Properties"]["Policies"]
    assert [next(iter(p)) for p in policies] == ["AWSSecretsManagerGetSecretValuePolicy"]
    granted: dict[str, list[Any]] = {}
    for role_id, statement in policy_statements(cfn):
        if role_id == "SlackNotifierFunctionRole":
            for action in as_list(statement["Action"]):
                granted.setdefault(action, []).extend(as_list(statement["Resource"]))
    assert set(granted) == {"secretsmanager:GetSecretValue", "sqs:SendMessage"}
    (secret,) = granted["secretsmanager:GetSecretValue"]
    assert referenced_ids(secret) == {"SlackWebhookSecretId"}
    assert "${SlackWebhookSecretId}-??????" in str(secret)  # exactly that secret (name + random suffix)
    assert ":secret:" in str(secret) and "*" not in str(secret)
    assert granted["sqs:SendMessage"] == [{"Fn::GetAtt": ["SlackNotifierDeadLetterQueue", "Arn"]}]
    role = cfn["Resources"]["SlackNotifierFunctionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]


def test_slack_function_shape(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    source = sam["Resources"]["SlackNotifierFunction"]["Properties"]
    assert source["CodeUri"] == "functions/slack_notifier/"
    assert source["Layers"] == [{"Ref": "ExportwatchLayer"}]  # the same layer as the poller
    env = source["Environment"]["Variables"]
    assert set(env) == {"SLACK_WEBHOOK_SECRET", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"}
    assert env["SLACK_WEBHOOK_SECRET"] == {"Ref": "SlackWebhookSecretId"}  # the id; the URL stays in the secret
    assert not any(isinstance(v, str) and "://" in v for v in env.values())
    (event,) = source["Events"].values()
    assert event["Type"] == "SNS" and event["Properties"]["Topic"] == {"Ref": "NotifyTopic"}

    function = cfn["Resources"]["SlackNotifierFunction"]["Properties"]
    poller = cfn["Resources"]["PollerFunction"]["Properties"]
    for key in ("Runtime", "Architectures", "Handler", "Layers"):
        assert function[key] == poller[key], key
    # Room for one post, a Retry-After wait and the post after it, before Lambda's own timeout.
    assert function["Timeout"] >= CONNECT_TIMEOUT + READ_TIMEOUT + MAX_RETRY_AFTER_WAIT + 5
    groups = resources_of_type(cfn, "AWS::Logs::LogGroup")
    assert groups["SlackNotifierLogGroup"]["Properties"] == {
        "LogGroupName": {"Fn::Sub": "/aws/lambda/${SlackNotifierFunction}"},
        "RetentionInDays": 30,
    }


def test_a_filter_policy_like_the_templates_selects_outcomes(stack: LocalStack) -> None:
    """The attribute the template filters on is the one the notifier sets: SlackEvents=failures only."""
    failures_only = {"event": ["export.failed", "export.not_found", "export.expired"]}
    queue = subscribe_queue(stack.endpoint_url, stack.topic_arn, filter_policy=failures_only)
    notifier = Notifier(aws_client("sns", stack.endpoint_url), stack.topic_arn)
    for job in SAMPLE_JOBS.values():
        notifier.publish(notification_for(job))
    expected = [notification_for(j).event.value for j in SAMPLE_JOBS.values()]
    wanted = sorted(e for e in expected if e in failures_only["event"])
    got = receive_notifications(stack.endpoint_url, queue, expect=len(wanted), timeout=5)
    got += receive_notifications(stack.endpoint_url, queue, timeout=1.5)  # and nothing else arrives
    assert sorted(n.attributes["event"] for n in got) == wanted
