"""Child-process workloads for bench/run.py: each runs in a fresh interpreter and prints one BENCH_RESULT line.

Usage: python bench/child.py COMMAND [options]. The environment carries the AWS endpoint (moto), the stack's
names and INTERCOM_API_URL, exactly as the Lambda or the CLI would see them.

Memory figures come from /proc/self/status: VmHWM is the peak RSS of this process image only, whereas
getrusage's ru_maxrss also remembers the parent's RSS at fork time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
MiB = 1024 * 1024


def emit(**data: Any) -> None:
    print(RESULT_PREFIX + json.dumps(data, default=str), flush=True)


def _status_mb(name: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    raise KeyError(name)


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_mb() -> float:
    return _status_mb("VmHWM")


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


# ------------------------------------------------------------------------------------------ servers


def cmd_moto_server(_: argparse.Namespace) -> None:
    """moto's ThreadedMotoServer (exportwatch_local.localstack.MotoServer) until SIGTERM; prints its URL first."""
    from exportwatch_local.localstack import MotoServer

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with MotoServer() as server:
        print(server.endpoint_url, flush=True)
        while not done.wait(0.5):
            pass


# ------------------------------------------------------------------------------------------ copy


def _copy_settings(part_mib: int, concurrency: int, chunks: int) -> Any:
    """CopySettings with a part size and concurrency; `chunks` parts read ahead (0: s3transfer's default 10)."""
    from exportwatch.archive import CopySettings

    return CopySettings(part_size=part_mib * MiB, max_concurrency=concurrency, read_ahead_parts=chunks or 10)


def cmd_copy(args: argparse.Namespace) -> None:
    """exportwatch's own copy: one poll cycle (as `exportwatch poll --all`) on one completed job."""
    from exportwatch.config import Settings
    from exportwatch.poll import run_cycle
    from exportwatch.wiring import build_poller

    settings = None if args.part_mib == 0 else _copy_settings(args.part_mib, args.concurrency, args.chunks)
    poller = build_poller(Settings.from_env(), copy_settings=settings)
    base = rss_mb()
    started = time.perf_counter()
    summary = run_cycle(poller, all_jobs=True)
    seconds = time.perf_counter() - started
    results = summary.results
    if args.lying:  # the Content-Length promised more than the body: the whole body streams, then the copy is refused
        ok = (
            len(results) == 1
            and results[0].action == "retry"
            and ("ended after" in results[0].detail or "broke off" in results[0].detail)
        )
    else:
        ok = len(results) == 1 and results[0].event == "export.completed" and results[0].bytes_copied == args.size
    emit(
        ok=ok,
        seconds=seconds,
        copy_seconds=results[0].copy_seconds if results else None,
        bytes=sum(r.bytes_copied for r in results),
        base_mb=base,
        peak_mb=peak_mb(),
        cpu_s=cpu_s(),
        detail=[f"{r.action} {r.event} {r.detail}" for r in results],
        settings=repr(poller.copy_settings),
    )


def _download_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/octet-stream"}


def cmd_download(args: argparse.Namespace) -> None:
    """The download half of the limit: read the export stream and discard it (or keep it in a file)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    base = rss_mb()
    started = time.perf_counter()
    total = 0
    with session.get(args.url, headers=_download_headers(args.token), stream=True, timeout=60) as resp:
        resp.raise_for_status()
        with open(args.path or os.devnull, "wb") as sink:
            while chunk := resp.raw.read(MiB, decode_content=False):
                sink.write(chunk)
                total += len(chunk)
    emit(seconds=time.perf_counter() - started, bytes=total, base_mb=base, peak_mb=peak_mb(), cpu_s=cpu_s())


def cmd_upload(args: argparse.Namespace) -> None:
    """The upload half of the limit: boto3's upload_fileobj of the same bytes (from a file) to the same S3."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3")
    if args.part_mib:
        config = TransferConfig(
            multipart_threshold=args.part_mib * MiB,
            multipart_chunksize=args.part_mib * MiB,
            max_concurrency=args.concurrency,
        )
    else:
        config = TransferConfig()  # boto3's defaults: 8 MiB parts, 10 threads
    base = rss_mb()
    started = time.perf_counter()
    with open(args.path, "rb") as fh:
        s3.upload_fileobj(fh, args.bucket, args.key, Config=config)
    seconds = time.perf_counter() - started
    emit(seconds=seconds, bytes=os.path.getsize(args.path), base_mb=base, peak_mb=peak_mb(), cpu_s=cpu_s())


def cmd_naive(args: argparse.Namespace) -> None:
    """The ten-line script: requests.get(url).content, then put_object."""
    import boto3
    import requests

    s3 = boto3.client("s3")
    base = rss_mb()
    started = time.perf_counter()
    body = requests.get(args.url, headers=_download_headers(args.token), timeout=60).content
    s3.put_object(Bucket=args.bucket, Key=args.key, Body=body)
    seconds = time.perf_counter() - started
    emit(seconds=seconds, bytes=len(body), base_mb=base, peak_mb=peak_mb(), cpu_s=cpu_s())


# ------------------------------------------------------------------------------------------ cycles


