"""Generic webhook bodies: Alertmanager webhook v4, a group rendered as Alertmanager renders
it, and a single notification as a group of one."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from runbook_operator.core.alert_group import AlertGroup, GroupedAlert, fingerprint
from runbook_operator.integrations.notifiers.webhook import (
    MAX_BODY_BYTES,
    ZERO_TIME,
    render_group,
    render_webhook,
)

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
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


def test_firing_shape() -> None:
    body = render_webhook(notification(), receiver="ops-webhook")
    assert body == {
        "version": "4",
        "groupKey": '{}:{alertname="db-nightly", namespace="prod"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ops-webhook",
        "groupLabels": {"alertname": "db-nightly", "namespace": "prod"},
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
    assert alert["labels"]["exported_namespace"] == "other"  # replaced, not lost
    assert alert["generatorURL"] == "" and alert["startsAt"] == "2026-03-01T12:00:05Z"


def alert(pod: str, status: str = "firing", **annotations: str) -> GroupedAlert:
    labels = {"alertname": "web-5xx", "namespace": "shop", "severity": "high", "pod": pod,
              "job": "api"}
    return GroupedAlert(subject=f"fp-{pod}", status=status,  # type: ignore[arg-type]
                        labels=labels, annotations=annotations or {"summary": "errors"},
                        starts_at=T0, ends_at=T1 if status == "resolved" else None,
                        generator_url="https://prom/graph?g0.expr=x&g0.tab=1",
                        fingerprint=fingerprint(labels))


def group(*alerts: GroupedAlert) -> AlertGroup:
    return AlertGroup({"alertname": "web-5xx", "namespace": "shop"}, alerts, "high",
                      "https://runbook.example")


def test_a_group_is_rendered_as_alertmanager_renders_it() -> None:
    body = render_group(group(alert("web-2", summary="web-2 errors", team="a"),
                              alert("web-1", "resolved", summary="web-1 errors", team="a")),
                        receiver="team.oncall")
    assert body["status"] == "firing"  # one alert still fires
    assert [(a["labels"]["pod"], a["status"]) for a in body["alerts"]] == [
        ("web-1", "resolved"), ("web-2", "firing")]  # Alertmanager's order
    assert body["commonLabels"] == {"alertname": "web-5xx", "namespace": "shop",
                                    "severity": "high", "job": "api"}
    assert body["commonAnnotations"] == {"team": "a"}
    assert body["receiver"] == "team\\.oncall"  # as regexp.QuoteMeta leaves it
    assert body["externalURL"] == "https://runbook.example"
    assert body["groupKey"] == '{}:{alertname="web-5xx", namespace="shop"}'
    resolved, firing = body["alerts"]
    assert (resolved["startsAt"], resolved["endsAt"]) == ("2026-03-01T12:00:00Z",
                                                         "2026-03-01T12:05:00Z")
    assert firing["endsAt"] == ZERO_TIME
    assert firing["fingerprint"] == fingerprint({**firing["labels"]})
    everything_resolved = render_group(group(alert("web-1", "resolved")), receiver="r")
    assert everything_resolved["status"] == "resolved"


def test_times_are_marshalled_as_go_marshals_them() -> None:
    precise = GroupedAlert(subject="s", status="resolved", labels={}, annotations={},
                           starts_at=datetime(2026, 3, 1, 12, 0, 1, 250000, tzinfo=UTC),
                           ends_at=datetime(2026, 3, 1, 12, 0, 2, 123456, tzinfo=UTC),
                           generator_url="", fingerprint="f")
    (rendered,) = render_group(group(precise), receiver="r")["alerts"]
    assert (rendered["startsAt"], rendered["endsAt"]) == ("2026-03-01T12:00:01.25Z",
                                                          "2026-03-01T12:00:02.123456Z")


def test_a_group_too_large_for_one_request_keeps_what_fits_and_counts_the_rest() -> None:
    big = [alert(f"web-{n:02d}", summary="x" * 100_000) for n in range(15)]
    body = render_group(group(*big), receiver="r")
    kept = len(body["alerts"])
    assert 0 < kept < 15 and body["truncatedAlerts"] == 15 - kept
    assert [a["labels"]["pod"] for a in body["alerts"]] == [f"web-{n:02d}" for n in range(kept)]
    size = len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    assert MAX_BODY_BYTES - 110_000 < size <= MAX_BODY_BYTES  # one more would not fit
    alone = render_group(group(alert("web-1", summary="x" * 2 * MAX_BODY_BYTES)), receiver="r")
    assert len(alone["alerts"]) == 1 and alone["truncatedAlerts"] == 0
