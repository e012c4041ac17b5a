"""Who hears about runs and RPO breaches, once, and the capped log of what was sent."""

from datetime import UTC, datetime, timedelta

import pytest

from runbook_operator.api.backuppolicy import (
    NOTIFICATION_LOG_LIMIT,
    BackupPolicySpec,
    BackupPolicyStatus,
    JobRecord,
)
from runbook_operator.api.common import NotificationRecord
from runbook_operator.core.backuppolicy.job_outcome import RunVerdict, record_run
from runbook_operator.core.backuppolicy.notifications import (
    log_notifications,
    plan_rpo_notification,
    plan_run_notification,
    rpo_notification,
    run_notification,
)
from runbook_operator.core.backuppolicy.rpo import evaluate
from runbook_operator.core.delivery import Notification

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RPO = timedelta(hours=1)


def spec(**notifications) -> BackupPolicySpec:
    return BackupPolicySpec.model_validate({
        "schedule": "@daily", "rpo": "1h",
        "source": {"command": {"image": "busybox", "command": ["true"]}},
        "notifications": {"channels": ["oncall", "chat"], **notifications},
    })


def verdict(outcome: str = "Failed", name: str = "nightly-1") -> RunVerdict:
    return RunVerdict("backup", JobRecord(name=name, outcome=outcome, finished_at=NOW,
                                          reason="DumpFailed" if outcome == "Failed" else ""))


def test_a_failed_run_is_told_once() -> None:
    first = plan_run_notification(spec(), "db", "prod", verdict(), BackupPolicyStatus())
    assert first is not None and first.channels == ["oncall", "chat"]
    assert first.notification.event == "failed" and first.notification.severity == "high"
    recorded = record_run(BackupPolicyStatus(), verdict())
    assert plan_run_notification(spec(), "db", "prod", verdict(), recorded) is None


@pytest.mark.parametrize("outcome, flags, told", [
    ("Failed", {}, True),
    ("Failed", {"onFailure": False}, False),
    ("Succeeded", {}, False),
    ("Succeeded", {"onSuccess": True}, True),
])
def test_what_is_told_follows_the_spec(outcome: str, flags: dict, told: bool) -> None:
    planned = plan_run_notification(spec(**flags), "db", "prod", verdict(outcome),
                                    BackupPolicyStatus())
    assert (planned is not None) == told


def test_nobody_is_told_without_channels_or_a_valid_spec() -> None:
    assert plan_run_notification(spec(channels=[]), "db", "prod", verdict(),
                                 BackupPolicyStatus()) is None
    assert plan_run_notification(None, "db", "prod", verdict(), BackupPolicyStatus()) is None


def test_each_failed_job_has_its_own_dedup_key() -> None:
    one = run_notification("db", "prod", verdict(name="a"))
    other = run_notification("db", "prod", verdict(name="b"))
    assert one.dedup_key != other.dedup_key
    assert "DumpFailed" in one.summary and one.details["job"] == "a"


def breach(notified_at: datetime | None = None):
    return evaluate(RPO, NOW - timedelta(hours=2), NOW - timedelta(days=1), notified_at, NOW)


def met():
    return evaluate(RPO, NOW - timedelta(minutes=5), NOW - timedelta(days=1), None, NOW)


@pytest.mark.parametrize("rpo, was_met, event", [
    (breach(), True, "breached"),
    (breach(), None, "breached"),
    (breach(notified_at=NOW - timedelta(minutes=30)), False, None),  # told already
    (met(), False, "resolved"),
    (met(), True, None),
    (met(), None, None),
    (None, False, None),
])
def test_rpo_breach_once_and_the_all_clear(rpo, was_met, event) -> None:
    planned = plan_rpo_notification(spec(), "db", "prod", rpo, was_met, NOW)
    assert (planned.notification.event if planned else None) == event


def test_rpo_notifications_can_be_turned_off() -> None:
    assert plan_rpo_notification(spec(onRpoBreach=False), "db", "prod", breach(), True,
                                 NOW) is None


def test_breach_and_all_clear_share_one_dedup_key() -> None:
    problem = rpo_notification("db", "prod", breach(), NOW)
    clear = rpo_notification("db", "prod", met(), NOW)
    assert problem.dedup_key == clear.dedup_key
    assert (problem.severity, clear.severity) == ("critical", "info")


def delivered(notification: Notification, channel: str, minutes: int) -> NotificationRecord:
    return NotificationRecord(time=NOW + timedelta(minutes=minutes), channel=channel,
                              fingerprint=notification.dedup_key, event=notification.event,
                              severity=notification.severity, result="delivered", attempt=1,
                              message="ok")


def test_the_log_keeps_the_newest_deliveries_first_and_capped() -> None:
    failure = run_notification("db", "prod", verdict())
    status = BackupPolicyStatus()
    breached = rpo_notification("db", "prod", breach(), NOW)
    for batch in range(NOTIFICATION_LOG_LIMIT):
        status = log_notifications(status, [(failure, [delivered(failure, "oncall", batch)])])
    status = log_notifications(status, [
        (failure, [delivered(failure, "oncall", 100), delivered(failure, "chat", 101)]),
        (breached, [delivered(breached, "oncall", 102)]),
    ])
    log = status.notifications
    assert len(log) == NOTIFICATION_LOG_LIMIT
    assert [(e.event, e.channel) for e in log[:3]] == [
        ("breached", "oncall"), ("failed", "chat"), ("failed", "oncall")]
    assert log == sorted(log, key=lambda e: e.time, reverse=True)
    assert log_notifications(status, []) == status
