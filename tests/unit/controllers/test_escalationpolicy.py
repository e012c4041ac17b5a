"""controllers.escalationpolicy: the store hands incidents their policy or says why there is
none, and tells listeners of changes; a check writes status once per change, warns once per
stall, and wakes up at the next handover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_operator.controllers.escalationpolicy import (
    InvalidPolicy,
    PolicyStore,
    prepare,
    reconcile,
)
from runbook_operator.core.incident.policy import CompiledPolicy

from tests.support.fakes import FakeCluster


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "EscalationPolicy",
            "metadata": {"name": "default", "namespace": "prod"},
            "spec": {"levels": [{"after": "0s", "channels": ["oncall"]}], **spec}}


def channel(name: str) -> dict[str, Any]:
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "NotificationChannel",
            "metadata": {"name": name, "namespace": "prod"}, "spec": {}}


def test_the_store_says_why_an_incident_has_no_policy_and_tells_listeners() -> None:
    store = PolicyStore()
    told: list[tuple[str, str]] = []
    store.listeners.append(told.append)
    assert store.lookup("prod", None).reason == "NoEscalationPolicy"
    assert store.lookup("prod", "default").reason == "EscalationPolicyNotFound"
    store.put(("prod", "default"), InvalidPolicy("spec.levels: Field required"))
    problem = store.lookup("prod", "default")
    assert (problem.reason, problem.message) == (
        "EscalationPolicyInvalid", "EscalationPolicy default is invalid: spec.levels: Field "
        "required")
    store.put(("prod", "default"), prepare(FakeCluster(policy()).get(
        "", "EscalationPolicy", "default", "prod")))
    assert isinstance(store.lookup("prod", "default"), CompiledPolicy)
    store.drop(("prod", "default"))
    assert told == [("prod", "default")] * 3


def test_a_check_stalls_on_missing_channels_once_and_is_ready_when_they_exist() -> None:
    cluster = FakeCluster(policy())
    body = cluster.get("", "EscalationPolicy", "default", "prod")
    reconcile(cluster, body, prepare(body))
    body = cluster.get("", "EscalationPolicy", "default", "prod")
    reconcile(cluster, body, prepare(body))
    assert [reason for _, reason, _ in cluster.events] == ["ChannelsNotFound"]
    cluster.put(channel("oncall"))
    body = cluster.get("", "EscalationPolicy", "default", "prod")
    reconcile(cluster, body, prepare(body))
    conditions = {c["type"]: c["status"] for c in cluster.get(
        "", "EscalationPolicy", "default", "prod")["status"]["conditions"]}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}


def test_a_check_returns_the_next_handover() -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    rotation = {"name": "primary", "turn": "1h", "start": start.isoformat(),
                "members": [{"name": "alice", "channel": "oncall"}]}
    cluster = FakeCluster(policy(rotations=[rotation]), channel("oncall"))
    body = cluster.get("", "EscalationPolicy", "default", "prod")
    assert reconcile(cluster, body, prepare(body)) == start + timedelta(hours=1)
    status = cluster.get("", "EscalationPolicy", "default", "prod")["status"]
    assert [o["member"] for o in status["onCall"]] == ["alice"]
