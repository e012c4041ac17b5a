"""The generated objects of tests/support/spec_strategies.py through the pydantic models, the
unit twin of tests/e2e/test_generated_specs.py: a model either parses an object or rejects it
with a ValidationError (never another exception, which would be a traceback in the
operator); what it parses the CRD's structural schema allows; and it rejects every object
that breaks a schema constraint on purpose.

The other direction (the schema allows it, so the model parses it) holds only where no CEL
rule fails, and the rules run in the API server alone: the e2e test checks it there.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft7Validator, FormatChecker
from pydantic import ValidationError

from runbook_operator.api.registry import KINDS
from tests.support.spec_strategies import KIND_NAMES, Example, examples, object_schema

MODELS = {model.info.kind: model for model in KINDS}


@cache
def validator(kind: str) -> Draft7Validator:
    """The CRD's schema as JSON Schema: the x-kubernetes-* keywords are not checked, and
    date-time is checked by rfc3339-validator (a test extra), as the API server does."""
    return Draft7Validator(object_schema(kind), format_checker=FormatChecker())


def structural_errors(body: dict[str, Any]) -> list[str]:
    """What the CRD's structural schema says about `body` (CEL rules and list types aside)."""
    errors = validator(body["kind"]).iter_errors(body)
    return [f"{error.json_path}: {error.message}" for error in errors]


def test_structural_errors_name_a_broken_constraint() -> None:
    body = {"kind": "Incident", "metadata": {}, "spec": {
        "title": "t", "severity": "P9",
        "acknowledgement": {"by": "alice", "at": "2026-03-01T12:01:00Z"},
        "notes": [{"by": "alice", "at": "yesterday", "text": "t"}]}}
    assert structural_errors(body) == [
        "$.spec.severity: 'P9' is not one of ['P0', 'P1', 'P2', 'P3']",
        "$.spec.notes[0].at: 'yesterday' is not a 'date-time'"]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_the_models_parse_or_reject_generated_objects_as_the_schema_does(kind: str) -> None:
    @settings(max_examples=60, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(examples(kind))
    def check(example: Example) -> None:
        errors = structural_errors(example.body)
        if example.broken is not None:
            assert errors, f"the schema allows an object that breaks {example.broken}"
        try:
            MODELS[kind].model_validate(example.body)
        except ValidationError:
            return
        assert example.broken is None, f"the model parses an object that breaks {example.broken}"
        assert not errors, errors

    check()
