"""controllers.incident.reconcile against an in-memory API server: which requests one
reconcile makes, that every further page is preceded by a fresh read that can stop it, that
another writer's status survives, and how the timeline and postmortem ConfigMaps are written
(the e2e tests run the real API server and receivers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from runbook_operator.api.common import NotificationRecord
from runbook_operator.controllers.incident import reconcile as module
from runbook_operator.controllers.incident.reconcile import Memory, reconcile
from runbook_operator.core.incident.decide import PolicyProblem

from tests.support.fakes import FakeCluster
from tests.support.incident_core import ack, policy

def opened_now() -> datetime:
    """Reconciles run on the wall clock, so incidents open when the test runs (not when the
    module was imported: in a long session the ladder would already have climbed)."""
    return datetime.now(UTC).replace(microsecond=0)


def incident(opened: datetime | None = None, **spec: Any) -> dict[str, Any]:
    created = (opened or opened_now()).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "Incident",
            "metadata": {"name": "checkout", "namespace": "prod", "uid": "uid-1",
                         "creationTimestamp": created},
            "spec": {"title": "Checkout returns 500", "severity": "P1",
                     "escalationPolicyRef": {"name": "default"}, **spec}}


class Pager:
    """Stands in for `controllers.notify.notify`: records, and can run something after a
    delivery (someone acknowledging meanwhile)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.after: dict[int, Any] = {}

    def __call__(self, kube, namespace, channels, message) -> list[NotificationRecord]:
        self.sent.append(f"{message.event}:{channels[0]}")
        if len(self.sent) in self.after:
            self.after[len(self.sent)]()
        return [NotificationRecord(time=message.timestamp, channel=channels[0],
                                   fingerprint=message.dedup_key, event=message.event,
                                   severity=message.severity, result="delivered", attempt=1)]


@pytest.fixture
def pager(monkeypatch: pytest.MonkeyPatch) -> Pager:
    found = Pager()
    monkeypatch.setattr(module, "notify", found)
    return found


def runbook(namespace: str, name: str | None):
    return policy()


def run(cluster: FakeCluster, memory: Memory | None = None, lookup=runbook):
    body = cluster.get("", "Incident", "checkout", "prod")
    cluster.requests.clear()
    return reconcile(cluster, body, lookup, memory or Memory())


def test_a_new_incident_is_read_again_paged_written_once_and_its_timeline_stored(
        pager: Pager) -> None:
    opened = opened_now()
    cluster = FakeCluster(incident(opened))
    done = run(cluster)
    assert pager.sent == ["opened:oncall", "opened:alice-pager"]
    assert cluster.requests == [
        "get Incident/checkout", "get Incident/checkout", "patch Incident/checkout",
        "get ConfigMap/checkout-timeline", "apply ConfigMap/checkout-timeline",
        "event Escalated"]
    status = done.body["status"]
    assert status["escalation"]["step"] == 1
    assert done.due == opened + timedelta(minutes=30)
    stored = cluster.objects[("ConfigMap", "prod", "checkout-timeline")]
    assert stored["data"]["timeline.jsonl"].count("\n") == len(status["timeline"])


def test_a_reconcile_with_nothing_due_makes_no_request(pager: Pager) -> None:
    cluster = FakeCluster(incident())
    memory = Memory()
    run(cluster, memory)
    body = cluster.get("", "Incident", "checkout", "prod")
    cluster.requests.clear()
    again = reconcile(cluster, body, runbook, memory)
    assert cluster.requests == [] and again.body == body


def test_an_acknowledgement_seen_between_pages_stops_the_rest(pager: Pager) -> None:
    cluster = FakeCluster(incident())
    stored = cluster.objects[("Incident", "prod", "checkout")]

    def acknowledged() -> None:
        cluster.put({**stored, "spec": {**stored["spec"],
                                        "acknowledgement": ack("alice", datetime.now(UTC))}})

    pager.after[1] = acknowledged
    done = run(cluster)
    assert pager.sent == ["opened:oncall"]
    assert done.body["status"]["escalation"]["step"] == 0  # L1 not complete
    body = cluster.get("", "Incident", "checkout", "prod")
    reconcile(cluster, body, runbook, Memory())
    assert pager.sent == ["opened:oncall", "acknowledged:oncall"]


