"""Reaching past the poller into AWS: a publish that fails like an outage, a table item set directly, a secret."""

from __future__ import annotations

import json
import secrets
from typing import Any

from botocore.exceptions import ClientError

from exportwatch_local.localstack import LocalStack, aws_client


def set_attrs(stack: LocalStack, job_id: str, **values: int | str) -> None:
    ddb = aws_client("dynamodb", stack.endpoint_url)
    names = {f"#{k}": k for k in values}
    vals = {f":{k}": ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in values.items()}
    ddb.update_item(
        TableName=stack.table_name,
        Key={"job_identifier": {"S": job_id}},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=vals,
    )


class FlakySNS:
    """The real SNS client, except that the first `fail` publishes raise like an SNS outage."""

    def __init__(self, sns: Any, fail: int = 1) -> None:
        self._sns, self._fail = sns, fail
        self.attempts = self.published = 0

    def publish(self, **kwargs: Any) -> Any:
        self.attempts += 1
        if self.attempts <= self._fail:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "SNS is having a bad day"}}, "Publish")
        resp = self._sns.publish(**kwargs)
        self.published += 1
        return resp


def store_webhook_secret(stack: LocalStack, url: str) -> str:
    """Put a Slack webhook URL in moto's Secrets Manager as JSON {"url": ...}, as an operator would; its name."""
    name = f"exportwatch/slack-webhook-{secrets.token_hex(4)}"
    aws_client("secretsmanager", stack.endpoint_url).create_secret(Name=name, SecretString=json.dumps({"url": url}))
    return name
