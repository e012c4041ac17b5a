"""Bad input at scale: hypothesis-generated objects of every registered kind
(tests/support/spec_strategies.py) applied to the real API server, with the operator running
under its own ServiceAccount. Each object is either rejected with a reason at a field path
under `spec` or `metadata` (and then the pydantic model rejects it too), or accepted (and then
it breaks no schema constraint on purpose, and the model parses it or the operator reports
Stalled, InvalidSpec, at the field the model rejects) and reconciled: the
operator observes its generation and reports a Ready condition with a reason and a message
that names any problem, with no traceback and no handler failing with an unexpected exception
in its log.

Deterministic for CI: `derandomize=True` (the examples follow from the strategies, not from a
seed or an example database); shrinking is off so that a failure costs one example's time, and
hypothesis prints the failing example. EXAMPLES per kind keep the file to a few minutes on a
loaded 2-core machine. A kind added to the registry (api/registry.py) is tested with no
change here.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from runbook_operator.api.common import API_VERSION
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.kube import (
    CHANNELS,
    ESCALATION_POLICIES,
    condition,
    create_secret,
    kind,
    username,
)
from tests.support.spec_strategies import KIND_NAMES, REFERENCED, Example, examples

EXAMPLES = 40
#: Reasons that say nothing about what is wrong.
GENERIC_REASONS = {"Error", "Failed", "Unknown", "ReconcileError", "Exception", "InternalError"}
#: What the operator's log must never hold: a traceback, or kopf reporting a handler that
#: raised an exception it did not expect (TemporaryError and PermanentError are expected).
CRASHES = re.compile(r"Traceback|Handler '[^']*' failed with an exception")
#: What the API server adds when a schema error stopped it from running the CEL rules.
NOT_CHECKED_FIELD = "<nil>"


def create_referenced(api: client.ApiClient, namespace: str) -> None:
    """The objects REFERENCED's present names name (a Secret, a channel, a policy)."""
    secret, key = REFERENCED["secret"].present, REFERENCED["secret key"].present
    channel = REFERENCED["channel"].present
    create_secret(api, namespace, secret, {key: "http://127.0.0.1:9/generated"})
    CHANNELS.create(api, namespace, {
        "apiVersion": API_VERSION, "kind": "NotificationChannel", "metadata": {"name": channel},
        "spec": {"webhook": {"urlSecretRef": {"name": secret, "key": key}}}})
    ESCALATION_POLICIES.create(api, namespace, {
        "apiVersion": API_VERSION, "kind": "EscalationPolicy",
        "metadata": {"name": REFERENCED["escalation policy"].present},
        "spec": {"levels": [{"after": "0s", "channels": [channel]}]}})


def named(example: Example, number: int, signer: str) -> dict[str, Any]:
    """The example's object under a name of its own (of its length, if it has one), with an
    Incident's acknowledgement and notes signed by `signer` (where the signature is a string):
    the admission policy accepts no other signature, and these examples are about the schema
    and the operator, not it."""
    body = json.loads(json.dumps(example.body))
    name = f"generated-{number}"
    if example.name_length is not None:
        name = name.ljust(example.name_length - 1, "x") + "z"
    body["metadata"] = {"name": name}
    spec = body.get("spec")
    if body["kind"] == "Incident" and isinstance(spec, dict):
        signed = [spec.get("acknowledgement"), *(spec.get("notes") or [])]
        for entry in signed:
            if isinstance(entry, dict) and isinstance(entry.get("by"), str):
                entry["by"] = signer
    return body


def assert_rejected_at_a_field(error: ApiException) -> None:
    status = json.loads(error.body)
    assert (error.status, status.get("reason")) == (422, "Invalid"), status
    causes = [c for c in status["details"].get("causes", [])
              if c.get("field") != NOT_CHECKED_FIELD]
    assert causes, status
    for cause in causes:
        assert re.match(r"(spec|metadata)(\.|\[|$)", cause.get("field", "")), status
        assert cause.get("reason") and cause.get("message"), status


