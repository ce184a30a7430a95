"""Section 6: 200 workspaces, one window each, every window started and archived.

Each workspace has its own loopback Intercom emulator (its own port and token) whose status calls answer after
50 ms, as in section 3; the 200 emulators run in one process of their own (EmulatorFleet), moto in another, and
the cycles in a fresh child process. Each workspace gets a one-day backfill (yesterday, UTC). Cycles are
`run_cycle(all_jobs=True)`, what `exportwatch poll --all` runs, back to back, until every window is archived.
Each export goes pending -> in_progress -> completed, one step per status call, as Intercom's usually do; so
three cycles is the least any poller needs. A cycle's ideal is section 3's: 50 ms x ceil(status calls /
POLL_CONCURRENCY), the status calls alone, perfectly overlapped; the creates, copies and ledger writes come on top.

    .venv/bin/python bench/run.py --only workspaces     # this section alone (make bench BENCH=workspaces)

A run with this section alone rewrites only its own part of bench/RESULTS.md (report.splice_workspaces).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from busy_cycle import LATENCY_S
from harness import PYTHON, Rig, ServerProcess, log, run_child, start_server

SCRIPT = Path(__file__).resolve()
WORKSPACES = 200
MAX_CYCLES = 12


@dataclass
class CyclePoint:
    cycle: int
    seconds: float
    status_calls: int  # jobs checked this cycle (one status call each)
    actions: dict[str, int]  # job results by action
    scheduler: dict[str, int]  # workspace results by action (started, settled, waiting, ...)
    archived_after: int  # windows archived once the cycle ended
    dynamodb_calls: int
    cpu_s: float
    dynamodb_ms: float = 0.0  # median latency of one DynamoDB call (moto) in the cycle
    dynamodb_by_call: dict[str, int] = field(default_factory=dict)

    def ideal_s(self, concurrency: int) -> float:
        return LATENCY_S * math.ceil(self.status_calls / concurrency) if self.status_calls else 0.0

    def ratio(self, concurrency: int) -> float:
        ideal = self.ideal_s(concurrency)
        return self.seconds / ideal if ideal else float("nan")


@dataclass
class WorkspacesReport:
    workspaces: int
    concurrency: int
    setup_s: float  # secrets, registry records and backfills written into moto
    fleet: dict[str, Any]  # the emulator fleet's own figures (start time, RSS, threads; tokens, creates, peaks)
    cycles: list[CyclePoint] = field(default_factory=list)
    windows: dict[str, int] = field(default_factory=dict)  # window states at the end

    @property
    def all_archived(self) -> bool:
        return self.windows.get("archived", 0) == self.workspaces

    @property
    def total_s(self) -> float:
        return sum(c.seconds for c in self.cycles)

    @property
    def ideal_total_s(self) -> float:
        return sum(c.ideal_s(self.concurrency) for c in self.cycles)

    @property
    def ok(self) -> bool:
        f = self.fleet
        return bool(
            self.all_archived
            and f.get("foreign_tokens") == 0
            and f.get("peak_active_max", 2) <= 1
            and f.get("creates_ok") == self.workspaces
        )


# ------------------------------------------------------------------------------------------ the fleet process


def cmd_fleet(args: argparse.Namespace) -> None:
    """Serve one emulator per workspace (tokens from --tokens) until SIGTERM; write their URLs to --urls and, on
    SIGTERM, what they saw to --summary."""
    from exportwatch_local.emulator import EmulatorFleet

    tokens: dict[str, str] = json.loads(Path(args.tokens).read_text(encoding="utf-8"))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    started = time.perf_counter()
    with EmulatorFleet(tokens, status_delay=args.status_delay) as fleet:
        start_s = time.perf_counter() - started
        urls = {name: fleet.base_url(name) for name in tokens}
        Path(args.urls).write_text(json.dumps(urls), encoding="utf-8")
        print(next(iter(urls.values())), flush=True)  # the ready line harness.start_server waits for
        idle_rss = _rss_mb()
        while not done.wait(0.5):
            pass
        emulators = fleet.emulators
        creates = [c for e in emulators.values() for c in e.creates]
        summary = {
            "start_s": start_s,
            "rss_idle_mb": idle_rss,
            "rss_end_mb": _rss_mb(),
            "threads_end": threading.active_count(),
            "foreign_tokens": sum(len(e.tokens_seen() - {tokens[n]}) for n, e in emulators.items()),
            "peak_active_max": max(e.peak_active_exports for e in emulators.values()),
            "creates_ok": sum(1 for c in creates if c.status_code == 200),
            "creates_refused": sum(1 for c in creates if c.status_code != 200),
            "requests": sum(len(e.requests) for e in emulators.values()),
        }
        Path(args.summary).write_text(json.dumps(summary), encoding="utf-8")


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    return 0.0


# ------------------------------------------------------------------------------------------ the cycles (child)


def cmd_cycles(args: argparse.Namespace) -> None:
    """Cycles as `exportwatch poll --all` until every window is archived (or --max-cycles); one result line."""
    from child import CallCounter, cpu_s, emit

    from exportwatch.config import Settings
    from exportwatch.ledger import LedgerStore
    from exportwatch.poll import run_cycle
    from exportwatch.wiring import aws_clients, build_poller

    settings = Settings.from_env()
    clients = aws_clients(pool_size=settings.poll_concurrency)
    counter = CallCounter(clients["dynamodb"])
    poller = build_poller(settings, clients)
    ledger = LedgerStore(clients["dynamodb"], settings.jobs_table)
    names = ["default", *sorted(r.name for r in ledger.workspaces() if r.config is not None)]
    poller.intercom.ensure_token()  # a warm container, as in section 3
    cycles: list[dict[str, Any]] = []
    states: dict[str, int] = {}
    for number in range(1, args.max_cycles + 1):
        counter.take()
        started, cpu = time.perf_counter(), cpu_s()
        summary = run_cycle(poller, all_jobs=True)
        seconds, cpu = time.perf_counter() - started, cpu_s() - cpu
        latencies = sorted(counter.latencies)
        calls, _, _ = counter.take()
        states = _window_states(ledger, names)
        scheduler: dict[str, int] = {}
        for w in summary.workspaces:
            scheduler[w.action.value] = scheduler.get(w.action.value, 0) + 1
        cycles.append(
            {
                "cycle": number,
                "seconds": seconds,
                "status_calls": len(summary.results),
                "actions": {str(k): v for k, v in summary.actions.items()},
                "scheduler": scheduler,
                "archived_after": states.get("archived", 0),
                "dynamodb_calls": sum(calls.values()),
                "cpu_s": cpu,
                "dynamodb_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
                "dynamodb_by_call": calls,
            }
        )
        log(f"workspaces: cycle {number}: {seconds:.2f} s, {len(summary.results)} jobs, windows {states}")
        if states.get("archived", 0) == len(names):
            break
    emit(cycles=cycles, windows=states, concurrency=settings.poll_concurrency)


def _window_states(ledger: Any, names: list[str]) -> dict[str, int]:
    states: dict[str, int] = {}
    for name in names:
        for window in ledger.windows(name):
            states[window.state.value] = states.get(window.state.value, 0) + 1
    return states


# ------------------------------------------------------------------------------------------ the section


def _setup(rig: Rig, stack: Any, urls: dict[str, str], tokens: dict[str, str]) -> float:
    """Every workspace's token secret and registry record, and a one-day backfill each (what `workspace add` and
    `backfill` write), straight into moto."""
    from exportwatch.ledger import LedgerStore
    from exportwatch.model import iso, utcnow
    from exportwatch.windows import Span
    from exportwatch.workspaces import Workspace

    started = time.perf_counter()
    sm = rig.client("secretsmanager")
    ledger = LedgerStore(rig.client("dynamodb"), stack.table_name)
    now = iso(utcnow())
    day = datetime.now(UTC).date() - timedelta(days=1)
    for name, url in urls.items():
        if name == "default":  # the stack's own secret and INTERCOM_API_URL describe it
            ledger.ensure_workspace_state(name, now)
        else:
            secret = f"exportwatch/bench-{name}"
            sm.create_secret(Name=secret, SecretString=tokens[name])
            ledger.put_workspace(Workspace(name=name, api_url=url, token_secret=secret), now)
        ledger.queue(name, [Span(day, day)], now)
        ledger.make_due(name)
    return time.perf_counter() - started


def _start_fleet(rig: Rig, tokens: dict[str, str]) -> tuple[ServerProcess, dict[str, str], Path]:
    tokens_file, urls_file = rig.scratch / "fleet-tokens.json", rig.scratch / "fleet-urls.json"
    summary_file = rig.scratch / "fleet-summary.json"
    tokens_file.write_text(json.dumps(tokens), encoding="utf-8")
    argv = [PYTHON, str(SCRIPT), "fleet", "--tokens", str(tokens_file), "--urls", str(urls_file)]
    argv += ["--summary", str(summary_file), "--status-delay", str(LATENCY_S)]
    fleet = start_server("emulator-fleet", argv, rig.env, timeout=120)
    return fleet, json.loads(urls_file.read_text(encoding="utf-8")), summary_file


def run(rig: Rig, workspaces: int = WORKSPACES) -> WorkspacesReport:
    from exportwatch.config import Settings

    concurrency = Settings.__dataclass_fields__["poll_concurrency"].default
    assert isinstance(concurrency, int)
    # `default` is one of them: its token is the stack's secret (rig.token); the others get their own.
    tokens = {"default": rig.token} | {
        f"ws-{i:03d}": f"bench-ws{i}-{secrets.token_hex(8)}" for i in range(1, workspaces)
    }
    log(f"workspaces: starting {workspaces} emulators in one process")
    fleet, urls, summary_file = _start_fleet(rig, tokens)
    try:
        stack = rig.stack(f"ws{workspaces}")
        log(f"workspaces: {workspaces} workspaces registered, one window each")
        setup_s = _setup(rig, stack, urls, tokens)
        env = {**rig.env, **stack.env(INTERCOM_API_URL=urls["default"])}
        moto_cpu, fleet_cpu = rig.moto.cpu_seconds(), fleet.cpu_seconds()
        result = run_child("cycles", ["--max-cycles", str(MAX_CYCLES)], env, script=SCRIPT, timeout=1800)
        moto_cpu, fleet_cpu = rig.moto.cpu_seconds() - moto_cpu, fleet.cpu_seconds() - fleet_cpu
    finally:
        fleet.stop()
    figures: dict[str, Any] = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.exists() else {}
    figures |= {"moto_cpu_s": moto_cpu, "fleet_cpu_s": fleet_cpu, "load_end": os.getloadavg()[0]}
    report = WorkspacesReport(workspaces, int(result["concurrency"]), setup_s, figures)
    report.cycles = [CyclePoint(**c) for c in result["cycles"]]
    report.windows = dict(result["windows"])
    rig.note_moto("after workspaces")
    return report


COMMANDS = {"fleet": cmd_fleet, "cycles": cmd_cycles}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/workspaces.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fleet")
    p.add_argument("--tokens", required=True)
    p.add_argument("--urls", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--status-delay", type=float, default=LATENCY_S)
    p = sub.add_parser("cycles")
    p.add_argument("--max-cycles", type=int, default=MAX_CYCLES)
    args = parser.parse_args()
    COMMANDS[args.command](args)


if __name__ == "__main__":
    main()
