"""Shared fixtures: dummy AWS credentials, one moto server per session, one fresh stack per test.

The stack's resources are built from template.yaml (exportwatch_local.localstack), so tests exercise what is deployed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exportwatch.config import Settings
from exportwatch.model import Job, iso, utcnow
from exportwatch.poll import Poller
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import (
    DUMMY_CREDENTIALS,
    LocalStack,
    MotoServer,
    create_resources,
    load_template,
    subscribe_queue,
)
from exportwatch_local.slack_receiver import SlackReceiver

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
def token() -> str:
    """This test's Intercom token: random, so a leak check can search every output for it."""
    return f"test-token-{secrets.token_hex(12)}"


@pytest.fixture
def stack(moto_server: MotoServer, token: str) -> LocalStack:
    """This stack's table, bucket, topic and token secret, freshly named for this test."""
    suffix = secrets.token_hex(4)
    return create_resources(moto_server.endpoint_url, token=token, template=TEMPLATE, suffix=suffix)


# ---------------------------------------------------------------------------------------------------------
# Fixtures added by other modules' tests go below this line (keep the ones above stable: others use them).
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def emulator(token: str) -> Iterator[IntercomEmulator]:
    """A fresh Intercom emulator on 127.0.0.1 that accepts only this test's token."""
    with IntercomEmulator(token=token) as em:
        yield em


@pytest.fixture
def env(stack: LocalStack, emulator: IntercomEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The poller's environment for this stack and emulator, also set in os.environ for the test."""
    values = stack.env(INTERCOM_API_URL=emulator.base_url, POLL_INTERVAL_MINUTES="5")
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def poller(settings: Settings) -> Poller:
    """Collaborators built exactly as the Lambda builds them (wiring.build_poller), pointed at moto."""
    return build_poller(settings)


@pytest.fixture
def subscriber(moto_server: MotoServer, stack: LocalStack) -> str:
    """An SQS queue subscribed to the stack's topic: what a subscriber receives. Returns the queue URL."""
    return subscribe_queue(moto_server.endpoint_url, stack.topic_arn)


def track(poller: Poller, *job_ids: str) -> None:
    """Track jobs the way `exportwatch track` does (due at once)."""
    for job_id in job_ids:
        assert poller.store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=0))


# ---------------------------------------------------------------------------------------------------------
# Notifications for people (tests/test_render.py, tests/test_slack_notifier.py)
# ---------------------------------------------------------------------------------------------------------

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def check_snapshot(relative: str, actual: str) -> None:
    """Compare `actual` with the reviewed file tests/snapshots/<relative>; UPDATE_SNAPSHOTS=1 rewrites it.

    A snapshot is only ever written on request, so a rendering change shows up as a failing test and a diff
    to review, never as a silently accepted new file. Never in CI (the CI variable set, as CI services do): a
    pipeline left with UPDATE_SNAPSHOTS=1 would accept every change unseen, so there it fails instead.
    """
    import os

    path = SNAPSHOTS / relative
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
            pytest.fail(f"UPDATE_SNAPSHOTS=1 in CI (CI={os.environ['CI']!r}): snapshots are only updated by hand")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"no snapshot {relative}; review the output, then run with UPDATE_SNAPSHOTS=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{relative} changed; if the change is intended, rerun with UPDATE_SNAPSHOTS=1"


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    """A local Slack incoming-webhook receiver on 127.0.0.1 (real HTTP)."""
    with SlackReceiver() as receiver:
        yield receiver


# ---------------------------------------------------------------------------------------------------------
# template.yaml (tests/test_template.py, tests/test_template_slack.py)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    """template.yaml as written."""
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after the SAM transform (in-process, see test_template.sam_transform)."""
    from test_template import sam_transform  # samtranslator: imported by the template tests only

    return sam_transform(sam)
