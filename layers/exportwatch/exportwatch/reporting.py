"""The reporting export family (Intercom's reporting datasets: conversations, tickets...): its rules and its catalogue.

A job is `content` (the content data export) or `reporting` with a dataset id. The two families differ in their
paths, their query parameters (a reporting status call needs the workspace's `app_id` and `client_id`, its download
the `app_id`) and their per-workspace limit (one active content export; five pending reporting exports). Every id
that reaches a URL, a table key or an S3 key follows a rule here, checked again when read back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

DATASET_RULE: Final = "[a-z0-9][a-z0-9_]{0,63}"
DATASET_RE: Final = re.compile(DATASET_RULE)
ATTRIBUTE_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
REPORTING_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a workspace's app_id and client_id
MAX_ATTRIBUTES: Final = 500
MAX_PENDING: Final = 5  # Intercom: at most five pending reporting exports per workspace (the sixth answers 429)


class Kind(StrEnum):
    """A job's export family (the `kind` of a notification and of a coverage window: a contract)."""

    CONTENT = "content"
    REPORTING = "reporting"


class InvalidReporting(ValueError):
    """A dataset id, an attribute or a reporting id breaks its rule, or names what the workspace does not have."""


def validate_dataset(value: object) -> str:
    if not isinstance(value, str) or not DATASET_RE.fullmatch(value):
        shown = repr(value)[:80] if isinstance(value, str) else type(value).__name__
        raise InvalidReporting(f"dataset id {shown} must be lowercase letters, digits and '_' (e.g. conversation)")
    return value


def validate_attributes(values: object) -> tuple[str, ...]:
    if not isinstance(values, list | tuple) or not values:
        raise InvalidReporting("--attributes needs at least one attribute id")
    if len(values) > MAX_ATTRIBUTES:
        raise InvalidReporting(f"--attributes takes at most {MAX_ATTRIBUTES} attribute ids")
    for value in values:
        if not isinstance(value, str) or not ATTRIBUTE_RE.fullmatch(value):
            shown = repr(value)[:80] if isinstance(value, str) else type(value).__name__
            raise InvalidReporting(f"attribute id {shown} is not an attribute id (letters, digits, '_', '.', '-')")
    return tuple(values)


def validate_reporting_id(value: object, flag: str) -> str:
    if not isinstance(value, str) or not REPORTING_ID_RE.fullmatch(value):
        raise InvalidReporting(f"{flag} must be 1 to 64 letters, digits, '_' or '-'")
    return value


def ledger_kind(kind: str, dataset: str | None) -> str:
    """How a window's family is written in the ledger's keys: "content", or "reporting:<dataset>"."""
    return Kind.CONTENT.value if kind == Kind.CONTENT else f"{Kind.REPORTING.value}:{validate_dataset(dataset)}"


def family(kind: str) -> str:
    """The queue a window waits in: one per workspace and family (the families' limits are separate)."""
    return Kind.REPORTING.value if kind == Kind.REPORTING else Kind.CONTENT.value


@dataclass(frozen=True)
class Attribute:
    id: str
    qualified_id: str
    name: str


@dataclass(frozen=True)
class Dataset:
    """One dataset of `GET /export/reporting_data/get_datasets`."""

    id: str
    name: str
    description: str
    default_time_attribute_id: str | None
    attributes: tuple[Attribute, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "default_time_attribute_id": self.default_time_attribute_id,
            "attributes": [{"id": a.id, "qualified_id": a.qualified_id, "name": a.name} for a in self.attributes],
        }

    def resolve(self, wanted: tuple[str, ...] | None) -> tuple[str, ...]:
        """The attribute ids to enqueue: every attribute by qualified id (None), or exactly `wanted`, each one
        the dataset's (by qualified id or plain id); InvalidReporting naming the first that is not."""
        if wanted is None:
            return tuple(a.qualified_id for a in self.attributes)
        known = {a.qualified_id for a in self.attributes} | {a.id for a in self.attributes}
        for attribute in wanted:
            if attribute not in known:
                raise InvalidReporting(f"dataset {self.id} has no attribute {attribute!r} (see exportwatch datasets)")
        return wanted


def _text(value: object, limit: int = 500) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _attribute_ids_ok(raw: dict[str, object]) -> bool:
    return all(isinstance(raw.get(k), str) and ATTRIBUTE_RE.fullmatch(str(raw[k])) for k in ("id", "qualified_id"))


def parse_datasets(payload: object) -> list[Dataset]:
    """The catalogue from Intercom's answer; a dataset or attribute whose ids break the rules is left out."""
    data = payload.get("data") if isinstance(payload, dict) else None
    found: list[Dataset] = []
    for raw in data if isinstance(data, list) else []:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not DATASET_RE.fullmatch(raw["id"]):
            continue
        listed = raw.get("attributes")
        attributes = [
            Attribute(a["id"], a["qualified_id"], _text(a.get("name"), 200))
            for a in (listed if isinstance(listed, list) else [])
            if isinstance(a, dict) and _attribute_ids_ok(a)
        ]
        default = raw.get("default_time_attribute_id")
        found.append(
            Dataset(
                id=raw["id"],
                name=_text(raw.get("name"), 200),
                description=_text(raw.get("description")),
                default_time_attribute_id=default if isinstance(default, str) else None,
                attributes=tuple(attributes),
            )
        )
    return found


def find_dataset(catalogue: list[Dataset], dataset_id: str) -> Dataset:
    for dataset in catalogue:
        if dataset.id == dataset_id:
            return dataset
    known = ", ".join(d.id for d in catalogue[:20]) or "none"
    raise InvalidReporting(f"Intercom has no dataset {dataset_id!r} in this workspace (known: {known})")
