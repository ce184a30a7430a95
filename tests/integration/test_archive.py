"""Copying the download into S3: exact bytes, multipart, broken streams leave nothing behind, format sniffing.

Downloads come from the emulator over HTTP and land in moto's S3 over HTTP. (Peak memory is measured in bench/.)
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from exportwatch.archive import GZIP, UNKNOWN, ZIP, CopySettings, IncompleteDownload, copy_to_s3, sniff
from exportwatch.poll import Poller, run_cycle
from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, MotoServer, aws_client, receive_notifications
from support.digests import emulator_digest, object_digest, s3_client
from support.readback import archive_key
from support.tracking import track

MiB = 1024 * 1024
BIG = 12_000_000  # three 5 MiB parts


def assert_nothing_left(stack: LocalStack, key: str) -> None:
    s3 = s3_client(stack)
    assert s3.list_objects_v2(Bucket=stack.bucket)["KeyCount"] == 0, f"an object was left (wanted none at {key})"
    uploads = s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    assert uploads == [], "an incomplete multipart upload was left behind"


@pytest.mark.parametrize(("body_format", "ext", "content_type"), [("zip", "zip", ZIP), ("gzip", "gz", GZIP)])
def test_copy_is_byte_exact(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    body_format: str,
    ext: str,
    content_type: Any,
) -> None:
    job_id = emulator.add_job("completed", steps=["completed"], body_format=body_format, rows=500)
    track(poller, job_id)

    summary = run_cycle(poller)

    assert summary.events == {"export.completed": 1}
    size, sha, head = emulator_digest(emulator, job_id)
    key = archive_key(stack, job_id, ext)
    got_size, got_sha, obj = object_digest(stack, key)
    assert (got_size, got_sha) == (size, sha)
    assert sniff(head) == content_type
    assert obj["ContentType"] == content_type.content_type
    assert obj["Metadata"] == {"job-identifier": job_id}
    job = poller.store.get(job_id)
    assert job is not None
    assert (job.size_bytes, job.sha256, job.s3_uri) == (size, sha, f"s3://{stack.bucket}/{key}")


def test_multipart_sized_export_lands_intact(poller: Poller, emulator: IntercomEmulator, stack: LocalStack) -> None:
    poller.copy_settings = CopySettings(part_size=5 * MiB)
    job_id = emulator.add_job("completed", steps=["completed"], size_bytes=BIG)
    track(poller, job_id)

    summary = run_cycle(poller)

    assert summary.events == {"export.completed": 1}
    key = archive_key(stack, job_id, "zip")
    size, sha, obj = object_digest(stack, key)
    assert size == BIG
    assert (size, sha) == emulator_digest(emulator, job_id)[:2]
    assert obj["ETag"].strip('"').endswith("-3"), obj["ETag"]  # really a three-part multipart upload
    assert obj["ContentType"] == "application/zip"
    assert obj["Metadata"] == {"job-identifier": job_id}
    assert s3_client(stack).list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []) == []
    job = poller.store.get(job_id)
    assert job is not None and (job.size_bytes, job.sha256) == (BIG, sha)


@pytest.mark.parametrize(
    ("scenario", "size_bytes"),
    [
        ("truncated", None),  # small body: a single PutObject
        ("truncated", BIG),  # multipart: parts were uploaded before the stream broke
        ("reset", None),
        ("reset", BIG),
    ],
)
def test_broken_download_leaves_nothing_and_is_retried(
    poller: Poller,
    emulator: IntercomEmulator,
    stack: LocalStack,
    subscriber: str,
    scenario: str,
    size_bytes: int | None,
) -> None:
    poller.copy_settings = CopySettings(part_size=5 * MiB)
    if scenario == "truncated":  # only the first download breaks
        job_id = emulator.add_job(scenario, size_bytes=size_bytes, flaky_downloads=1)
    else:
        job_id = emulator.add_job(scenario, size_bytes=size_bytes, reset_downloads=1)
    track(poller, job_id)
    calls: list[str] = []
    poller.s3.meta.events.register("after-call.s3", lambda model, **_: calls.append(model.name))

    first = run_cycle(poller)
    key = archive_key(stack, job_id, "zip")

    [result] = first.results
    assert (result.action, result.state, result.event) == ("retry", "watching", None)
    assert result.detail.startswith("copy: ")
    assert_nothing_left(stack, key)
    if size_bytes == BIG:
        # Every multipart upload started was aborted. A clean truncation at 6 MB always gets past the first
        # 5 MiB part; a reset may break off earlier (the RST discards what the kernel still buffered).
        started = calls.count("CreateMultipartUpload")
        assert started == calls.count("AbortMultipartUpload") and started >= (scenario == "truncated"), calls
        assert "CompleteMultipartUpload" not in calls
    else:
        assert "CreateMultipartUpload" not in calls and "PutObject" not in calls, calls
    job = poller.store.get(job_id)
    assert job is not None and job.state == "watching" and job.s3_uri is None
    assert job.last_error is not None and job.last_error.startswith("copy: ")
    assert receive_notifications(stack.endpoint_url, subscriber, timeout=0.9) == []

    second = run_cycle(poller, all_jobs=True)

    assert second.events == {"export.completed": 1}
    size, sha, _ = object_digest(stack, key)
    assert (size, sha) == emulator_digest(emulator, job_id)[:2]
    info = emulator.job_info(job_id)
    assert info is not None and info["download_faults_used"] == {fault_name(scenario): 1}
    assert len(receive_notifications(stack.endpoint_url, subscriber, expect=1, timeout=5)) == 1


def fault_name(scenario: str) -> str:
    return {"truncated": "truncate", "reset": "reset"}[scenario]


class _Raw:
    """A raw stream with urllib3's read signature over fixed bytes (what a lying server would send)."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        return self._buf.read(-1 if amt is None else amt)