def assert_explained(obj: dict[str, Any]) -> None:
    """Ready has a reason and a message; when it is not True, the condition that says why
    (Stalled if True, else Ready) gives a specific reason."""
    ready = condition(obj, "Ready")
    assert ready.get("reason") and ready.get("message"), obj.get("status")
    if ready["status"] != "True":
        stalled = condition(obj, "Stalled")
        explaining = stalled if stalled.get("status") == "True" else ready
        assert explaining["reason"] not in GENERIC_REASONS, obj.get("status")


def assert_stalled_on(obj: dict[str, Any], invalid: ValidationError) -> None:
    """What only the operator can check (a value no schema keyword bounds, see
    api.common.MAX_DURATION) is reported as Stalled, InvalidSpec, at the field."""
    stalled = condition(obj, "Stalled")
    assert (stalled.get("status"), stalled.get("reason")) == ("True", "InvalidSpec"), (
        invalid, obj.get("status"))
    fields = {".".join(str(step) for step in error["loc"]) for error in invalid.errors()}
    assert any(field in stalled["message"] for field in fields), (fields, stalled)


def log_reader(operator: LocalOperator) -> Callable[[], str]:
    """Reads what the operator logs from now on, a little more at each call."""
    path: Path = operator.log_path
    offset = path.stat().st_size

    def read() -> str:
        nonlocal offset
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read()
        offset += len(text)
        return text.decode(errors="replace")

    return read


@pytest.mark.parametrize("kind_name", KIND_NAMES)
def test_generated_objects_are_rejected_at_a_field_or_reconciled_with_an_explanation(
    api: client.ApiClient, namespace: str, running_operator: LocalOperator, kind_name: str,
    figures: dict[str, list[float]],
) -> None:
    create_referenced(api, namespace)
    resources = kind(kind_name)
    signer = username(api)
    numbers = itertools.count()
    outcomes: Counter[str] = Counter()
    new_log = log_reader(running_operator)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(examples(kind_name))
    def check(example: Example) -> None:
        body = named(example, next(numbers), signer)
        name = body["metadata"]["name"]
        try:
            created = resources.create(api, namespace, body)
        except ApiException as error:
            assert_rejected_at_a_field(error)
            outcomes["rejected"] += 1
            if len(name) <= 253:  # the model leaves other names to the API server
                with pytest.raises(ValidationError):
                    resources.model.model_validate(body)
            return
        assert example.broken is None, f"accepted although it breaks {example.broken}"
        try:
            resources.model.model_validate(body)
            invalid = None
        except ValidationError as error:
            invalid = error
        try:
            reconciled_with_an_explanation(created, invalid)
        finally:
            resources.delete(api, namespace, name)
        crashes = CRASHES.findall(new_log())
        assert not crashes, running_operator.log_tail(80)

    def reconciled_with_an_explanation(created: dict[str, Any],
                                       invalid: ValidationError | None) -> None:
        name, generation = created["metadata"]["name"], created["metadata"]["generation"]

        def reconciled() -> dict[str, Any] | None:
            obj = resources.get(api, namespace, name)
            status = obj.get("status") or {}
            observed = status.get("observedGeneration") == generation
            return obj if observed and condition(obj, "Ready") else None

        obj = wait_for(reconciled, f"{kind_name} {namespace}/{name} reconciled", timeout=90)
        assert_explained(obj)
        outcomes["Ready" if condition(obj, "Ready")["status"] == "True" else "not Ready"] += 1
        if invalid is not None:
            assert_stalled_on(obj, invalid)

    check()
    assert not CRASHES.findall(new_log()), running_operator.log_tail(80)
    figures[f"generated {kind_name}: rejected, Ready, not Ready"] = [
        outcomes["rejected"], outcomes["Ready"], outcomes["not Ready"]]
