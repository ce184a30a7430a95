"""Local AWS for `exportwatch demo` and the tests: a moto server plus this stack's resources.

The resources are built from template.yaml's own definitions (key schema, GSI, TTL, bucket settings...), so
what runs locally cannot drift from what is deployed. PyYAML and moto are imported inside the functions that
need them: this module ships in the Lambda layer, where neither is installed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from types import TracebackType

    from mypy_boto3_sqs.type_defs import MessageTypeDef

__all__ = [
    "DUMMY_CREDENTIALS",
    "LocalStack",
    "MotoServer",
    "ReceivedNotification",
    "aws_client",
    "create_resources",
    "find_template",
    "load_template",
    "receive_notifications",
    "subscribe_queue",
]

TEMPLATE_NAME = "template.yaml"
DEFAULT_REGION = "us-east-1"
# moto's documented placeholder for every credential of a local server; never a real one.
_MOTO_PLACEHOLDER = "testing"
DUMMY_CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": _MOTO_PLACEHOLDER,
    "AWS_SECRET_ACCESS_KEY": _MOTO_PLACEHOLDER,
    "AWS_SESSION_TOKEN": _MOTO_PLACEHOLDER,
}
# Logical ids in template.yaml (docs/design.md).
TABLE_ID = "JobsTable"
BUCKET_ID = "ExportBucket"
TOPIC_ID = "NotifyTopic"
# A logical id, not a secret (ruff S105, bandit B105).
SECRET_ID = "IntercomTokenSecret"  # noqa: S105  # nosec B105

_SUFFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


# --------------------------------------------------------------------------------------------- template


def find_template(explicit: str | os.PathLike[str] | None = None) -> Path:
    """template.yaml: `explicit` if given, else ./template.yaml, else the repository root of this checkout."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"template not found: {path}")
        return path
    candidates = [Path.cwd() / TEMPLATE_NAME, Path(__file__).resolve().parents[2] / TEMPLATE_NAME]
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"{TEMPLATE_NAME} not found (tried {tried}); run from the exportwatch checkout or pass its path"
    )


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template; short-form tags (!Ref, !Sub...) become long-form dicts."""
    import yaml  # lazy: not in the Lambda layer

    class _CfnLoader(yaml.SafeLoader):
        pass

    # CloudFormation keeps unquoted dates as strings (e.g. AWSTemplateFormatVersion: 2010-09-09).
    _CfnLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:  # pragma: no cover - yaml has no other node kinds
            raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            resource, _, attribute = value.partition(".")
            return {"Fn::GetAtt": [resource, attribute]}
        return {f"Fn::{suffix}": value}

    _CfnLoader.add_multi_constructor("!", construct_intrinsic)
    with path.open(encoding="utf-8") as fh:
        # _CfnLoader is a SafeLoader subclass: no arbitrary objects (ruff S506, bandit B506).
        data = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506  # nosec B506
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ValueError(f"{path} is not a CloudFormation template (no Resources mapping)")
    return data


def _resource_properties(template: dict[str, Any], logical_id: str, expected_type: str) -> dict[str, Any]:
    resource = template["Resources"].get(logical_id)
    if not isinstance(resource, dict):
        raise KeyError(f"template has no resource {logical_id!r}")
    if resource.get("Type") != expected_type:
        raise ValueError(f"template resource {logical_id!r} is {resource.get('Type')!r}, not {expected_type}")
    properties = resource.get("Properties") or {}
    if not isinstance(properties, dict):
        raise ValueError(f"template resource {logical_id!r} has malformed Properties")
    return properties


# --------------------------------------------------------------------------------------------- moto server


_DYNAMODB_ITEM_CALLS = ("get_item", "put_item", "update_item", "delete_item", "transact_write_items")
_atomic_lock = threading.Lock()
_atomic_installed = False


def _make_item_writes_atomic() -> None:
    """Make moto's DynamoDB item calls atomic, as DynamoDB's are.

    moto server evaluates a ConditionExpression and then writes with no lock in between, so two pollers claiming
    the same job in the same instant can both succeed there (about 1 race in 400 with 8 claimers, measured),
    which real DynamoDB never allows. The local stack must not invent duplicates the product would not have.
    """
    global _atomic_installed
    from moto.dynamodb.models import DynamoDBBackend

    with _atomic_lock:
        if _atomic_installed:
            return
        lock = threading.RLock()
        for name in _DYNAMODB_ITEM_CALLS:
            original = getattr(DynamoDBBackend, name)

            def serialized(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
                with lock:
                    return _original(*args, **kwargs)

            setattr(DynamoDBBackend, name, functools.wraps(original)(serialized))
        _atomic_installed = True


class MotoServer:
    """moto's ThreadedMotoServer on 127.0.0.1 (a free port unless one is given), with atomic item writes."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Any = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("MotoServer is not started")
        return self._endpoint_url

    def start(self) -> MotoServer:
        if self._server is not None:
            return self
        from moto.server import ThreadedMotoServer  # lazy: not in the Lambda layer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _make_item_writes_atomic()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        server, self._server, self._endpoint_url = self._server, None, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class LocalStack:
    """Names of the local resources, and the endpoint that serves them."""

    endpoint_url: str
    region: str
    table_name: str
    bucket: str
    topic_arn: str
    secret_id: str

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for the poller/CLI against these resources (extra entries are added last)."""
        env = {
            "JOBS_TABLE": self.table_name,
            "EXPORT_BUCKET": self.bucket,
            "NOTIFY_TOPIC_ARN": self.topic_arn,
            "INTERCOM_TOKEN_SECRET": self.secret_id,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **DUMMY_CREDENTIALS,
        }
        env.update(extra)
        return env


def aws_client(service: str, endpoint_url: str, region: str = DEFAULT_REGION) -> Any:
    """A boto3 client for `service` at `endpoint_url` with dummy credentials."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation AWS::S3::Bucket lifecycle Rule as a PutBucketLifecycleConfiguration rule."""
    out: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    expiration: dict[str, Any] = {}
    for key, value in rule.items():
        match key:
            case "Status" | "Prefix":
                pass
            case "Id":
                out["ID"] = value
            case "AbortIncompleteMultipartUpload" | "NoncurrentVersionExpiration":
                out[key] = {k: int(v) for k, v in value.items()}
            case "NoncurrentVersionExpirationInDays":
                out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(value)}
            case "ExpirationInDays":
                expiration["Days"] = int(value)
            case "ExpiredObjectDeleteMarker":
                expiration["ExpiredObjectDeleteMarker"] = bool(value)
            case _:
                raise ValueError(f"lifecycle rule key {key!r} is not supported locally; extend _lifecycle_rule")
    if expiration:
        out["Expiration"] = expiration
    return out


