"""Section 4: cold start of the poller Lambda, each figure from fresh interpreters (bench/cold_child.py).

  import ratio      import of functions/poller/app.py / bare `import boto3, requests`
  cold-call ratio   (import app + first invocation with one completed job due)
                    / (a bare boto3 + requests script doing that same one-job work, imports included)
One discarded warm-up run of each primes the page cache and writes .pyc files, as a deployed layer has them.
`python -X importtime` attributes what the handler module adds on top of boto3 + requests to packages.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness import COLD_CHILD, PYTHON, REPO_ROOT, EmulatorControl, Rig, log, median, run_child

TARGET = 1.5
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass
class ColdReport:
    baseline_import: list[float] = field(default_factory=list)
    app_import: list[float] = field(default_factory=list)
    baseline_import_cpu: list[float] = field(default_factory=list)
    app_import_cpu: list[float] = field(default_factory=list)
    marginal_import: list[float] = field(default_factory=list)  # import app after boto3 + requests
    app_first: list[float] = field(default_factory=list)  # import + first invocation
    app_first_call: list[float] = field(default_factory=list)
    app_warm_call: list[float] = field(default_factory=list)
    script_total: list[float] = field(default_factory=list)
    baseline_rss_mb: float = 0.0
    app_rss_mb: float = 0.0
    app_modules: int = 0
    baseline_modules: int = 0
    marginal_modules: int = 0
    import_costs: list[tuple[str, float]] = field(default_factory=list)  # package -> self ms, largest first
    app_cumulative_ms: float = 0.0  # of `import app` after boto3 + requests, in the -X importtime run

    @property
    def import_ratio(self) -> float:
        return median(self.app_import) / median(self.baseline_import)

    @property
    def import_cpu_ratio(self) -> float:
        return median(self.app_import_cpu) / median(self.baseline_import_cpu)

    @property
    def cold_call_ratio(self) -> float:
        return median(self.app_first) / median(self.script_total)


def import_costs(stderr: str, root: str = "app") -> tuple[list[tuple[str, float]], float]:
    """Self time per top-level package under `import root`, from python -X importtime output."""
    rows = []
    for line in stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), len(m.group(3)), m.group(4)))
    idx = max(i for i, r in enumerate(rows) if r[3] == root and r[2] == 1)
    depth = rows[idx][2]
    subtree = [rows[idx]]
    for r in reversed(rows[:idx]):
        if r[2] <= depth:
            break
        subtree.append(r)
    per_package: dict[str, float] = defaultdict(float)
    for self_us, _, _, name in subtree:
        per_package[name.split(".")[0]] += self_us / 1000
    ranked = sorted(per_package.items(), key=lambda kv: -kv[1])
    return ranked, rows[idx][1] / 1000


def run(rig: Rig, reps: int) -> ColdReport:
    from exportwatch.model import Job, iso, utcnow
    from exportwatch.store import JobStore

    stack = rig.stack("cold")
    env = rig.child_env(stack)
    store = JobStore(rig.client("dynamodb"), stack.table_name)
    emulator = EmulatorControl(rig.emulator.url)
    report = ColdReport()

    def one_job_due() -> None:
        job_id = emulator.add_job(steps=["completed"], rows=200)
        store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=0))

    def child(command: str) -> Any:
        return run_child(command, [], env, script=COLD_CHILD)

    for rep in range(reps + 1):  # rep 0 is the warm-up
        log(f"cold start: rep {rep}/{reps}" + (" (warm-up, discarded)" if rep == 0 else ""))
        base = child("import-baseline")
        app = child("import-app")
        marginal = child("import-marginal")
        one_job_due()
        invoked = child("invoke-app")
        if invoked["first_events"] != {"export.completed": 1}:
            raise RuntimeError(f"first invocation did not copy the one job: {invoked.data}")
        one_job_due()
        script = child("script-baseline")
        if script["events"] != ["export.completed"]:
            raise RuntimeError(f"baseline script did not do the one job: {script.data}")
        if rep == 0:
            continue
        report.baseline_import.append(base["import_s"])
        report.app_import.append(app["import_s"])
        report.baseline_import_cpu.append(base["import_cpu_s"])
        report.app_import_cpu.append(app["import_cpu_s"])
        report.marginal_import.append(marginal["import_s"])
        report.marginal_modules = marginal["modules"]
        report.app_first.append(invoked["import_s"] + invoked["first_s"])
        report.app_first_call.append(invoked["first_s"])
        report.app_warm_call.append(invoked["warm_s"])
        report.script_total.append(script["total_s"])
        report.baseline_rss_mb, report.app_rss_mb = base["rss_mb"], app["rss_mb"]
        report.baseline_modules, report.app_modules = base["modules"], app["modules"]
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", str(COLD_CHILD), "import-marginal"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
    )
    report.import_costs, report.app_cumulative_ms = import_costs(proc.stderr)
    return report
