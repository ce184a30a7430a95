"""Intercom misbehaving: rate limits, 5xx bursts, 504s of both kinds, slow, broken and lying responses, other origins.

Driven through the real CLI: every run is an `exportwatch poll --all --json` process against moto server and the
emulator, as an operator (or the scheduled Lambda, which runs the same cycle) would run it.
"""

from __future__ import annotations

from typing import Any

import pytest

from support.foreign import ForeignServer

from .harness import Expect, FaultHarness, MiB

# (what the report calls the fault, scenario, options, runs that fail before it clears, the error they record,
#  extra environment, status calls the emulator must have answered in all)
STATUS_FAULTS = [
    pytest.param(
        "429 with X-RateLimit-Reset 1 s away (waited out inside the call)",
        "rate_limited",
        {"reset_in": 1.0},
        0,
        "",
        {},
        2,
        id="429-short",
    ),
    pytest.param(
        "bursts of 500/502/503: 6 in a row, more than the client's 2 in-call retries",
        "server_errors",
        {"error_count": 6},
        2,
        "HTTP 503",
        {},
        7,
        id="5xx-burst",
    ),
    pytest.param(
        "status call slower than the client timeout (HTTP_TIMEOUT_SECONDS=1, answer after 2 s, once)",
        "slow_status",
        {"delay": 2.0, "slow_count": 1, "steps": ["completed"]},
        1,
        "Intercom did not answer in time",
        {"HTTP_TIMEOUT_SECONDS": "1"},
        2,
        id="slow-status",
    ),
    pytest.param(
        "malformed JSON: cut-off JSON, empty body, plain text",
        "malformed",
        {"malformed_count": 3, "steps": ["completed"]},
        3,
        "not JSON",
        {},
        4,
        id="malformed-json",
    ),
    pytest.param(
        "unknown status `archived`",
        "unknown_status",
        {"steps": ["archived", "completed"]},
        1,
        "unknown status 'archived'",
        {},
        2,
        id="unknown-status",
    ),
]


@pytest.mark.fault("Intercom: {label}")
@pytest.mark.parametrize(
    ("label", "scenario", "options", "failing", "error", "extra_env", "status_calls"), STATUS_FAULTS
)
def test_status_fault_keeps_the_job_until_it_clears(
    harness: FaultHarness,
    label: str,
    scenario: str,
    options: dict[str, Any],
    failing: int,
    error: str,
    extra_env: dict[str, str],
    status_calls: int,
) -> None:
    h = harness
    job_id = h.add(scenario, **options)
    h.track(job_id)

    for attempt in range(1, failing + 1):
        run = h.cli(env=extra_env)
        assert run.job(job_id)["action"] == "retry", run.summary
        it = h.assert_watching(job_id, error)
        assert it["attempts"] == attempt

    run = h.cli(env=extra_env)
    assert run.job(job_id)["event"] == "export.completed", run.summary
    assert run.summary["stopped"] is None
    info = h.emulator.job_info(job_id)
    assert info is not None and info["status_calls"] == status_calls
    assert h.item(job_id)["attempts"] == failing + 1
    h.verify()
    kept = f"kept through {failing} failed run{'s' * (failing != 1)}, " if failing else ""
    h.detail = f"{kept}copied on run {failing + 1} ({status_calls} status calls)"


@pytest.mark.fault("Intercom: 429 with X-RateLimit-Reset 120 s away (job deferred to the reset, the rest left)")
def test_long_rate_limit_defers_the_job_to_the_reset(harness: FaultHarness) -> None:
    h = harness
    limited = h.add("rate_limited", reset_in=120)
    others = [h.add("completed", steps=["completed"]) for _ in range(2)]
    h.track(limited, *others, next_check_at=[0, 1, 2])  # the limited job comes first in the due order
    one_at_a_time = {"POLL_CONCURRENCY": "1"}

    run = h.cli("poll", "--json", env=one_at_a_time)

    summary = run.summary
    assert summary["due"] == 3 and summary["left_for_next_cycle"] == 2, summary
    assert "rate limited" in summary["stopped"]
    assert run.job(limited)["action"] == "deferred"
    it = h.assert_watching(limited, "window resets at")
    assert it["attempts"] == 0  # a rate limit is not a failed attempt
    reset = int(it["next_check_at"])
    assert abs(reset - (h.emulator.requests_for(limited)[0].time + 120)) <= 2  # X-RateLimit-Reset, as sent
    for job_id in others:  # not started: no call was spent on them in a spent window
        assert h.emulator.requests_for(job_id) == []
    assert h.poller().store.due_ids(reset - 1) == [others[0], others[1]]  # deferred, not due before the reset

    # The window resets (moved to now instead of waiting two minutes): the next scheduled cycle takes all three.
    from support.aws import set_attrs

    set_attrs(h.stack, limited, next_check_at=0)
    run = h.cli("poll", "--json", env=one_at_a_time)
    assert run.summary["events"] == {"export.completed": 3}, run.summary
    h.verify()
    h.detail = "deferred to the reset, the other 2 left untouched that cycle; all copied the next cycle"


