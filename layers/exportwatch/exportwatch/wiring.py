"""Builds each function's collaborators from its validated settings: the one place boto3 clients are created.

AWS endpoints and credentials come from boto3's own configuration (AWS_ENDPOINT_URL, profiles, ...), so the
same code talks to AWS in Lambda and to moto on a laptop. The region is resolved here, once, for every client:
AWS_DEFAULT_REGION, else AWS_REGION (which botocore alone ignores), else the profile's region.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import InvalidRegionError

from exportwatch.archive import CopySettings
from exportwatch.config import (
    REGION_VARIABLES,
    SLACK_WEBHOOK_SECRET_VAR,
    ConfigError,
    OperatorSettings,
    Settings,
    SlackSettings,
    StoreSettings,
    region_from_env,
)
from exportwatch.intercom import IntercomClient
from exportwatch.ledger import LedgerStore
from exportwatch.notifier import Notifier
from exportwatch.poll import Poller
from exportwatch.redaction import install_log_redaction
from exportwatch.safetext import one_line
from exportwatch.sources import WorkspaceSources
from exportwatch.store import JobStore
from exportwatch.workspaces import SECRET_ID_RE, Workspace

if TYPE_CHECKING:
    from exportwatch.slack import SlackWebhook

_VAR = "INTERCOM_TOKEN_SECRET"
AWS_SERVICES = ("dynamodb", "s3", "sns", "secretsmanager")


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


SECRET_CACHE_SECONDS = 300


def secret_provider(
    variable: str,
    secret_id: str,
    secrets_client: Any,
    *,
    parse: Callable[[str | bytes], str],
    redact: Callable[[str], Iterable[str]] = lambda value: (value,),
    max_age: int = SECRET_CACHE_SECONDS,
    name_the_secret: bool = False,
) -> Callable[[], str]:
    """A callable returning the parsed value of one Secrets Manager secret, through Powertools Parameters.

    Fetched on first use, then cached for `max_age` seconds; one fetch at a time when several threads ask at once.
    Every problem is a ConfigError naming `variable` that never holds the secret's value: `parse` raises its
    own for a bad value. `redact` lists what of the parsed value must never show in third-party debug logs.
    `name_the_secret` puts the secret's id in the unreadable-secret error (only when it looks like a secret name
    or ARN: a value pasted into the variable by mistake is never echoed); otherwise the id is not shown.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    provider = SecretsProvider(boto3_client=secrets_client)
    lock = threading.Lock()
    install_log_redaction()  # before the first fetch: botocore logs GetSecretValue's answer at DEBUG

    def get() -> str:
        with lock:  # one fetch when several workers start at once
            try:
                value = provider.get(secret_id, max_age=max_age)
            except GetParameterError as exc:
                # Powertools' message carries botocore's error (e.g. ResourceNotFoundException), not the value.
                raise _unreadable(variable, secret_id, secrets_client, exc, name_the_secret) from None
        if not isinstance(value, str | bytes):
            raise ConfigError(variable, "the secret has no string value")
        parsed = parse(value)
        install_log_redaction(*redact(parsed))  # botocore's DEBUG lines show the secret's value: rewrite them
        return parsed

    return get


def _unreadable(variable: str, secret_id: str, client: Any, exc: BaseException, name_it: bool) -> ConfigError:
    if name_it and SECRET_ID_RE.fullmatch(secret_id):
        return ConfigError(variable, f"cannot read secret {secret_id!r}: {_first_line(exc)}")
    if "ResourceNotFoundException" in str(exc):
        region = getattr(getattr(client, "meta", None), "region_name", None)
        where = f" in {region}" if isinstance(region, str) and region else ""
        return ConfigError(
            variable,
            f"the secret it names does not exist{where} (ResourceNotFoundException); check the name and the region",
        )
    return ConfigError(variable, f"cannot read the secret it names: {_first_line(exc)}")


def token_provider(secret_id: str, secrets_client: Any, workspace: str | None = None) -> Callable[[], str]:
    """The Intercom token from Secrets Manager, cached for five minutes. Errors never show INTERCOM_TOKEN_SECRET's
    value: a token pasted into the variable by mistake would be printed. A registered workspace's errors name it
    and its secret's id (checked to be a secret name or ARN when the workspace was added)."""
    if workspace is None:
        return secret_provider(_VAR, secret_id, secrets_client, parse=parse_token)
    return secret_provider(
        f"workspace {workspace}: token secret", secret_id, secrets_client, parse=parse_token, name_the_secret=True
    )


