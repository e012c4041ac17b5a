"""controllers.incident.timers: an incident is due when it changes, at the deadline its
reconcile returns, again right away when it changed while in flight, and when the policy it
follows changes; a failing reconcile is retried, a deleted incident forgotten."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from runbook_operator.controllers.escalationpolicy import PolicyStore, prepare
from runbook_operator.controllers.incident import timers
from runbook_operator.controllers.incident.reconcile import Reconciled
from runbook_operator.controllers.incident.timers import RETRY_SECONDS, Escalations

from tests.support.fakes import FakeCluster


def body(name: str = "checkout", generation: int = 1, version: int = 1, policy: str = "default",
         **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "Incident",
            "metadata": {"name": name, "namespace": "prod", "generation": generation,
                         "resourceVersion": str(version), **extra.pop("metadata", {})},
            "spec": {"title": "t", "severity": "P1", "escalationPolicyRef": {"name": policy}},
            **extra}


class Reconciles:
    """Stands in for `reconcile.reconcile`: returns the deadline a test sets, can hold a
    reconcile until released, or fail."""

    def __init__(self) -> None:
        self.due: datetime | None = None
        self.calls: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.fail = False

    def __call__(self, kube, incident, lookup, memory) -> Reconciled:
        self.calls.append(incident["metadata"]["name"])
        self.hold.wait(5)
        if self.fail:
            raise RuntimeError("a bug")
        return Reconciled(incident, self.due)


@pytest.fixture
def reconciles(monkeypatch: pytest.MonkeyPatch) -> Reconciles:
    found = Reconciles()
    monkeypatch.setattr(timers, "reconcile", found)
    return found


def escalations() -> tuple[Escalations, PolicyStore]:
    store = PolicyStore()
    return Escalations(FakeCluster(), store), store


def due_in(escalations: Escalations, name: str = "checkout") -> float:
    return escalations.scheduler.items[("prod", name)].due - escalations.scheduler.clock()


async def one_round(escalations: Escalations) -> None:
    await escalations.scheduler.tick()
    await escalations.scheduler.settle()


def test_the_next_deadline_comes_from_the_reconcile(reconciles: Reconciles) -> None:
    async def scenario() -> None:
        found, _ = escalations()
        found.changed(body())
        assert due_in(found) <= 0
        reconciles.due = datetime.now(UTC) + timedelta(seconds=30)
        await one_round(found)
        assert 28 < due_in(found) <= 30
        reconciles.due = None
        found.soon(("prod", "checkout"))
        await one_round(found)
        assert due_in(found) == math.inf

    asyncio.run(scenario())


def test_a_failed_reconcile_is_retried(reconciles: Reconciles) -> None:
    async def scenario() -> None:
        found, _ = escalations()
        found.changed(body())
        reconciles.fail = True
        await one_round(found)
        assert RETRY_SECONDS - 1 < due_in(found) <= RETRY_SECONDS

    asyncio.run(scenario())


def test_a_change_while_in_flight_is_reconciled_right_after(reconciles: Reconciles) -> None:
    async def scenario() -> None:
        found, _ = escalations()
        found.changed(body())
        reconciles.due = datetime.now(UTC) + timedelta(minutes=5)
        reconciles.hold.clear()
        await found.scheduler.tick()
        found.changed(body(generation=2, version=2))  # acknowledged meanwhile
        reconciles.hold.set()
        await found.scheduler.settle()
        assert due_in(found) <= 0
        reconciles.hold.clear()
        await found.scheduler.tick()
        found.changed(body(generation=2, version=3, status={"sourceRecoveredAt": "x"}))
        reconciles.hold.set()
        await found.scheduler.settle()
        assert due_in(found) <= 0

    asyncio.run(scenario())


def test_status_written_by_others_matters_only_when_the_source_recovered(
        reconciles: Reconciles) -> None:
    async def scenario() -> None:
        found, _ = escalations()
        found.changed(body())
        reconciles.due = datetime.now(UTC) + timedelta(minutes=5)
        await one_round(found)
        found.changed(body(version=2, status={"alerts": []}))
        assert due_in(found) > 200
        found.changed(body(version=3, status={"sourceRecoveredAt": "2026-03-01T12:00:00Z"}))
        assert due_in(found) <= 0
        await one_round(found)
        keep = {"annotations": {"runbook.dev/keep-postmortem": "true"}}
        found.changed(body(version=4, status={"sourceRecoveredAt": "2026-03-01T12:00:00Z"},
                           metadata=keep))
        assert due_in(found) <= 0

    asyncio.run(scenario())


def test_a_policy_change_makes_the_incidents_following_it_due(reconciles: Reconciles) -> None:
    async def scenario() -> None:
        found, store = escalations()
        found.changed(body("a"))
        found.changed(body("b", policy="other"))
        reconciles.due = datetime.now(UTC) + timedelta(minutes=5)
        await one_round(found)
        policy = {"metadata": {"name": "default", "namespace": "prod", "generation": 2},
                  "spec": {"levels": [{"after": "0s", "channels": ["oncall"]}]}}
        store.put(("prod", "default"), prepare(policy))
        assert due_in(found, "a") <= 0 and due_in(found, "b") > 200
        store.drop(("prod", "other"))
        assert due_in(found, "b") <= 0

    asyncio.run(scenario())


def test_a_deleted_incident_is_forgotten(reconciles: Reconciles) -> None:
    found, _ = escalations()
    found.changed(body())
    found.memory.timelines[("prod", "checkout")] = []
    found.scheduler.forget(("prod", "checkout"))
    assert ("prod", "checkout") not in found.scheduler.items
    assert found.memory.timelines == {}
