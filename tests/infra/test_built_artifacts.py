"""What `sam build` ships is what runs in Lambda, and nothing of the local stack or the operator CLI.

Runs the real `make build` (sam build in its own venv; cached, so a few seconds after the first time) and lists
the files of every built artifact.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / ".aws-sam" / "build"

# Modules of exportwatch_local (local/exportwatch_local/): none may reach Lambda, under any package name.
LOCAL_MODULES = {
    "asyncinvoke.py",
    "cli.py",
    "demo.py",
    "emulator.py",
    "localstack.py",
    "loopback.py",
    "samples.py",
    "slack_receiver.py",
    "snsevents.py",
}
# Dev-only distributions: the local stack's AWS and YAML reader, and the test tools.
DEV_PACKAGES = {"exportwatch_local", "moto", "werkzeug", "flask", "yaml", "pytest", "hypothesis", "boto3", "botocore"}
# What the poller and the Slack function need at run time: the build must hold them (an empty build passes nothing).
RUNTIME_MODULES = {
    "poll.py",
    "store.py",
    "intercom.py",
    "urls.py",
    "archive.py",
    "notifier.py",
    "render.py",
    "slack.py",
}


@pytest.fixture(scope="module")
def built() -> Path:
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    done = subprocess.run(["make", "-s", "build"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return BUILD


def _files(root: Path) -> list[Path]:
    return [p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def test_the_layer_holds_the_runtime_and_no_local_module(built: Path) -> None:
    layer = built / "ExportwatchLayer" / "python"
    package = layer / "exportwatch"
    shipped = {p.name for p in package.glob("*.py")}
    assert shipped >= RUNTIME_MODULES, f"missing from the layer: {sorted(RUNTIME_MODULES - shipped)}"
    assert not shipped & LOCAL_MODULES, f"local-stack or CLI modules in the layer: {sorted(shipped & LOCAL_MODULES)}"
    top = {p.parts[0].removesuffix(".py") for p in _files(layer)}
    assert not top & DEV_PACKAGES, f"dev-only packages in the layer: {sorted(top & DEV_PACKAGES)}"


@pytest.mark.parametrize("function", ["PollerFunction", "SlackNotifierFunction"])
def test_each_function_ships_its_handler_alone(built: Path, function: str) -> None:
    files = _files(built / function)
    assert Path("app.py") in files
    names = {p.name for p in files}
    assert not names & LOCAL_MODULES, f"{function} ships {sorted(names & LOCAL_MODULES)}"
    top = {p.parts[0].removesuffix(".py") for p in files}
    assert not top & DEV_PACKAGES, f"{function} ships {sorted(top & DEV_PACKAGES)}"
