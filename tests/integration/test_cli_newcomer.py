"""Issue 8 item 8, "a newcomer's first hour works", through the real CLI.

Most tests run `exportwatch ...` as a subprocess against the session's moto server and an Intercom emulator (see
test_cli.py for the helpers); the checks for unexpected errors call cli.main() in-process, where a failure can be
injected. Contract: the region may come from AWS_REGION alone; every configuration problem is named in one run,
one line each; a resource that does not exist is named by its variable; refused and timed-out connections say
so; nothing the README calls normal prints a traceback; cancel says when there is nothing to cancel.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from exportwatch_local import cli as cli_module
from exportwatch_local.demo import SANDBOX_READY
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, MotoServer, create_resources, receive_notifications
from support.cli_runner import EXPORTWATCH, REQUIRED, Cli, Result, make_cli, one_error_line, seed_job, table_items
from support.paths import REPO_ROOT, TEMPLATE

REGIONS = ("AWS_DEFAULT_REGION", "AWS_REGION")
START = ("start", "--since", "2024-01-01", "--until", "2024-01-02")


@dataclass(frozen=True)
class Stack:
    """One stack and emulator for tests whose command must fail and write nothing (each checks that)."""

    stack: LocalStack
    emulator: IntercomEmulator
    cli: Cli

    def state(self) -> tuple[list[dict[str, Any]], int]:
        return table_items(self.stack), len(self.emulator.requests)


@pytest.fixture(scope="module")
def quiet(moto_server: MotoServer) -> Iterator[Stack]:
    token = f"test-token-{secrets.token_hex(12)}"
    stack = create_resources(moto_server.endpoint_url, token=token, template=TEMPLATE, suffix=secrets.token_hex(4))
    seed_job(stack)  # due now: a command that got as far as a poll would work on it
    with IntercomEmulator(token=token) as emulator:
        env = stack.env(INTERCOM_API_URL=emulator.base_url, POLL_INTERVAL_MINUTES="5")
        yield Stack(stack, emulator, make_cli(env, token))


@pytest.fixture
def cli(env: dict[str, str], token: str) -> Cli:
    """The CLI against this test's own stack and emulator (for tests that write)."""
    return make_cli(env, token)


def no_traceback(*results: Result) -> None:
    for result in results:
        assert "Traceback" not in result.out + result.err, result


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- AWS_REGION -------------------------------------------------------------------------------------------


def test_aws_region_alone_works_like_aws_default_region(cli: Cli, stack: LocalStack) -> None:
    region, unset = {"AWS_REGION": stack.region}, ("AWS_DEFAULT_REGION",)
    tracked = cli("track", "regionjob1", set_env=region, unset=unset)
    assert (tracked.code, tracked.err) == (0, ""), tracked
    listed = cli("list", set_env=region, unset=unset)
    assert listed.code == 0 and "regionjob1" in listed.out, listed
    polled = cli("poll", set_env=region, unset=unset)
    assert polled.code == 0 and "regionjob1" in polled.out, polled


def test_aws_region_is_the_region_used_and_aws_default_region_wins(quiet: Stack) -> None:
    # The stack lives in us-east-1: another region in AWS_REGION alone must be the one asked (and fail there).
    elsewhere = quiet.cli("list", set_env={"AWS_REGION": "eu-west-1"}, unset=("AWS_DEFAULT_REGION",))
    one_error_line(elsewhere, 2, "JOBS_TABLE", "does not exist in eu-west-1")
    both = quiet.cli("list", set_env={"AWS_DEFAULT_REGION": quiet.stack.region, "AWS_REGION": "eu-west-1"})
    assert both.code == 0 and "seededjob01" in both.out, both


def test_no_region_at_all_names_both_variables(quiet: Stack) -> None:
    before = quiet.state()
    line = one_error_line(quiet.cli("list", unset=REGIONS), 2, *REGIONS)
    assert "NoRegionError" not in line
    assert quiet.state() == before


# -- every missing variable in one run --------------------------------------------------------------------


# Each command reads only its own variables (config.py: settings per entry point).
_READS = {
    "list": ["JOBS_TABLE"],
    "track": ["JOBS_TABLE"],
    "poll": [*REQUIRED, "POLL_CONCURRENCY"],
    "start": ["JOBS_TABLE", "INTERCOM_TOKEN_SECRET"],
    "cancel": ["JOBS_TABLE", "INTERCOM_TOKEN_SECRET"],
}