class CallCounter:
    """Counts DynamoDB calls, the items they read and their latency, through botocore's call events."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, int] = {}
        self.items = 0
        self.scanned = 0
        self.latencies: list[float] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-call.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1
            self.items += int(parsed.get("Count", 0))
            self.scanned += int(parsed.get("ScannedCount", 0))
            if "bench_started" in context:
                self.latencies.append(time.perf_counter() - context["bench_started"])

    def take(self) -> tuple[dict[str, int], int, int]:
        with self._lock:
            out = (dict(self.calls), self.items, self.scanned)
            self.calls, self.items, self.scanned, self.latencies = {}, 0, 0, []
        return out


def cmd_idle(args: argparse.Namespace) -> None:
    """Idle cycles (nothing due) on several tables, interleaved so machine noise hits every size alike."""
    from dataclasses import replace

    from exportwatch.config import Settings
    from exportwatch.poll import run_cycle
    from exportwatch.store import DUE_INDEX, DUE_SHARD
    from exportwatch.wiring import aws_clients, build_poller

    clients = aws_clients()
    counter = CallCounter(clients["dynamodb"])
    base = Settings.from_env()
    tables: list[str] = args.tables.split(",")
    pollers = {t: build_poller(replace(base, jobs_table=t), clients) for t in tables}
    for poller in pollers.values():  # warm: connections, endpoint resolution, first-call model loading
        run_cycle(poller)
    counter.take()

    def bare_query(table: str) -> None:
        clients["dynamodb"].query(
            TableName=table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_shard = :d AND next_check_at <= :t",
            ExpressionAttributeValues={":d": {"S": DUE_SHARD}, ":t": {"N": str(int(time.time()) + 150)}},
            ProjectionExpression="job_identifier",
            Limit=1000,
        )

    cycle_s: dict[str, list[float]] = {t: [] for t in tables}
    query_s: dict[str, list[float]] = {t: [] for t in tables}
    per_cycle: dict[str, list[Any]] = {t: [] for t in tables}
    for _ in range(args.rounds):
        for table in tables:
            for _ in range(args.cycles):
                started = time.perf_counter()
                summary = run_cycle(pollers[table])
                cycle_s[table].append(time.perf_counter() - started)
                calls, items, scanned = counter.take()
                per_cycle[table].append([sum(calls.values()), items, scanned, calls, summary.due])
                started = time.perf_counter()
                bare_query(table)
                query_s[table].append(time.perf_counter() - started)
                counter.take()
    emit(cycle_s=cycle_s, query_s=query_s, per_cycle=per_cycle)


def cmd_busy(args: argparse.Namespace) -> None:
    """One cycle over N due jobs whose status calls each take 50 ms at the emulator."""
    from dataclasses import replace

    from exportwatch.config import Settings
    from exportwatch.poll import run_cycle
    from exportwatch.wiring import aws_clients, build_poller

    settings = replace(Settings.from_env(), poll_concurrency=args.concurrency)
    clients = aws_clients(pool_size=args.concurrency)
    counter = CallCounter(clients["dynamodb"])
    poller = build_poller(settings, clients)
    # A warm container: the token is cached and DynamoDB's connection open (section 4 measures the cold case).
    poller.intercom.ensure_token()
    poller.store.due_ids(-1)
    counter.take()
    started, cpu = time.perf_counter(), cpu_s()
    summary = run_cycle(poller)
    seconds, cpu = time.perf_counter() - started, cpu_s() - cpu
    latencies = sorted(counter.latencies)
    calls, _, _ = counter.take()
    emit(
        seconds=seconds,
        cpu_s=cpu,
        dynamodb_ms_median=1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        due=summary.due,
        processed=len(summary.results),
        actions=dict(summary.actions),
        left=summary.left_for_next_cycle,
        dynamodb_calls=calls,
    )


def _job_states(poller: Any) -> dict[str, int]:
    jobs = list(poller.store.scan_all())
    return {
        "jobs": len(jobs),
        "checked": sum(1 for j in jobs if j.attempts == 1 and (j.next_check_at or 0) > 0),
        "untouched_due": sum(1 for j in jobs if j.attempts == 0 and j.next_check_at == 0),
        "leases_held": sum(1 for j in jobs if j.lease_owner is not None),
        "checked_twice": sum(1 for j in jobs if j.attempts > 1),
    }


def cmd_budget(args: argparse.Namespace) -> None:
    """A cycle with a time budget too small for its due work, then the next cycle: nothing is lost."""
    from dataclasses import replace

    from exportwatch.config import Settings
    from exportwatch.poll import run_cycle
    from exportwatch.wiring import build_poller

    poller = build_poller(replace(Settings.from_env(), poll_concurrency=args.concurrency))
    started = time.monotonic()

    def time_left() -> float:
        return float(args.budget) - (time.monotonic() - started)

    first = run_cycle(poller, time_left=time_left, reserve_seconds=0.0)
    first_s = time.monotonic() - started
    after_first = _job_states(poller)
    started2 = time.monotonic()
    second = run_cycle(poller)
    second_s = time.monotonic() - started2
    emit(
        budget=args.budget,
        first={
            "due": first.due,
            "processed": len(first.results),
            "left": first.left_for_next_cycle,
            "stopped": first.stopped,
            "seconds": first_s,
        },
        after_first=after_first,
        second={"due": second.due, "processed": len(second.results), "left": second.left_for_next_cycle},
        second_seconds=second_s,
        after_second=_job_states(poller),
    )


# ------------------------------------------------------------------------------------------ main


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "moto-server": cmd_moto_server,
    "copy": cmd_copy,
    "download": cmd_download,
    "upload": cmd_upload,
    "naive": cmd_naive,
    "idle": cmd_idle,
    "busy": cmd_busy,
    "budget": cmd_budget,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/child.py")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--url", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--path", default="")
    parser.add_argument("--bucket", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--part-mib", type=int, default=0, help="0: the package's default CopySettings")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=0, help="max_in_memory_upload_chunks (0: s3transfer's 10)")
    parser.add_argument("--lying", action="store_true", help="copy: the job's Content-Length is a lie (expect a retry)")
    parser.add_argument("--tables", default="")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--budget", type=float, default=1.0)
    args = parser.parse_args()
    COMMANDS[args.command](args)


if __name__ == "__main__":
    main()
