"""controllers.incident_sources against objects held as the API server holds them: one incident
per source fingerprint whatever the retries, a new one per episode after resolution, recovery
in status only, and no write when nothing changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runbook_operator.controllers.incident_sources import (
    Applied,
    CachedToken,
    apply_report,
    asks_for_incidents,
    reconcile_source,
)
from runbook_operator.core.incident.sources import alert_rule_reports, backup_policy_report
from tests.support.fakes import FakeCluster

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TRIGGER = {"severity": "P1", "resolveWhenRecovered": True}


def rule(state: str, firing_since: datetime | None = T0, resolved_at: datetime | None = None,
         trigger: dict[str, Any] = TRIGGER) -> dict[str, Any]:
    instance: dict[str, Any] = {"fingerprint": "f1", "labels": {"service": "checkout"},
                                "state": state}
    if firing_since is not None:
        instance["firingSince"] = firing_since.isoformat()
    if resolved_at is not None:
        instance["resolvedAt"] = resolved_at.isoformat()
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "AlertRule",
            "metadata": {"name": "checkout-5xx", "namespace": "shop", "uid": "u-1"},
            "spec": {"query": "errors", "condition": {"operator": "gt", "threshold": 1},
                     "incident": trigger},
            "status": {"instances": [instance]}}


def policy(outcome: str, job: str, last_success: datetime | None) -> dict[str, Any]:
    """The policy after its Job `job` (`j<minutes after T0>`) ended with `outcome`."""
    finished = T0 + timedelta(minutes=int(job[1:]))
    status: dict[str, Any] = {"lastJob": {"name": job, "outcome": outcome,
                                          "finishedAt": finished.isoformat(),
                                          "reason": "DumpFailed",
                                          "message": "password authentication failed"}}
    if last_success is not None:
        status["lastSuccessfulTime"] = last_success.isoformat()
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "shop-db", "namespace": "shop", "uid": "u-2"},
            "spec": {"schedule": "0 2 * * *", "incident": {"severity": "P2"},
                     "source": {"command": {"image": "busybox", "command": ["true"]}}},
            "status": status}


def incidents(store: FakeCluster) -> list[dict[str, Any]]:
    return store.of_kind("Incident")


def test_a_firing_rule_opens_one_incident_and_repeating_writes_nothing() -> None:
    store = FakeCluster()
    (opened,) = reconcile_source(store, "AlertRule", rule("Firing"))
    assert opened.created and opened.changed
    assert store.events[-1] == ("Normal", "IncidentOpened", f"opened Incident {opened.name}")
    (incident,) = incidents(store)
    assert incident["metadata"]["name"] == opened.name
    assert incident["spec"]["source"]["kind"] == "AlertRule"
    assert "ownerReferences" not in incident["metadata"]
    assert incident["status"]["alerts"][0]["status"] == "firing"
    assert [e["event"] for e in incident["status"]["timeline"]] == ["AlertsChanged"]
    store.requests.clear()
    for _ in range(3):
        assert reconcile_source(store, "AlertRule", rule("Firing")) == [Applied(opened.name)]
    assert store.requests == ["list Incident"] * 3
    assert incidents(store) == [incident]


def test_two_instances_that_both_saw_no_incident_open_one() -> None:
    store = FakeCluster()
    (report,) = alert_rule_reports(rule("Firing"))
    first = apply_report(store, "shop", report, [], T0)
    second = apply_report(store, "shop", report, [], T0)
    assert first.created and not second.created and first.name == second.name
    (incident,) = incidents(store)
    assert len(incident["status"]["alerts"]) == 1 and incident["status"]["timelineTotal"] == 1


def test_recovery_is_recorded_and_after_resolution_the_next_firing_opens_a_new_incident(
) -> None:
    store = FakeCluster()
    (first,) = reconcile_source(store, "AlertRule", rule("Firing"))
    later = T0 + timedelta(minutes=10)
    (recovered,) = reconcile_source(store, "AlertRule",
                                    rule("Normal", firing_since=None, resolved_at=later))
    assert recovered == Applied(first.name, changed=True)
    (resolved,) = incidents(store)
    assert resolved["status"]["sourceRecoveredAt"] and "phase" not in resolved["status"]
    assert resolved["spec"]["status"] == "Open"
    assert resolved["status"]["timeline"][-1]["event"] == "SourceRecovered"
    resolved["status"]["phase"] = "Resolved"  # as the Incident controller resolves it
    store.put(resolved)
    (resolved,) = incidents(store)
    (again,) = reconcile_source(store, "AlertRule",
                                rule("Firing", firing_since=later + timedelta(minutes=5)))
    assert again.created and again.name != first.name
    old, new = sorted(incidents(store), key=lambda i: i["metadata"]["name"] != first.name)
    assert old == resolved and new["status"]["alerts"][0]["status"] == "firing"


def test_an_incident_people_resolved_stays_resolved_while_the_same_episode_fires() -> None:
    store = FakeCluster()
    (first,) = reconcile_source(store, "AlertRule", rule("Firing"))
    (incident,) = incidents(store)
    incident["spec"]["status"] = "Resolved"
    store.put(incident)
    store.requests.clear()
    assert reconcile_source(store, "AlertRule", rule("Firing")) == [Applied(None)]
    assert store.requests == ["list Incident"]
    assert len(incidents(store)) == 1


def test_a_rule_that_recovers_while_the_incident_stays_open_fires_into_it_again() -> None:
    store = FakeCluster()
    keep = {"severity": "P1"}
    (first,) = reconcile_source(store, "AlertRule", rule("Firing", trigger=keep))
    reconcile_source(store, "AlertRule", rule("Normal", None, T0 + timedelta(minutes=3), keep))
    (again,) = reconcile_source(store, "AlertRule",
                                rule("Firing", T0 + timedelta(minutes=5), trigger=keep))
    assert again == Applied(first.name, changed=True)
    (incident,) = incidents(store)
    assert [e["event"] for e in incident["status"]["timeline"]] == [
        "AlertsChanged", "SourceRecovered", "AlertsChanged"]
    assert "phase" not in incident["status"]


def test_a_failing_backup_updates_one_incident_per_failure_until_a_success() -> None:
    store = FakeCluster()
    (first,) = reconcile_source(store, "BackupPolicy", policy("Failed", "j1", None))
    (second,) = reconcile_source(store, "BackupPolicy", policy("Failed", "j2", None))
    assert first.created and second == Applied(first.name, changed=True)
    (incident,) = incidents(store)
    assert [r["name"] for r in incident["status"]["related"]] == ["shop-db", "j1", "j2"]
    assert incident["status"]["alerts"][0]["labels"]["job"] == "j2"
    (ok,) = reconcile_source(store, "BackupPolicy", policy("Succeeded", "j3", T0))
    assert ok == Applied(first.name, changed=True)
    (incident,) = incidents(store)
    assert incident["status"]["alerts"][0]["status"] == "resolved"
    assert "phase" not in incident["status"]
    (still_open,) = reconcile_source(store, "BackupPolicy", policy("Failed", "j4", T0))
    assert still_open == Applied(first.name, changed=True)
    incident = incidents(store)[0]
    incident["spec"]["status"] = "Resolved"
    store.put(incident)
    assert reconcile_source(store, "BackupPolicy", policy("Failed", "j4", T0)) == [
        Applied(None)]
    (third,) = reconcile_source(store, "BackupPolicy", policy("Failed", "j5", T0))
    assert third.created and len(incidents(store)) == 2


def test_a_concurrent_status_write_is_not_lost() -> None:
    store = FakeCluster()
    (first,) = reconcile_source(store, "AlertRule", rule("Firing"))
    (stale,) = incidents(store)
    (incident,) = incidents(store)
    incident["status"]["openedAt"] = T0.isoformat()
    store.put(incident)
    (report,) = alert_rule_reports(rule("Normal", None, T0 + timedelta(minutes=1)))
    applied = apply_report(store, "shop", report, [stale], T0 + timedelta(minutes=2))
    assert applied.changed
    (incident,) = incidents(store)
    assert incident["status"]["openedAt"] == T0.isoformat()
    assert incident["status"]["sourceRecoveredAt"]


def test_an_instance_in_error_changes_nothing() -> None:
    store = FakeCluster()
    (first,) = reconcile_source(store, "AlertRule", rule("Firing"))
    store.requests.clear()
    assert reconcile_source(store, "AlertRule", rule("Error", firing_since=None)) == []
    assert store.requests == []


def test_sources_without_a_trigger_or_going_away_are_left_alone() -> None:
    store = FakeCluster()
    body = rule("Firing")
    del body["spec"]["incident"]
    assert reconcile_source(store, "AlertRule", body) == [] and store.requests == []
    quiet = policy("Failed", "j1", None)
    del quiet["spec"]["incident"]
    assert backup_policy_report(quiet) is None
    assert asks_for_incidents(rule("Firing"))
    assert not asks_for_incidents(rule("Firing"), event={"type": "DELETED"})
    going = rule("Firing")
    going["metadata"]["deletionTimestamp"] = T0.isoformat()
    assert not asks_for_incidents(going) and not asks_for_incidents(body)
    invalid = rule("Firing")
    invalid["spec"]["condition"]["operator"] = "above"
    assert reconcile_source(store, "AlertRule", invalid) == []


@pytest.mark.parametrize("elapsed, reads", [(0.0, 1), (29.9, 1), (30.0, 2)])
def test_the_token_is_read_again_after_its_ttl(elapsed: float, reads: int) -> None:
    now = [0.0]
    values = iter(["one", "two"])
    token = CachedToken(lambda: next(values), ttl=30.0, clock=lambda: now[0])

    async def twice() -> list[str]:
        first = await token()
        now[0] += elapsed
        return [first, await token()]

    assert asyncio.run(twice()) == ["one", "one" if reads == 1 else "two"]
