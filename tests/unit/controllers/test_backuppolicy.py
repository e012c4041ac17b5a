"""The pure parts of the BackupPolicy controller: when to reconcile and what status to write."""

from datetime import UTC, datetime, timedelta

from runbook_operator.controllers.backuppolicy import _status_change, needs_reconcile
from runbook_operator.core.conditions import Outcome, Phase
from runbook_operator.core.rpo import evaluate

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def body(generation: int, status: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "generation": generation}, "status": status or {}}


def ready_status(generation: int) -> dict:
    return {
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled"}],
    }


def test_needs_reconcile() -> None:
    assert needs_reconcile(body(1))
    assert needs_reconcile(body(2, ready_status(1)))
    assert not needs_reconcile(body(2, ready_status(2)))
    stalled = {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "False"}]}
    assert needs_reconcile(body(2, stalled))


CRONJOB = {"metadata": {"name": "p-backup"}, "status": {"lastScheduleTime": "2026-03-01T02:00:00Z"}}


def test_status_change_writes_conditions_generation_and_schedule() -> None:
    change = _status_change(Outcome(Phase.READY, "Scheduled", "ok"), 3, CRONJOB, NOW)
    patch = change({"status": {}})
    assert patch["observedGeneration"] == 3 and patch["cronJobName"] == "p-backup"
    assert patch["lastScheduleTime"] == "2026-03-01T02:00:00Z"
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Scheduled", 3)


def test_status_change_is_none_when_nothing_changes() -> None:
    change = _status_change(Outcome(Phase.READY, "Scheduled", "ok"), 3, CRONJOB, NOW)
    written = change({"status": {}})
    assert change({"status": written}) is None


def test_status_change_keeps_job_history_and_newer_schedule() -> None:
    current = {"status": {"lastSuccessfulTime": "2026-03-01T02:00:09Z",
                          "lastScheduleTime": "2026-03-01T03:00:00Z"}}
    change = _status_change(Outcome(Phase.STALLED, "SecretNotFound", "no"), 4, CRONJOB, NOW)
    patch = change(current)
    assert "lastSuccessfulTime" not in patch and "lastScheduleTime" not in patch
    assert patch["observedGeneration"] == 4


def test_status_patch_nulls_removed_fields() -> None:
    current = {"status": {"rpoDeadline": "2026-03-01T02:00:00Z", "observedGeneration": 4}}
    change = _status_change(Outcome(Phase.READY, "Scheduled", "ok"), 4, None, NOW, rpo=None)
    patch = change(current)
    assert patch["rpoDeadline"] is None and "observedGeneration" not in patch


def test_rpo_condition_and_breach_mark() -> None:
    breach = evaluate(timedelta(minutes=5), None, NOW - timedelta(hours=1), None, NOW)
    change = _status_change(
        Outcome(Phase.READY, "Scheduled", "ok"), 1, None, NOW, rpo=breach, breach_notified=True
    )
    patch = change({"status": {}})
    rpo = next(c for c in patch["conditions"] if c["type"] == "RPOMet")
    assert (rpo["status"], rpo["reason"]) == ("False", "ObjectiveBreached")
    assert patch["rpoBreachNotifiedAt"] == "2026-03-01T12:00:00Z"
    assert patch["rpoDeadline"] == "2026-03-01T11:05:00Z"
