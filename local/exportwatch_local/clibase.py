"""What every `exportwatch` command shares: exit codes, the usage error, and reading a command's settings.

Its own module so the command modules (cli.py, ledger_cli.py) import it rather than each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from exportwatch.config import ConfigError, OperatorSettings, PollerSettings, StoreSettings
from exportwatch.ledger import LedgerStore
from exportwatch.reporting import InvalidReporting, find_dataset, validate_attributes, validate_dataset
from exportwatch.workspaces import DEFAULT_WORKSPACE, InvalidWorkspace, Workspace, validate_name

if TYPE_CHECKING:
    from exportwatch.intercom import IntercomClient

# Exit codes: a contract for scripts (cli.py's docstring says what each means).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input: exit 2, one line, nothing written."""


def settings_for[S: (StoreSettings, OperatorSettings, PollerSettings)](kind: type[S]) -> S:
    """The command's settings (only the variables it uses) and the AWS region, every problem of both in one
    ConfigError."""
    from exportwatch.wiring import aws_region

    errors: list[ConfigError] = []
    settings: S | None = None
    try:
        settings = kind.from_env()
    except ConfigError as exc:
        errors.append(exc)
    try:
        aws_region()
    except ConfigError as exc:
        errors.append(exc)
    if errors or settings is None:
        raise ConfigError.combine(errors)
    return settings


# -- workspaces, as the commands see them -----------------------------------------------------------------


def known_workspace(ledger: LedgerStore, raw: str) -> str:
    """The name of a workspace that exists (`default` always does); InvalidWorkspace otherwise (exit 2)."""
    name = validate_name(raw)
    if name != DEFAULT_WORKSPACE:
        record = ledger.get_workspace(name)
        if record is None or record.config is None:
            raise InvalidWorkspace(f"workspace {name!r} is not registered (see exportwatch workspace list)")
    return name


@dataclass(frozen=True)
class Reach:
    """One workspace as a command uses it: its name, its configuration, its Intercom client (token resolved)."""

    name: str
    config: Workspace
    intercom: IntercomClient
    ledger: LedgerStore
    clients: dict[str, Any]


def reach(raw: str, settings: OperatorSettings | None = None) -> Reach:
    """The workspace `raw` names, ready to call Intercom: `default` from the environment, any other from its registry
    record (InvalidWorkspace, exit 2, when it is not registered)."""
    from exportwatch.schedule import default_workspace
    from exportwatch.wiring import aws_clients, build_intercom, build_sources

    name = validate_name(raw)
    settings = settings or settings_for(OperatorSettings)
    clients = aws_clients(services=("dynamodb", "secretsmanager"))
    ledger = LedgerStore(clients["dynamodb"], settings.jobs_table)
    name = known_workspace(ledger, name)
    record = ledger.get_workspace(name)
    config = default_workspace(settings) if name == DEFAULT_WORKSPACE else record.config if record else None
    if config is None:  # pragma: no cover - known_workspace said it is registered
        raise InvalidWorkspace(f"workspace {name!r} is not registered")
    sources = build_sources(
        settings, build_intercom(settings, clients["secretsmanager"]), ledger, clients["secretsmanager"]
    )
    intercom = cast("IntercomClient", sources.source_for(name))  # wiring builds IntercomClients only
    intercom.ensure_token()
    return Reach(name, config, intercom, ledger, clients)


def reporting_request(target: Reach, dataset: str, attributes: str | None) -> tuple[str, tuple[str, ...]]:
    """(dataset, attribute ids) for a reporting export, checked with Intercom before anything is written: the
    workspace has its reporting ids, Intercom has the dataset, and every attribute given is the dataset's (default:
    every attribute, by qualified id). InvalidReporting (exit 2) otherwise."""
    dataset = validate_dataset(dataset)
    wanted = (
        None if attributes is None else validate_attributes([a.strip() for a in attributes.split(",") if a.strip()])
    )
    if not target.config.has_reporting_ids:
        fix = (
            "set INTERCOM_APP_ID and INTERCOM_CLIENT_ID"
            if target.name == DEFAULT_WORKSPACE
            else f"exportwatch workspace add {target.name} ... --app-id ID --client-id ID"
        )
        raise InvalidReporting(
            f"workspace {target.name} has no app_id/client_id, which Intercom's reporting exports need ({fix})"
        )
    found = find_dataset(target.intercom.get_datasets(), dataset)
    return dataset, found.resolve(wanted)