@pytest.mark.parametrize(
    "args",
    [("list",), ("poll",), ("track", "abc123"), START, ("cancel", "abc123")],
    ids=lambda args: args[0],
)
def test_every_missing_variable_is_named_in_one_run(quiet: Stack, args: tuple[str, ...]) -> None:
    before = quiet.state()
    result = quiet.cli(*args, unset=(*REQUIRED, *REGIONS), set_env={"POLL_CONCURRENCY": "0"})
    assert result.code == 2, result
    assert result.out == ""
    no_traceback(result)
    lines = result.err.splitlines()
    assert all(line.startswith("exportwatch: error: ") for line in lines), lines
    named = [line.removeprefix("exportwatch: error: ").split(":", 1)[0] for line in lines]
    assert named == [*_READS[args[0]], "AWS_DEFAULT_REGION"], lines
    assert "AWS_REGION" in lines[-1]
    assert quiet.state() == before


# -- a resource that does not exist is named by its variable ----------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("list",), ("poll",), ("track", "abc123"), START, ("cancel", "abc123")],
    ids=lambda args: args[0],
)
def test_a_table_that_does_not_exist_names_jobs_table(quiet: Stack, args: tuple[str, ...]) -> None:
    before = quiet.state()
    result = quiet.cli(*args, set_env={"JOBS_TABLE": "exportwatch-no-such-table"})
    line = one_error_line(result, 2, "JOBS_TABLE", "'exportwatch-no-such-table'", "does not exist")
    assert line.startswith("exportwatch: error: JOBS_TABLE: "), line
    assert quiet.state() == before  # start and cancel check the table before Intercom is asked anything


@pytest.mark.parametrize("args", [("poll",), START, ("cancel", "abc123")], ids=lambda args: args[0])
def test_a_secret_that_does_not_exist_names_intercom_token_secret(quiet: Stack, args: tuple[str, ...]) -> None:
    before = quiet.state()
    result = quiet.cli(*args, set_env={"INTERCOM_TOKEN_SECRET": "exportwatch/no-such-secret"})
    one_error_line(result, 2, "INTERCOM_TOKEN_SECRET", "does not exist")
    assert quiet.state() == before


def test_a_bucket_that_does_not_exist_names_export_bucket(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator
) -> None:
    done = [emulator.add_job("completed", steps=["completed"]) for _ in range(2)]
    for job_id in done:
        assert cli("track", job_id).code == 0
    result = cli("poll", set_env={"EXPORT_BUCKET": "exportwatch-no-such-bucket"})
    assert result.code == 1, result
    no_traceback(result)
    errors = [line for line in result.err.splitlines() if line.startswith("exportwatch: error: ")]
    assert len(errors) == 1, result.err
    assert errors[0].startswith("exportwatch: error: EXPORT_BUCKET: S3 bucket 'exportwatch-no-such-bucket'"), errors
    assert "does not exist" in errors[0] and "2 jobs stay due" in errors[0]
    assert all(plain_state(item) == "watching" for item in table_items(stack))  # kept, retried next cycle


def test_a_topic_that_does_not_exist_names_notify_topic_arn(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator
) -> None:
    job_id = emulator.add_job("no_data", steps=["no_data"])
    assert cli("track", job_id).code == 0
    missing_topic = stack.topic_arn + "-no-such-topic"
    result = cli("poll", set_env={"NOTIFY_TOPIC_ARN": missing_topic})
    assert result.code == 1, result
    no_traceback(result)
    errors = [line for line in result.err.splitlines() if line.startswith("exportwatch: error: ")]
    assert len(errors) == 1, result.err
    assert errors[0].startswith(f"exportwatch: error: NOTIFY_TOPIC_ARN: SNS topic {missing_topic!r}"), errors
    assert "does not exist" in errors[0] and "1 job stays due" in errors[0]
    # With the right topic the next poll publishes what was kept.
    again = cli("poll", "--all")
    assert again.code == 0 and "notified export.no_data" in again.out, again


def plain_state(item: dict[str, Any]) -> str:
    return str(item["state"]["S"])


