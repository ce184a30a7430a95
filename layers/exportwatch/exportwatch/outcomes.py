"""The one table of Intercom's answers, the outcomes they mean, and what each outcome is for us and for people.

Three parts, read top to bottom:

1. The Intercom answers: every status word (`IntercomStatus`, one row each) and the HTTP answers that are
   outcomes by themselves (`HTTP_ANSWERS`: a 404, a 504 with a JSON `failed` body), each mapped to one `Outcome`.
2. The outcomes (`OUTCOMES`, one `OutcomeRow` each): the job's state, whether the answer alone ends the job and
   with which default reason, and the `Notice` people get: its event name, SNS subject, Slack style, one-line
   summary and next step. `WARNINGS` holds the two early warnings' notices (events, not outcomes).
3. Lookups derived from both, for the client, the poller, the notifier, the renderers, the emulator, the samples
   and the template's AllowedValues (tests/infra/test_outcomes_template.py).

Adding an Intercom status that means an existing outcome is one `IntercomStatus` row. docs/design.md, "Adding an
Intercom status or an outcome", says what else a new outcome takes.

Stdlib only and importing nothing from exportwatch: model.py re-exports the enums, and the emulator
(exportwatch_local) reads its status lists from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Self

__all__ = [
    "FINISHED_OK_STATUSES",
    "HTTP_ANSWERS",
    "NOTICES",
    "OUTCOMES",
    "RUNNING_STATUSES",
    "WARNINGS",
    "Event",
    "Facts",
    "HttpAnswer",
    "IntercomStatus",
    "JobState",
    "Notice",
    "Outcome",
    "OutcomeRow",
    "Step",
    "Style",
    "Wording",
    "final_state",
    "outcome_for_status",
]


class Outcome(StrEnum):
    """What Intercom's answer (or, for EXPIRED, our copy attempt) tells us about a job."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    NO_DATA = "no_data"
    CANCELED = "canceled"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"  # ours: Intercom finished, but its copy was gone before we copied it


class JobState(StrEnum):
    """Our state for a tracked job. Every state but WATCHING is final; a final job is settled once notified.

    Each final state is the state of one outcome in OUTCOMES (tests/unit/test_outcomes.py checks it)."""

    WATCHING = "watching"  # Intercom has not finished, or it has but the copy has not succeeded yet
    COMPLETED = "completed"  # the export is in S3
    FAILED = "failed"
    NOT_FOUND = "not_found"
    NO_DATA = "no_data"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self is not JobState.WATCHING


class Event(StrEnum):
    """Notification event names: a contract for subscribers and their filter policies.

    Each is the event of one outcome in OUTCOMES or one early warning in WARNINGS. A warning is sent at most
    once per job while it is still watched; its outcome follows in its own message.
    """

    COMPLETED = "export.completed"
    FAILED = "export.failed"
    NOT_FOUND = "export.not_found"
    NO_DATA = "export.no_data"
    CANCELED = "export.canceled"
    EXPIRED = "export.expired"
    EXPIRING = "export.expiring"  # completed at Intercom, not copied yet, Intercom's copy goes away soon
    STUCK = "export.stuck"  # still pending/in_progress after STUCK_AFTER_HOURS

    @classmethod
    def for_state(cls, state: JobState) -> Event:
        event = _EVENT_FOR_STATE.get(state)
        if event is None:
            raise ValueError(f"no event for non-final state {state}")
        return event

    @property
    def is_warning(self) -> bool:
        return self in _WARNING_EVENTS

    @classmethod
    def outcomes(cls) -> list[Event]:
        return [e for e in cls if not e.is_warning]

    @classmethod
    def warnings(cls) -> list[Event]:
        return [e for e in cls if e.is_warning]


# ------------------------------------------------------------------------------------- 1. Intercom's answers


class IntercomStatus(StrEnum):
    """Intercom's status words, each with the outcome it means: one row per word (the spec's enum, plus the
    spellings the live API has been seen to send). A word not here is a malformed answer, retried."""

    _value_: str
    outcome: Outcome

    def __new__(cls, word: str, outcome: Outcome) -> Self:
        member = str.__new__(cls, word)
        member._value_ = word
        member.outcome = outcome
        return member

    PENDING = "pending", Outcome.RUNNING
    IN_PROGRESS = "in_progress", Outcome.RUNNING
    COMPLETED = "completed", Outcome.COMPLETED
    COMPLETE = "complete", Outcome.COMPLETED  # the status and download pages' spelling
    FAILED = "failed", Outcome.FAILED
    NO_DATA = "no_data", Outcome.NO_DATA
    CANCELED = "canceled", Outcome.CANCELED

    @property
    def is_finished_ok(self) -> bool:
        return self.outcome is Outcome.COMPLETED

    @property
    def is_running(self) -> bool:
        return self.outcome is Outcome.RUNNING


@dataclass(frozen=True)
class HttpAnswer:
    """A status-call answer other than 200 that is an outcome by itself (any other is an error, retried)."""

    code: int
    body: str  # which bodies make it this answer (any other body with this code is a transient error)
    status: str  # the status word recorded for the job (its intercom_status)
    outcome: Outcome


