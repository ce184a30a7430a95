"""Hostile URLs, driven through the real HTTP stack: where each request went, and that a stranger never saw the token.

Two loopback servers: the emulator plays Intercom (the API origin), a second emulator in storage mode plays a
stranger (it serves the same job's bytes to anyone and records every request). Each URL form is handed to the
poller as Intercom's `download_url`, and as the `Location` of a redirect from Intercom's download, and after a
hop on the storage host. The URL forms are written relative to those two servers: "S" is the stranger's
authority, "A" the API's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from exportwatch.config import Settings
from exportwatch.intercom import ForeignOrigin, IntercomClient
from exportwatch.model import Job, JobState, iso, utcnow
from exportwatch.observability import cycle_metrics
from exportwatch.poll import Poller, run_cycle
from exportwatch.ratelimit import MAX_RESET_SECONDS
from exportwatch.urls import UnsafeUrl, resolve
from exportwatch.wiring import build_poller
from exportwatch_local.emulator import IntercomEmulator, RecordedRequest
from exportwatch_local.localstack import LocalStack, aws_client, receive_notifications
from support.digests import emulator_digest, object_digest
from support.readback import archive_key
from support.tracking import track

P = "/download/content/data/{job}"


@dataclass(frozen=True)
class Form:
    name: str
    template: str  # {S}: the stranger's host:port, {A}: the API's host:port, {SP}/{AP}: their ports, {P}: the path
    refused: bool  # refused before any request (True), or a legitimate URL that is fetched (False)
    # As a redirect Location, a foreign loopback URL is a legitimate hop (followed without the token): None
    # means "as `refused`".
    location_refused: bool | None = None

    def url(self, api: IntercomEmulator, stranger: IntercomEmulator, job: str) -> str:
        a, s = api.base_url.split("://")[1], stranger.base_url.split("://")[1]
        return self.template.format(S=s, A=a, SP=s.split(":")[1], AP=a.split(":")[1], P=P.format(job=job))


# Every form a parser could read as the API's origin while the connection goes elsewhere, and their cousins.
HOSTILE = [
    Form("backslash", "http://{S}\\@{A}{P}", True),
    Form("leading_space", " http://{S}\\@{A}{P}", True),
    Form("upper_scheme_backslash", "HTTP://{S}\\@{A}{P}", True),
    Form("tab", "http://{S}\t@{A}{P}", True),
    Form("userinfo_api_at_stranger", "http://{A}@{S}{P}", True),
    Form("userinfo_stranger_at_api", "http://{S}@{A}{P}", True),
    Form("percent_backslash", "http://{S}%5C@{A}{P}", True),
    Form("scheme_relative", "//{S}{P}", True),
    Form("fullwidth_host", "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{SP}{P}", True),
    Form("idna_host", "http://xn--80ak6aa92e.com:{SP}{P}", True),
    Form("trailing_dot", "http://127.0.0.1.:{AP}{P}", True),
    Form("ipv6_literal", "http://[::1]:{AP}{P}", True, location_refused=False),  # nothing listens on ::1
    # As a Location, a newline ends the header: the client sees "http://S", a hop with no job, never the token.
    Form("newline_in_host", "http://{S}\n.{A}{P}", True, location_refused=False),
]
# Forms that are the API's own origin, spelled differently: fetched from the API with the token.
SAME_ORIGIN = [
    Form("upper_scheme", "HTTP://{A}{P}", False),
    Form("upper_host", "http://{A}{P}", False),  # the loopback IP has no case; kept as the plain reference
]


@pytest.fixture
def stranger() -> Iterator[IntercomEmulator]:
    with IntercomEmulator(token=f"stranger-{secrets.token_hex(8)}", open_downloads=True) as em:
        yield em


def _twin(stranger: IntercomEmulator, job_id: str, **options: object) -> None:
    """The stranger serves bytes for the same job id (so a request that reaches it would succeed)."""
    stranger.add_job("completed", job_identifier=job_id, steps=["completed"], **options)


def _plant(
    poller: Poller, api: IntercomEmulator, stranger: IntercomEmulator, forms: list[Form], option: str
) -> dict[str, Form]:
    """One completed job per form, tracked, with the form's URL as Intercom's `option` (download_url or
    redirect_location). The URL names the job id itself, so whichever host a request reaches attributes it."""
    jobs: dict[str, Form] = {}
    for form in forms:
        job_id = f"url{secrets.token_hex(6)}"
        url = form.url(api, stranger, job_id)
        api.add_job("completed", job_identifier=job_id, steps=["completed"], **{option: url})
        _twin(stranger, job_id)
        track(poller, job_id)
        jobs[job_id] = form
    return jobs


def _downloads(api: IntercomEmulator, job_id: str) -> list[RecordedRequest]:
    return [r for r in api.requests_for(job_id) if r.path.startswith("/download/")]


def _assert_stranger_clean(stranger: IntercomEmulator, token: str) -> None:
    for request in stranger.requests:
        lowered = {k.lower(): v for k, v in request.headers.items()}
        assert "authorization" not in lowered and "intercom-version" not in lowered, request.path
        assert all(token not in v for v in request.headers.values()), request.path
        assert token not in request.path


def _serial(poller: Poller) -> Poller:
    """One worker: jobs are handled in due order, so "after it in the same cycle" means what it says."""
    return replace(poller, settings=replace(poller.settings, poll_concurrency=1))


def test_hostile_download_urls_are_refused_before_any_request(
    poller: Poller, emulator: IntercomEmulator, stranger: IntercomEmulator, stack: LocalStack, token: str
) -> None:
    jobs = _plant(poller, emulator, stranger, HOSTILE + SAME_ORIGIN, "download_url")

    run_cycle(poller)

    for job_id, form in jobs.items():
        job = poller.store.get(job_id)
        assert job is not None
        downloads = _downloads(emulator, job_id)
        assert stranger.requests_for(job_id) == [], f"{form.name}: the stranger was contacted"
        if form.refused:
            assert job.state is JobState.FAILED, f"{form.name}: {job.state} {job.last_error}"
            assert downloads == [], f"{form.name}: downloaded from the API"
            assert job.outcome_reason and "download_url" in job.outcome_reason, form.name
            assert "\n" not in job.outcome_reason and "\t" not in job.outcome_reason
        else:
            assert job.state is JobState.COMPLETED, f"{form.name}: {job.state} {job.last_error}"
            assert [r.headers.get("Authorization") for r in downloads] == [f"Bearer {token}"], form.name
    _assert_stranger_clean(stranger, token)


def test_refused_download_url_names_the_host(
    poller: Poller, emulator: IntercomEmulator, stranger: IntercomEmulator, subscriber: str, stack: LocalStack
) -> None:
    job_id = f"url{secrets.token_hex(6)}"
    emulator.add_job(
        "completed", job_identifier=job_id, steps=["completed"], download_url=HOSTILE[0].url(emulator, stranger, job_id)
    )
    track(poller, job_id)

    run_cycle(poller)

    [note] = receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)
    assert note.body["event"] == "export.failed"
    stranger_host = stranger.base_url.split("://")[1]
    assert stranger_host in note.body["reason"] and "backslash" in note.body["reason"]


def test_hostile_redirect_locations_are_refused_and_a_plain_foreign_hop_gets_no_token(
    poller: Poller, emulator: IntercomEmulator, stranger: IntercomEmulator, token: str
) -> None:
    plain = Form("plain_foreign_hop", "http://{S}{P}", False)
    jobs = _plant(poller, emulator, stranger, [*HOSTILE, plain], "redirect_location")

    run_cycle(poller)

    for job_id, form in jobs.items():
        job = poller.store.get(job_id)
        assert job is not None
        own = _downloads(emulator, job_id)
        assert [r.headers.get("Authorization") for r in own] == [f"Bearer {token}"], form.name  # the first hop
        seen = stranger.requests_for(job_id)
        refused = form.refused if form.location_refused is None else form.location_refused
        if not refused and form is not plain:  # a foreign loopback hop that serves no export: retried, no token
            assert seen == [] and job.state is JobState.WATCHING, f"{form.name}: {job.state} {job.last_error}"
        elif refused:
            assert seen == [], f"{form.name}: the stranger was contacted"
            assert job.state is JobState.FAILED, f"{form.name}: {job.state} {job.last_error}"
            assert job.outcome_reason and "redirect" in job.outcome_reason, form.name
        else:  # like a presigned URL: followed, without Intercom's credentials, and the bytes are archived
            assert len(seen) == 1 and job.state is JobState.COMPLETED, f"{form.name}: {job.state} {job.last_error}"
    _assert_stranger_clean(stranger, token)


def test_after_a_hop_on_a_storage_host_the_token_never_comes_back(
    poller: Poller, emulator: IntercomEmulator, stranger: IntercomEmulator, token: str
) -> None:
    back_home = f"job{secrets.token_hex(6)}"  # API -> storage -> API again: the last hop must carry no token
    hostile = f"job{secrets.token_hex(6)}"  # API -> storage -> a backslash form aimed back at the API
    for job_id, location in (
        (back_home, f"{emulator.base_url}{P.format(job=back_home)}"),
        (hostile, HOSTILE[0].url(emulator, stranger, hostile)),
    ):
        emulator.add_job(
            "completed",
            job_identifier=job_id,
            steps=["completed"],
            redirect_location=f"{stranger.base_url}{P.format(job=job_id)}",
        )
        _twin(stranger, job_id, redirect_location=location)
        track(poller, job_id)

    run_cycle(poller)

    own = _downloads(emulator, back_home)
    assert [r.headers.get("Authorization") for r in own] == [f"Bearer {token}", None]
    job = poller.store.get(back_home)
    assert job is not None and job.state is JobState.WATCHING  # Intercom said 401 without the token: retried later
    bad = poller.store.get(hostile)
    assert bad is not None and bad.state is JobState.FAILED and "backslash" in (bad.outcome_reason or "")
    assert len(_downloads(emulator, hostile)) == 1
    _assert_stranger_clean(stranger, token)


def test_plain_http_to_the_api_host_and_port_is_refused_when_the_api_is_https(emulator: IntercomEmulator) -> None:
    """An origin check that ignored the scheme would send the token in clear text to the same host and port."""
    host = emulator.base_url.split("://")[1]
    client = IntercomClient(f"https://{host}", lambda: emulator.token)
    job_id = emulator.add_job("completed", steps=["completed"])
    with (
        pytest.raises(ForeignOrigin, match="not the Intercom API origin"),
        client.download(f"http://{host}{P.format(job=job_id)}"),
    ):
        pass
    assert emulator.requests == []


def test_default_port_spelled_out_is_the_same_origin_and_case_does_not_matter() -> None:
    assert resolve("https://api.intercom.io:443/x").origin == resolve("https://api.intercom.io").origin
    assert resolve("HTTPS://API.Intercom.IO/x").origin == resolve("https://api.intercom.io").origin
    assert resolve("https://api.intercom.io:8443/x").origin != resolve("https://api.intercom.io").origin
    assert resolve("http://api.intercom.io:443/x").origin != resolve("https://api.intercom.io").origin
    for bad in ("https://api.intercom.io\\@x/", "https://api.intercom.io:99999/", "https://[::1/", "ftp://a/", ""):
        with pytest.raises(UnsafeUrl):
            resolve(bad)


# -- headers from elsewhere --------------------------------------------------------------------------------


def test_a_429_with_an_absurd_reset_from_a_download_hop_delays_only_its_own_job(
    poller: Poller, emulator: IntercomEmulator, stranger: IntercomEmulator, stack: LocalStack
) -> None:
    poller = _serial(poller)
    stuck = f"hop{secrets.token_hex(6)}"
    emulator.add_job(
        "completed",
        job_identifier=stuck,
        steps=["completed"],
        redirect_location=f"{stranger.base_url}{P.format(job=stuck)}",
    )
    absurd = {"X-RateLimit-Reset": "9999999999", "X-RateLimit-Remaining": "0", "Retry-After": "99999999"}
    _twin(stranger, stuck, download_status=429, download_headers=absurd)
    track(poller, stuck)  # next_check_at 0: due first, so handled before the others
    others = [emulator.add_job("completed", steps=["completed"]) for _ in range(3)]
    for job_id in others:
        assert poller.store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=1))
    before = time.time()

    summary = run_cycle(poller)

    assert summary.stopped is None, summary.stopped
    for job_id in others:
        job = poller.store.get(job_id)
        assert job is not None and job.state is JobState.COMPLETED and job.s3_uri, job_id
    job = poller.store.get(stuck)
    assert job is not None and job.state is JobState.WATCHING
    assert "429" in (job.last_error or "")
    assert job.next_check_at is not None
    assert job.next_check_at <= time.time() + poller.settings.max_check_delay_seconds
    assert job.next_check_at <= before + poller.settings.poll_interval_seconds + 5  # an ordinary retry, no more


def test_an_absurd_reset_from_intercom_itself_is_clamped(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack
) -> None:
    job_id = emulator.add_job("rate_limited", reset_in=1e10, rate_limit_count=2)
    track(poller, job_id)
    before = time.time()

    summary = run_cycle(poller)

    job = poller.store.get(job_id)
    assert job is not None and job.state is JobState.WATCHING
    assert summary.stopped is not None and "rate limited" in summary.stopped
    assert job.next_check_at is not None
    assert job.next_check_at <= before + MAX_RESET_SECONDS + 2
    assert job.next_check_at <= before + poller.settings.max_check_delay_seconds + 2


# -- bodies that lie -----------------------------------------------------------------------------------------


def test_a_content_length_above_the_cap_is_malformed_and_nothing_is_read(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"], content_length=10 * 10**12)  # 10 TB
    track(poller, job_id)

    run_cycle(poller)

    job = poller.store.get(job_id)
    assert job is not None and job.state is JobState.WATCHING
    assert "Content-Length" in (job.last_error or "") and "cap" in (job.last_error or "")
    s3 = aws_client("s3", stack.endpoint_url)
    assert s3.list_objects_v2(Bucket=stack.bucket)["KeyCount"] == 0
    assert s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []) == []
    assert receive_notifications(stack.endpoint_url, subscriber, timeout=1) == []


def test_a_content_length_under_the_cap_but_longer_than_the_body_leaves_nothing(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"], content_length=50 * 2**30)  # 50 GiB, body ~KBs
    track(poller, job_id)

    run_cycle(poller)

    job = poller.store.get(job_id)
    assert job is not None and job.state is JobState.WATCHING
    assert any(w in (job.last_error or "") for w in ("ended after", "broke off")), job.last_error
    s3 = aws_client("s3", stack.endpoint_url)
    assert s3.list_objects_v2(Bucket=stack.bucket)["KeyCount"] == 0


def test_a_download_answering_410_gone_is_expired(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"], download_status=410)
    track(poller, job_id)

    run_cycle(poller)

    [note] = receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)
    assert note.body["event"] == "export.expired" and "410" in note.body["reason"]


def test_a_gzip_content_encoding_is_stored_byte_for_byte_never_decoded(
    poller: Poller, emulator: IntercomEmulator, stack: LocalStack, env: dict[str, str]
) -> None:
    job_id = emulator.add_job(
        "completed", steps=["completed"], body_format="gzip", download_headers={"Content-Encoding": "gzip"}
    )
    track(poller, job_id)

    run_cycle(poller)

    job = poller.store.get(job_id)
    assert job is not None and job.state is JobState.COMPLETED, job.last_error
    size, sha, head = emulator_digest(emulator, job_id)
    assert head[:2] == b"\x1f\x8b"  # gzip bytes on the wire, under a Content-Encoding: gzip header
    assert object_digest(stack, archive_key(stack, job_id, "gz"))[:2] == (size, sha)
    assert job.sha256 == sha


# -- ids read back from the table ---------------------------------------------------------------------------


def test_a_bad_id_in_the_table_is_skipped_once_and_never_sent_to_intercom(
    settings: Settings, emulator: IntercomEmulator, stack: LocalStack, subscriber: str
) -> None:
    poller = build_poller(settings)
    good = emulator.add_job("completed", steps=["completed"])
    track(poller, good)
    db = aws_client("dynamodb", stack.endpoint_url)
    bad_ids = ["../../export/cancel/x", "a b", "-leading", "x" * 65, "tab\there"]
    for bad in bad_ids:  # written by hand (or by an older version): the id rule was never applied
        db.put_item(
            TableName=stack.table_name,
            Item={"job_identifier": {"S": bad}, "due_shard": {"S": "due"}, "next_check_at": {"N": "0"}},
        )

    first = run_cycle(poller)
    second = run_cycle(poller, all_jobs=True)

    assert sorted(r.action for r in first.results) == ["copied"] + ["invalid"] * len(bad_ids)
    assert [r.action for r in second.results] == []  # counted once: the rows left the due index
    assert ("InvalidJobRows", "Count", len(bad_ids)) in cycle_metrics(first)
    assert ("InvalidJobRows", "Count", 0) in cycle_metrics(second)
    assert all("\t" not in r.job_identifier for r in first.results)
    paths = [r.path for r in emulator.requests]
    assert all(good in p for p in paths), paths  # Intercom only ever heard about the valid job
    for bad in bad_ids:
        item = db.get_item(TableName=stack.table_name, Key={"job_identifier": {"S": bad}})["Item"]
        assert "due_shard" not in item and "quarantine_reason" in item  # kept for a person to look at
