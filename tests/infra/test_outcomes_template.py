"""template.yaml's event lists are the table's events (outcomes.py): a new outcome or warning fails here until the
stack parameters EmailEvents and SlackEvents allow it (and send it by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exportwatch.outcomes import NOTICES, Event
from exportwatch_local.localstack import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.mark.parametrize("parameter", ["EmailEvents", "SlackEvents"])
def test_event_parameters_allow_every_event_of_the_table(parameter: str) -> None:
    spec = load_template(TEMPLATE)["Parameters"][parameter]
    table = [event.value for event in Event]
    assert set(NOTICES) == set(Event)
    assert spec["AllowedValues"] == table  # in the table's order, each once
    assert [v.strip() for v in spec["Default"].split(",")] == table  # by default every event is sent
