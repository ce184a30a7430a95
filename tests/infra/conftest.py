"""Fixtures of the infra tier: template.yaml as written and after the SAM transform (in-process, no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from exportwatch_local.localstack import load_template
from support.paths import TEMPLATE
from support.stack_fixtures import stack, token  # test_template_slack's filter-policy test

__all__ = ["cfn", "sam", "stack", "token"]


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    """template.yaml as written."""
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after the SAM transform (support.template.sam_transform)."""
    from support.template import sam_transform  # samtranslator: imported by the template tests only

    return sam_transform(sam)
