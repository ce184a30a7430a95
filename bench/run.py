"""exportwatch benchmarks (`make bench`): copy speed and memory, idle and busy cycles, cold start, package size,
200 workspaces.

Every figure is a ratio against a baseline measured in the same run, on the same machine, against the same moto
server and Intercom emulator, each in its own process. Prints a table, writes bench/RESULTS.md and
bench/results.png (raw numbers: bench/out/results.json).

    .venv/bin/python bench/run.py            # full run (about 10 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # smaller sizes, fewer repetitions (about 3 minutes)
    BENCH_SIZES=10MB,200MB .venv/bin/python bench/run.py --only copy
    .venv/bin/python bench/run.py --only workspaces    # `make bench BENCH=workspaces`: 200 workspaces alone
                                                       # (about 2 minutes; rewrites only its part of RESULTS.md)

Environment: BENCH_SIZES (copy sizes, e.g. 10MB,100MB,1GB), BENCH_SEED_BUDGET (seconds allowed for writing
settled jobs into moto; the idle table is shrunk to fit, default 150).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import busy_cycle
import cold_start
import copy_speed
import idle_cycle
import package_size
import report
import workspaces
from harness import MB, OUT_DIR, Rig, base_env, log, machine_facts, scratch_dir

SECTIONS = ("copy", "idle", "busy", "cold", "size", "workspaces")


@dataclass
class Plan:
    quick: bool
    copy_sizes: list[int]
    idle_sizes: list[int]
    idle_rounds: int
    idle_cycles: int
    busy_sizes: list[int]
    busy_extra_concurrency: list[int]
    cold_reps: int
    workspace_count: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        default_sizes = [10 * MB, 100 * MB] if quick else [10 * MB, 100 * MB, 1000 * MB]
        return cls(
            quick=quick,
            copy_sizes=copy_speed.sizes_from_env(default_sizes),
            idle_sizes=[0, 1_000, 10_000] if quick else [0, 1_000, 100_000],
            idle_rounds=3 if quick else 5,
            idle_cycles=10,
            busy_sizes=[1, 100] if quick else [1, 100, 1_000],
            busy_extra_concurrency=[16] if quick else [8, 16],
            cold_reps=5 if quick else 15,
            workspace_count=50 if quick else workspaces.WORKSPACES,
        )


@dataclass
class Results:
    started: datetime
    command: str
    plan: Plan
    facts: dict[str, str]
    copy: copy_speed.CopyReport | None = None
    idle: idle_cycle.IdleReport | None = None
    busy: busy_cycle.BusyReport | None = None
    cold: cold_start.ColdReport | None = None
    size: package_size.SizeReport | None = None
    workspaces: workspaces.WorkspacesReport | None = None
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    load: dict[str, tuple[float, float]] = field(default_factory=dict)  # 1-minute load average: start, end
    moto_rss: list[tuple[str, float]] = field(default_factory=list)
    total_seconds: float = 0.0


def _section(results: Results, name: str, fn: Callable[[], Any]) -> None:
    log(f"== {name}")
    started, load = time.monotonic(), os.getloadavg()[0]
    try:
        setattr(results, name, fn())
    except Exception:
        results.errors[name] = traceback.format_exc(limit=8)
        log(f"{name} failed:\n{results.errors[name]}")
    results.seconds[name] = time.monotonic() - started
    results.load[name] = (load, os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    plan = Plan.make(args.quick)
    started = time.monotonic()
    results = Results(
        started=datetime.now(UTC),
        command=" ".join(
            ["make bench" if os.environ.get("MAKELEVEL") else ".venv/bin/python bench/run.py", *sys.argv[1:]]
        ),
        plan=plan,
        facts=machine_facts(),
    )
    OUT_DIR.mkdir(exist_ok=True)
    token = f"bench-{secrets.token_hex(8)}"
    if set(wanted) - {"size"}:
        with scratch_dir() as scratch:
            env = base_env(scratch)
            with Rig(env, token, scratch) as rig:
                rig.note_moto("start")
                if "copy" in wanted:
                    _section(results, "copy", lambda: copy_speed.run(rig, plan.copy_sizes, plan.quick))
                    rig.restart_moto("after copy")  # the other sections start from a small moto
                if "idle" in wanted:
                    _section(
                        results,
                        "idle",
                        lambda: idle_cycle.run(rig, plan.idle_sizes, plan.idle_rounds, plan.idle_cycles),
                    )
                if "busy" in wanted:
                    _section(
                        results,
                        "busy",
                        lambda: busy_cycle.run(rig, plan.busy_sizes, plan.busy_extra_concurrency, plan.quick),
                    )
                if "cold" in wanted:
                    _section(results, "cold", lambda: cold_start.run(rig, plan.cold_reps))
                if "workspaces" in wanted:
                    _section(results, "workspaces", lambda: workspaces.run(rig, plan.workspace_count))
                rig.note_moto("end")
                results.moto_rss = rig.moto_rss_log
    if "size" in wanted:
        _section(results, "size", package_size.run)
    results.total_seconds = time.monotonic() - started
    report.render(results)
    log(f"done in {results.total_seconds / 60:.1f} min")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
