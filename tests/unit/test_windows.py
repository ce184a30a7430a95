"""The coverage ledger's pure rules (exportwatch.windows): whole UTC days, cutting a range into windows, the daily
schedule's owed days, what a window's finished export means for the window, and when the scheduler looks again.

Expected values are computed here independently (calendar.timegm, day-by-day sets), never with the code under test.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exportwatch.model import Job, JobState
from exportwatch.windows import (
    MAX_QUEUED_PER_PASS,
    Span,
    WindowResult,
    WindowState,
    announced,
    daily_range,
    judge,
    next_look,
    parse_day,
    plan,
    window_state_after,
    yesterday,
)

D0 = date(2027, 1, 1)


def d(n: int) -> date:
    """Day n of January 2027 (and beyond: d(32) is 1 February)."""
    return D0 + timedelta(days=n - 1)


def days_of(spans: list[Span]) -> list[date]:
    """Every day the spans cover, in order, repeats kept (so an overlap shows up)."""
    return [s.start + timedelta(days=i) for s in spans for i in range((s.end - s.start).days + 1)]


def run(start: date, end: date) -> set[date]:
    return {start + timedelta(days=i) for i in range((end - start).days + 1)}


def unix(y: int, m: int, day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    return calendar.timegm((y, m, day, hh, mm, ss, 0, 0, 0))


# -- Span ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "first", "last"),
    [
        (date(2027, 1, 15), date(2027, 1, 15), unix(2027, 1, 15), unix(2027, 1, 15, 23, 59, 59)),
        (date(2024, 2, 29), date(2024, 2, 29), unix(2024, 2, 29), unix(2024, 3, 1) - 1),  # leap day
        (date(2024, 2, 28), date(2024, 3, 1), unix(2024, 2, 28), unix(2024, 3, 1, 23, 59, 59)),  # across it
        (date(2026, 12, 31), date(2026, 12, 31), unix(2026, 12, 31), unix(2027, 1, 1) - 1),  # year end
        (date(2026, 12, 30), date(2027, 1, 2), unix(2026, 12, 30), unix(2027, 1, 3) - 1),  # across it
        (date(1970, 1, 1), date(1970, 1, 1), 0, 86399),
    ],
)
def test_a_spans_first_and_last_second_are_its_utc_midnights_inclusive(
    start: date, end: date, first: int, last: int
) -> None:
    span = Span(start, end)
    assert (span.first_second, span.last_second) == (first, last)
    assert span.last_second - span.first_second + 1 == span.days * 86400  # every second, none twice


@given(st.dates(date(1971, 1, 1), date(2100, 12, 31)), st.integers(0, 40))
def test_any_spans_seconds_match_timegm(start: date, extra: int) -> None:
    span = Span(start, start + timedelta(days=extra))
    end = span.end
    assert span.first_second == calendar.timegm(start.timetuple())
    assert span.last_second == calendar.timegm((end + timedelta(days=1)).timetuple()) - 1
    assert span.days == extra + 1


def test_a_span_cannot_end_before_it_starts_and_labels_itself() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        Span(d(2), d(1))
    assert Span(d(5), d(5)).label() == "2027-01-05"
    assert Span(d(5), d(7)).label() == "2027-01-05..2027-01-07"
    assert Span(d(1), d(9)) < Span(d(2), d(2))  # ordered by start, then end


# -- parse_day, yesterday ---------------------------------------------------------------------------------------


def test_parse_day_reads_a_strict_iso_day() -> None:
    assert parse_day("2027-01-05") == date(2027, 1, 5)
    assert parse_day("2024-02-29") == date(2024, 2, 29)


@pytest.mark.parametrize(
    "value",
    [
        "2027-1-5",
        "2027-01-5",
        "20270105",
        "2027/01/05",
        " 2027-01-05",
        "2027-01-05 ",
        "2027-01-05\n",
        "2027-01-05T00:00:00Z",
        "2027-02-29",  # not a leap year
        "2027-02-30",
        "2027-13-01",
        "2027-00-10",
        "0000-01-01",
        "+027-01-05",
        "2027-W01-1",
        "\u0662\u0660\u0662\u0667-\u0660\u0661-\u0660\u0665",  # Arabic-Indic digits
        "\uff12\uff10\uff12\uff17-\uff10\uff11-\uff10\uff15",  # fullwidth digits
        "",
        None,
        20270105,
        b"2027-01-05",
        date(2027, 1, 5),
    ],
)
def test_parse_day_refuses_anything_else(value: object) -> None:
    assert parse_day(value) is None


@given(st.text(max_size=12))
@example("2027-01-05")
def test_parse_day_accepts_only_ascii_yyyy_mm_dd(value: str) -> None:
    parsed = parse_day(value)
    if parsed is not None:
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value) and parsed.isoformat() == value


@pytest.mark.parametrize(
    ("now", "day"),
    [
        (unix(2027, 1, 15, 8), date(2027, 1, 14)),
        (unix(2027, 1, 15), date(2027, 1, 14)),  # midnight: the 14th just ended
        (unix(2027, 1, 15) - 1, date(2027, 1, 13)),  # the 14th's last second: not over yet
        (unix(2025, 1, 1, 0, 0, 1), date(2024, 12, 31)),
        (unix(2024, 3, 1, 12), date(2024, 2, 29)),
    ],
)
def test_yesterday_is_the_last_whole_utc_day(now: int, day: date) -> None:
    assert yesterday(now) == day


# -- plan --------------------------------------------------------------------------------------------------------


def test_an_empty_ledger_is_cut_into_windows_oldest_first_the_last_shorter() -> None:
    assert plan([], d(1), d(10), 3) == [Span(d(1), d(3)), Span(d(4), d(6)), Span(d(7), d(9)), Span(d(10), d(10))]


def test_only_the_days_no_window_covers_are_planned() -> None:
    assert plan([Span(d(3), d(4))], d(1), d(6), 31) == [Span(d(1), d(2)), Span(d(5), d(6))]
    assert plan([Span(d(3), d(4))], d(1), d(6), 1) == [
        Span(d(1), d(1)),
        Span(d(2), d(2)),
        Span(d(5), d(5)),
        Span(d(6), d(6)),
    ]


def test_overlapping_and_adjacent_windows_leave_only_the_true_gaps() -> None:
    covered = [Span(d(7), d(7)), Span(d(3), d(6)), Span(d(2), d(4)), Span(d(3), d(3)), Span(d(12), d(12))]
    assert plan(covered, d(1), d(14), 31) == [Span(d(1), d(1)), Span(d(8), d(11)), Span(d(13), d(14))]


def test_windows_reaching_past_the_range_cut_nothing_outside_it() -> None:
    covered = [Span(d(-5), d(2)), Span(d(9), d(40))]
    assert plan(covered, d(1), d(10), 31) == [Span(d(3), d(8))]
    assert plan([Span(d(-5), d(40))], d(1), d(10), 1) == []
    assert plan([Span(d(-5), d(-1)), Span(d(11), d(20))], d(1), d(10), 31) == [Span(d(1), d(10))]


@pytest.mark.parametrize(
    ("window_days", "count", "last"),
    [(1, 40, Span(d(40), d(40))), (3, 14, Span(d(40), d(40))), (31, 2, Span(d(32), d(40)))],
)
def test_window_days_sets_the_size_of_every_window_but_the_last(window_days: int, count: int, last: Span) -> None:
    spans = plan([], d(1), d(40), window_days)
    assert len(spans) == count and spans[-1] == last
    assert all(s.days == window_days for s in spans[:-1]) and days_of(spans) == sorted(run(d(1), d(40)))


def test_a_free_run_is_cut_from_its_own_first_day() -> None:
    # Windows restart after a covered day: 1-3, (4 covered), 5-7, 8.
    assert plan([Span(d(4), d(4))], d(1), d(8), 3) == [Span(d(1), d(3)), Span(d(5), d(7)), Span(d(8), d(8))]


def test_limit_keeps_the_oldest_windows() -> None:
    assert plan([], d(1), d(10), 2, limit=2) == [Span(d(1), d(2)), Span(d(3), d(4))]
    assert plan([Span(d(2), d(2))], d(1), d(10), 1, limit=3) == [Span(d(1), d(1)), Span(d(3), d(3)), Span(d(4), d(4))]
    assert plan([], d(1), d(3), 1, limit=10) == [Span(d(1), d(1)), Span(d(2), d(2)), Span(d(3), d(3))]


def test_since_equal_to_until_is_one_day() -> None:
    assert plan([], d(5), d(5), 7) == [Span(d(5), d(5))]
    assert plan([Span(d(5), d(5))], d(5), d(5), 7) == []
    assert plan([Span(d(1), d(9))], d(5), d(5), 7) == []


def test_a_window_of_no_days_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan([], d(1), d(2), 0)


covered_spans = st.lists(
    st.builds(lambda a, n: Span(d(a), d(a + n)), st.integers(-10, 60), st.integers(0, 12)), max_size=8
)


@given(
    covered=covered_spans,
    since=st.integers(1, 30),
    length=st.integers(0, 40),
    window_days=st.integers(1, 31),
    limit=st.none() | st.integers(1, 20),
)
def test_plan_leaves_no_gap_and_no_overlap(
    covered: list[Span], since: int, length: int, window_days: int, limit: int | None
) -> None:
    first, last = d(since), d(since + length)
    spans = plan(covered, first, last, window_days, limit=limit)
    planned = days_of(spans)
    taken = {day for s in covered for day in run(s.start, s.end)}
    assert planned == sorted(set(planned))  # oldest first, no day twice
    assert all(s.days <= window_days for s in spans)
    assert not set(planned) & taken  # nothing covered is queued again
    assert set(planned) <= run(first, last)
    owed = sorted(run(first, last) - taken)
    if limit is None:
        assert planned == owed  # with the covered days: every day from since to until, none left out
        assert len(plan([*covered, *spans], first, last, window_days)) == 0  # and planning again adds nothing
    else:
        assert len(spans) <= limit
        assert planned == owed[: len(planned)]  # the oldest owed days first
        if len(spans) < limit:
            assert planned == owed


# -- daily_range -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("through", "expected"),
    [
        (None, (d(1), d(14))),  # nothing queued yet: everything from start
        (d(10), (d(11), d(14))),  # mid-way: the days after it
        (d(13), (d(14), d(14))),
        (d(14), None),  # caught up
        (d(-3), (d(1), d(14))),  # a `through` before start (start moved later): from start
    ],
)
def test_daily_range_owes_the_days_after_through_up_to_the_last_day(
    through: date | None, expected: tuple[date, date] | None
) -> None:
    assert daily_range(d(1), through, d(14), 1) == expected


@pytest.mark.parametrize(
    ("through", "last_day", "expected"),
    [
        (None, d(14), (d(1), d(12))),  # 14 days: four whole windows of 3; day 13 and 14 wait for day 15
        (None, d(15), (d(1), d(15))),
        (d(12), d(14), None),
        (d(12), d(15), (d(13), d(15))),
        (d(6), d(11), (d(7), d(9))),
        (None, d(2), None),  # not one whole window over yet
        (None, d(3), (d(1), d(3))),
    ],
)
def test_daily_range_with_longer_windows_owes_only_whole_windows(
    through: date | None, last_day: date, expected: tuple[date, date] | None
) -> None:
    assert daily_range(d(1), through, last_day, 3) == expected


def test_daily_range_is_empty_before_its_first_day_is_over() -> None:
    assert daily_range(d(10), None, d(9), 1) is None
    assert daily_range(d(10), None, d(10), 1) == (d(10), d(10))
    assert daily_range(d(10), None, d(10), 2) is None


@given(st.integers(1, 31), st.integers(0, 120), st.integers(0, 120))
def test_daily_windows_planned_from_daily_range_end_on_window_boundaries(window_days: int, done: int, age: int) -> None:
    start = d(1)
    last_day = start + timedelta(days=age)
    through = None if done == 0 else start + timedelta(days=done - 1)
    owed = daily_range(start, through, last_day, window_days)
    if owed is None:
        return
    first, end = owed
    assert start <= first <= end <= last_day
    assert ((end - start).days + 1) % window_days == 0  # whole windows counted from start
    assert through is None or first == through + timedelta(days=1)


# -- judge, announced -------------------------------------------------------------------------------------------


def window_job(state: JobState, attempt: int | None = 1, **fields: object) -> Job:
    job = Job(
        job_identifier="win1",
        state=state,
        workspace="eu",
        window_start="2027-01-10",
        window_end="2027-01-10",
        window_attempt=attempt,
    )
    return replace(job, **fields)  # type: ignore[arg-type]


def test_a_completed_window_export_is_archived_and_no_data_is_empty() -> None:
    done = judge(window_job(JobState.COMPLETED), 3)
    assert done.window_result == WindowResult.ARCHIVED.value and done.state is JobState.COMPLETED
    empty = judge(window_job(JobState.NO_DATA), 3)
    assert empty.window_result == WindowResult.EMPTY.value and empty.state is JobState.NO_DATA
    assert announced(done) and announced(empty)


RETRIED = [JobState.FAILED, JobState.EXPIRED, JobState.NOT_FOUND, JobState.CANCELED]


@pytest.mark.parametrize("state", RETRIED)
@pytest.mark.parametrize("attempt", [1, 2])
def test_a_failed_attempt_before_the_last_is_retried_silently(state: JobState, attempt: int) -> None:
    job = window_job(state, attempt, outcome_reason="Intercom says so")
    judged = judge(job, 3)
    assert judged.window_result == WindowResult.RETRY.value
    assert (judged.state, judged.outcome_reason) == (state, "Intercom says so")  # nothing else changes
    assert not announced(judged)
    assert window_state_after(WindowResult.RETRY) is WindowState.QUEUED


@pytest.mark.parametrize("state", RETRIED)
def test_the_last_attempt_fails_with_a_reason_naming_the_window_and_workspace(state: JobState) -> None:
    job = window_job(state, 3, outcome_reason="Intercom's export job failed")
    judged = judge(job, 3)
    assert (judged.state, judged.window_result) == (JobState.FAILED, WindowResult.FAILED.value)
    assert judged.outcome_reason == (
        "window 2027-01-10 of workspace eu failed after 3 attempts: Intercom's export job failed"
    )
    assert announced(judged)


def test_the_failure_reason_says_the_whole_window_and_falls_back_to_the_state() -> None:
    job = window_job(JobState.EXPIRED, 1, window_end="2027-01-12")
    judged = judge(job, 1)
    assert judged.outcome_reason == "window 2027-01-10..2027-01-12 of workspace eu failed after 1 attempt: expired"
    beyond = judge(window_job(JobState.CANCELED, 5), 3)  # more attempts than allowed now (the setting was lowered)
    assert beyond.window_result == WindowResult.FAILED.value and "after 5 attempts: canceled" in str(
        beyond.outcome_reason
    )


def test_a_window_job_without_an_attempt_number_counts_as_the_first() -> None:
    assert judge(window_job(JobState.FAILED, None), 2).window_result == WindowResult.RETRY.value
    assert judge(window_job(JobState.FAILED, None), 1).window_result == WindowResult.FAILED.value


@pytest.mark.parametrize(
    "job",
    [
        Job(job_identifier="plain", state=JobState.FAILED, outcome_reason="boom"),  # tracked by hand
        Job(job_identifier="plain2", state=JobState.COMPLETED),
        window_job(JobState.WATCHING),  # not final yet
        window_job(JobState.FAILED, window_start="2027-1-10"),  # an unreadable window is no window
        window_job(JobState.FAILED, window_end=None),
        window_job(JobState.FAILED, window_start="2027-01-11", window_end="2027-01-10"),
        window_job(JobState.FAILED, window_result="archived"),  # decided already
    ],
)
def test_judge_leaves_other_jobs_unchanged(job: Job) -> None:
    assert judge(job, 1) is job


@pytest.mark.parametrize("state", [*RETRIED, JobState.COMPLETED, JobState.NO_DATA])
@pytest.mark.parametrize(("attempt", "max_attempts"), [(1, 3), (3, 3), (1, 1)])
def test_judge_is_idempotent(state: JobState, attempt: int, max_attempts: int) -> None:
    once = judge(window_job(state, attempt, outcome_reason="why"), max_attempts)
    assert judge(once, max_attempts) == once
    assert judge(once, 10) == once  # decided once: a later setting does not change it


def test_announced_is_false_only_for_a_retried_attempt() -> None:
    assert announced(Job(job_identifier="plain", state=JobState.FAILED))
    for result in WindowResult:
        assert announced(window_job(JobState.FAILED, window_result=result.value)) is (result is not WindowResult.RETRY)


def test_each_window_result_leaves_the_window_in_its_state() -> None:
    assert {r: window_state_after(r) for r in WindowResult} == {
        WindowResult.ARCHIVED: WindowState.ARCHIVED,
        WindowResult.EMPTY: WindowState.EMPTY,
        WindowResult.RETRY: WindowState.QUEUED,
        WindowResult.FAILED: WindowState.FAILED,
    }
    assert [s for s in WindowState if not s.covers] == [WindowState.FAILED]


# -- next_look ---------------------------------------------------------------------------------------------------

NOW = unix(2027, 1, 15, 8)


@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize("daily", [False, True])
def test_a_workspace_turned_away_looks_again_next_interval(active: bool, daily: bool) -> None:
    assert next_look(NOW, active=active, waiting=True, daily=daily, interval=300, max_delay=1800) == NOW + 300


@pytest.mark.parametrize("daily", [False, True])
def test_an_active_export_is_looked_at_within_the_longest_check_delay(daily: bool) -> None:
    assert next_look(NOW, active=True, waiting=False, daily=daily, interval=300, max_delay=1800) == NOW + 1800


@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        (NOW, unix(2027, 1, 16)),
        (unix(2027, 1, 15), unix(2027, 1, 16)),
        (unix(2027, 1, 16) - 1, unix(2027, 1, 16)),
        (unix(2026, 12, 31, 23, 30), unix(2027, 1, 1)),
        (unix(2024, 2, 28, 12), unix(2024, 2, 29)),
    ],
)
def test_a_daily_workspace_looks_again_just_after_the_next_utc_midnight(now: int, midnight: int) -> None:
    look = next_look(now, active=False, waiting=False, daily=True, interval=300, max_delay=1800)
    assert midnight < look <= midnight + 300
    assert yesterday(look) == datetime.fromtimestamp(midnight - 1, UTC).date()  # the day that just ended is owed


def test_an_idle_workspace_looks_again_in_a_day() -> None:
    assert next_look(NOW, active=False, waiting=False, daily=False, interval=300, max_delay=1800) == NOW + 86400


def test_the_daily_schedule_queues_at_most_a_bounded_number_per_pass() -> None:
    assert 1 <= MAX_QUEUED_PER_PASS <= 1000
