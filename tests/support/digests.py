"""sha256 digests of an export as the emulator serves it and as it landed in S3 (read as streams)."""

from __future__ import annotations

import hashlib
from typing import Any

import requests

from exportwatch_local.emulator import IntercomEmulator
from exportwatch_local.localstack import LocalStack, aws_client


def s3_client(stack: LocalStack) -> Any:
    return aws_client("s3", stack.endpoint_url)


def emulator_digest(emulator: IntercomEmulator, job_id: str) -> tuple[int, str, bytes]:
    """(size, sha256, first bytes) of the export exactly as the emulator sends it (never decoded, whatever its
    Content-Encoding says), read as a stream."""
    sha, size, head = hashlib.sha256(), 0, b""
    with requests.get(
        f"{emulator.base_url}/download/content/data/{job_id}",
        headers={"Authorization": f"Bearer {emulator.token}", "Accept": "application/octet-stream"},
        stream=True,
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        for chunk in resp.raw.stream(1 << 20, decode_content=False):
            head = head or chunk[:8]
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), head


def object_digest(stack: LocalStack, key: str) -> tuple[int, str, dict[str, Any]]:
    obj = s3_client(stack).get_object(Bucket=stack.bucket, Key=key)
    sha, size = hashlib.sha256(), 0
    for chunk in obj["Body"].iter_chunks(1 << 20):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest(), obj
