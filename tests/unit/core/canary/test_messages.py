from __future__ import annotations

from datetime import timedelta

from runbook_operator.api.canaryrollout import CanaryRolloutStatus, Measurement, Rollback
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.canary import messages
from tests.support.canary_world import START, spec

NOTIFIED = spec(notifications={"channels": ["oncall", "team"],
                               "events": ["Started", "Promoted", "RolledBack"]})


def rolled_back(revision: str = "r2") -> CanaryRolloutStatus:
    return CanaryRolloutStatus(
        phase="Failed", revision=revision, rollout_started_at=START,
        rollback=Rollback(reason="FailureLimit", message="2 failed analysis runs",
                          started_at=START, completed_at=START),
        measurements=[Measurement(time=START, revision=revision, step=1, metric="ok",
                                  value="95", verdict="Fail", message="95 outside [99, ]")])


def sent(status: CanaryRolloutStatus, event: str) -> CanaryRolloutStatus:
    outcome = NotificationRecord(time=START, channel="oncall", fingerprint="x", event="y",
                                 severity="info", result="delivered")
    return messages.record(status, "shop", "checkout", event, [outcome])  # type: ignore[arg-type]


def test_a_rollback_is_told_once_per_revision_with_its_failing_measurements() -> None:
    status = rolled_back()
    due = messages.due(NOTIFIED, "checkout", "shop", status, START)
    assert [d.event for d in due] == ["Started", "RolledBack"]
    rollback = due[1].notification
    assert rollback.severity == "critical" and rollback.event == "failed"
    assert "rolled back" in rollback.title and "FailureLimit" in rollback.summary
    assert "ok = 95" in rollback.details["measurement 1"]
    assert due[1].channels == ["oncall", "team"]
    status = sent(sent(status, "Started"), "RolledBack")
    assert messages.due(NOTIFIED, "checkout", "shop", status, START + timedelta(1)) == []
    again = messages.due(NOTIFIED, "checkout", "shop",
                         status.model_copy(update={"revision": "r3"}), START)
    assert [d.event for d in again] == ["Started", "RolledBack"]


def test_only_the_events_asked_for_and_nothing_without_channels() -> None:
    promoted = CanaryRolloutStatus(phase="Succeeded", revision="r2", rollout_started_at=START)
    only = spec(notifications={"channels": ["oncall"], "events": ["RolledBack"]})
    assert messages.due(only, "checkout", "shop", promoted, START) == []
    assert [d.event for d in messages.due(NOTIFIED, "checkout", "shop", promoted, START)] == [
        "Started", "Promoted"]
    assert messages.due(spec(), "checkout", "shop", rolled_back(), START) == []


def test_initialization_is_not_news() -> None:
    status = CanaryRolloutStatus(phase="Initialized", revision="r1")
    assert messages.due(NOTIFIED, "checkout", "shop", status, START) == []
