"""What every `exportwatch` command shares: exit codes, the usage error, and reading a command's settings.

Its own module so the command modules (cli.py, ledger_cli.py) import it rather than each other.
"""

from __future__ import annotations

from exportwatch.config import ConfigError, OperatorSettings, PollerSettings, StoreSettings

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
