"""Builds the poller's collaborators from validated Settings: the one place boto3 clients are created.

AWS endpoints and credentials come from boto3's own configuration (AWS_ENDPOINT_URL, profiles, ...), so the
same code talks to AWS in Lambda and to moto on a laptop. The region is resolved here, once, for every client:
AWS_DEFAULT_REGION, else AWS_REGION (which botocore alone ignores), else the profile's region.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import InvalidRegionError

from exportwatch.archive import CopySettings
from exportwatch.config import REGION_VARIABLES, ConfigError, Settings, region_from_env
from exportwatch.intercom import IntercomClient
from exportwatch.notifier import Notifier
from exportwatch.poll import Poller
from exportwatch.redaction import install_log_redaction
from exportwatch.store import JobStore

TOKEN_CACHE_SECONDS = 300
_VAR = "INTERCOM_TOKEN_SECRET"


def parse_token(secret_value: str | bytes) -> str:
    """The secret holds the token itself, or JSON with a "token" key. The value is never echoed in errors."""
    try:  # a SecretBinary arrives as bytes
        text = secret_value.decode() if isinstance(secret_value, bytes) else secret_value
    except UnicodeDecodeError:
        raise ConfigError(_VAR, "the secret's binary value is not UTF-8 text") from None
    text = text.strip()
    if not text:
        raise ConfigError(_VAR, "the secret's value is empty")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise ConfigError(_VAR, "the secret's value looks like JSON but does not parse") from None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise ConfigError(_VAR, 'the secret\'s JSON has no non-empty "token" string')
        text = token.strip()
    # Non-ASCII cannot be sent in an HTTP header (http.client encodes latin-1, then Intercom says 401).
    if not text.isascii() or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ConfigError(_VAR, "the token contains whitespace, control or non-ASCII characters")
    return text


def token_provider(secret_id: str, secrets_client: Any) -> Callable[[], str]:
    """Token from Secrets Manager through Powertools Parameters, cached for five minutes."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    provider = SecretsProvider(boto3_client=secrets_client)
    lock = threading.Lock()
    install_log_redaction()  # before the first fetch: botocore logs GetSecretValue's answer at DEBUG

    def get() -> str:
        with lock:  # one fetch when several workers start at once
            try:
                value = provider.get(secret_id, max_age=TOKEN_CACHE_SECONDS)
            except GetParameterError as exc:
                # Powertools' message carries botocore's error (e.g. ResourceNotFoundException), not the value.
                # The id is not echoed: a token pasted into the variable by mistake would be printed.
                if "ResourceNotFoundException" in str(exc):
                    region = getattr(getattr(secrets_client, "meta", None), "region_name", None)
                    where = f" in {region}" if isinstance(region, str) and region else ""
                    raise ConfigError(
                        _VAR,
                        f"the secret it names does not exist{where} (ResourceNotFoundException); "
                        "check the name and the region",
                    ) from None
                raise ConfigError(_VAR, f"cannot read the secret it names: {_first_line(exc)}") from None
        if not isinstance(value, str | bytes):
            raise ConfigError(_VAR, "the secret has no string value")
        token = parse_token(value)
        install_log_redaction(token)  # botocore's DEBUG lines show the secret's value: rewrite them
        return token

    return get


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def aws_region(session: boto3.Session | None = None) -> str:
    """The region every client uses. ConfigError naming both variables when there is none at all."""
    found = region_from_env()
    if found is not None:
        return found[1]
    region = (session or boto3.Session()).region_name  # a region in the AWS config file (profile)
    if not region:
        first, second = REGION_VARIABLES
        raise ConfigError(
            first, f"is not set, nor {second}, nor a region in the AWS profile; set one, e.g. {first}=us-east-1"
        )
    return region


def aws_clients(session: boto3.Session | None = None, pool_size: int = 10) -> dict[str, Any]:
    session = session or boto3.Session()
    region = aws_region(session)
    cfg = Config(
        retries={"mode": "standard", "max_attempts": 4},
        max_pool_connections=max(10, pool_size * 2),
        connect_timeout=5,
        read_timeout=60,
    )
    try:
        return {
            name: session.client(name, region_name=region, config=cfg)
            for name in ("dynamodb", "s3", "sns", "secretsmanager")
        }
    except InvalidRegionError:
        found = region_from_env()
        variable = found[0] if found else "AWS_DEFAULT_REGION"
        raise ConfigError(variable, f"{region[:40]!r} is not an AWS region name (e.g. us-east-1)") from None


def build_store(settings: Settings, dynamodb: Any | None = None) -> JobStore:
    return JobStore(dynamodb or aws_clients()["dynamodb"], settings.jobs_table)


def build_intercom(settings: Settings, secrets_client: Any) -> IntercomClient:
    return IntercomClient(
        settings.intercom_api_url,
        token_provider(settings.intercom_token_secret, secrets_client),
        version=settings.intercom_version,
        timeout=settings.http_timeout_seconds,
        pool_size=settings.poll_concurrency,
    )


def build_poller(
    settings: Settings,
    clients: dict[str, Any] | None = None,
    *,
    copy_settings: CopySettings | None = None,
) -> Poller:
    clients = clients or aws_clients(pool_size=settings.poll_concurrency)
    return Poller(
        settings=settings,
        store=JobStore(clients["dynamodb"], settings.jobs_table),
        intercom=build_intercom(settings, clients["secretsmanager"]),
        s3=clients["s3"],
        notifier=Notifier(clients["sns"], settings.notify_topic_arn),
        copy_settings=copy_settings or CopySettings(),
    )