def _encryption_rule(rule: dict[str, Any], members: Collection[str]) -> dict[str, Any]:
    """A CloudFormation ServerSideEncryptionRule as a PutBucketEncryption rule.

    CloudFormation says ServerSideEncryptionByDefault; recent botocore names that member after its XML
    element, ApplyServerSideEncryptionByDefault. `members` are the rule shape's members in this botocore.
    """
    apply = "ApplyServerSideEncryptionByDefault"
    default_key = apply if apply in members else "ServerSideEncryptionByDefault"
    out: dict[str, Any] = {}
    for key, value in rule.items():
        match key:
            case "ServerSideEncryptionByDefault":
                out[default_key] = dict(value)
            case "BucketKeyEnabled":
                out[key] = bool(value)
            case _:
                raise ValueError(f"encryption rule key {key!r} is not supported locally; extend _encryption_rule")
    return out


def _names(suffix: str | None) -> tuple[str, str, str, str]:
    if suffix is not None and not _SUFFIX_RE.fullmatch(suffix):
        raise ValueError(f"suffix must match {_SUFFIX_RE.pattern} (it goes into a bucket name): {suffix!r}")
    tail = f"-{suffix}" if suffix else ""
    return (
        f"exportwatch-jobs{tail}",
        f"exportwatch-exports{tail}",
        f"exportwatch-notify{tail}",
        f"exportwatch/intercom-token{tail}",
    )


