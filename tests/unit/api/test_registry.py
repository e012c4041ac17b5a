"""Every kind of the registry keeps what the operator does for a resource in the resource's
namespace: a reference in a spec (a Secret, a channel, a policy, a Deployment, a claim, a
ServiceAccount) is a bare name, so no spec field may name a namespace."""

from __future__ import annotations

from typing import Any

from runbook_operator.api import crdgen
from runbook_operator.api.registry import KINDS


def namespace_fields(schema: dict[str, Any], path: str) -> list[str]:
    if schema.get("type") == "array":
        return namespace_fields(schema["items"], f"{path}[]")
    found = []
    for key, child in (schema.get("properties") or {}).items():
        if "namespace" in key.lower():
            found.append(f"{path}.{key}")
        found += namespace_fields(child, f"{path}.{key}")
    return found


def test_no_spec_field_names_a_namespace() -> None:
    found = {}
    for model in KINDS:
        root = crdgen.crd(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        found[model.info.kind] = namespace_fields(root["properties"]["spec"], "spec")
    assert found == {model.info.kind: [] for model in KINDS}


def test_the_walk_would_see_a_namespace_field() -> None:
    schema = {"type": "object", "properties": {"refs": {"type": "array", "items": {
        "type": "object", "properties": {"secretNamespace": {"type": "string"}}}}}}
    assert namespace_fields(schema, "spec") == ["spec.refs[].secretNamespace"]
