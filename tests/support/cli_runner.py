"""The `exportwatch` command line run as a real subprocess, and the table it writes (tests/integration/test_cli*.py)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from exportwatch.model import Job, iso, utcnow
from exportwatch.store import JobStore
from exportwatch_local.localstack import LocalStack, aws_client
from support.paths import REPO_ROOT

_SCRIPT = Path(sys.executable).with_name("exportwatch")


EXPORTWATCH = _SCRIPT if _SCRIPT.exists() else REPO_ROOT / ".venv" / "bin" / "exportwatch"


REQUIRED = ("JOBS_TABLE", "EXPORT_BUCKET", "NOTIFY_TOPIC_ARN", "INTERCOM_TOKEN_SECRET")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Cli(Protocol):
    def __call__(
        self, *args: str, module: bool = ..., set_env: dict[str, str] | None = ..., unset: tuple[str, ...] = ...
    ) -> Result: ...


def make_cli(env: dict[str, str], token: str) -> Cli:
    """Run `exportwatch ARGS` (or `python -m exportwatch ARGS`) with `env`; fail if `token` shows in the output."""

    def run(
        *args: str, module: bool = False, set_env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
    ) -> Result:
        child = {**os.environ, **env, **(set_env or {})}
        for name in unset:
            child.pop(name, None)
        command = [sys.executable, "-m", "exportwatch", *args] if module else [str(EXPORTWATCH), *args]
        proc = subprocess.run(
            command,
            env=child,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=60,
            check=False,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        assert token not in result.out and token not in result.err, "the token leaked into the output"
        return result

    return run


def one_error_line(result: Result, code: int, *needles: str) -> str:
    """Assert the command failed with `code` and exactly one stderr line mentioning every needle."""
    assert result.code == code, result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("exportwatch: error: "), lines[0]
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@functools.cache
def cached_client(service: str, endpoint_url: str) -> Any:
    return aws_client(service, endpoint_url)


def table_items(stack: LocalStack) -> list[dict[str, Any]]:
    ddb = cached_client("dynamodb", stack.endpoint_url)
    items = ddb.scan(TableName=stack.table_name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: item["job_identifier"]["S"])


def seed_job(stack: LocalStack, job_id: str = "seededjob01", next_check_at: int = 0) -> None:
    """A tracked job already in the table, so "the table is unchanged" means something."""
    store = JobStore(cached_client("dynamodb", stack.endpoint_url), stack.table_name)
    assert store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=next_check_at))
