"""Section 3: a busy cycle, N jobs due and every status call answered after 50 ms by the emulator.

Each job stays `pending`, so a cycle is claim -> status -> save per job, with no copies. The ideal is
latency x ceil(jobs / concurrency): the status calls alone, perfectly overlapped. A second part shows a cycle
whose time budget is too small for its due work: it stops taking jobs, leaves the rest due and unleased, and
the next cycle does exactly the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness import EmulatorControl, Rig, batch_put, log, median, run_child

LATENCY_S = 0.05  # the slow emulator's --status-delay
TARGET = 1.5


@dataclass
class BusyPoint:
    jobs: int
    concurrency: int
    seconds: list[float] = field(default_factory=list)
    dynamodb_calls: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    actions: dict[str, int] = field(default_factory=dict)  # expected: every job "checked", nothing else
    dynamodb_ms: float = 0.0  # median latency of one DynamoDB call (moto) during the cycle
    poller_cpu_s: float = 0.0  # CPU time of the polling process during the cycle
    moto_cpu_s: float = 0.0
    emulator_cpu_s: float = 0.0

    @property
    def ideal_s(self) -> float:
        return LATENCY_S * math.ceil(self.jobs / self.concurrency)

    @property
    def cycle_s(self) -> float:
        return median(self.seconds)

    @property
    def ratio(self) -> float:
        return self.cycle_s / self.ideal_s


@dataclass
class BudgetDemo:
    jobs: int
    budget_s: float
    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        first, second = self.data["first"], self.data["second"]
        after1, after2 = self.data["after_first"], self.data["after_second"]
        return bool(
            first["left"] > 0
            and first["processed"] + first["left"] == self.jobs
            and after1["untouched_due"] == first["left"]
            and after1["leases_held"] == 0
            and second["due"] == first["left"]
            and second["processed"] == first["left"]
            and after2["checked"] == self.jobs
            and after2["checked_twice"] == 0
            and after2["leases_held"] == 0
        )


@dataclass
class BusyReport:
    points: list[BusyPoint]
    default_concurrency: int
    budget: BudgetDemo | None


class BusyBench:
    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.emulator = EmulatorControl(rig.slow_emulator.url)
        self.ddb = rig.client("dynamodb")
        self._registered: set[str] = set()

    def prepare(self, jobs: int) -> tuple[Any, list[str]]:
        """A fresh table with `jobs` due jobs, each a `pending` job at the emulator."""
        stack = self.rig.stack(f"busy{jobs}")
        ids = [f"busy{jobs}x{i:05d}" for i in range(jobs)]
        for job_id in ids:
            if job_id not in self._registered:
                self.emulator.add_job(scenario="completed", job_identifier=job_id, steps=["pending"])
                self._registered.add(job_id)
        self.reset(stack, ids)
        return stack, ids

    def reset(self, stack: Any, ids: list[str]) -> None:
        """(Re)write every job as tracked just now and due now: no lease, no attempts, no warning earned."""
        from exportwatch.model import Job, iso, utcnow
        from exportwatch.store import to_item

        now = iso(utcnow())
        fresh = [Job(job_identifier=i, tracked_at=now, next_check_at=0) for i in ids]
        batch_put(self.ddb, stack.table_name, [to_item(j) for j in fresh])

    def point(self, jobs: int, concurrency: int, reps: int) -> BusyPoint:
        stack, ids = self.prepare(jobs)
        env = self.rig.child_env(stack, self.rig.slow_emulator)
        out = BusyPoint(jobs, concurrency)
        for rep in range(reps):
            if rep:
                self.reset(stack, ids)
            log(f"busy cycle: {jobs} due, concurrency {concurrency}, rep {rep + 1}/{reps}")
            moto_cpu, emulator_cpu = self.rig.moto.cpu_seconds(), self.rig.slow_emulator.cpu_seconds()
            result = run_child("busy", ["--concurrency", str(concurrency)], env, timeout=600)
            if result["processed"] != jobs or result["due"] != jobs:
                raise RuntimeError(f"busy cycle processed {result['processed']} of {jobs}: {result.data}")
            out.seconds.append(float(result["seconds"]))
            out.dynamodb_calls = result["dynamodb_calls"]
            out.processed = int(result["processed"])
            out.actions = result["actions"]
            out.dynamodb_ms = float(result["dynamodb_ms_median"])
            out.poller_cpu_s = float(result["cpu_s"])
            # Includes the child's start-up calls (token, one Query): small next to a cycle's work.
            out.moto_cpu_s = self.rig.moto.cpu_seconds() - moto_cpu
            out.emulator_cpu_s = self.rig.slow_emulator.cpu_seconds() - emulator_cpu
        return out

    def budget_demo(self, jobs: int, budget_s: float, concurrency: int) -> BudgetDemo:
        stack, _ = self.prepare(jobs)
        env = self.rig.child_env(stack, self.rig.slow_emulator)
        log(f"time budget: {jobs} due, {budget_s} s budget, concurrency {concurrency}")
        args = ["--budget", str(budget_s), "--concurrency", str(concurrency)]
        return BudgetDemo(jobs, budget_s, run_child("budget", args, env).data)


def run(rig: Rig, sizes: list[int], extra_concurrency: list[int], quick: bool) -> BusyReport:
    from exportwatch.config import Settings

    default = Settings.__dataclass_fields__["poll_concurrency"].default
    assert isinstance(default, int)
    bench = BusyBench(rig)
    points = []
    for jobs in sizes:
        reps = 1 if jobs >= 1000 or quick else 3 if jobs >= 100 else 5
        points.append(bench.point(jobs, default, reps))
    largest = max(sizes)
    for concurrency in extra_concurrency:
        points.append(bench.point(largest, concurrency, 1))
    demo_jobs = 100
    budget = bench.budget_demo(demo_jobs, LATENCY_S * demo_jobs / default / 3, default)
    rig.note_moto("after busy")
    return BusyReport(points, default, budget)
