"""exportwatch_local.localstack against a real moto server: resources follow template.yaml; SNS -> SQS works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exportwatch_local.localstack import (
    LocalStack,
    MotoServer,
    aws_client,
    create_resources,
    find_template,
    load_template,
    receive_notifications,
    subscribe_queue,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    result: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return result


# ------------------------------------------------------------------------------------- template loading


def test_load_template_turns_short_tags_into_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "AWSTemplateFormatVersion: 2010-09-09\n"
        "Conditions:\n"
        "  C: !Not [!Equals [!Ref P, '']]\n"
        "Resources:\n"
        "  R:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      A: !GetAtt B.Arn\n"
        "      B: !GetAtt [B, Arn]\n"
        "      S: !Sub '${B.Arn}/*'\n"
        "      L: !Sub ['x-${v}', {v: !Ref AWS::Region}]\n"
        "      I: !If [C, !Ref P, !Ref AWS::NoValue]\n"
        "      J: !Join ['', [a, !Select [0, !GetAZs '']]]\n"
        "      K: !Condition C\n",
        encoding="utf-8",
    )
    t = load_template(path)
    assert t["AWSTemplateFormatVersion"] == "2010-09-09"
    assert t["Conditions"]["C"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]}
    p = t["Resources"]["R"]["Properties"]
    assert p["A"] == p["B"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert p["S"] == {"Fn::Sub": "${B.Arn}/*"}
    assert p["L"] == {"Fn::Sub": ["x-${v}", {"v": {"Ref": "AWS::Region"}}]}
    assert p["I"] == {"Fn::If": ["C", {"Ref": "P"}, {"Ref": "AWS::NoValue"}]}
    assert p["J"] == {"Fn::Join": ["", ["a", {"Fn::Select": [0, {"Fn::GetAZs": ""}]}]]}
    assert p["K"] == {"Condition": "C"}


def test_find_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_template(TEMPLATE) == TEMPLATE
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        find_template(tmp_path / "nope.yaml")
    monkeypatch.chdir(tmp_path)
    assert find_template().resolve() == TEMPLATE.resolve()  # falls back to the checkout's root
    (tmp_path / "template.yaml").write_text("Resources: {}\n", encoding="utf-8")
    assert find_template() == tmp_path / "template.yaml"  # ./template.yaml wins


def test_moto_server_context_manager() -> None:
    server = MotoServer()
    with pytest.raises(RuntimeError):
        _ = server.endpoint_url
    with server as running:
        assert running.endpoint_url.startswith("http://127.0.0.1:")
        # moto keeps its state per process, so other tests' topics may be listed: only the answer matters.
        assert isinstance(aws_client("sns", running.endpoint_url).list_topics()["Topics"], list)
    with pytest.raises(RuntimeError):
        _ = server.endpoint_url


# ------------------------------------------------------------------------------------- resources


def test_table_follows_the_template(stack: LocalStack, template: dict[str, Any]) -> None:
    expected = props(template, "JobsTable")
    ddb = aws_client("dynamodb", stack.endpoint_url)
    table = ddb.describe_table(TableName=stack.table_name)["Table"]
    assert table["KeySchema"] == expected["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        expected["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    assert table["BillingModeSummary"]["BillingMode"] == expected["BillingMode"]
    got = [{k: gsi[k] for k in ("IndexName", "KeySchema", "Projection")} for gsi in table["GlobalSecondaryIndexes"]]
    assert got == expected["GlobalSecondaryIndexes"]
    ttl = ddb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert ttl["AttributeName"] == expected["TimeToLiveSpecification"]["AttributeName"] == "ttl"


def test_due_index_query_works(stack: LocalStack) -> None:
    ddb = aws_client("dynamodb", stack.endpoint_url)
    for i, shard in enumerate(["due", "due", None]):
        item = {"job_identifier": {"S": f"job-{i}"}, "next_check_at": {"N": str(100 + i)}}
        if shard:
            item["due_shard"] = {"S": shard}
        ddb.put_item(TableName=stack.table_name, Item=item)
    result = ddb.query(
        TableName=stack.table_name,
        IndexName="due-index",
        KeyConditionExpression="due_shard = :d AND next_check_at <= :now",
        ExpressionAttributeValues={":d": {"S": "due"}, ":now": {"N": "1000"}},
    )
    assert [i["job_identifier"]["S"] for i in result["Items"]] == ["job-0", "job-1"]  # sparse


def test_bucket_follows_the_template(stack: LocalStack, template: dict[str, Any]) -> None:
    expected = props(template, "ExportBucket")
    s3 = aws_client("s3", stack.endpoint_url)
    pab = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert pab == expected["PublicAccessBlockConfiguration"]
    (rule,) = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    # botocore names this member ApplyServerSideEncryptionByDefault (recent) or ServerSideEncryptionByDefault.
    default = rule.get("ApplyServerSideEncryptionByDefault") or rule["ServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=stack.bucket)["Status"] == "Enabled"
    ownership = s3.get_bucket_ownership_controls(Bucket=stack.bucket)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=stack.bucket)["Rules"]
    abort = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert abort and abort[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert abort[0]["Status"] == "Enabled"
    assert any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 30 for r in rules)
    # The TLS-only bucket policy is not applied locally: the moto endpoint is plain HTTP (and moto enforces Deny).
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=stack.bucket)

    # Multipart works end to end, including the abort the poller relies on.
    upload = s3.create_multipart_upload(Bucket=stack.bucket, Key="intercom-exports/x.gz")
    s3.abort_multipart_upload(Bucket=stack.bucket, Key="intercom-exports/x.gz", UploadId=upload["UploadId"])
    assert s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []) == []


def test_secret_holds_the_token(moto_server: MotoServer) -> None:
    stack = create_resources(moto_server.endpoint_url, token="tok-123", template=TEMPLATE, suffix="secret1")
    sm = aws_client("secretsmanager", stack.endpoint_url)
    assert sm.get_secret_value(SecretId=stack.secret_id)["SecretString"] == "tok-123"
    assert stack.secret_id.startswith("arn:aws:secretsmanager:us-east-1:")


def test_suffix_isolates_and_is_validated(moto_server: MotoServer, stack: LocalStack) -> None:
    other = create_resources(moto_server.endpoint_url, token="t", template=TEMPLATE, suffix="other1")
    assert {other.table_name, other.bucket, other.topic_arn, other.secret_id}.isdisjoint(
        {stack.table_name, stack.bucket, stack.topic_arn, stack.secret_id}
    )
    with pytest.raises(ValueError, match="suffix"):
        create_resources(moto_server.endpoint_url, token="t", template=TEMPLATE, suffix="Bad_Suffix")


def test_env(stack: LocalStack) -> None:
    env = stack.env(INTERCOM_API_URL="http://127.0.0.1:1")
    assert env["JOBS_TABLE"] == stack.table_name
    assert env["EXPORT_BUCKET"] == stack.bucket
    assert env["NOTIFY_TOPIC_ARN"] == stack.topic_arn
    assert env["INTERCOM_TOKEN_SECRET"] == stack.secret_id
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint_url
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    assert env["INTERCOM_API_URL"] == "http://127.0.0.1:1"


# ------------------------------------------------------------------------------------- SNS -> SQS


def test_sns_to_sqs_with_attributes_and_filter_policy(stack: LocalStack) -> None:
    everything = subscribe_queue(stack.endpoint_url, stack.topic_arn)
    completed_only = subscribe_queue(stack.endpoint_url, stack.topic_arn, filter_policy={"outcome": ["completed"]})
    sns = aws_client("sns", stack.endpoint_url)
    for outcome in ("completed", "failed"):
        sns.publish(
            TopicArn=stack.topic_arn,
            Subject=f"export {outcome}",
            Message=json.dumps({"job_identifier": "abc", "outcome": outcome}),
            MessageAttributes={
                "outcome": {"DataType": "String", "StringValue": outcome},
                "job_identifier": {"DataType": "String", "StringValue": "abc"},
            },
        )
    sns.publish(TopicArn=stack.topic_arn, Message="not json", MessageAttributes={})

    (got,) = receive_notifications(stack.endpoint_url, completed_only, expect=1, timeout=5)
    assert got.subject == "export completed"
    assert got.body == {"job_identifier": "abc", "outcome": "completed"}
    assert json.loads(got.message) == got.body
    assert got.attributes == {"outcome": "completed", "job_identifier": "abc"}
    assert got.envelope["TopicArn"] == stack.topic_arn
    assert receive_notifications(stack.endpoint_url, completed_only, timeout=1.5) == []  # filtered, deleted

    all_three = receive_notifications(stack.endpoint_url, everything, expect=3, timeout=5)
    assert sorted(n.attributes.get("outcome", "-") for n in all_three) == ["-", "completed", "failed"]
    plain = next(n for n in all_three if n.message == "not json")
    assert plain.body is None and plain.subject is None and plain.attributes == {}
    assert receive_notifications(stack.endpoint_url, everything, timeout=1.5) == []
