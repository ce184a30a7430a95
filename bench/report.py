"""Turns the sections' results into the printed table, bench/RESULTS.md, bench/results.png and out/results.json."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import busy_cycle
import cold_start
import copy_speed
import idle_cycle
import package_size
import workspaces
from harness import BENCH_DIR, MB, OUT_DIR, median

if TYPE_CHECKING:
    from run import Results

RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_PNG = BENCH_DIR / "results.png"
RESULTS_JSON = OUT_DIR / "results.json"


@dataclass
class Check:
    section: str
    figure: str
    value: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None  # None: a figure shown for context, without a target
    cause: str = ""

    @property
    def verdict(self) -> str:
        return "info" if self.met is None else "met" if self.met else "MISSED"


def size_label(n: int) -> str:
    if n >= 1000 * MB:
        return f"{n / (1000 * MB):g} GB"
    if n >= MB:
        return f"{n / MB:g} MB"
    return f"{n:,} B"


def _r(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.2f}x"


# ------------------------------------------------------------------------------------------ checks


def copy_checks(c: copy_speed.CopyReport) -> list[Check]:
    out: list[Check] = []
    chosen = c.chosen if c.chosen != c.shipped else None
    variants: list[tuple[str, str]] = [("shipped", f"exportwatch {c.shipped.short} (shipped)")]
    if chosen is not None and any(r.proposed for r in c.sizes):
        variants.append(("proposed", f"exportwatch {chosen.short} (proposed)"))
    for attr, who in variants:
        for r in c.sizes:
            samples = getattr(r, attr)
            ratio = r.ratio(samples)
            has_target = r.size >= copy_speed.TARGET_MIN_SIZE
            cause = ""
            if has_target and ratio < copy_speed.THROUGHPUT_TARGET:
                cause = _copy_speed_cause(r, samples)
            out.append(
                Check(
                    "copy",
                    f"{who}: MB/s at {size_label(r.size)}",
                    f"{r.mbps(samples):.0f} MB/s",
                    f"limit {r.limit_mbps:.0f} MB/s",
                    ratio,
                    f">= {copy_speed.THROUGHPUT_TARGET}x limit" if has_target else "-",
                    (ratio >= copy_speed.THROUGHPUT_TARGET) if has_target else None,
                    cause,
                )
            )
        if len(c.sizes) >= 2:
            small, large = c.sizes[0], c.sizes[-1]
            lo, hi = small.peak(getattr(small, attr)), large.peak(getattr(large, attr))
            cause = ""
            if hi - lo > copy_speed.MEMORY_ALLOWANCE_MB and attr == "shipped":
                cause = (
                    f"s3transfer buffers up to max_in_memory_upload_chunks=10 parts read from a non-seekable stream "
                    f"whatever max_concurrency is: 10 x {c.shipped.part_mib} MiB, plus the part being read; "
                    "CopySettings.transfer_config() does not cap it"
                )
            out.append(
                Check(
                    "copy",
                    f"{who}: peak RSS {size_label(large.size)} vs {size_label(small.size)}",
                    f"{hi:.0f} MB",
                    f"{lo:.0f} MB",
                    hi / lo,
                    f"<= {size_label(small.size)} + {copy_speed.MEMORY_ALLOWANCE_MB:.0f} MB",
                    hi - lo <= copy_speed.MEMORY_ALLOWANCE_MB,
                    cause,
                )
            )
    for r in c.sizes:  # a lying Content-Length must not size memory
        honest, lying = r.peak(r.shipped), r.peak(r.lying)
        if r.lying:
            out.append(
                Check(
                    "copy",
                    f"peak RSS at {size_label(r.size)}, Content-Length lying "
                    f"({copy_speed.LYING_CONTENT_LENGTH / 1024**3:.0f} GiB) vs honest",
                    f"{lying:.0f} MB",
                    f"{honest:.0f} MB",
                    lying / honest,
                    f"<= honest + {copy_speed.MEMORY_ALLOWANCE_MB:.0f} MB",
                    lying - honest <= copy_speed.MEMORY_ALLOWANCE_MB,
                    "" if lying - honest <= copy_speed.MEMORY_ALLOWANCE_MB else "a header sized the parts or buffers",
                )
            )
    for r in c.sizes:
        out.append(
            Check(
                "copy",
                f"naive get().content + put_object: MB/s at {size_label(r.size)}",
                f"{r.mbps(r.naive):.0f} MB/s",
                f"limit {r.limit_mbps:.0f} MB/s",
                r.ratio(r.naive),
                "-",
                None,
            )
        )
    if len(c.sizes) >= 2:
        small, large = c.sizes[0], c.sizes[-1]
        lo, hi = small.peak(small.naive), large.peak(large.naive)
        grows = hi - lo >= 0.5 * (large.size - small.size) / MB
        out.append(
            Check(
                "copy",
                f"naive: peak RSS {size_label(large.size)} vs {size_label(small.size)}",
                f"{hi:.0f} MB",
                f"{lo:.0f} MB",
                hi / lo,
                "grows with the file",
                grows,
            )
        )
    return out


def _copy_speed_cause(r: copy_speed.SizeResult, samples: list[copy_speed.Sample]) -> str:
    copy, upload = copy_speed.fastest(samples), copy_speed.fastest(r.upload_limit)
    cpus = os.cpu_count() or 1
    moto, own, emulator = (x / copy.seconds for x in (copy.moto_cpu_s, copy.cpu_s, copy.emulator_cpu_s))
    others = max(0.0, copy.machine_busy * cpus - moto - own - emulator)
    copy_cpu, upload_cpu = copy_speed.cpu_per_gb(copy, r.size), copy_speed.cpu_per_gb(upload, r.size)
    ceiling = upload_cpu / copy_cpu
    text = (
        f"the machine's {cpus} cores were {copy.machine_busy:.0%} busy during the fastest run: moto (one Python "
        f"process) {moto:.2f} cores, the copying process {own:.2f}, the emulator {emulator:.2f}, other work on this "
        f"shared machine {others:.2f}. The three spent {copy_cpu:.1f} CPU-s per GB against {upload_cpu:.1f} in the "
        f"upload-only limit run, which pays for neither the download nor the sha256: with the CPU as the bound the "
        f"copy's ceiling here is about {ceiling:.2f}x the limit"
    )
    if copy.machine_busy >= 0.85:
        text = "CPU-bound: " + text + f", and it reached {r.ratio(samples) / ceiling:.0%} of that"
    speeds = sorted(r.size / s.seconds / MB for s in samples)
    return (
        text + f". Runs ranged {speeds[0]:.0f}-{speeds[-1]:.0f} MB/s. On Lambda, S3 and Intercom do not share the "
        "function's CPU"
    )


def idle_checks(i: idle_cycle.IdleReport) -> list[Check]:
    sizes = ", ".join(f"{s.size.seeded:,}" for s in i.sizes)
    calls = "; ".join(f"{s.size.seeded:,}: {s.calls_per_cycle}" for s in i.sizes)
    ops = ", ".join(f"{k} x{v}" for k, v in i.empty.ops.items()) or "none"
    out = [
        Check(
            "idle",
            f"DynamoDB calls per idle cycle ({sizes} settled)",
            ops,
            calls,
            None,
            "equal at every size",
            i.calls_equal,
        ),
        Check(
            "idle",
            "items read per idle cycle (Count + ScannedCount)",
            "; ".join(f"{s.size.seeded:,}: {s.items_per_cycle[0] + s.scanned_per_cycle[0]}" for s in i.sizes),
            "-",
            None,
            "equal at every size",
            i.items_equal,
        ),
    ]
    for s in i.sizes[1:]:
        ratio = i.wall_ratio(s)
        cause = ""
        if ratio > idle_cycle.WALL_TARGET:
            cause = (
                f"moto, not exportwatch: moto's Query on a global secondary index walks every item of the table "
                f"(moto/dynamodb/models/table.py, Table.query loops over all_items()); the bare Query alone is "
                f"{i.query_ratio(s):.1f}x its empty-table time here, while DynamoDB reads only the sparse index "
                f"(items read: 0 at every size). The cycle is {s.vs_query:.2f}x that bare Query on the same table "
                f"({i.empty.vs_query:.2f}x on the empty one)"
            )
        out.append(
            Check(
                "idle",
                f"idle cycle wall time, {s.size.seeded:,} settled jobs",
                f"{s.cycle_ms:.1f} ms",
                f"{i.empty.cycle_ms:.1f} ms empty",
                ratio,
                f"<= {idle_cycle.WALL_TARGET}x",
                ratio <= idle_cycle.WALL_TARGET,
                cause,
            )
        )
    for s in i.sizes:
        out.append(
            Check(
                "idle",
                f"idle cycle vs a bare due-index Query, same table, {s.size.seeded:,} settled",
                f"{s.cycle_ms:.1f} ms",
                f"Query {s.query_ms:.1f} ms",
                s.vs_query,
                f"<= {idle_cycle.WALL_TARGET}x (moto-neutral)",
                s.vs_query <= idle_cycle.WALL_TARGET,
            )
        )
    return out


def busy_checks(b: busy_cycle.BusyReport) -> list[Check]:
    out: list[Check] = []
    for p in b.points:
        default = p.concurrency == b.default_concurrency
        cause = ""
        if default and p.ratio > busy_cycle.TARGET:
            rounds = math.ceil(p.jobs / p.concurrency)
            per_round = (p.cycle_s - p.ideal_s) / rounds * 1000
            cause = (
                f"{per_round:.0f} ms per round of {min(p.jobs, p.concurrency)} job(s) beyond the 50 ms status call: "
                f"each job's claim and save are two conditional writes made in turn with its status call, at a "
                f"median {p.dynamodb_ms:.1f} ms per DynamoDB call on moto here"
            )
            if p.jobs <= p.concurrency:
                cause += (
                    ", after the cycle's due-index Query: three DynamoDB round trips in a row that any leased "
                    "cycle needs, a fixed cost next to a single 50 ms status call"
                )
            else:
                cause += (
                    f"; CPU per job: poller {1000 * p.poller_cpu_s / p.jobs:.1f} ms, moto "
                    f"{1000 * p.moto_cpu_s / p.jobs:.1f} ms, emulator {1000 * p.emulator_cpu_s / p.jobs:.1f} ms "
                    f"on {os.cpu_count()} shared cores"
                )
        out.append(
            Check(
                "busy",
                f"busy cycle, {p.jobs:,} due, concurrency {p.concurrency}",
                f"{p.cycle_s:.2f} s",
                f"ideal {p.ideal_s:.2f} s",
                p.ratio,
                f"<= {busy_cycle.TARGET}x" if default else "-",
                (p.ratio <= busy_cycle.TARGET) if default else None,
                cause,
            )
        )
    if b.budget is not None:
        d = b.budget.data
        f, s = d["first"], d["second"]
        out.append(
            Check(
                "busy",
                f"{b.budget.jobs} due, {b.budget.budget_s:.2f} s time budget",
                f"cycle 1 did {f['processed']}, left {f['left']}; cycle 2 did {s['processed']}",
                f"{d['after_second']['checked']} of {b.budget.jobs} checked once, "
                f"{d['after_second']['leases_held']} leases held",
                None,
                "rest left for next cycle, none lost",
                b.budget.ok,
            )
        )
    return out


def cold_checks(c: cold_start.ColdReport) -> list[Check]:
    heavy = ", ".join(f"{name} {ms:.0f} ms" for name, ms in c.import_costs[:4])
    import_cause = f"largest import costs: {heavy}" if c.import_ratio > cold_start.TARGET else ""
    call_cause = f"largest import costs: {heavy}" if c.cold_call_ratio > cold_start.TARGET else ""
    return [
        Check(
            "cold",
            "import functions/poller/app.py",
            f"{1000 * _med(c.app_import):.0f} ms",
            f"import boto3, requests {1000 * _med(c.baseline_import):.0f} ms",
            c.import_ratio,
            f"<= {cold_start.TARGET}x",
            c.import_ratio <= cold_start.TARGET,
            import_cause,
        ),
        Check(
            "cold",
            "import + first invocation (one completed job)",
            f"{1000 * _med(c.app_first):.0f} ms",
            f"bare boto3+requests script {1000 * _med(c.script_total):.0f} ms",
            c.cold_call_ratio,
            f"<= {cold_start.TARGET}x",
            c.cold_call_ratio <= cold_start.TARGET,
            call_cause,
        ),
    ]


def size_checks(s: package_size.SizeReport) -> list[Check]:
    parts = " + ".join(f"{a.name} {a.unzipped / MB:.1f} MB" for a in s.artifacts)
    return [
        Check(
            "size",
            f"function + layer unzipped ({s.source})",
            parts,
            "limit 250 MiB",
            s.ratio,
            "<= 1.0x limit",
            s.ratio <= 1.0,
        )
    ]


def _med(values: list[float]) -> float:
    return median(values) if values else float("nan")


def all_checks(res: Results) -> list[Check]:
    checks: list[Check] = []
    if res.copy:
        checks += copy_checks(res.copy)
    if res.idle:
        checks += idle_checks(res.idle)
    if res.busy:
        checks += busy_checks(res.busy)
    if res.cold:
        checks += cold_checks(res.cold)
    if res.size:
        checks += size_checks(res.size)
    if res.workspaces:
        checks += workspaces_checks(res.workspaces)
    return checks


# ------------------------------------------------------------------------------------------ console


def print_table(checks: list[Check]) -> None:
    headers = ("section", "figure", "measured", "baseline", "ratio", "target", "")
    rows = [(c.section, c.figure, c.value, c.baseline, _r(c.ratio), c.target, c.verdict) for c in checks]
    widths = [
        min(max(len(str(r[i])) for r in [headers, *rows]), cap) for i, cap in enumerate((6, 62, 34, 36, 7, 26, 6))
    ]

    def fmt(row: Iterable[str]) -> str:
        return "  ".join(str(cell)[:w].ljust(w) for cell, w in zip(row, widths, strict=True))

    print()
    print(fmt(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))
    print()


# ------------------------------------------------------------------------------------------ markdown


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _spread(samples: list[copy_speed.Sample], size: int) -> str:
    if not samples:
        return "-"
    speeds = sorted(size / s.seconds / MB for s in samples)
    return f"{speeds[0]:.0f}-{speeds[-1]:.0f}" if len(speeds) > 1 else f"{speeds[0]:.0f}"


def calls_for(res: Results) -> list[str]:
    """The code changes these figures call for (package code is not changed by the benchmark)."""
    items: list[str] = []
    c = res.copy
    if c is not None and c.chosen is not None and c.chosen != c.shipped and c.sizes:
        small, large = c.sizes[0], c.sizes[-1]
        items.append(
            f"`archive.CopySettings`: part_size {c.chosen.part_mib} MiB, max_concurrency {c.chosen.concurrency}, and "
            "in `transfer_config()` set `config.max_in_memory_upload_chunks = self.max_concurrency` (s3transfer "
            "otherwise buffers 10 parts of a non-seekable stream). Peak RSS at "
            f"{size_label(large.size)}: {large.peak(large.shipped):.0f} MB shipped vs "
            f"{large.peak(large.proposed):.0f} MB proposed ({size_label(small.size)}: "
            f"{small.peak(small.shipped):.0f} / {small.peak(small.proposed):.0f} MB); throughput "
            f"{large.mbps(large.shipped):.0f} vs {large.mbps(large.proposed):.0f} MB/s at {size_label(large.size)}."
        )
    if res.cold is not None and res.cold.import_ratio > cold_start.TARGET:
        heavy = ", ".join(name for name, _ in res.cold.import_costs[:3])
        items.append(f"Cold start: import lazily or drop the heaviest additions ({heavy}).")
    if not items:
        return []
    return ["### What the figures call for", "", *[f"- {item}" for item in items], ""]


def copy_md(c: copy_speed.CopyReport) -> list[str]:
    lines = [
        "## 1. Copy: speed and memory against the limit",
        "",
        "Limit = the slower of (a) the emulator's download read to /dev/null and (b) boto3 `upload_fileobj` of the "
        "same bytes from a RAM file to the same moto S3 (the faster of boto3's defaults and exportwatch's part size "
        "and concurrency). exportwatch = one `run_cycle(all_jobs=True)` in a fresh process on one completed job "
        "(status, download, multipart upload, SNS, job saved), as `exportwatch poll --all` runs it. naive = "
        "`requests.get(url).content` then `put_object`. Peak RSS = VmHWM of that process (python + boto3 included). "
        "Throughput is the fastest of the repetitions on every side (other work on this shared machine only ever "
        "slows a run down; the range shows the spread); peak RSS is the highest of them. MB = 10^6 bytes.",
        "",
    ]
    headers = ["size", "reps", "download MB/s", "upload MB/s (defaults / tuned)", "limit MB/s",
               "exportwatch MB/s (range)", "ratio", "peak RSS MB"]  # fmt: skip
    has_proposed = any(r.proposed for r in c.sizes)
    if has_proposed:
        headers += ["proposed MB/s (range)", "ratio", "peak RSS MB"]
    headers += ["naive MB/s (range)", "ratio", "peak RSS MB", "moto RSS after MB"]
    rows = []
    for r in c.sizes:
        row = [
            size_label(r.size),
            str(r.reps),
            f"{r.mbps(r.download):.0f}",
            f"{r.mbps(r.upload_default):.0f} / {r.mbps(r.upload_tuned):.0f}",
            f"{r.limit_mbps:.0f}",
            f"{r.mbps(r.shipped):.0f} ({_spread(r.shipped, r.size)})",
            _r(r.ratio(r.shipped)),
            f"{r.peak(r.shipped):.0f}",
        ]
        if has_proposed:
            row += [f"{r.mbps(r.proposed):.0f} ({_spread(r.proposed, r.size)})", _r(r.ratio(r.proposed)),
                    f"{r.peak(r.proposed):.0f}"]  # fmt: skip
        row += [f"{r.mbps(r.naive):.0f} ({_spread(r.naive, r.size)})", _r(r.ratio(r.naive)),
                f"{r.peak(r.naive):.0f}", f"{r.moto_rss_after_mb:.0f}"]  # fmt: skip
        rows.append(row)
    lines += _md_table(headers, rows)
    cpu_rows = []
    for r in c.sizes:
        gb = r.size / (1000 * MB)
        runs = [("download limit", r.download), ("upload limit", r.upload_limit), ("exportwatch (shipped)", r.shipped),
                ("exportwatch (proposed)", r.proposed), ("naive", r.naive)]  # fmt: skip
        for name, samples in runs:
            if not samples:
                continue
            s = copy_speed.fastest(samples)
            cpu_rows.append([size_label(r.size), name, f"{s.cpu_s / gb:.1f}", f"{s.moto_cpu_s / gb:.1f}",
                             f"{s.emulator_cpu_s / gb:.1f}", f"{copy_speed.cpu_per_gb(s, r.size):.1f}",
                             f"{s.machine_busy:.0%}", f"{s.moto_peak_mb:.0f}"])  # fmt: skip
    lines += [
        "CPU seconds per GB copied (the fastest run; the child's figure includes interpreter start and imports, "
        "which dominates at 10 MB), how busy the whole machine's CPUs were during that run (anyone's work: the "
        "machine is shared) and moto's peak RSS during the run. This machine has "
        f"{os.cpu_count()} cores for all three processes.",
        "",
    ]
    lines += _md_table(["size", "run", "child CPU-s/GB", "moto CPU-s/GB", "emulator CPU-s/GB", "total CPU-s/GB",
                        "machine CPU busy", "moto peak RSS MB"], cpu_rows)  # fmt: skip
    if c.sweep:
        lines += [
            f"### CopySettings sweep at {size_label(c.sweep_size)}",
            "",
            "Each setting caps s3transfer's buffered parts at its concurrency (`max_in_memory_upload_chunks = "
            f"max_concurrency`); {len(c.sweep[0].samples)} run(s) each, interleaved (fastest run, highest peak). "
            "Memory budget: peak RSS <= "
            f"{c.peak_budget_mb:.0f} MB (the shipped copy's peak at {size_label(c.sizes[0].size)} + "
            f"{copy_speed.MEMORY_ALLOWANCE_MB:.0f} MB).",
            "",
        ]
        rows = [
            [
                f"{p.settings.part_mib} MiB",
                str(p.settings.concurrency),
                f"{p.mbps:.0f}",
                f"{p.peak_mb:.0f}",
                "yes" if p.peak_mb <= c.peak_budget_mb else "no",
                "**chosen**" if c.chosen == p.settings else "",
            ]
            for p in c.sweep
        ]
        lines += _md_table(["part size", "concurrency", "MB/s", "peak RSS MB", "within budget", ""], rows)
        lines += [f"Choice: {c.choice_reason}.", ""]
    return lines


def idle_md(i: idle_cycle.IdleReport) -> list[str]:
    lines = [
        "## 2. Idle cycle cost",
        "",
        "Settled jobs written with BatchWriteItem in the item format `store.to_item` produces for a settled job "
        f"(no `due_shard`): {i.seed_rate:,.0f} items/s into moto. One process runs idle `run_cycle` calls on the "
        "tables in turn (interleaved rounds); DynamoDB calls and items counted with botocore's after-call event. "
        "'bare Query' is the same due-index Query issued directly, timed right after each cycle: moto's own cost.",
        "",
    ]
    rows = []
    for s in i.sizes:
        rows.append(
            [
                f"{s.size.seeded:,}",
                f"{s.size.seed_seconds:.1f} s",
                str(s.cycles),
                ", ".join(f"{k} x{v}" for k, v in s.ops.items()),
                str(s.items_per_cycle[0] + s.scanned_per_cycle[0]) if len(s.items_per_cycle) == 1 else "varies",
                f"{s.cycle_ms:.2f}",
                _r(i.wall_ratio(s)),
                f"{s.query_ms:.2f}",
                _r(i.query_ratio(s)),
                _r(s.vs_query),
            ]
        )
    lines += _md_table(["settled jobs", "seeding", "cycles", "calls per cycle", "items read", "cycle ms (median)",
                        "vs empty", "bare Query ms", "vs empty", "cycle / bare Query"], rows)  # fmt: skip
    notes = [s.size.note for s in i.sizes if s.size.note]
    lines += [f"Table size: {n}." for n in notes] + ([""] if notes else [])
    return lines


def busy_md(b: busy_cycle.BusyReport) -> list[str]:
    lines = [
        "## 3. Busy cycle",
        "",
        "Every job is `pending` at an emulator whose status calls answer after 50 ms. Ideal = 50 ms x "
        "ceil(jobs / concurrency). One `run_cycle` in a fresh process, timed as in a warm Lambda container (token "
        "cached, DynamoDB connection open; section 4 covers the cold case). Every claim and save is a DynamoDB call "
        "to moto, one Python process: where moto's calls per second stop growing with concurrency, moto is the "
        "bottleneck, not the poller.",
        "",
    ]
    rows = []
    for p in b.points:
        rows.append(
            [
                f"{p.jobs:,}",
                str(p.concurrency) + (" (default)" if p.concurrency == b.default_concurrency else ""),
                str(len(p.seconds)),
                f"{p.cycle_s:.3f}",
                f"{p.ideal_s:.3f}",
                _r(p.ratio),
                f"{p.jobs / p.cycle_s:.0f}",
                ", ".join(f"{k} x{v}" for k, v in sorted(p.actions.items())),
                ", ".join(f"{k} x{v}" for k, v in sorted(p.dynamodb_calls.items())),
                f"{sum(p.dynamodb_calls.values()) / p.cycle_s:.0f}",
                f"{p.dynamodb_ms:.1f}",
                f"{1000 * p.poller_cpu_s / p.jobs:.1f} / {1000 * p.moto_cpu_s / p.jobs:.1f} / "
                f"{1000 * p.emulator_cpu_s / p.jobs:.1f}",
            ]
        )
    headers = ["due jobs", "concurrency", "runs", "cycle s (median)", "ideal s", "ratio", "jobs/s", "job results",
               "DynamoDB calls", "calls/s", "ms per call", "CPU ms per job: poller / moto / emulator"]  # fmt: skip
    lines += _md_table(headers, rows)
    if b.budget is not None:
        d = b.budget.data
        lines += [
            f"Time budget: {b.budget.jobs} jobs due, `run_cycle(time_left=...)` with {b.budget.budget_s:.2f} s left "
            "and no reserve.",
            "",
        ]
        lines += _md_table(
            ["", "due", "processed", "left for next cycle", "stopped because"],
            [
                ["cycle 1", str(d["first"]["due"]), str(d["first"]["processed"]), str(d["first"]["left"]),
                 str(d["first"]["stopped"])],
                ["cycle 2", str(d["second"]["due"]), str(d["second"]["processed"]), str(d["second"]["left"]), "-"],
            ],
        )  # fmt: skip
        a1, a2 = d["after_first"], d["after_second"]
        lines += [
            f"After cycle 1: {a1['checked']} checked, {a1['untouched_due']} untouched and still due now, "
            f"{a1['leases_held']} leases held. After cycle 2: {a2['checked']} of {a2['jobs']} checked exactly once, "
            f"{a2['checked_twice']} checked twice, {a2['leases_held']} leases held: "
            + ("nothing lost." if b.budget.ok else "**something was lost or repeated**."),
            "",
        ]
    return lines


def cold_md(c: cold_start.ColdReport) -> list[str]:
    lines = [
        "## 4. Cold start",
        "",
        f"Fresh interpreters, {len(c.app_import)} runs each after one discarded warm-up (medians). The baseline for "
        "the first invocation is a bare boto3 + requests script doing the same one-job work (secret, due Query, "
        "status, download, put_object, publish, settle), its imports included.",
        "",
    ]
    rows = [
        ["import boto3, requests", f"{1000 * _med(c.baseline_import):.0f}", "1.00x",
         f"{c.baseline_rss_mb:.0f}", str(c.baseline_modules)],
        ["import app (handler module)", f"{1000 * _med(c.app_import):.0f}", _r(c.import_ratio),
         f"{c.app_rss_mb:.0f}", str(c.app_modules)],
        ["  same, CPU time instead of wall time", f"{1000 * _med(c.app_import_cpu):.0f}",
         _r(c.import_cpu_ratio), "", ""],
        ["  import app after boto3, requests (what it adds)", f"{1000 * _med(c.marginal_import):.0f}", "", "",
         f"+{c.marginal_modules}"],
        ["bare script: imports + the one job", f"{1000 * _med(c.script_total):.0f}", "1.00x", "", ""],
        ["import app + first invocation", f"{1000 * _med(c.app_first):.0f}", _r(c.cold_call_ratio), "", ""],
        ["  of which the first invocation", f"{1000 * _med(c.app_first_call):.0f}", "", "", ""],
        ["second (warm) invocation, nothing due", f"{1000 * _med(c.app_warm_call):.0f}", "", "", ""],
    ]  # fmt: skip
    lines += _md_table(["", "ms", "ratio", "RSS MB", "modules"], rows)
    top = ", ".join(f"{name} {ms:.0f} ms" for name, ms in c.import_costs[:8])
    lines += [
        f"`python -X importtime` of `import app` after `import boto3, requests` ({c.app_cumulative_ms:.0f} ms, one "
        f"run): self time by top-level package of what the handler adds: {top}.",
        "",
    ]
    return lines


def size_md(s: package_size.SizeReport) -> list[str]:
    lines = [
        "## 5. Package size",
        "",
        f"Source: {s.source}" + (f" ({s.note})" if s.note else "") + ". Lambda allows 250 MiB unzipped for the "
        "function and all its layers together; boto3 and botocore come with the python3.13 runtime.",
        "",
    ]
    rows = [
        [a.name, f"{a.unzipped / MB:.2f}", f"{a.zipped / MB:.2f}", str(a.files),
         ", ".join(f"{n} {b / MB:.1f}" for n, b in a.top)]
        for a in s.artifacts
    ]  # fmt: skip
    rows.append(["total", f"{s.total_unzipped / MB:.2f}", "", "", f"{s.ratio:.1%} of the limit"])
    lines += _md_table(["artifact", "unzipped MB", "zipped MB", "files", "largest entries (MB)"], rows)
    return lines


def write_markdown(res: Results, checks: list[Check]) -> None:
    lines = [
        "# exportwatch benchmark results",
        "",
        f"Generated by `{res.command}` on {res.started:%Y-%m-%d %H:%M} UTC; the run took "
        f"{res.total_seconds / 60:.1f} minutes ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in res.seconds.items())
        + "). Every figure is a ratio against a baseline measured in the same run on this machine, against one "
        "moto server and the Intercom emulator on loopback, each in its own process.",
        "",
        "Load average (1 min) at the start and end of each section, a sign of other work on this shared machine: "
        + ", ".join(f"{k} {a:.1f} -> {b:.1f}" for k, (a, b) in res.load.items())
        + ".",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in res.facts.items()) + ".",
        "",
        "## Targets",
        "",
    ]
    lines += _md_table(
        ["section", "figure", "measured", "baseline", "ratio", "target", "verdict"],
        [[c.section, c.figure, c.value, c.baseline, _r(c.ratio), c.target,
          f"**{c.verdict}**" if c.met is False else c.verdict] for c in checks],
    )  # fmt: skip
    missed = [c for c in checks if c.met is False]
    if missed:
        lines += ["### Why targets were missed", ""]
        lines += [f"- **{c.figure}**: {c.cause or 'see the section below.'}" for c in missed]
        lines += [""]
    if res.errors:
        lines += ["### Sections that failed", ""]
        for name, text in res.errors.items():
            lines += [f"{name}:", "", "```", text.rstrip(), "```", ""]
    lines += calls_for(res)
    lines += ["![results](results.png)", ""]
    if res.copy:
        lines += copy_md(res.copy)
    if res.idle:
        lines += idle_md(res.idle)
    if res.busy:
        lines += busy_md(res.busy)
    if res.cold:
        lines += cold_md(res.cold)
    if res.size:
        lines += size_md(res.size)
    if res.workspaces:
        lines += workspaces_md(res.workspaces)
    if res.moto_rss:
        lines += [
            "## moto server memory",
            "",
            "moto keeps every object and item in its own process; objects are deleted (all versions) after every "
            "copy run. Resident memory at checkpoints: "
            + ", ".join(f"{label} {mb:.0f} MB" for label, mb in res.moto_rss)
            + ".",
            "",
        ]
    RESULTS_MD.write_text("\n".join(lines), encoding="utf-8")


WORKSPACES_HEADING = "## 6. Workspaces"


def workspaces_checks(w: workspaces.WorkspacesReport) -> list[Check]:
    out = [
        Check(
            "workspaces",
            f"{w.workspaces} workspaces, one window each: cycles until all archived",
            f"{len(w.cycles)} cycles, {w.windows.get('archived', 0)} archived",
            "3 (pending, in_progress, completed)",
            len(w.cycles) / 3,
            "-",
            None,
        ),
        Check(
            "workspaces",
            f"{w.workspaces} workspaces: all cycles' wall time",
            f"{w.total_s:.2f} s",
            f"ideal {w.ideal_total_s:.2f} s",
            w.total_s / w.ideal_total_s if w.ideal_total_s else None,
            "-",
            None,
        ),
    ]
    for c in w.cycles:
        out.append(
            Check(
                "workspaces",
                f"{w.workspaces} workspaces: cycle {c.cycle} ({c.status_calls} status calls)",
                f"{c.seconds:.2f} s",
                f"ideal {c.ideal_s(w.concurrency):.2f} s",
                c.ratio(w.concurrency),
                "-",
                None,
            )
        )
    return out


def workspaces_md(w: workspaces.WorkspacesReport) -> list[str]:
    f = w.fleet
    lines = [
        f"{WORKSPACES_HEADING}: {w.workspaces} workspaces, one window each",
        "",
        f"{w.workspaces} workspaces (`default` and {w.workspaces - 1} registered), each with its own loopback Intercom "
        "emulator (own port, own token) whose status calls answer after 50 ms; the emulators share one process "
        "(EmulatorFleet), moto has another, the cycles run in a fresh child. Each workspace has one queued "
        "window (yesterday, a one-day backfill). Cycles are `run_cycle(all_jobs=True)` (`exportwatch poll --all`) "
        "back to back until every window is archived. Each export answers pending, in_progress, completed to its "
        "first, second and third status call, so 3 cycles is the least possible. Ideal per cycle = 50 ms x "
        f"ceil(status calls / {w.concurrency}), the same ideal as section 3: the status calls alone, perfectly "
        "overlapped. The creates (cycle 1), the copies and the ledger writes (cycle 3) are not in the ideal: the "
        "ratio shows what they cost. Figures for context, not targets.",
        "",
    ]
    rows = [
        [
            str(c.cycle),
            f"{c.seconds:.2f}",
            f"{c.ideal_s(w.concurrency):.2f}",
            _r(c.ratio(w.concurrency)),
            str(c.status_calls),
            ", ".join(f"{k} x{v}" for k, v in sorted(c.scheduler.items())) or "-",
            ", ".join(f"{k} x{v}" for k, v in sorted(c.actions.items())) or "-",
            ", ".join(f"{k} x{v}" for k, v in sorted(c.dynamodb_by_call.items())),
            f"{c.dynamodb_ms:.1f}",
            f"{c.cpu_s:.1f}",
            str(c.archived_after),
        ]
        for c in w.cycles
    ]
    rows.append(
        ["all", f"{w.total_s:.2f}", f"{w.ideal_total_s:.2f}",
         _r(w.total_s / w.ideal_total_s if w.ideal_total_s else None), str(sum(c.status_calls for c in w.cycles)),
         "", "", str(sum(c.dynamodb_calls for c in w.cycles)), "", f"{sum(c.cpu_s for c in w.cycles):.1f}",
         str(w.windows.get("archived", 0))]
    )  # fmt: skip
    headers = ["cycle", "s", "ideal s", "ratio", "status calls", "scheduler (per workspace)", "jobs",
               "DynamoDB calls", "ms per call (median)", "poller CPU s", "windows archived after"]  # fmt: skip
    lines += _md_table(headers, rows)
    lines += [
        f"Setup (not timed above): {w.workspaces - 1} secrets, registry records and {w.workspaces} one-day backfills "
        f"written in {w.setup_s:.1f} s. Emulator fleet: {w.workspaces} servers started in {f.get('start_s', 0):.2f} s, "
        f"{f.get('rss_idle_mb', 0):.0f} MB resident when idle, {f.get('rss_end_mb', 0):.0f} MB and "
        f"{f.get('threads_end', 0)} threads at the end: {w.workspaces} servers in one process are no problem. "
        f"CPU over all cycles: poller {sum(c.cpu_s for c in w.cycles):.1f} s, moto {f.get('moto_cpu_s', 0):.1f} s, "
        f"emulator fleet {f.get('fleet_cpu_s', 0):.1f} s, on {os.cpu_count()} cores shared with other work (load "
        f"average {f.get('load_end', 0):.1f} at the end). "
        f"Creates accepted: {f.get('creates_ok')}, refused: {f.get('creates_refused')}; the most exports active at "
        f"once in any workspace: {f.get('peak_active_max')}; tokens seen by a workspace's emulator that were not "
        f"its own: {f.get('foreign_tokens')}. Windows at the end: "
        + ", ".join(f"{n} {state}" for state, n in sorted(w.windows.items()))
        + (". Every window archived, one export at a time, tokens kept apart." if w.ok else ". **Not all good.**"),
        "",
        "What it means for one scheduled poller (600 s Lambda timeout): docs/scaling.md.",
        "",
    ]
    return lines


def splice_workspaces(res: Results) -> None:
    """Replace (or add) section 6 of RESULTS.md, leaving every other section as the last full run wrote it."""
    assert res.workspaces is not None
    text = RESULTS_MD.read_text(encoding="utf-8")
    section = "\n".join(workspaces_md(res.workspaces))
    command = "make bench BENCH=workspaces" if res.command.startswith("make bench") else res.command
    section += (
        f"(Section 6 run alone by `{command}` on {res.started:%Y-%m-%d %H:%M} UTC in "
        f"{res.seconds.get('workspaces', 0):.0f} s; load average {res.load.get('workspaces', (0, 0))[0]:.1f} -> "
        f"{res.load.get('workspaces', (0, 0))[1]:.1f}.)\n\n"
    )
    start = text.find(WORKSPACES_HEADING)
    if start < 0:
        start = end = text.find("## moto server memory")
        if start < 0:
            start = end = len(text)
    else:
        following = text.find("\n## ", start + 1)
        end = len(text) if following < 0 else following + 1
    RESULTS_MD.write_text(text[:start] + section + text[end:], encoding="utf-8")


# ------------------------------------------------------------------------------------------ plot


def plot(res: Results) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    ax = axes.flat
    if res.copy:
        _plot_copy(ax[0], ax[1], res.copy)
        _plot_sweep(ax[2], res.copy)
    if res.idle:
        _plot_idle(ax[3], res.idle)
    if res.busy:
        _plot_busy(ax[4], res.busy)
    if res.cold:
        _plot_cold(ax[5], res.cold, res.size)
    for a in ax:
        if not a.has_data():
            a.set_axis_off()
    fig.suptitle(f"exportwatch benchmarks, {res.started:%Y-%m-%d} ({res.facts.get('cores')} cores, ratios vs "
                 "baselines in the same run)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(RESULTS_PNG, dpi=110)
    plt.close(fig)
    return True


def _plot_copy(a1: Any, a2: Any, c: copy_speed.CopyReport) -> None:
    labels = [size_label(r.size) for r in c.sizes]
    series = [("exportwatch (shipped)", "shipped", "tab:blue")]
    if any(r.proposed for r in c.sizes):
        series.append(("exportwatch (proposed)", "proposed", "tab:green"))
    series.append(("naive", "naive", "tab:red"))
    width = 0.8 / len(series)
    for k, (name, attr, color) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(c.sizes))]
        a1.bar(xs, [r.ratio(getattr(r, attr)) if getattr(r, attr) else 0 for r in c.sizes], width, label=name,
               color=color)  # fmt: skip
        a2.plot(labels, [r.peak(getattr(r, attr)) for r in c.sizes], "o-", label=name, color=color)
    a1.axhline(copy_speed.THROUGHPUT_TARGET, color="k", ls="--", lw=1, label="target 0.8x")
    a1.set_xticks(range(len(labels)), labels)
    a1.set_ylabel("throughput / limit")
    a1.set_title("1. Copy throughput vs the limit")
    a1.legend(fontsize=8)
    a2.axhline(c.peak_budget_mb, color="k", ls="--", lw=1, label=f"smallest + {copy_speed.MEMORY_ALLOWANCE_MB:.0f} MB")
    a2.set_yscale("log")
    a2.set_ylabel("peak RSS of the copying process (MB)")
    a2.set_title("1. Copy peak memory")
    a2.legend(fontsize=8)


def _plot_sweep(a: Any, c: copy_speed.CopyReport) -> None:
    if not c.sweep:
        return
    for p in c.sweep:
        chosen = c.chosen == p.settings
        a.scatter(p.peak_mb, p.mbps, s=70 if chosen else 30, color="tab:green" if chosen else "tab:gray")
        a.annotate(f"{p.settings.part_mib}x{p.settings.concurrency}", (p.peak_mb, p.mbps), fontsize=8,
                   xytext=(3, 3), textcoords="offset points")  # fmt: skip
    a.axvline(c.peak_budget_mb, color="k", ls="--", lw=1, label="memory budget")
    a.set_ylim(bottom=0, top=max(p.mbps for p in c.sweep) * 1.15)
    a.legend(fontsize=8, loc="lower left")
    a.set_xlabel("peak RSS (MB)")
    a.set_ylabel("MB/s")
    a.set_title(f"1. CopySettings sweep at {size_label(c.sweep_size)} (part MiB x threads)")


def _plot_idle(a: Any, i: idle_cycle.IdleReport) -> None:
    labels = [f"{s.size.seeded:,}" for s in i.sizes]
    xs = range(len(labels))
    a.bar([x - 0.2 for x in xs], [s.cycle_ms for s in i.sizes], 0.4, label="idle cycle", color="tab:blue")
    a.bar([x + 0.2 for x in xs], [s.query_ms for s in i.sizes], 0.4, label="bare Query (moto)", color="tab:gray")
    for x, s in zip(xs, i.sizes, strict=True):
        a.annotate(f"{i.wall_ratio(s):.2f}x empty\n{s.vs_query:.2f}x Query\n{sum(s.ops.values())} call",
                   (x, s.cycle_ms), fontsize=8, ha="center", va="bottom")  # fmt: skip
    a.set_xticks(list(xs), labels)
    a.set_yscale("log")
    a.set_ylim(top=max(s.cycle_ms for s in i.sizes) * 6)
    a.set_xlabel("settled jobs in the table")
    a.set_ylabel("ms (median, log scale)")
    a.set_title("2. Idle cycle")
    a.legend(fontsize=8)


def _plot_busy(a: Any, b: busy_cycle.BusyReport) -> None:
    labels = [f"{p.jobs:,}\nc={p.concurrency}" for p in b.points]
    colors = ["tab:blue" if p.concurrency == b.default_concurrency else "tab:purple" for p in b.points]
    a.bar(range(len(labels)), [p.ratio for p in b.points], color=colors)
    a.axhline(busy_cycle.TARGET, color="k", ls="--", lw=1, label="target 1.5x")
    a.set_xticks(range(len(labels)), labels)
    a.set_ylabel("cycle time / ideal")
    a.set_title("3. Busy cycle (50 ms status calls)")
    a.legend(fontsize=8)


def _plot_cold(a: Any, c: cold_start.ColdReport, s: package_size.SizeReport | None) -> None:
    names = ["import\nboto3+requests", "import app", "bare script\n+ one job", "import app\n+ first call"]
    values = [1000 * _med(v) for v in (c.baseline_import, c.app_import, c.script_total, c.app_first)]
    a.bar(names, values, color=["tab:gray", "tab:blue", "tab:gray", "tab:blue"])
    a.annotate(f"{c.import_ratio:.2f}x", (1, values[1]), ha="center", va="bottom")
    a.annotate(f"{c.cold_call_ratio:.2f}x", (3, values[3]), ha="center", va="bottom")
    a.set_ylabel("ms (median)")
    title = "4. Cold start"
    if s is not None:
        title += f"   |   5. package {s.total_unzipped / MB:.1f} MB = {s.ratio:.1%} of 250 MiB"
    a.set_title(title, fontsize=10)


# ------------------------------------------------------------------------------------------ entry


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def render(res: Results) -> None:
    checks = all_checks(res)
    print_table(checks)
    if set(res.seconds) == {"workspaces"} and RESULTS_MD.exists():  # run alone: the other sections stay as they were
        if res.workspaces is not None:
            splice_workspaces(res)
        print(f"{'updated section 6 of' if res.workspaces else 'left'} {RESULTS_MD.relative_to(BENCH_DIR.parent)}")
        return
    write_markdown(res, checks)
    plotted = plot(res)
    OUT_DIR.mkdir(exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(_jsonable(res), indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS_MD.relative_to(BENCH_DIR.parent)}"
          + (f", {RESULTS_PNG.relative_to(BENCH_DIR.parent)}" if plotted else "")
          + f" and {RESULTS_JSON.relative_to(BENCH_DIR.parent)}")  # fmt: skip