HTTP_ANSWERS: Final[Mapping[int, HttpAnswer]] = {
    a.code: a
    for a in (
        HttpAnswer(404, "any", "not_found", Outcome.NOT_FOUND),
        # Documented for a job over 12 hours; Intercom's edge also sends HTML 504 pages, which are transient.
        HttpAnswer(504, "a JSON job model whose status is failed", IntercomStatus.FAILED.value, Outcome.FAILED),
    )
}


# ------------------------------------------------------------------------------------- 2. the outcomes


@dataclass(frozen=True)
class Style:
    title: str  # "Export completed": the Slack header
    icon: str  # Slack emoji shortcode
    color: str  # Slack attachment bar
    act: bool  # does somebody need to do something?


@dataclass(frozen=True)
class Facts:
    """What the wording may say about one notification, formatted by render.py (`{name}` in the templates)."""

    job: str  # the job id as shown (in Slack, in backticks)
    id: str  # the job id itself, for commands
    size: str  # " (46.5 MiB)" or ""
    left: str  # "in 5 hours" or "soon": until Intercom deletes its copy
    age: str  # " after 12 hours" or "": how long the job has been pending
    unknown: str  # "" or a sentence saying the date range is unknown (the job was tracked by id)
    start: str  # `exportwatch start` for the job's range
    copy_failed: bool  # failed on our side: Intercom had finished the export


@dataclass(frozen=True)
class Step:
    text: str  # what to do, lower-case start (render capitalises it), `{name}` from Facts
    command: str | None = None  # the command to run, `{name}` from Facts


@dataclass(frozen=True)
class Wording:
    summary: str  # after the label: what happened and whether to act, `{name}` from Facts
    step: Step | None  # None: nothing to do, no "Next step"


@dataclass(frozen=True)
class Notice:
    """What people get for one event: the SNS subject, the email's first word, Slack's look, the words."""

    event: Event
    subject: str  # after "exportwatch: "; `{id}` is the job id (SNS: ASCII, at most 100 characters in all)
    label: str  # "NOT FOUND": the first words of the email and of Slack's notification text
    style: Style
    wording: Wording
    copy_failed: Wording | None = None  # instead of `wording` when Facts.copy_failed
    intercom_copy: str = "available until"  # how the email and Slack introduce download_expires_at

    def words(self, facts: Facts) -> Wording:
        return self.copy_failed if facts.copy_failed and self.copy_failed else self.wording

    def summary(self, facts: Facts) -> str:
        return self.words(facts).summary.format_map(vars(facts))

    def next_step(self, facts: Facts) -> tuple[str, str | None] | None:
        step = self.words(facts).step
        if step is None:
            return None
        command = step.command.format_map(vars(facts)) if step.command else None
        return step.text.format_map(vars(facts)), command


@dataclass(frozen=True)
class OutcomeRow:
    outcome: Outcome
    state: JobState  # the job's state once this outcome is decided
    final: bool  # decided by itself (no copy follows): the job ends in `state` with `reason` by default
    reason: str | None  # the default reason sentence of a final outcome
    notice: Notice | None  # None: nothing is published (the job is still watched)


_ACT: Final = "#E01E5A"
_WAIT: Final = "#ECB22E"
_GREY: Final = "#8D8D8D"
_REGION: Final = "the stack parameter IntercomApiUrl is your workspace's region (US, EU or AU)"

