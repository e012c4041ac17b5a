"""Every CEL rule and schema constraint of every kind, tried against the real API server: each
case of tests/support/invalid_specs.py is rejected with exactly the field paths and messages
the table gives. Server-side dry runs, so nothing is stored. The same table runs through the
pydantic models in tests/unit/api/test_invalid_specs.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.api.registry import KINDS
from tests.support.invalid_specs import (
    INVALID_SPECS,
    RULES_NOT_CHECKED,
    SIGNER,
    VALID_OBJECTS,
    InvalidSpec,
)
from tests.support.kube import username

PLURALS = {model.info.kind: model.info.plural for model in KINDS}


@pytest.fixture(scope="module")
def caller(api: client.ApiClient) -> str:
    return username(api)


def signed(body: dict[str, Any], by: str) -> dict[str, Any]:
    """`body` with the table's signer of an Incident's acknowledgement and notes replaced by
    `by`: the admission policy refuses any other signature, and these cases are about the
    schema, not it (a case that breaks a signature keeps its broken value)."""
    spec = body.get("spec")
    if body["kind"] != "Incident" or not isinstance(spec, dict):
        return body

    def sign(entry: Any) -> Any:
        if isinstance(entry, dict) and entry.get("by") == SIGNER:
            return {**entry, "by": by}
        return entry

    spec = {**spec, "acknowledgement": sign(spec.get("acknowledgement"))} if (
        "acknowledgement" in spec) else dict(spec)
    if isinstance(spec.get("notes"), list):
        spec["notes"] = [sign(note) for note in spec["notes"]]
    return {**body, "spec": spec}


@pytest.fixture(scope="module")
def dry_run_namespace(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"invalid-specs-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def dry_run_create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[body["kind"]], body, dry_run="All")


@pytest.mark.parametrize("body", [
    pytest.param(body, id=f"{body['kind']}-{number}") for number, body in enumerate(VALID_OBJECTS)])
def test_the_base_objects_are_accepted(
    api: client.ApiClient, dry_run_namespace: str, caller: str, body: dict[str, Any]
) -> None:
    dry_run_create(api, dry_run_namespace, signed(body, caller))


def dry_run_update(api: client.ApiClient, namespace: str, before: dict[str, Any],
                   body: dict[str, Any]) -> None:
    """Store `before` (under a name of its own), then try `body` as its update."""
    custom = client.CustomObjectsApi(api)
    plural = PLURALS[body["kind"]]
    name = f"before-{uuid.uuid4().hex[:8]}"
    stored = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, {**before, "metadata": {"name": name}})
    try:
        update = {**body, "metadata": {"name": name,
                                       "resourceVersion": stored["metadata"]["resourceVersion"]}}
        custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, update,
                                                dry_run="All")
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda case: case.id)
def test_the_api_server_rejects_each_invalid_spec_at_its_field(
    api: client.ApiClient, dry_run_namespace: str, caller: str, case: InvalidSpec
) -> None:
    with pytest.raises(ApiException) as raised:
        if case.before is None:
            dry_run_create(api, dry_run_namespace, signed(case.body, caller))
        else:
            dry_run_update(api, dry_run_namespace, signed(case.before, caller),
                           signed(case.body, caller))
    status = json.loads(raised.value.body)
    assert (raised.value.status, status["reason"]) == (422, "Invalid")
    reported = {(c.get("field"), c.get("message")) for c in status["details"]["causes"]}
    assert reported - {RULES_NOT_CHECKED} == case.causes()
