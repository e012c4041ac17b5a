"""api.common: the one NotificationRecord every kind records, and the status header."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from runbook_operator.api.alertrule import AlertRuleStatus
from runbook_operator.api.backuppolicy import BackupPolicyStatus
from runbook_operator.api.common import NotificationRecord, ResourceStatus
from runbook_operator.api.notificationchannel import NotificationChannelStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = {"time": "2026-01-01T00:00:00Z", "channel": "oncall", "fingerprint": "fp1",
          "event": "firing", "severity": "high", "result": "delivered"}


def test_every_kinds_status_extends_the_header() -> None:
    for status in (AlertRuleStatus, NotificationChannelStatus, BackupPolicyStatus):
        assert issubclass(status, ResourceStatus)
        assert list(status.model_fields)[:2] == ["observed_generation", "conditions"]


def test_a_record_carries_a_backup_notification_log_entry() -> None:
    """BackupPolicy's log keeps time, event, channel, result and message."""
    record = NotificationRecord(time=T0, event="failed", channel="oncall", result="failed",
                                message="500 try again", fingerprint="prod/db/backup-failed",
                                severity="high")
    assert record.to_wire() == {
        "time": "2026-01-01T00:00:00Z", "channel": "oncall",
        "fingerprint": "prod/db/backup-failed", "event": "failed", "severity": "high",
        "level": 0, "result": "failed", "message": "500 try again"}


def test_records_an_older_operator_wrote_are_dropped_not_fatal() -> None:
    older = {"fingerprint": "fp0", "channel": "oncall", "state": "firing", "severity": "high",
             "sentAt": "2026-01-01T00:00:00Z", "result": "delivered"}
    status = AlertRuleStatus.model_validate({"notifications": [older, RECORD]})
    assert [r.fingerprint for r in status.notifications] == ["fp1"]
    channel = NotificationChannelStatus.model_validate(
        {"lastDelivery": {"time": "2026-01-01T00:00:00Z", "result": "delivered"},
         "deliveredTotal": 3})
    assert channel.last_delivery is None and channel.delivered_total == 3
    assert NotificationChannelStatus.model_validate(
        {"lastDelivery": RECORD}).last_delivery == NotificationRecord.model_validate(RECORD)


@pytest.mark.parametrize("status, value", [
    (AlertRuleStatus, {"notifications": "not a list"}),
    (NotificationChannelStatus, {"lastDelivery": 5}),
])
def test_what_is_not_a_record_at_all_is_still_an_error(status, value) -> None:
    with pytest.raises(ValidationError):
        status.model_validate(value)