@dataclass(frozen=True)
class Scratch:
    s3: Any
    bucket: str


@pytest.fixture(scope="module")
def scratch(moto_server: MotoServer) -> Scratch:
    """One bucket for the direct copy_to_s3 tests (each uses its own key)."""
    s3 = aws_client("s3", moto_server.endpoint_url)
    bucket = f"exportwatch-archive-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=bucket)
    return Scratch(s3, bucket)


@pytest.mark.parametrize("part_size", [5 * MiB, 16 * MiB])
@pytest.mark.parametrize(("announced", "why"), [(+1000, "ended after"), (-1000, "more than")])
def test_content_length_mismatch_is_refused(scratch: Scratch, part_size: int, announced: int, why: str) -> None:
    data = b"PK\x03\x04" + bytes(range(256)) * (6 * MiB // 256)
    job_id = f"lying-{secrets.token_hex(4)}"
    with pytest.raises(IncompleteDownload, match=why):
        copy_to_s3(
            scratch.s3,
            _Raw(data),
            bucket=scratch.bucket,
            prefix="intercom-exports/",
            job_id=job_id,
            expected_length=len(data) + announced,
            settings=CopySettings(part_size=part_size),
        )
    key = f"intercom-exports/{job_id}.zip"  # copy_to_s3's own key: the prefix it is given, the id, the extension
    assert scratch.s3.list_objects_v2(Bucket=scratch.bucket, Prefix=key)["KeyCount"] == 0
    uploads = scratch.s3.list_multipart_uploads(Bucket=scratch.bucket, Prefix=key).get("Uploads", [])
    assert uploads == [], "an incomplete multipart upload was left behind"


def test_exact_content_length_is_accepted(scratch: Scratch) -> None:
    data = b"\x1f\x8b" + b"x" * 5000
    result = copy_to_s3(
        scratch.s3,
        _Raw(data),
        bucket=scratch.bucket,
        prefix="p/",
        job_id="exact",
        expected_length=len(data),
    )
    assert (result.copy.key, result.copy.size_bytes) == ("p/exact.gz", len(data))
    assert result.copy.sha256 == hashlib.sha256(data).hexdigest()
    assert scratch.s3.get_object(Bucket=scratch.bucket, Key="p/exact.gz")["Body"].read() == data


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"PK\x03\x04\x14\x00\x08\x00", ZIP),
        (b"PK\x05\x06\x00\x00", ZIP),  # an empty ZIP
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", GZIP),
        (b"\x1f\x8b", GZIP),
        (b"ruleset_id,ruleset_version_id", UNKNOWN),
        (b"PKZIP", UNKNOWN),
        (b"\x1f", UNKNOWN),
        (b"", UNKNOWN),
    ],
)
def test_sniff(head: bytes, expected: Any) -> None:
    assert sniff(head) == expected
    assert (ZIP.extension, GZIP.extension, UNKNOWN.extension) == ("zip", "gz", "bin")


def test_unknown_format_is_kept_as_bin(scratch: Scratch) -> None:
    data = b"ruleset_id,content_id\n1,2\n"
    result = copy_to_s3(scratch.s3, _Raw(data), bucket=scratch.bucket, prefix="x/", job_id="csv", expected_length=None)
    assert result.copy.key == "x/csv.bin" and result.copy.content_type == "application/octet-stream"
    head = scratch.s3.head_object(Bucket=scratch.bucket, Key="x/csv.bin")
    assert head["ContentType"] == "application/octet-stream" and head["ContentLength"] == len(data)


def test_copy_settings_cap_read_ahead_and_no_header_sizes_parts() -> None:
    from exportwatch.archive import MAX_PARTS, CopySettings, MalformedDownload, MiB, announced_length

    settings = CopySettings()
    config = settings.transfer_config()
    # A download is non-seekable: s3transfer would read 10 parts ahead; one per upload thread keeps memory flat.
    assert config.max_in_memory_upload_chunks == settings.max_concurrency
    assert config.multipart_chunksize == settings.part_size == 8 * MiB
    # The cap is what MAX_PARTS (< S3's 10,000) parts of the configured size hold: 9,000 x 8 MiB.
    assert settings.max_bytes == 9_000 * 8 * MiB and MAX_PARTS < 10_000
    assert announced_length(None, settings.max_bytes) is None
    assert announced_length(" 1234 ", settings.max_bytes) == 1234
    assert announced_length(str(9_000 * 8 * MiB), settings.max_bytes) == 9_000 * 8 * MiB
    for lying in (str(9_000 * 8 * MiB + 1), "10000000000000", "9" * 40, "-1", "1e9", "12, 12", "\u0661\u0662", ""):
        try:
            announced_length(lying, settings.max_bytes)
        except MalformedDownload:
            continue
        raise AssertionError(f"Content-Length {lying!r} was accepted")