def test_another_writers_status_survives_the_write(pager: Pager) -> None:
    cluster = FakeCluster(incident())
    pager.after[2] = lambda: cluster._status_write(
        "Incident", "checkout", "prod", {"alerts": [{"fingerprint": "f", "status": "firing"}]})
    done = run(cluster)
    status = done.body["status"]
    assert status["alerts"] == [{"fingerprint": "f", "status": "firing"}]
    assert status["escalation"]["step"] == 1
    assert "update Incident/checkout" in cluster.requests


def test_resolution_writes_an_owned_postmortem_before_status_and_never_over_edits(
        pager: Pager) -> None:
    cluster = FakeCluster(incident())
    run(cluster)
    stored = cluster.objects[("Incident", "prod", "checkout")]
    cluster.put({**stored, "spec": {**stored["spec"], "status": "Resolved"}})
    done = run(cluster)
    assert cluster.requests.index("create ConfigMap/checkout-postmortem") < \
        cluster.requests.index("patch Incident/checkout")
    postmortem = cluster.objects[("ConfigMap", "prod", "checkout-postmortem")]
    assert postmortem["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert done.body["status"]["timeline"][-1]["message"] == (
        "postmortem written to ConfigMap checkout-postmortem")

    postmortem["data"]["postmortem.md"] += "\nRoot cause: a typo.\n"
    for status in ("Investigating", "Resolved"):
        stored = cluster.objects[("Incident", "prod", "checkout")]
        cluster.put({**stored, "spec": {**stored["spec"], "status": status}})
        done = run(cluster)
    assert postmortem["data"]["postmortem.md"].endswith("Root cause: a typo.\n")
    assert done.body["status"]["timeline"][-1]["message"] == (
        "ConfigMap checkout-postmortem was edited since it was written: kept as it is")


def test_the_keep_annotation_disowns_the_postmortem(pager: Pager) -> None:
    cluster = FakeCluster(incident(status="Resolved"))
    memory = Memory()
    run(cluster, memory)
    stored = cluster.objects[("Incident", "prod", "checkout")]
    stored["metadata"]["annotations"] = {"runbook.dev/keep-postmortem": "true"}
    run(cluster, memory)
    assert "ownerReferences" not in cluster.objects[
        ("ConfigMap", "prod", "checkout-postmortem")]["metadata"]
    assert "merge ConfigMap/checkout-postmortem" in cluster.requests


def test_an_unreadable_spec_is_stalled_with_one_event(pager: Pager) -> None:
    cluster = FakeCluster(incident(severity="P9"))
    run(cluster)
    run(cluster)
    conditions = {c["type"]: c for c in cluster.objects[
        ("Incident", "prod", "checkout")]["status"]["conditions"]}
    assert conditions["Stalled"]["reason"] == "InvalidSpec"
    assert [reason for _, reason, _ in cluster.events] == ["InvalidSpec"]


def test_without_a_policy_nobody_is_paged_and_it_is_said(pager: Pager) -> None:
    cluster = FakeCluster(incident())
    done = run(cluster, lookup=lambda namespace, name: PolicyProblem(
        "EscalationPolicyNotFound", "EscalationPolicy default not found"))
    assert pager.sent == [] and done.due is None
    assert cluster.events == [("Warning", "EscalationPolicyNotFound",
                               "EscalationPolicy default not found")]


def test_a_configmap_of_the_timelines_name_that_is_someone_elses_is_left_alone(
        pager: Pager) -> None:
    theirs = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "checkout-timeline", "namespace": "prod"},
              "data": {"timeline.jsonl": "release notes of the checkout team\n"}}
    cluster = FakeCluster(incident(), theirs)
    memory = Memory()
    done = run(cluster, memory)
    assert "apply ConfigMap/checkout-timeline" not in cluster.requests
    stored = cluster.objects[("ConfigMap", "prod", "checkout-timeline")]
    assert stored["data"] == theirs["data"]
    assert "ownerReferences" not in stored["metadata"]
    assert done.body["status"]["timeline"] and memory.timelines[("prod", "checkout")] is None
