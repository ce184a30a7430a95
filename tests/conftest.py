"""Shared fixtures: dummy AWS credentials, one moto server per session, one fresh stack per test.

The stack's resources are built from template.yaml (exportwatch.localstack), so tests exercise what is deployed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from exportwatch.localstack import DUMMY_CREDENTIALS, LocalStack, MotoServer, create_resources

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "template.yaml"


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


@pytest.fixture
def stack(moto_server: MotoServer) -> LocalStack:
    """This stack's table, bucket, topic and token secret, freshly named for this test."""
    suffix = secrets.token_hex(4)
    return create_resources(
        moto_server.endpoint_url, token=f"test-token-{secrets.token_hex(8)}", template=TEMPLATE, suffix=suffix
    )


# ---------------------------------------------------------------------------------------------------------
# Fixtures added by other modules' tests go below this line (keep the ones above stable: others use them).
# ---------------------------------------------------------------------------------------------------------
