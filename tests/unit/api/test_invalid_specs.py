"""The table of invalid specs (tests/support/invalid_specs.py) against the operator's side: the
pydantic models reject every case where the API server does, and the table has a case for
every CEL rule and schema constraint in the generated CRDs, and none for one that is gone.
tests/e2e/test_invalid_specs.py applies the same table to a real API server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from runbook_operator.api import crdgen
from runbook_operator.api.registry import KINDS

from tests.support.invalid_specs import INVALID_SPECS, VALID_OBJECTS, InvalidSpec, schema_node

MODELS = {model.info.kind: model for model in KINDS}
#: Keywords that constrain a value; the walk below fails on any keyword it does not know.
CONSTRAINTS = {
    "enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
    "minProperties", "maxProperties", "x-kubernetes-list-type", "format",
}
DESCRIPTIVE = {
    "type", "description", "default", "properties", "items", "additionalProperties",
    "required", "x-kubernetes-validations", "x-kubernetes-list-map-keys",
    "x-kubernetes-int-or-string",
}
REASON_PREFIXES = {
    "Required value: ": "FieldValueRequired",
    "Forbidden: ": "FieldValueForbidden",
    "Duplicate value: ": "FieldValueDuplicate",
}

Constraint = tuple[Any, ...]


def _walk(kind: str, node: dict[str, Any], path: str) -> Iterator[Constraint]:
    """Every constraint at and below `node`: (kind, schema path, keyword), with the
    required property's path for `required`, and message, fieldPath and reason for a rule."""
    unknown = set(node) - CONSTRAINTS - DESCRIPTIVE
    assert not unknown, f"{kind} {path}: add a case kind for {sorted(unknown)}"
    for keyword in sorted(CONSTRAINTS & set(node)):
        yield kind, path, keyword
    for name in node.get("required", []):
        yield kind, f"{path}.{name}".lstrip("."), "required"
    for rule in node.get("x-kubernetes-validations", []):
        yield (kind, path, "rule", rule["message"], rule.get("fieldPath", ""),
               rule.get("reason", "FieldValueInvalid"))
    for name, child in (node.get("properties") or {}).items():
        if path or name not in ("status", "apiVersion", "kind"):
            yield from _walk(kind, child, f"{path}.{name}".lstrip("."))
    if "items" in node:
        yield from _walk(kind, node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(kind, node["additionalProperties"], f"{path}.*")


def crd_constraints() -> set[Constraint]:
    found: set[Constraint] = set()
    for model in KINDS:
        schema = crdgen.crd(model)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        found.update(_walk(model.info.kind, schema, ""))
    return found


def rule_detail(message: str) -> tuple[str, str]:
    """(reason, the rule's own message) of a failed rule as the API server reports it."""
    for prefix, reason in REASON_PREFIXES.items():
        if message.startswith(prefix):
            return reason, message.removeprefix(prefix)
    detail = re.sub(r'^Invalid value: "[a-z]+": ', "", message)
    return "FieldValueInvalid", detail.rsplit(" evaluating rule: ", 1)[-1]


def constraint_of(case: InvalidSpec) -> Constraint:
    if case.check != "rule":
        return case.kind, case.schema, case.check
    reason, detail = rule_detail(case.message)
    relative = case.field.removeprefix(case.schema.replace("[]", "[0]"))
    field_path = f".{relative}" if relative and not relative.startswith(".") else relative
    return case.kind, case.schema, "rule", detail, field_path, reason


def test_every_rule_and_constraint_has_exactly_its_cases() -> None:
    table = {constraint_of(case) for case in INVALID_SPECS}
    crds = crd_constraints()
    assert sorted(crds - table, key=str) == [], "constraints without a case in the table"
    assert sorted(table - crds, key=str) == [], "cases for constraints the CRDs do not have"


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in INVALID_SPECS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("body", [
    pytest.param(body, id=f"{body['kind']}-{number}") for number, body in enumerate(VALID_OBJECTS)])
def test_the_base_objects_are_valid(body: dict[str, Any]) -> None:
    MODELS[body["kind"]].model_validate(body)


def field_steps(field: str) -> tuple[str | int, ...]:
    return tuple(int(s[1:-1]) if s.startswith("[") else s
                 for s in re.findall(r"\[\d+\]|[^.\[\]]+", field))


CREATED = [case for case in INVALID_SPECS if case.before is None]
UPDATED = [case for case in INVALID_SPECS if case.before is not None]


@pytest.mark.parametrize("case", CREATED, ids=lambda case: case.id)
def test_the_models_reject_what_the_api_server_rejects(case: InvalidSpec) -> None:
    with pytest.raises(ValidationError) as raised:
        MODELS[case.kind].model_validate(case.body)
    reported = [field_steps(field) for field, _ in case.causes()]
    errors = raised.value.errors()
    for error in errors:
        loc = tuple(error["loc"])
        assert any(steps[: len(loc)] == loc for steps in reported), (
            f"pydantic rejects {loc}, the API server {case.field}")
    if case.check == "rule":
        _, detail = rule_detail(case.message)
        assert any(detail in error["msg"] for error in errors), (detail, errors)


@pytest.mark.parametrize("case", UPDATED, ids=lambda case: case.id)
def test_only_the_api_server_checks_transitions(case: InvalidSpec) -> None:
    """A transition rule compares an update with the stored object, which the operator never
    sees: both objects are valid on their own, and the rule reads oldSelf."""
    model = MODELS[case.kind]
    model.model_validate(case.before)
    model.model_validate(case.body)
    _, detail = rule_detail(case.message)
    rules = schema_node(case.kind, case.schema)["x-kubernetes-validations"]
    assert any(rule["message"] == detail and "oldSelf" in rule["rule"] for rule in rules)