def webhook_url_provider(secret_id: str, secrets_client: Any) -> Callable[[], str]:
    """The Slack webhook URL from Secrets Manager, cached for five minutes. Its path is a credential too."""
    from exportwatch.slack import parse_webhook_url

    return secret_provider(
        SLACK_WEBHOOK_SECRET_VAR,
        secret_id,
        secrets_client,
        parse=parse_webhook_url,
        redact=lambda url: (url, urlsplit(url).path),
        name_the_secret=True,
    )


def _first_line(exc: BaseException) -> str:
    return one_line((str(exc).splitlines() or [""])[0], 200) or type(exc).__name__


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


def aws_clients(
    session: boto3.Session | None = None,
    pool_size: int = 10,
    *,
    services: Iterable[str] = AWS_SERVICES,
    read_timeout: float = 60,
) -> dict[str, Any]:
    """One client per service, all in the region aws_region() resolves, with the same retry and timeouts."""
    session = session or boto3.Session()
    region = aws_region(session)
    cfg = Config(
        retries={"mode": "standard", "max_attempts": 4},
        max_pool_connections=max(10, pool_size * 2),
        connect_timeout=5,
        read_timeout=read_timeout,
    )
    try:
        # A service name is a plain str here; boto3-stubs only types the literal names.
        return {
            name: session.client(name, region_name=region, config=cfg)  # type: ignore[call-overload]
            for name in services
        }
    except InvalidRegionError:
        found = region_from_env()
        variable = found[0] if found else "AWS_DEFAULT_REGION"
        raise ConfigError(variable, f"{region[:40]!r} is not an AWS region name (e.g. us-east-1)") from None


def build_store(settings: StoreSettings | OperatorSettings | Settings, dynamodb: Any | None = None) -> JobStore:
    return JobStore(dynamodb or aws_clients(services=("dynamodb",))["dynamodb"], settings.jobs_table)


def build_intercom(settings: OperatorSettings | Settings, secrets_client: Any) -> IntercomClient:
    return IntercomClient(
        settings.intercom_api_url,
        token_provider(settings.intercom_token_secret, secrets_client),
        version=settings.intercom_version,
        timeout=settings.http_timeout_seconds,
        pool_size=settings.intercom_pool_size,
        app_id=settings.intercom_app_id,
        client_id=settings.intercom_client_id,
    )


SLACK_SECRETS_READ_TIMEOUT = 10  # the Slack function has 30 s in all: a slow Secrets Manager must not take them


def build_slack_webhook(settings: SlackSettings, clients: dict[str, Any] | None = None) -> SlackWebhook:
    """The Slack notifier's webhook, its URL read (and cached) from the secret SLACK_WEBHOOK_SECRET names."""
    from exportwatch.slack import SlackWebhook

    clients = clients or aws_clients(services=("secretsmanager",), read_timeout=SLACK_SECRETS_READ_TIMEOUT)
    return SlackWebhook(webhook_url_provider(settings.slack_webhook_secret, clients["secretsmanager"]))


def build_workspace_source(
    workspace: Workspace, secrets_client: Any, *, version: str, timeout: float, pool_size: int
) -> IntercomClient:
    """A registered workspace's client: its own host, its own token, its own rate-limit gate."""
    return IntercomClient(
        workspace.api_url,
        token_provider(workspace.token_secret, secrets_client, workspace.name),
        version=version,
        timeout=timeout,
        pool_size=pool_size,
        app_id=workspace.app_id,
        client_id=workspace.client_id,
    )


def build_sources(
    settings: OperatorSettings | Settings, default: IntercomClient, ledger: LedgerStore, secrets_client: Any
) -> WorkspaceSources:
    def make(workspace: Workspace) -> IntercomClient:
        return build_workspace_source(
            workspace,
            secrets_client,
            version=settings.intercom_version,
            timeout=settings.http_timeout_seconds,
            pool_size=settings.intercom_pool_size,
        )

    return WorkspaceSources(default, ledger, make)


def build_poller(
    settings: Settings,
    clients: dict[str, Any] | None = None,
    *,
    copy_settings: CopySettings | None = None,
) -> Poller:
    clients = clients or aws_clients(pool_size=settings.poll_concurrency)
    default = build_intercom(settings, clients["secretsmanager"])
    ledger = LedgerStore(clients["dynamodb"], settings.jobs_table)
    return Poller(
        settings=settings,
        store=JobStore(clients["dynamodb"], settings.jobs_table),
        intercom=default,
        s3=clients["s3"],
        notifier=Notifier(clients["sns"], settings.notify_topic_arn),
        copy_settings=copy_settings or CopySettings(),
        sources=build_sources(settings, default, ledger, clients["secretsmanager"]),
        ledger=ledger,
    )
