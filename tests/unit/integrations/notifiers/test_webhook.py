"""Generic webhook bodies: Alertmanager webhook v4 compatible."""

from __future__ import annotations

from runbook_operator.integrations.notifiers.webhook import ZERO_TIME, render_webhook

from tests.support.builders import notification

LABELS = {
    "alertname": "db-nightly",
    "namespace": "prod",
    "kind": "BackupPolicy",
    "severity": "high",
}
ANNOTATIONS = {
    "job": "db-nightly-backup-29012345",
    "reason": "BackoffLimitExceeded",
    "summary": "Backup db-nightly failed",
    "description": "pg_dump: connection refused",
}


def test_firing_shape() -> None:
    body = render_webhook(notification(), receiver="ops-webhook")
    assert body == {
        "version": "4",
        "groupKey": '{}:{alertname="db-nightly"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ops-webhook",
        "groupLabels": {"alertname": "db-nightly"},
        "commonLabels": LABELS,
        "commonAnnotations": ANNOTATIONS,
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": LABELS,
                "annotations": ANNOTATIONS,
                "startsAt": "2026-03-01T11:55:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://grafana.example.com/d/backups",
                "fingerprint": body["alerts"][0]["fingerprint"],
            }
        ],
    }
    assert ZERO_TIME == "0001-01-01T00:00:00Z"


def test_resolved_ends_at_the_event_time() -> None:
    body = render_webhook(notification(event="resolved"), receiver="ops")
    alert = body["alerts"][0]
    assert body["status"] == alert["status"] == "resolved"
    assert (alert["startsAt"], alert["endsAt"]) == ("2026-03-01T11:55:00Z", "2026-03-01T12:00:05Z")


def test_acknowledged_is_still_firing() -> None:
    assert render_webhook(notification(event="acknowledged"), receiver="ops")["status"] == "firing"


def test_fingerprint_is_alertmanager_shaped_and_follows_the_dedup_key() -> None:
    def fingerprint_of(**changes: str) -> str:
        return render_webhook(notification(**changes), receiver="ops")["alerts"][0]["fingerprint"]

    first, again = fingerprint_of(), fingerprint_of(event="resolved")
    other = fingerprint_of(dedup_key="other")
    assert first == again != other
    assert len(first) == 16 and int(first, 16) >= 0


def test_identity_labels_are_kept_but_cannot_disguise_the_source() -> None:
    body = render_webhook(
        notification(labels={"service": "api", "namespace": "other"}, links=[], started_at=None),
        receiver="ops",
    )
    alert = body["alerts"][0]
    assert alert["labels"]["service"] == "api" and alert["labels"]["namespace"] == "prod"
    assert alert["generatorURL"] == "" and alert["startsAt"] == "2026-03-01T12:00:05Z"