OUTCOMES: Final[Mapping[Outcome, OutcomeRow]] = {
    row.outcome: row
    for row in (
        OutcomeRow(Outcome.RUNNING, JobState.WATCHING, final=False, reason=None, notice=None),
        OutcomeRow(
            Outcome.COMPLETED,
            JobState.COMPLETED,
            final=False,  # the copy to S3 decides: completed, or expired, or failed (a refused download_url)
            reason=None,
            notice=Notice(
                Event.COMPLETED,
                "export {id} completed and copied to S3",
                "COMPLETED",
                Style("Export completed", ":white_check_mark:", "#2EB67D", act=False),
                Wording("export {job} is in S3{size}. Nothing to do.", None),
                intercom_copy="deleted",
            ),
        ),
        OutcomeRow(
            Outcome.FAILED,
            JobState.FAILED,
            final=True,
            reason=(
                "Intercom reports the export job failed (jobs that run longer than 12 hours fail); request a new export"
            ),
            notice=Notice(
                Event.FAILED,
                "export {id} failed",
                "FAILED",
                Style("Export failed", ":x:", _ACT, act=True),
                Wording(
                    "export {job} failed at Intercom. Request a new export.",
                    Step(
                        "request the export again; if it fails again, split the range into shorter ones.{unknown}",
                        "{start}",
                    ),
                ),
                copy_failed=Wording(
                    "export {job} finished at Intercom but was not copied. Action needed.",
                    Step(f"check that {_REGION}, then request the export again.{{unknown}}", "{start}"),
                ),
            ),
        ),
        OutcomeRow(
            Outcome.NO_DATA,
            JobState.NO_DATA,
            final=True,
            reason="Intercom found no messages sent in the requested date range",
            notice=Notice(
                Event.NO_DATA,
                "export {id} finished with no data",
                "NO DATA",
                Style("Export had no data", ":information_source:", _GREY, act=False),
                Wording(
                    "export {job} found no messages in its date range. Nothing to do.",
                    Step("nothing to do. If you expected data, check the date range."),
                ),
            ),
        ),
        OutcomeRow(
            Outcome.CANCELED,
            JobState.CANCELED,
            final=True,
            reason="the export job was canceled at Intercom",
            notice=Notice(
                Event.CANCELED,
                "export {id} was canceled",
                "CANCELED",
                Style("Export canceled", ":no_entry_sign:", _WAIT, act=False),
                Wording(
                    "export {job} was canceled at Intercom. Request it again if still needed.",
                    Step("if the export is still needed, request it again.{unknown}", "{start}"),
                ),
            ),
        ),
        OutcomeRow(
            Outcome.NOT_FOUND,
            JobState.NOT_FOUND,
            final=True,
            reason="Intercom has no export job with this identifier",
            notice=Notice(
                Event.NOT_FOUND,
                "export {id} not found at Intercom",
                "NOT FOUND",
                Style("Export not found", ":mag:", _ACT, act=True),
                Wording(
                    "Intercom has no export {job}. Check the job id.",
                    Step(
                        f"check the job id, and that {_REGION}. To export the data anyway, request a new "
                        "export.{unknown}",
                        "{start}",
                    ),
                ),
            ),
        ),
        OutcomeRow(
            Outcome.EXPIRED,
            JobState.EXPIRED,
            final=True,  # decided by the copy step; the poller's reason says when or how the file went away
            reason="Intercom deleted the export before it was copied",
            notice=Notice(
                Event.EXPIRED,
                "export {id} expired before it was copied",
                "EXPIRED",
                Style("Export expired", ":hourglass:", _ACT, act=True),
                Wording(
                    "Intercom deleted export {job} before it was copied. Request a new export.",
                    Step(
                        "request a new export. Intercom keeps a finished export for two days; if this happens "
                        "again, check that the poller runs (its schedule and its errors in CloudWatch Logs)."
                        "{unknown}",
                        "{start}",
                    ),
                ),
                intercom_copy="expired",
            ),
        ),
    )
}

WARNINGS: Final[tuple[Notice, ...]] = (
    Notice(
        Event.EXPIRING,
        "export {id} not copied yet and expiring soon",
        "EXPIRING",
        Style("Export expiring, not copied yet", ":warning:", _WAIT, act=True),
        Wording(
            "export {job} is not in S3 yet and Intercom deletes it {left}. Action needed.",
            Step(
                "fix the copy before then. exportwatch retries it every cycle until Intercom deletes the file, and "
                "sends the job's outcome in its own message. Why it fails: the reason above, `exportwatch list` and "
                "the poller's errors in CloudWatch Logs. To retry now:",
                "exportwatch poll --all",
            ),
        ),
    ),
    Notice(
        Event.STUCK,
        "export {id} still not finished at Intercom",
        "STUCK",
        Style("Export still running", ":hourglass_flowing_sand:", _WAIT, act=False),
        Wording(
            "export {job} is still not finished at Intercom{age}. Nothing to do yet.",
            Step(
                "none yet. exportwatch keeps watching the job and sends its outcome in its own message. Intercom "
                "fails jobs that run longer than 12 hours; if this one fails, request shorter ranges. To stop "
                "waiting for it, cancel it:",
                "exportwatch cancel {id}",
            ),
        ),
    ),
)


# ------------------------------------------------------------------------------------- 3. derived lookups

_BY_WORD: Final[Mapping[str, IntercomStatus]] = {s.value: s for s in IntercomStatus}

RUNNING_STATUSES: Final[frozenset[str]] = frozenset(s.value for s in IntercomStatus if s.is_running)
FINISHED_OK_STATUSES: Final[frozenset[str]] = frozenset(s.value for s in IntercomStatus if s.is_finished_ok)

NOTICES: Final[Mapping[Event, Notice]] = {
    n.event: n for n in (*(r.notice for r in OUTCOMES.values() if r.notice is not None), *WARNINGS)
}
_EVENT_FOR_STATE: Final[Mapping[JobState, Event]] = {
    r.state: r.notice.event for r in OUTCOMES.values() if r.notice is not None
}
_WARNING_EVENTS: Final[frozenset[Event]] = frozenset(n.event for n in WARNINGS)


def outcome_for_status(status: str) -> Outcome | None:
    """The outcome an Intercom status word means, or None for a word Intercom is not known to send."""
    known = _BY_WORD.get(status)
    return known.outcome if known is not None else None


def final_state(outcome: Outcome) -> tuple[JobState, str]:
    """The final state and default reason of an outcome that ends the job by itself (ValueError otherwise:
    RUNNING keeps watching, COMPLETED goes on to the copy)."""
    row = OUTCOMES[outcome]
    if not row.final or row.reason is None:
        raise ValueError(f"outcome {outcome} does not end the job by itself")
    return row.state, row.reason
