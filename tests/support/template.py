"""template.yaml read as CloudFormation: the in-process SAM transform and the walks over its resources.

Shared by the infra tier (tests/infra/test_template.py, test_template_slack.py) and its `cfn` fixture.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from samtranslator.translator.transform import transform


class _NoIamPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader without its IAM client: the template names no
    managed policy by name (SAM only loads this map to resolve one), so the map can be empty."""

    def load(self) -> dict[str, str]:
        return {}


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    """SAM -> CloudFormation in-process, with s3:// placeholders for the local CodeUri/ContentUri."""
    sam = copy.deepcopy(template)
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://exportwatch-artifacts/{logical_id}.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = f"s3://exportwatch-artifacts/{logical_id}.zip"
    cfn: dict[str, Any] = transform(sam, {}, _NoIamPolicyLoader())
    return cfn


def resources_of_type(cfn: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == type_}


def referenced_ids(value: Any, local: frozenset[str] = frozenset()) -> set[str]:
    """Logical ids (and parameters) an intrinsic expression refers to; pseudo parameters are left out."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= referenced_ids(item, local)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    base = name.split(".")[0]
                    if base not in variables:
                        found.add(base)
                found |= referenced_ids(list(variables.values()), local)
            else:
                found |= referenced_ids(arg, local)
    return {name for name in found if not name.startswith("AWS::")}


def policy_statements(cfn: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for role_id, role in resources_of_type(cfn, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements = policy["PolicyDocument"]["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                out.append((role_id, statement))
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
