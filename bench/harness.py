"""Process plumbing shared by the benchmark sections.

moto server and the Intercom emulator each run in their own process (started here, stopped on exit); every
measured workload runs in a fresh child process (bench/child.py) that reports one JSON result line. Memory is
read from /proc: VmHWM (peak RSS of the current address space) is reset-able and, unlike ru_maxrss, is not
inherited across fork/exec from this (larger) parent process.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"  # logs and scratch files (gitignored)
CHILD = BENCH_DIR / "child.py"
COLD_CHILD = BENCH_DIR / "cold_child.py"
TEMPLATE = REPO_ROOT / "template.yaml"
PYTHON = sys.executable
RESULT_PREFIX = "BENCH_RESULT "
MB = 1_000_000
MiB = 1024 * 1024


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ /proc memory


def _status_kib(pid: int | str, field_name: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size in MB (1e6 bytes)."""
    return _status_kib(pid, "VmRSS") * 1024 / MB


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) in MB since the process started or since reset_peak_rss()."""
    return _status_kib(pid, "VmHWM") * 1024 / MB


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat (iowait counts as idle)."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def reset_peak_rss(pid: int | str) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0, writing 5 to clear_refs); best effort."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


# ------------------------------------------------------------------------------------------ environment


def base_env(scratch: Path) -> dict[str, str]:
    """A clean environment for children: dummy AWS credentials, no profile or config file of this machine."""
    from exportwatch_local.localstack import DUMMY_CREDENTIALS

    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(DUMMY_CREDENTIALS)
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(scratch / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "POWERTOOLS_METRICS_NAMESPACE": "exportwatch",
        }
    )
    return env


# ------------------------------------------------------------------------------------------ servers


@dataclass
class ServerProcess:
    """A long-running helper process that prints its base URL on its first stdout line."""

    name: str
    proc: subprocess.Popen[str]
    url: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_server(name: str, argv: Sequence[str], env: Mapping[str, str], timeout: float = 30.0) -> ServerProcess:
    OUT_DIR.mkdir(exist_ok=True)
    errlog = open(OUT_DIR / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=errlog, text=True, env=dict(env), cwd=REPO_ROOT)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline().strip()
        if line.startswith("http"):
            break
    if not line.startswith("http"):
        proc.kill()
        raise RuntimeError(f"{name} did not start (see {OUT_DIR / (name + '.log')})")
    return ServerProcess(name, proc, line)


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A scratch directory in RAM (/dev/shm) when there is one: export copies for the upload limit and moto's
    spooled S3 objects live there, so disk speed adds no noise to the figures. Removed on exit."""
    import shutil
    import tempfile

    root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="exportwatch-bench-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class EmulatorControl:
    """The emulator's /_emulator/ scripting API, from this process."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False

    def add_job(self, **options: Any) -> str:
        resp = self.session.post(f"{self.base_url}/_emulator/jobs", json=options, timeout=30)
        resp.raise_for_status()
        return str(resp.json()["job_identifier"])

    def job(self, job_id: str) -> dict[str, Any]:
        resp = self.session.get(f"{self.base_url}/_emulator/jobs/{job_id}", timeout=30)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def clear_requests(self) -> None:
        self.session.delete(f"{self.base_url}/_emulator/requests", timeout=30).raise_for_status()


# ------------------------------------------------------------------------------------------ children


@dataclass
class ChildResult:
    data: dict[str, Any]
    wall: float
    stderr: str = field(repr=False, default="")

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


class ChildFailed(RuntimeError):
    pass


def run_child(
    command: str,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    script: Path = CHILD,
    timeout: float = 600.0,
    python_flags: Sequence[str] = (),
) -> ChildResult:
    """Run `script command args...` (bench/child.py by default) in a fresh interpreter; return its result."""
    argv = [PYTHON, *python_flags, str(script), command, *args]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(env), cwd=REPO_ROOT, timeout=timeout)
    wall = time.monotonic() - started
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise ChildFailed(f"child {command} {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return ChildResult(json.loads(lines[-1].removeprefix(RESULT_PREFIX)), wall, proc.stderr)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# ------------------------------------------------------------------------------------------ S3 / DynamoDB


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version, delete marker and unfinished multipart upload (moto keeps them in memory)."""
    removed = 0
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        victims = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if victims:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": victims, "Quiet": True})
            removed += len(victims)
    return removed


def batch_put(ddb: Any, table: str, items: Sequence[dict[str, Any]]) -> None:
    """BatchWriteItem in 25-item requests, retrying unprocessed items."""
    for start in range(0, len(items), 25):
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def new_suffix(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(3)}"


# ------------------------------------------------------------------------------------------ machine facts


def machine_facts() -> dict[str, str]:
    from importlib.metadata import version

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    facts = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_gb:.1f} GB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    for dist in ("boto3", "botocore", "s3transfer", "requests", "urllib3", "moto", "aws-lambda-powertools"):
        with contextlib.suppress(Exception):
            facts[dist] = version(dist)
    with contextlib.suppress(OSError):
        facts["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return facts


# ------------------------------------------------------------------------------------------ the rig


class Rig:
    """moto server, the Intercom emulator for copies and a second emulator whose status calls answer after 50 ms,
    each in its own process; and what a section needs to make stacks and run children against them."""

    def __init__(self, env: dict[str, str], token: str, scratch: Path) -> None:
        self.env = env
        self.token = token
        self.scratch = scratch
        self.moto_rss_log: list[tuple[str, float]] = []
        self._servers: list[ServerProcess] = []

    def __enter__(self) -> Rig:
        try:
            self.moto = self._start_moto()
            argv = [PYTHON, "-m", "exportwatch_local.emulator", "--port", "0", "--token", self.token]
            self.emulator = self._start("emulator", argv)
            self.slow_emulator = self._start("emulator-50ms", [*argv, "--status-delay", "0.05"])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> ServerProcess:
        server = start_server(name, argv, env or self.env)
        self._servers.append(server)
        return server

    def _start_moto(self) -> ServerProcess:
        # Spooled S3 objects go to the RAM scratch directory, not to disk.
        moto = self._start("moto", [PYTHON, str(CHILD), "moto-server"], {**self.env, "TMPDIR": str(self.scratch)})
        wait_http(moto.url + "/moto-api/")
        return moto

    def restart_moto(self, label: str) -> None:
        """A fresh moto process: its heap keeps the high-water mark of earlier gigabyte objects, which would
        make later runs slower than earlier ones. Stacks made before the restart are gone."""
        self.note_moto(f"{label}, before restart")
        self.moto.stop()
        self._servers.remove(self.moto)
        self.moto = self._start_moto()

    def close(self) -> None:
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()

    def stack(self, tag: str) -> Any:
        from exportwatch_local.localstack import create_resources

        return create_resources(self.moto.url, self.token, template=TEMPLATE, suffix=new_suffix(tag))

    def child_env(self, stack: Any, emulator: ServerProcess | None = None, **extra: str) -> dict[str, str]:
        return {**self.env, **stack.env(INTERCOM_API_URL=(emulator or self.emulator).url, **extra)}

    def client(self, service: str) -> Any:
        from exportwatch_local.localstack import aws_client

        return aws_client(service, self.moto.url)

    def note_moto(self, label: str) -> float:
        """Record moto's resident memory now (it keeps every S3 object and table item in its own process)."""
        value = self.moto.rss_mb()
        self.moto_rss_log.append((label, value))
        return value