def create_resources(
    endpoint_url: str,
    token: str,
    *,
    template: Path | None = None,
    suffix: str | None = None,
    region: str = DEFAULT_REGION,
) -> LocalStack:
    """Create JobsTable, ExportBucket, NotifyTopic and IntercomTokenSecret in moto.

    Each is built from its own definition in template.yaml; `suffix` makes the names unique (one per test).
    The secret's value is `token`.
    """
    tpl = load_template(find_template(template))
    table_props = _resource_properties(tpl, TABLE_ID, "AWS::DynamoDB::Table")
    bucket_props = _resource_properties(tpl, BUCKET_ID, "AWS::S3::Bucket")
    topic_props = _resource_properties(tpl, TOPIC_ID, "AWS::SNS::Topic")
    secret_props = _resource_properties(tpl, SECRET_ID, "AWS::SecretsManager::Secret")
    table_name, bucket, topic_name, secret_name = _names(suffix)

    # DynamoDB: the key schema, indexes and billing mode exactly as declared, then the TTL spec.
    ddb = aws_client("dynamodb", endpoint_url, region)
    create: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": table_props["KeySchema"],
        "AttributeDefinitions": table_props["AttributeDefinitions"],
        "BillingMode": table_props.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if key in table_props:
            create[key] = table_props[key]
    if "SSESpecification" in table_props:
        create["SSESpecification"] = {"Enabled": bool(table_props["SSESpecification"].get("SSEEnabled"))}
    ddb.create_table(**create)
    ddb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    if ttl := table_props.get("TimeToLiveSpecification"):
        ddb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )

    # S3: the bucket and each setting the template gives it.
    s3 = aws_client("s3", endpoint_url, region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    if pab := bucket_props.get("PublicAccessBlockConfiguration"):
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=pab)
    if enc := bucket_props.get("BucketEncryption"):
        members = s3.meta.service_model.shape_for("ServerSideEncryptionRule").members
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [_encryption_rule(r, members) for r in enc["ServerSideEncryptionConfiguration"]]
            },
        )
    if versioning := bucket_props.get("VersioningConfiguration"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning["Status"]})
    if ownership := bucket_props.get("OwnershipControls"):
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": ownership["Rules"]})
    if lifecycle := bucket_props.get("LifecycleConfiguration"):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in lifecycle["Rules"]]},
        )
    # ExportBucketPolicy (deny unless aws:SecureTransport) is deliberately not applied: the local endpoint is
    # plain HTTP, so that policy would rightly deny every request (moto enforces bucket Deny statements).

    # SNS topic.
    sns = aws_client("sns", endpoint_url, region)
    topic_attributes = {k: str(topic_props[k]) for k in ("DisplayName",) if k in topic_props}
    topic_arn = str(sns.create_topic(Name=topic_name, Attributes=topic_attributes)["TopicArn"])

    # Secrets Manager: the token goes in as the value (the deployed secret is filled by the operator).
    sm = aws_client("secretsmanager", endpoint_url, region)
    secret = sm.create_secret(
        Name=secret_name, Description=str(secret_props.get("Description", "")), SecretString=token
    )
    return LocalStack(
        endpoint_url=endpoint_url,
        region=region,
        table_name=table_name,
        bucket=bucket,
        topic_arn=topic_arn,
        secret_id=str(secret["ARN"]),
    )


# --------------------------------------------------------------------------------------------- SNS -> SQS


@dataclass(frozen=True)
class ReceivedNotification:
    """One SNS notification as delivered to an SQS queue."""

    subject: str | None
    message: str
    body: Any  # the message parsed as JSON, or None when it is not JSON
    attributes: dict[str, str]
    envelope: dict[str, Any]


def subscribe_queue(
    endpoint_url: str,
    topic_arn: str,
    *,
    filter_policy: dict[str, Any] | None = None,
    region: str = DEFAULT_REGION,
) -> str:
    """Create an SQS queue subscribed to `topic_arn` (optionally with a filter policy); return its URL."""
    sqs = aws_client("sqs", endpoint_url, region)
    sns = aws_client("sns", endpoint_url, region)
    name = f"exportwatch-notify-{secrets.token_hex(6)}"
    queue_url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    queue_arn = str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    return queue_url


def _parse_notification(message: MessageTypeDef) -> ReceivedNotification:
    raw = message.get("Body", "")
    try:
        envelope = json.loads(raw)
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and "Message" in envelope:
        text = str(envelope["Message"])
        subject = envelope.get("Subject")
        attributes = {
            name: str(attr.get("Value", "")) for name, attr in (envelope.get("MessageAttributes") or {}).items()
        }
    else:  # raw message delivery
        envelope, text, subject = {}, raw, None
        attributes = {
            name: str(attr.get("StringValue", "")) for name, attr in message.get("MessageAttributes", {}).items()
        }
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return ReceivedNotification(
        subject=str(subject) if subject is not None else None,
        message=text,
        body=body,
        attributes=attributes,
        envelope=envelope,
    )


def receive_notifications(
    endpoint_url: str,
    queue_url: str,
    *,
    expect: int | None = None,
    timeout: float = 5.0,
    region: str = DEFAULT_REGION,
) -> list[ReceivedNotification]:
    """Long-poll `queue_url`, deleting what is read.

    With `expect`, keep reading until that many notifications arrived or `timeout` passed; without it,
    read until the queue is drained (one empty receive) or `timeout` passed.
    """
    sqs = aws_client("sqs", endpoint_url, region)
    deadline = time.monotonic() + timeout
    received: list[ReceivedNotification] = []
    while expect is None or len(received) < expect:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=max(0, min(20, int(remaining))) if expect is not None else min(1, int(remaining)),
            MessageAttributeNames=["All"],
        )
        messages: list[MessageTypeDef] = response.get("Messages", [])
        if not messages:
            if expect is None:
                break
            if remaining < 1:
                time.sleep(min(0.05, remaining))  # WaitTimeSeconds is whole seconds: spin gently at the end
            continue
        for message in messages:
            received.append(_parse_notification(message))
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    return received
