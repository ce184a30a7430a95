"""Tracking jobs with exact times, as `exportwatch track` would have done at a given moment."""

from __future__ import annotations

from typing import Any

from exportwatch.model import Job, from_epoch, iso, utcnow
from exportwatch.poll import Poller
from exportwatch.store import JobStore


def stamp(epoch: float) -> str:
    """An epoch time as the table stores times: ISO 8601 UTC, whole seconds."""
    return iso(from_epoch(epoch))


def track_job(store: JobStore, job_id: str, *, tracked_at: float, next_check_at: int = 0, **fields: Any) -> Job:
    """Insert a new job tracked at `tracked_at` (epoch seconds), due from `next_check_at`; other Job fields as given."""
    job = Job(job_identifier=job_id, tracked_at=stamp(tracked_at), next_check_at=next_check_at, **fields)
    assert store.track(job), f"job {job_id} is already tracked"
    return job


def track(poller: Poller, *job_ids: str) -> None:
    """Track jobs the way `exportwatch track` does (due at once)."""
    for job_id in job_ids:
        assert poller.store.track(Job(job_identifier=job_id, tracked_at=iso(utcnow()), next_check_at=0))
