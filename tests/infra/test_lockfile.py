"""The locks: uv.lock builds .venv and, through `make requirements`, the Lambda layer's requirements.txt;
tools/security and tools/sam lock the tool venvs. Every install is reproducible only if these hold."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_REQUIREMENTS = REPO_ROOT / "layers" / "exportwatch" / "requirements.txt"
LOCKS = [REPO_ROOT / "uv.lock", REPO_ROOT / "tools" / "security" / "uv.lock", REPO_ROOT / "tools" / "sam" / "uv.lock"]
PYPI = "https://pypi.org/simple"

# Security floors: requests 2.32.4 (CVE-2024-47081, .netrc credentials sent to the wrong host); urllib3 2.6, from
# which raw.read(n, decode_content=True) bounds the decompressed size our body caps rely on (CVE-2025-66471).
FLOORS = {"requests": Version("2.32.4"), "urllib3": Version("2.6")}
# The Lambda runtime provides these; the layer must not shadow them with its own copies.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "python-dateutil", "six"}


def _lock(path: Path) -> dict:
    with path.open("rb") as f:
        return tomllib.load(f)


def _versions(lock: dict, name: str) -> list[Version]:
    return [Version(p["version"]) for p in lock["package"] if p["name"] == name]


def _pins(requirements: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", requirements, flags=re.MULTILINE))


def test_layer_requirements_are_what_make_requirements_generates(tmp_path: Path) -> None:
    """Runs the real target, so the command lives in the Makefile only. UV_LOCK_FLAGS=--check makes `uv lock`
    fail instead of updating a lock whose pyproject.toml changed; UV_OFFLINE: this needs no network."""
    out = tmp_path / "requirements.txt"
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env["UV_OFFLINE"] = "1"
    run = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO_ROOT), "requirements",
         "UV_LOCK_FLAGS=--check", f"LAYER_REQUIREMENTS={out}"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, (
        "a lock is out of date with its pyproject.toml: run `make requirements` and commit the result\n"
        + run.stdout
        + run.stderr
    )
    assert out.read_text(encoding="utf-8") == LAYER_REQUIREMENTS.read_text(encoding="utf-8"), (
        f"{LAYER_REQUIREMENTS.relative_to(REPO_ROOT)} differs from what uv.lock gives: it is generated, never edited;"
        " run `make requirements` and commit the result"
    )


def test_floors_hold_in_the_lock() -> None:
    lock = _lock(REPO_ROOT / "uv.lock")
    for name, floor in FLOORS.items():
        versions = _versions(lock, name)
        assert versions, f"{name} is not in uv.lock"
        assert all(v >= floor for v in versions), f"uv.lock has {name} {versions}, below {floor}"


def test_lock_is_for_the_lambda_runtime_python() -> None:
    assert _lock(REPO_ROOT / "uv.lock")["requires-python"] == "==3.13.*"


def test_layer_gets_its_libraries_hashed_and_no_runtime_copies() -> None:
    text = LAYER_REQUIREMENTS.read_text(encoding="utf-8")
    pins = _pins(text)
    assert {"aws-lambda-powertools", "requests", "urllib3"} <= pins.keys()
    assert not RUNTIME_PROVIDED & pins.keys()
    for name, floor in FLOORS.items():
        assert Version(pins[name]) >= floor
    # pip's hash-checking mode then refuses anything that is not exactly the locked file.
    assert text.count("--hash=sha256:") >= len(pins)


@pytest.mark.parametrize("path", LOCKS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_locks_point_at_pypi_only(path: Path) -> None:
    """Nothing from this machine's pip configuration (file:// indexes, /opt/wheels) may leak into a lock."""
    for package in _lock(path)["package"]:
        source = package["source"]
        if "registry" not in source:
            assert source in ({"editable": "."}, {"virtual": "."}), (package["name"], source)
            continue
        assert source["registry"] == PYPI, (package["name"], source)
        for artifact in [package.get("sdist", {}), *package.get("wheels", [])]:
            if artifact:
                assert artifact["url"].startswith("https://files.pythonhosted.org/"), (package["name"], artifact)
                assert artifact["hash"].startswith("sha256:"), (package["name"], artifact)
