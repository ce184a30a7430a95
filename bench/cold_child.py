"""Cold-start workloads, each in a fresh interpreter: python bench/cold_child.py COMMAND.

Only `sys` and `time` are imported before the measured import, so the handler module and the baseline both pay
for everything they pull in (the Lambda runtime's own bootstrap is not part of either figure).

  import-baseline   import boto3, requests
  import-app        import functions/poller/app.py (the Lambda handler module)
  import-marginal   import boto3, requests untimed, then time `import app`: what the handler adds on top
  invoke-app        import it, then invoke the handler twice with one completed job due (cold, then warm)
  script-baseline   bare boto3 + requests doing the same one-job work: the cold-start baseline for an invocation
"""

import sys
import time

RESULT_PREFIX = "BENCH_RESULT "


def emit(**data: object) -> None:
    import json

    print(RESULT_PREFIX + json.dumps(data, default=str), flush=True)


def vm(name: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    raise KeyError(name)


def import_baseline() -> None:
    started, cpu = time.perf_counter(), time.process_time()
    import boto3  # noqa: F401
    import requests  # noqa: F401

    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    emit(import_s=seconds, import_cpu_s=cpu, rss_mb=vm("VmRSS"), modules=len(sys.modules))


def _import_app() -> tuple[object, float, float]:
    import os.path

    poller_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "functions", "poller")
    sys.path.insert(0, poller_dir)  # Lambda: the function's directory first, the layer after
    started, cpu = time.perf_counter(), time.process_time()
    import app

    return app, time.perf_counter() - started, time.process_time() - cpu


def import_app() -> None:
    _, seconds, cpu = _import_app()
    emit(import_s=seconds, import_cpu_s=cpu, rss_mb=vm("VmRSS"), modules=len(sys.modules))


def import_marginal() -> None:
    import boto3  # noqa: F401
    import requests  # noqa: F401

    before = len(sys.modules)
    _, seconds, cpu = _import_app()
    emit(import_s=seconds, import_cpu_s=cpu, modules=len(sys.modules) - before)


class FakeContext:
    """What the Lambda runtime hands the handler (the fields Powertools reads)."""

    function_name = "exportwatch-poller"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:exportwatch-poller"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/exportwatch-poller"
    log_stream_name = "bench"

    def __init__(self, timeout: float = 600.0) -> None:
        self.deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def invoke_app() -> None:
    app, import_s, _ = _import_app()
    handler = app.lambda_handler  # type: ignore[attr-defined]
    import contextlib
    import io

    times: list[float] = []
    outputs: list[dict[str, object]] = []
    for _ in range(2):
        context = FakeContext()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # Powertools' log and EMF lines
            outputs.append(handler({}, context))
        times.append(time.perf_counter() - started)
    emit(
        import_s=import_s,
        first_s=times[0],
        warm_s=times[1],
        first_events=outputs[0].get("events"),
        warm_due=outputs[1].get("due"),
        rss_mb=vm("VmRSS"),
        peak_mb=vm("VmHWM"),
    )


def script_baseline() -> None:
    """Bare boto3 + requests doing the one-job work: secret, due Query, status, download, put, publish, settle."""
    started = time.perf_counter()
    import boto3
    import requests

    import_s = time.perf_counter() - started
    import json
    import os

    env = os.environ
    session = boto3.Session()
    ddb, s3 = session.client("dynamodb"), session.client("s3")
    sns, sm = session.client("sns"), session.client("secretsmanager")
    token = sm.get_secret_value(SecretId=env["INTERCOM_TOKEN_SECRET"])["SecretString"]
    items = ddb.query(
        TableName=env["JOBS_TABLE"],
        IndexName="due-index",
        KeyConditionExpression="due_shard = :d",
        ExpressionAttributeValues={":d": {"S": "due"}},
    )["Items"]
    events: list[str] = []
    api = env["INTERCOM_API_URL"]
    for item in items:
        job_id = item["job_identifier"]["S"]
        auth = {"Authorization": f"Bearer {token}"}
        status = requests.get(f"{api}/export/content/data/{job_id}", headers=auth, timeout=30).json()
        download = {**auth, "Accept": "application/octet-stream"}
        body = requests.get(status["download_url"], headers=download, timeout=30).content
        key = f"intercom-exports/{job_id}.zip"
        s3.put_object(Bucket=env["EXPORT_BUCKET"], Key=key, Body=body)
        sns.publish(TopicArn=env["NOTIFY_TOPIC_ARN"], Message=json.dumps({"job_identifier": job_id, "key": key}))
        settled = {"job_identifier": {"S": job_id}, "state": {"S": "completed"}}
        ddb.put_item(TableName=env["JOBS_TABLE"], Item=settled)
        events.append("export.completed")
    total = time.perf_counter() - started
    emit(import_s=import_s, first_s=total - import_s, total_s=total, events=events, rss_mb=vm("VmRSS"))


COMMANDS = {
    "import-baseline": import_baseline,
    "import-app": import_app,
    "import-marginal": import_marginal,
    "invoke-app": invoke_app,
    "script-baseline": script_baseline,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]]()
