"""Section 2: an idle cycle (nothing due) must cost the same with 0, 1,000 or 100,000 settled jobs in the table.

Settled jobs are written directly with BatchWriteItem in the exact item format store.to_item produces for a
settled job (no `due_shard`, so they are not in the sparse due index). One child process then runs idle cycles
on the three tables, interleaved, counting DynamoDB calls and the items they read through botocore's
after-call event, and timing a bare Query on the due index next to each cycle: moto's own cost.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from harness import Rig, batch_put, log, median, run_child

WALL_TARGET = 1.2
SEED_PROBE = 2_000


@dataclass
class TableSize:
    wanted: int
    seeded: int
    seed_seconds: float
    table: str
    note: str = ""


@dataclass
class IdleSize:
    size: TableSize
    cycles: int
    calls_per_cycle: list[int]  # distinct values seen
    items_per_cycle: list[int]
    scanned_per_cycle: list[int]
    ops: dict[str, int]  # operation -> calls in one cycle
    cycle_ms: float
    query_ms: float

    @property
    def vs_query(self) -> float:
        """Cycle time over the bare Query's on the same table: what exportwatch adds to moto's own cost."""
        return self.cycle_ms / self.query_ms


@dataclass
class IdleReport:
    sizes: list[IdleSize]
    seed_rate: float  # items per second into moto

    @property
    def empty(self) -> IdleSize:
        return self.sizes[0]

    def wall_ratio(self, s: IdleSize) -> float:
        return s.cycle_ms / self.empty.cycle_ms

    def query_ratio(self, s: IdleSize) -> float:
        return s.query_ms / self.empty.query_ms

    @property
    def calls_equal(self) -> bool:
        return len({tuple(s.calls_per_cycle) for s in self.sizes}) == 1 and all(
            len(s.calls_per_cycle) == 1 for s in self.sizes
        )

    @property
    def items_equal(self) -> bool:
        return len({(tuple(s.items_per_cycle), tuple(s.scanned_per_cycle)) for s in self.sizes}) == 1


def settled_items(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Items exactly as store.to_item writes a settled (completed and notified) job."""
    from exportwatch.model import Job, JobState
    from exportwatch.store import to_item

    items = []
    for i in range(start, start + count):
        job_id = f"settled{i:07d}"
        job = Job(
            job_identifier=job_id,
            state=JobState.COMPLETED,
            intercom_status="completed",
            tracked_at="2026-01-01T00:00:00Z",
            last_checked_at="2026-01-01T00:05:00Z",
            next_check_at=1_767_226_200,
            attempts=2,
            download_expires_at="2026-01-03T00:00:00Z",
            s3_uri=f"s3://exportwatch-exports/intercom-exports/{job_id}.zip",
            size_bytes=48_213_004,
            sha256="9f" * 32,
            content_type="application/zip",
            notified_at="2026-01-01T00:05:01Z",
            outcome_at="2026-01-01T00:05:00Z",
            ttl=1_769_818_201,
        )
        assert job.settled
        items.append(to_item(job))
    return items


def seed(rig: Rig, wanted: int, budget_s: float) -> tuple[TableSize, Any]:
    """Fill a fresh table with `wanted` settled jobs, fewer if moto is too slow to do it within `budget_s`."""
    stack = rig.stack(f"idle{wanted}")
    ddb = rig.client("dynamodb")
    started = time.perf_counter()
    done, note = 0, ""
    target = wanted
    while done < target:
        step = min(SEED_PROBE if done == 0 else 5_000, target - done)
        batch_put(ddb, stack.table_name, settled_items(step, done))
        done += step
        rate = done / (time.perf_counter() - started)
        projected = target / rate
        if projected > budget_s and target > done:
            target = max(done, int(rate * budget_s) // 10_000 * 10_000)
            note = (
                f"shrunk from {wanted:,}: moto took {1000 / rate:.2f} ms per item, so {wanted:,} items would take "
                f"~{wanted / rate:.0f} s against a {budget_s:.0f} s seeding budget (BENCH_SEED_BUDGET)"
            )
    seconds = time.perf_counter() - started
    if done:
        log(f"seeded {done:,} settled jobs in {seconds:.1f} s ({done / seconds:,.0f} items/s)")
    return TableSize(wanted, done, seconds, stack.table_name, note), stack


def run(rig: Rig, sizes: list[int], rounds: int, cycles: int) -> IdleReport:
    budget = float(os.environ.get("BENCH_SEED_BUDGET", "150"))
    seeded = [seed(rig, wanted, budget) for wanted in sizes]
    tables = [size for size, _ in seeded]
    stack = seeded[0][1]  # any of the stacks: the child points one poller at each table
    log(f"idle cycles: {rounds} rounds x {cycles} cycles per table, interleaved")
    result = run_child(
        "idle",
        ["--tables", ",".join(t.table for t in tables), "--rounds", str(rounds), "--cycles", str(cycles)],
        rig.child_env(stack),
        timeout=900,
    )
    out = []
    for t in tables:
        per_cycle = result["per_cycle"][t.table]
        out.append(
            IdleSize(
                size=t,
                cycles=len(per_cycle),
                calls_per_cycle=sorted({row[0] for row in per_cycle}),
                items_per_cycle=sorted({row[1] for row in per_cycle}),
                scanned_per_cycle=sorted({row[2] for row in per_cycle}),
                ops=per_cycle[0][3],
                cycle_ms=1000 * median(result["cycle_s"][t.table]),
                query_ms=1000 * median(result["query_s"][t.table]),
            )
        )
    filled = [t for t in tables if t.seeded]
    rate = sum(t.seeded for t in filled) / sum(t.seed_seconds for t in filled) if filled else 0.0
    rig.note_moto("after idle")
    return IdleReport(out, rate)