@pytest.mark.fault("Intercom: HTML 504 from the edge (twice) vs JSON `failed` 504")
def test_html_504_is_retried_and_json_failed_504_is_final(harness: FaultHarness) -> None:
    h = harness
    edge = h.add("html_504", html_504_count=2)
    failed = h.add("failed", Expect(event="export.failed", downloads=0), steps=["failed"])
    h.track(edge, failed)

    first = h.cli()
    assert first.job(failed)["event"] == "export.failed"
    assert first.job(edge)["action"] == "retry"
    h.assert_watching(edge, "HTTP 504")
    assert h.events_for(failed) == ["export.failed"]
    assert "12 hours" in h.item(failed)["outcome_reason"]

    second = h.cli()
    assert [j["job_identifier"] for j in second.summary["jobs"]] == [edge]  # the failed job is settled
    h.assert_watching(edge, "HTTP 504")

    third = h.cli()
    assert third.job(edge)["event"] == "export.completed"
    h.verify()
    h.detail = "JSON 504 final on run 1; HTML 504 kept through 2 runs, copied on run 3"


@pytest.mark.fault("Intercom: {label}")
@pytest.mark.parametrize(
    ("label", "options"),
    [
        pytest.param("connection reset mid-download (RST after half the body)", {"reset_downloads": 1}, id="reset"),
        pytest.param(
            "Content-Length longer than the body (half sent, then a clean close)",
            {"flaky_downloads": 1},
            id="short-body",
        ),
    ],
)
def test_broken_download_leaves_nothing_and_is_copied_next_run(
    harness: FaultHarness, label: str, options: dict[str, Any]
) -> None:
    h = harness
    job_id = h.add("completed", Expect(downloads=2), steps=["completed"], size_bytes=3 * MiB, **options)
    h.track(job_id)

    first = h.cli()
    assert first.job(job_id)["action"] == "retry"
    h.assert_watching(job_id, "copy: ")
    assert h.uploads() == []

    second = h.cli()
    assert second.job(job_id)["event"] == "export.completed"
    assert second.job(job_id)["bytes_copied"] == 3 * MiB
    h.verify()
    h.detail = "nothing at the key after run 1; 3 MiB copied on run 2"


@pytest.mark.fault("Intercom: `download_url` on another origin")
def test_foreign_download_url_fails_the_job_without_contacting_it(
    harness: FaultHarness, foreign: ForeignServer
) -> None:
    h = harness
    job_id = h.add("foreign_url", Expect(event="export.failed", downloads=0), download_origin=foreign.base_url)
    h.track(job_id)

    run = h.cli()

    assert run.job(job_id)["event"] == "export.failed"
    assert foreign.seen == []  # not one byte went there
    reason = h.item(job_id)["outcome_reason"]
    assert foreign.base_url in reason and "refusing to send the token" in reason
    assert [n.body["reason"] for n in h.notes_for(job_id)] == [reason]
    h.verify()
    h.detail = f"the other origin got {len(foreign.seen)} requests; the reason names it"


@pytest.mark.fault("Intercom: download redirected to another origin (followed without the token)")
def test_redirect_to_another_origin_is_followed_without_credentials(
    harness: FaultHarness, foreign: ForeignServer, token: str
) -> None:
    import hashlib

    h = harness
    job_id = h.add(
        "redirect_foreign",
        Expect(body_sha256=hashlib.sha256(foreign.body).hexdigest()),
        redirect_to=foreign.base_url,
    )
    h.track(job_id)

    run = h.cli()

    assert run.job(job_id)["event"] == "export.completed"
    [seen] = foreign.seen
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert "authorization" not in headers and "intercom-version" not in headers, headers
    assert not any(token in v for v in headers.values())
    own = h.emulator.requests_for(job_id)
    assert own and all(r.headers.get("Authorization") == f"Bearer {token}" for r in own)
    h.verify()
    h.detail = "copied from the other origin, which got no Authorization or Intercom-Version header"
