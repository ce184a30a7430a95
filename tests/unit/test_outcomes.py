"""outcomes.py, the one table of Intercom's answers and outcomes: complete, consistent, and what others rely on."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from exportwatch import intercom, model
from exportwatch.notifier import SUBJECT_MAX
from exportwatch.outcomes import (
    FINISHED_OK_STATUSES,
    HTTP_ANSWERS,
    NOTICES,
    OUTCOMES,
    RUNNING_STATUSES,
    WARNINGS,
    Event,
    Facts,
    IntercomStatus,
    JobState,
    Notice,
    Outcome,
    final_state,
    outcome_for_status,
)
from exportwatch.render import SLACK_HEADER_MAX

# The spec's status enum (intercom-export-api.md, "Status values") and the older spelling the docs also use.
SPEC_STATUSES = {"pending", "in_progress", "failed", "completed", "no_data", "canceled"}


def test_every_documented_status_word_maps_to_one_outcome() -> None:
    assert SPEC_STATUSES | {"complete"} <= {s.value for s in IntercomStatus}
    assert len({s.value for s in IntercomStatus}) == len(IntercomStatus)  # one row per word
    for status in IntercomStatus:
        assert outcome_for_status(status.value) is status.outcome
        assert status.outcome in OUTCOMES


@pytest.mark.parametrize("word", ["archived", "", "Completed", "COMPLETE", " pending", "not_found", "running"])
def test_words_intercom_does_not_send_map_to_nothing(word: str) -> None:
    # "not_found" is what a 404 is recorded as, never a status word in a 200 answer.
    assert outcome_for_status(word) is None


def test_status_sets_the_poller_and_notifier_use() -> None:
    # A status added to the table joins these sets by its outcome; the documented ones are always in them.
    assert {"pending", "in_progress"} <= RUNNING_STATUSES
    assert {"completed", "complete"} <= FINISHED_OK_STATUSES
    assert not RUNNING_STATUSES & FINISHED_OK_STATUSES
    assert {s.value for s in IntercomStatus if s.is_running} == RUNNING_STATUSES
    assert {s.value for s in IntercomStatus if s.is_finished_ok} == FINISHED_OK_STATUSES


def test_http_answers() -> None:
    assert {code: (a.status, a.outcome) for code, a in HTTP_ANSWERS.items()} == {
        404: ("not_found", Outcome.NOT_FOUND),
        504: ("failed", Outcome.FAILED),
    }
    # The 504's body is a job model: its status word must itself mean the same outcome.
    assert outcome_for_status(HTTP_ANSWERS[504].status) is HTTP_ANSWERS[504].outcome


def test_every_outcome_has_one_row_and_is_reachable() -> None:
    assert set(OUTCOMES) == set(Outcome)
    assert all(row.outcome is outcome for outcome, row in OUTCOMES.items())
    from_answers = {s.outcome for s in IntercomStatus} | {a.outcome for a in HTTP_ANSWERS.values()}
    assert set(Outcome) - from_answers == {Outcome.EXPIRED}  # ours: decided by the copy step, not an answer


def test_rows_are_consistent() -> None:
    for row in OUTCOMES.values():
        # Only a running job is still watched, and nothing is published for it.
        assert (row.state is JobState.WATCHING) == (row.notice is None) == (row.outcome is Outcome.RUNNING)
        if row.notice is not None:
            assert Event.for_state(row.state) is row.notice.event
        # A final outcome has its default reason; the others get theirs from the copy step, or none.
        assert row.final == (row.reason is not None)
    states = [row.state for row in OUTCOMES.values()]
    assert sorted(states) == sorted(JobState), "every state is the state of exactly one outcome"


def test_every_event_has_one_notice() -> None:
    events = [r.notice.event for r in OUTCOMES.values() if r.notice] + [n.event for n in WARNINGS]
    assert sorted(events) == sorted(Event)
    assert set(NOTICES) == set(Event)
    assert [n.event for n in WARNINGS] == Event.warnings() == [Event.EXPIRING, Event.STUCK]
    assert set(Event.outcomes()) == {Event.for_state(s) for s in JobState if s.is_final}


def test_final_state_is_the_pollers_table() -> None:
    # Exactly poll.py's _FINAL_FOR, which moves to this table.
    assert {o: final_state(o) for o in (Outcome.FAILED, Outcome.NO_DATA, Outcome.CANCELED, Outcome.NOT_FOUND)} == {
        Outcome.FAILED: (
            JobState.FAILED,
            "Intercom reports the export job failed (jobs that run longer than 12 hours fail); request a new export",
        ),
        Outcome.NO_DATA: (JobState.NO_DATA, "Intercom found no messages sent in the requested date range"),
        Outcome.CANCELED: (JobState.CANCELED, "the export job was canceled at Intercom"),
        Outcome.NOT_FOUND: (JobState.NOT_FOUND, "Intercom has no export job with this identifier"),
    }
    assert final_state(Outcome.EXPIRED)[0] is JobState.EXPIRED


@pytest.mark.parametrize("outcome", [Outcome.RUNNING, Outcome.COMPLETED])
def test_final_state_refuses_what_is_not_final(outcome: Outcome) -> None:
    with pytest.raises(ValueError, match="does not end the job"):
        final_state(outcome)


@pytest.mark.parametrize("notice", list(NOTICES.values()), ids=lambda n: n.event.value)
def test_subject_fits_sns(notice: Notice) -> None:
    template = "exportwatch: " + notice.subject
    assert template.count("{id}") == 1 and template.isascii() and template.isprintable()
    # Room for a readable id: Notification.subject shortens longer ids in the middle to fit 100 characters.
    assert len(template.format(id="")) <= SUBJECT_MAX - 24


@pytest.mark.parametrize("notice", list(NOTICES.values()), ids=lambda n: n.event.value)
def test_style(notice: Notice) -> None:
    style = notice.style
    assert re.fullmatch(r"#[0-9A-F]{6}", style.color)
    assert re.fullmatch(r":[a-z_]+:", style.icon)
    assert len(f"{style.icon} {style.title}: {'x' * model.JOB_ID_MAX_LEN}") <= SLACK_HEADER_MAX
    assert notice.label == notice.label.upper() and notice.label.isascii()


def _facts(*, copy_failed: bool, known_range: bool) -> Facts:
    return Facts(
        job="`abc`",
        id="abc",
        size=" (1.5 KiB)",
        left="in 5 hours",
        age=" after 13 hours",
        unknown="" if known_range else " Unknown range.",
        start="exportwatch start --since 2026-11-01 --until 2026-11-07",
        copy_failed=copy_failed,
    )


@pytest.mark.parametrize("notice", list(NOTICES.values()), ids=lambda n: n.event.value)
@pytest.mark.parametrize("copy_failed", [False, True])
@pytest.mark.parametrize("known_range", [False, True])
def test_wording_formats(notice: Notice, copy_failed: bool, known_range: bool) -> None:
    facts = _facts(copy_failed=copy_failed, known_range=known_range)
    summary = notice.summary(facts)
    assert "{" not in summary and "`abc`" in summary
    step = notice.next_step(facts)
    if notice.style.act:  # somebody has to do something: the message says what
        assert step is not None
    if step is not None:
        text, command = step
        assert "{" not in text and (command is None or "{" not in command)


def test_facts_are_all_used() -> None:
    # A Facts field no template mentions is dead; a template naming a missing one fails test_wording_formats.
    texts = [
        t
        for n in NOTICES.values()
        for w in (n.wording, n.copy_failed)
        if w is not None
        for t in (w.summary, w.step.text if w.step else "", (w.step.command or "") if w.step else "")
    ]
    named = {m for t in texts for m in re.findall(r"\{(\w+)\}", t)}
    assert named == {f.name for f in fields(Facts)} - {"copy_failed"}


def test_copy_failed_wording_only_for_failed() -> None:
    assert [n.event for n in NOTICES.values() if n.copy_failed is not None] == [Event.FAILED]


def test_old_import_paths_still_work() -> None:
    assert intercom.Outcome is Outcome
    assert model.JobState is JobState and model.Event is Event and model.IntercomStatus is IntercomStatus
