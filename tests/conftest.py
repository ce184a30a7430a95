"""Fixtures for every tier: dummy AWS credentials and region, so no test reads the machine's AWS profile.

The session's one moto server is here too (started only when a test asks for it: integration, faults and infra
share it). The tiers' own conftest.py files hold the rest: tests/unit (sockets off), tests/integration and
tests/faults (stacks, the Intercom emulator: support.stack_fixtures), tests/infra (template.yaml). Helpers shared across
modules live in tests/support/; no test module imports another.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exportwatch_local.localstack import DUMMY_CREDENTIALS, MotoServer


@pytest.fixture(scope="session", autouse=True)
def aws_test_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Dummy credentials and region for every test; no profile or config file of the machine is read."""
    empty = tmp_path_factory.mktemp("aws-config")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in DUMMY_CREDENTIALS.items():
            mp.setenv(name, value)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server (127.0.0.1, free port) for the whole session; tests isolate by resource names."""
    with MotoServer() as server:
        yield server
