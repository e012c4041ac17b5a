"""controllers.alertrule.evaluate: which API requests one evaluation makes, against an
in-memory stand-in for the Kube adapter (the e2e tests run the real API server)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from runbook_operator.api.alertrule import AlertRuleSpec, AlertRuleStatus
from runbook_operator.api.notificationchannel import DeliveryRecord
from runbook_operator.controllers import alertrule
from runbook_operator.core import alerting
from runbook_operator.integrations.kubernetes import StatusConflict
from runbook_operator.integrations.prometheus import Ok, Sample

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
KEY = ("shop", "web-5xx")
SPEC = {"query": "errors", "condition": {"operator": "gt", "threshold": 0.05}, "for": "0s",
        "interval": "15s", "channels": [{"name": "oncall"}]}


class FakeKube:
    """Holds one AlertRule like the API server does (resourceVersion moves on every write)
    and records every request."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.stored = copy.deepcopy(body)
        self.requests: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        self.requests.append("get")
        return copy.deepcopy(self.stored)

    def patch_status(self, api_version, kind, name, namespace, patch, resource_version):
        self.requests.append("patch")
        if resource_version != self.stored["metadata"]["resourceVersion"]:
            raise StatusConflict("moved on")
        return self._write(patch)

    def update_status(self, api_version, kind, name, namespace, change):
        self.requests.append("update")
        return self._write(change(copy.deepcopy(self.stored)))

    def event(self, *args: Any) -> None:
        self.requests.append("event")

    def _write(self, patch: dict[str, Any]) -> dict[str, Any]:
        status = self.stored.setdefault("status", {})
        for field, value in patch.items():
            if value is None:
                status.pop(field, None)
            else:
                status[field] = value
        meta = self.stored["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return copy.deepcopy(self.stored)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Notifications are recorded instead of delivered."""
    log: list[str] = []

    def notify(kube, namespace, channels, message):
        log.append(f"{message.event}:{channels[0]}")
        return [DeliveryRecord(time=message.timestamp, result="delivered", channel=channels[0],
                               attempt=1)]

    monkeypatch.setattr(alertrule, "notify", notify)
    return log


def body(generation: int = 1, status: dict | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "runbook.dev/v1alpha1", "kind": "AlertRule",
            "metadata": {"name": KEY[1], "namespace": KEY[0], "generation": generation,
                         "resourceVersion": "100", "uid": "u1"},
            "spec": {**SPEC, **spec}, "status": status or {}}


def observe(rule: dict[str, Any], value: float) -> alertrule.Evaluation:
    spec = AlertRuleSpec.model_validate(rule["spec"])
    return alertrule.threshold_evaluation(KEY, spec, Ok([Sample({"service": "web"}, value)]))


def run(kube: FakeKube, rule: dict[str, Any], value: float, now: datetime) -> dict[str, Any]:
    newest = alertrule.evaluate(kube, observe(rule, value), rule, 0.01, now)  # type: ignore[arg-type]
    assert newest is not None
    return dict(newest)


def test_first_evaluation_is_one_write_without_a_read(sent: list[str]) -> None:
    kube = FakeKube(body())
    written = run(kube, body(), 0.01, T0)
    assert kube.requests == ["patch"]
    assert written["status"]["state"] == "Normal" and sent == []


def test_an_evaluation_that_changes_nothing_lasting_makes_no_request(sent: list[str]) -> None:
    kube = FakeKube(body())
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    again = run(kube, cached, 0.02, T0 + timedelta(seconds=15))  # another value, same state
    assert kube.requests == []
    assert again == cached


def test_the_heartbeat_writes_time_and_value(sent: list[str]) -> None:
    kube = FakeKube(body())
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    later = T0 + alertrule.STATUS_HEARTBEAT
    written = run(kube, cached, 0.02, later)
    assert kube.requests == ["patch"]
    assert written["status"]["lastValue"] == "0.02"
    assert written["status"]["lastEvaluation"] == later.isoformat().replace("+00:00", "Z")


def test_a_state_change_rereads_before_notifying_then_writes_once(sent: list[str]) -> None:
    kube = FakeKube(body())
    cached = run(kube, body(), 0.01, T0)
    kube.requests.clear()
    written = run(kube, cached, 0.5, T0 + timedelta(seconds=15))
    assert kube.requests == ["get", "patch"] and sent == ["firing:oncall"]
    assert written["status"]["state"] == "Firing"


def test_a_stale_cache_never_repeats_a_notification(sent: list[str]) -> None:
    kube = FakeKube(body())
    stale = run(kube, body(), 0.01, T0)
    run(kube, stale, 0.5, T0 + timedelta(seconds=15))  # fires and notifies
    assert sent == ["firing:oncall"]
    # The cache still holds the Normal copy (the watch event of the write has not arrived).
    written = run(kube, stale, 0.5, T0 + timedelta(seconds=30))
    assert sent == ["firing:oncall"]
    assert written["status"]["state"] == "Firing"


def test_a_conflict_without_side_effects_decides_again_on_the_fresh_copy(
        sent: list[str]) -> None:
    kube = FakeKube(body())
    stale = run(kube, body(), 0.5, T0)  # Firing, notified
    recovered = run(kube, stale, 0.01, T0 + timedelta(seconds=15))  # Normal, resolved sent
    assert sent == ["firing:oncall", "resolved:oncall"]
    kube.requests.clear()
    # From the stale Firing copy the decision would be "resolve": the re-read shows it is done.
    run(kube, stale, 0.01, T0 + timedelta(seconds=30))
    assert sent == ["firing:oncall", "resolved:oncall"]
    assert kube.stored["status"]["state"] == "Normal"
    assert kube.stored["status"]["notifications"] == recovered["status"]["notifications"]


def test_observed_generation_is_that_of_the_spec_evaluated(sent: list[str]) -> None:
    kube = FakeKube(body(generation=2))
    kube.stored["spec"]["condition"]["threshold"] = 0.9  # generation 2 on the server
    cached = body(generation=1)  # what the evaluator knows
    run(kube, cached, 0.5, T0)  # fires under generation 1's threshold, re-reading first
    assert kube.stored["status"]["observedGeneration"] == 1
    assert all(c["observedGeneration"] == 1 for c in kube.stored["status"]["conditions"])


def test_newer_compares_resource_versions_as_numbers() -> None:
    def at(version: str) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": version}}

    assert alertrule._newer(at("100"), at("99"))
    assert alertrule._newer(at("100"), at("100"))
    assert not alertrule._newer(at("99"), at("100"))
    assert alertrule._newer(at("opaque-b"), at("opaque-a"))


def status(**fields: Any) -> AlertRuleStatus:
    return AlertRuleStatus.model_validate(fields)


INSTANCE = {"fingerprint": "f1", "state": "Firing", "lastValue": "0.5",
            "lastEvaluation": "2026-11-22T08:00:00Z", "firingSince": "2026-11-22T07:00:00Z"}


def test_status_write_due_ignores_per_tick_values_until_the_heartbeat() -> None:
    old = status(state="Firing", lastValue="0.5", lastEvaluation="2026-11-22T08:00:00Z",
                 evaluationDurationSeconds=0.1, instances=[INSTANCE],
                 anomaly={"samples": 30, "lastScore": 0.4})
    later = T0 + timedelta(seconds=15)
    new = old.model_copy(update={
        "last_value": "0.7", "last_evaluation": later, "evaluation_duration_seconds": 0.2,
        "instances": [old.instances[0].model_copy(update={"last_value": "0.7",
                                                          "last_evaluation": later})],
        "anomaly": old.anomaly.model_copy(update={"last_score": 0.6}),  # type: ignore[union-attr]
    })
    heartbeat = timedelta(minutes=5)
    assert not alerting.status_write_due(old, new, later, heartbeat)
    assert alerting.status_write_due(old, new, T0 + heartbeat, heartbeat)
    assert alerting.status_write_due(status(), new, later, heartbeat)  # never evaluated


@pytest.mark.parametrize("change", [
    {"state": "Normal"},
    {"last_error": "timeout"},
    {"observed_generation": 2},
    {"instances": []},
    {"anomaly": None},
])
def test_status_write_due_on_every_lasting_change(change: dict[str, Any]) -> None:
    old = status(state="Firing", lastEvaluation="2026-11-22T08:00:00Z", instances=[INSTANCE],
                 observedGeneration=1, anomaly={"samples": 30})
    new = old.model_copy(update=change)
    assert alerting.status_write_due(old, new, T0 + timedelta(seconds=15), timedelta(minutes=5))