def test_aws_that_refuses_or_no_credentials_is_one_line(quiet: Stack) -> None:
    refused = quiet.cli("list", set_env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"})
    one_error_line(refused, 1, "AWS: connection refused", "AWS_ENDPOINT_URL")
    no_credentials = quiet.cli(
        "list",
        set_env={"AWS_EC2_METADATA_DISABLED": "true"},
        unset=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    )
    one_error_line(no_credentials, 2, "AWS credentials", "AWS_PROFILE")


def test_demo_with_a_missing_template_is_bad_input(quiet: Stack) -> None:
    one_error_line(quiet.cli("demo", "--template", "no/such/template.yaml"), 2, "template not found")


# -- refused connections and timeouts ---------------------------------------------------------------------


def test_a_refused_connection_says_refused(quiet: Stack) -> None:
    before = quiet.state()
    closed = {"INTERCOM_API_URL": f"http://127.0.0.1:{closed_port()}"}
    started = quiet.cli(*START, set_env=closed)
    one_error_line(started, 1, "refused")
    canceled = quiet.cli("cancel", "abc123", set_env=closed)
    one_error_line(canceled, 1, "refused")
    assert quiet.state() == before
    # A poll keeps the job for the next cycle (normal: exit 0) and says why, without a traceback.
    polled = quiet.cli("poll", "--all", set_env=closed)
    assert polled.code == 0, polled
    no_traceback(polled)
    assert "refused" in polled.out, polled
    assert "did not answer in time" not in polled.out + polled.err


def test_a_timeout_says_so(cli: Cli, emulator: IntercomEmulator) -> None:
    job_id = emulator.add_job("slow_status", delay=3.0)
    assert cli("track", job_id).code == 0
    result = cli("poll", set_env={"HTTP_TIMEOUT_SECONDS": "1"})
    assert result.code == 0, result
    no_traceback(result)
    assert "did not answer in time" in result.out, result
    assert "refused" not in result.out


# -- nothing normal prints a traceback --------------------------------------------------------------------

# Retries, broken downloads and hostile answers the README's table lists as handled.
NORMAL_TROUBLE = [
    "truncated",
    "reset",
    "html_504",
    "server_errors",
    "malformed",
    "wrong_types",
    "unknown_status",
    "foreign_url",
    "redirect_foreign",
    "expired",
    "not_found",
]


def test_retries_broken_downloads_and_hostile_answers_print_no_traceback(cli: Cli, emulator: IntercomEmulator) -> None:
    flaky = emulator.add_job("completed", steps=["completed"], flaky_downloads=1)  # breaks off once, then works
    jobs = [flaky] + [emulator.add_job(scenario) for scenario in NORMAL_TROUBLE]
    for job_id in jobs:
        assert cli("track", job_id).code == 0
    first = cli("poll", "--all")
    second = cli("poll", "--all", module=True)
    no_traceback(first, second)
    assert (first.code, second.code) == (0, 0), (first, second)
    # Every stderr line is a one-line log record or error, never a stack frame.
    for line in (first.err + second.err).splitlines():
        assert line.split(" ", 1)[0] in ("WARNING", "ERROR", "exportwatch:"), line
    flaky_lines = [line for line in (first.out + second.out).splitlines() if line.startswith(flaky)]
    assert "will retry" in flaky_lines[0] and "notified export.completed" in flaky_lines[1], flaky_lines


def test_an_unexpected_error_is_one_line_with_how_to_see_more(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(cli_module.COMMANDS, "list", broken)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    assert cli_module.main(["list"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "exportwatch: error: RuntimeError: boom second line "
        "(run with --debug or LOG_LEVEL=DEBUG to see the traceback)\n"
    )

    assert cli_module.main(["--debug", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and 'raise RuntimeError("boom' in err, err
    assert err.splitlines()[-1] == "exportwatch: error: RuntimeError: boom second line"

    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert cli_module.main(["list"]) == 1
    assert "Traceback (most recent call last):" in capsys.readouterr().err


def test_a_logged_traceback_is_one_line_unless_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    def logs_an_error(args: object) -> int:
        try:
            raise OSError("disk\non fire")
        except OSError:
            logging.getLogger("exportwatch.poll").exception("job abc: unexpected error")
            logging.getLogger("exportwatch.poll").warning("job abc: copy failed, will retry", exc_info=True)
        return 0

    monkeypatch.setitem(cli_module.COMMANDS, "list", logs_an_error)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    assert cli_module.main(["list"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "ERROR exportwatch.poll: job abc: unexpected error (run with --debug or LOG_LEVEL=DEBUG to see the traceback)",
        "WARNING exportwatch.poll: job abc: copy failed, will retry",
    ]
    assert cli_module.main(["--debug", "list"]) == 0
    assert capsys.readouterr().err.count("Traceback (most recent call last):") == 2


# -- cancel -----------------------------------------------------------------------------------------------


def test_cancel_a_finished_job_says_so_and_changes_nothing(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"])
    result = cli("cancel", job_id)
    one_error_line(result, 1, f"{job_id} is already finished (status: completed); nothing to cancel")
    assert result.out == ""
    assert emulator.job_status(job_id) == "completed"
    assert [r.method for r in emulator.requests_for(job_id)] == ["GET"]  # asked, never cancelled


def test_cancel_an_unknown_job_is_not_found(quiet: Stack) -> None:
    before = quiet.state()
    result = quiet.cli("cancel", "nosuchjob123")
    one_error_line(result, 1, "nosuchjob123: not_found")
    assert result.out == ""
    assert quiet.state()[0] == before[0]


def test_an_accepted_cancel_is_notified_by_the_next_poll(
    cli: Cli, stack: LocalStack, emulator: IntercomEmulator, subscriber: str
) -> None:
    job_id = emulator.add_job("completed", steps=["in_progress"])
    assert cli("track", job_id).code == 0
    first = cli("poll")  # still running: backed off past the next cycle
    assert "still in_progress" in first.out, first
    assert cli("poll").out.splitlines() == ["poll: 0 due, 0 processed (nothing to do)"]

    result = cli("cancel", job_id)
    assert (result.code, result.err) == (0, ""), result
    assert result.out == f"{job_id}: canceled at Intercom; the next poll reports export.canceled\n"
    assert emulator.job_status(job_id) == "canceled"

    polled = cli("poll")  # not --all: the cancel made the job due
    assert polled.code == 0, polled
    assert f"{job_id}  canceled" in polled.out and "notified export.canceled" in polled.out, polled
    notes = receive_notifications(stack.endpoint_url, subscriber, expect=1)
    assert [(n.body["event"], n.body["job_identifier"]) for n in notes] == [("export.canceled", job_id)]

    again = cli("cancel", job_id)
    one_error_line(again, 1, f"{job_id} is already finished (status: canceled); nothing to cancel")


# -- a job id that starts with '-' ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("track", "-abc"),
        ("track", "--", "-abc"),
        ("cancel", "-abc"),
        ("cancel", "--", "-abc"),
        ("-v", "track", "-abc"),
        ("track", "-abc", "-d"),
    ],
    ids=" ".join,
)
def test_a_job_id_starting_with_a_dash_states_the_rule(quiet: Stack, args: tuple[str, ...]) -> None:
    before = quiet.state()
    line = one_error_line(quiet.cli(*args), 2)
    assert line == (
        "exportwatch: error: job id '-abc' must start with a letter or digit "
        "(Intercom ids are letters, digits, '-' and '_')"
    )
    assert quiet.state() == before


def test_help_still_works_after_a_job_command(quiet: Stack) -> None:
    result = quiet.cli("track", "-h")
    assert result.code == 0 and result.out.startswith("usage: exportwatch track"), result


# -- exportwatch demo --keep ------------------------------------------------------------------------------


def _pump(stream: Any, into: queue.Queue[str | None], copy: list[str]) -> None:
    for line in stream:
        copy.append(line)
        into.put(line)
    into.put(None)


def test_demo_keep_serves_the_cli_until_ctrl_c(tmp_path: Any) -> None:
    proc = subprocess.Popen(
        [str(EXPORTWATCH), "demo", "--keep"],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k != "LOG_LEVEL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    out_lines: list[str] = []
    err_lines: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines, out_lines), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, queue.Queue(), err_lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "demo --keep ended early:\n" + "".join(out_lines + err_lines)[-3000:]
            if line.startswith(SANDBOX_READY):
                break
        exported = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in out_lines
            if line.startswith("export ")
        )
        for name in (
            *REQUIRED,
            "INTERCOM_API_URL",
            "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ):
            assert exported.get(name), (name, exported)
        sandbox = out_lines[max(i for i, line in enumerate(out_lines) if line.startswith("# 2. then try")) :]
        examples = [line.split("#")[0].split() for line in sandbox if line.startswith("exportwatch ")]
        assert {e[1] for e in examples} >= {"list", "track", "poll", "cancel", "start"}, examples

        # Only what was printed: no AWS variable of the test session leaks into these commands.
        child = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k.endswith("_FILE")}
        child.update(exported)

        def run(*args: str) -> Result:
            proc = subprocess.run(
                [str(EXPORTWATCH), *args], env=child, capture_output=True, text=True, timeout=120, check=False
            )
            return Result(proc.returncode, proc.stdout, proc.stderr)

        listed = run("list", "--json")
        assert listed.code == 0, listed
        assert len(listed.out.splitlines()) >= 13, listed  # the demo's jobs, settled
        for example in examples:  # every printed example runs as printed
            result = run(*example[1:])
            no_traceback(result)
            expected = 2 if example[1:] == ["track", "-x"] else 0
            assert result.code == expected, (example, result)
        jobs = {json.loads(line)["job_identifier"]: json.loads(line) for line in run("list", "--json").out.splitlines()}
        canceled = [e[2] for e in examples if e[1] == "cancel"]
        assert jobs[canceled[0]]["state"] == "watching"  # canceled at Intercom; the next poll notifies it
        assert "notified export.canceled" in run("poll").out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    time.sleep(0.2)  # let the pump threads read the last lines
    out, err = "".join(out_lines), "".join(err_lines)
    assert code == 0, err[-3000:]
    assert "Traceback" not in out + err, (out + err)[-5000:]
    assert "every outcome and every early warning notified exactly once" in out
    assert out.rstrip().endswith("stopping moto and the Intercom emulator"), out[-500:]
