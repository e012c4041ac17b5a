"""cli.plugin.incident, its pure part: the patches each action sends (spec only, signed), the
incident `open` creates, and the list and show texts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runbook_operator.api.incident import Incident
from runbook_operator.cli.plugin.incident import (
    ack_patch,
    append_note,
    format_show,
    generated_name,
    list_rows,
    new_incident,
    note,
    spec_set,
)
from runbook_operator.cli.plugin.main import parse_args

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ALICE = "system:serviceaccount:shop:alice"


def incident(name: str, severity: str, created: str, **fields: Any) -> dict[str, Any]:
    status = fields.pop("status_", {})
    return {"metadata": {"name": name, "namespace": "shop", "creationTimestamp": created,
                         "resourceVersion": "41"},
            "spec": {"title": f"{name} broke", "severity": severity, **fields},
            "status": status}


def test_acknowledging_sets_only_the_signed_acknowledgement() -> None:
    assert ack_patch(ALICE, NOW) == {
        "spec": {"acknowledgement": {"by": ALICE, "at": "2026-12-01T10:00:00Z"}}}


def test_a_note_is_appended_and_the_first_one_is_guarded_by_the_version_read() -> None:
    added = note(ALICE, "rolled back", NOW)
    assert append_note(incident("a", "P1", "x", notes=[]), added,
                       [spec_set("status", "Resolved")]) == [
        {"op": "add", "path": "/spec/status", "value": "Resolved"},
        {"op": "add", "path": "/spec/notes/-", "value": added}]
    assert append_note(incident("a", "P1", "x"), added) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "add", "path": "/spec/notes", "value": [added]}]


def test_open_builds_a_valid_incident_signed_by_who_opened_it() -> None:
    args = parse_args(["incident", "open", "Checkout: 5xx > 5%!", "--severity", "P1",
                       "--service", "checkout", "--service", "checkout", "--policy", "sre",
                       "--commander", "bob", "--description", "since the deploy"])
    body = new_incident(args, ALICE, NOW)
    assert body["metadata"] == {"generateName": "checkout-5xx-5-"}
    spec = Incident.model_validate({**body, "metadata": {"name": "x"}}).spec
    assert (spec.title, spec.severity, spec.commander) == ("Checkout: 5xx > 5%!", "P1", "bob")
    assert spec.escalation_policy_ref is not None and spec.escalation_policy_ref.name == "sre"
    assert spec.impact is not None and spec.impact.services == ["checkout"]
    assert [(n.by, n.text) for n in spec.notes] == [(ALICE, "Opened.")]
    named = parse_args(["incident", "open", "x", "--severity", "P3", "--name", "db-down"])
    assert new_incident(named, ALICE, NOW)["metadata"] == {"name": "db-down"}
    assert generated_name("!!!") == "incident-"


def test_the_list_puts_open_and_severe_incidents_first_then_the_newest() -> None:
    rows = list_rows([
        incident("old-p2", "P2", "2026-12-01T08:00:00Z"),
        incident("new-p2", "P2", "2026-12-01T09:00:00Z",
                 acknowledgement={"by": ALICE, "at": "2026-12-01T09:01:00Z"}),
        incident("done-p0", "P0", "2026-12-01T09:30:00Z", status_={"phase": "Resolved"}),
        incident("p1", "P1", "2026-12-01T07:00:00Z", status_={"escalation": {"level": 2}}),
    ], NOW)
    assert rows == [
        ("shop", "p1", "P1", "Open", "2", "-", "3h", "p1 broke"),
        ("shop", "new-p2", "P2", "Open", "-", ALICE, "1h", "new-p2 broke"),
        ("shop", "old-p2", "P2", "Open", "-", "-", "2h", "old-p2 broke"),
        ("shop", "done-p0", "P0", "Resolved", "-", "-", "30m", "done-p0 broke"),
    ]


def test_show_tells_the_whole_story() -> None:
    shown = format_show(incident(
        "checkout-5xx-1a2b", "P1", "2026-12-01T09:00:00Z",
        source={"kind": "AlertRule", "name": "checkout-5xx", "fingerprint": "ab" * 32},
        escalationPolicyRef={"name": "sre"}, status="Investigating",
        acknowledgement={"by": ALICE, "at": "2026-12-01T09:05:00Z"},
        notes=[{"at": "2026-12-01T09:06:00Z", "by": ALICE, "text": "rolling\nback"}],
        status_={
            "phase": "Resolved", "resolvedAt": "2026-12-01T09:40:00Z", "mttaSeconds": 300,
            "mttrSeconds": 2400, "truncatedAlerts": 2, "timelineTotal": 60,
            "timelineRef": "checkout-5xx-1a2b-timeline",
            "escalation": {"level": 2, "onCall": "bob"},
            "alerts": [{"fingerprint": "f", "status": "resolved",
                        "startsAt": "2026-12-01T09:00:00Z",
                        "labels": {"alertname": "checkout-5xx", "service": "checkout"}}],
            "timeline": [{"time": "2026-12-01T09:40:00Z", "event": "SourceRecovered",
                          "message": "AlertRule checkout-5xx recovered"}],
            "notifications": [{"time": "2026-12-01T09:00:01Z", "channel": "pager",
                               "fingerprint": "f", "event": "opened", "severity": "P1",
                               "level": 1, "result": "delivered"}]}), NOW, None)
    for line in [
        "Status:        Resolved (spec.status Investigating)",
        "Escalation:    sre (level 2, on call bob)",
        f"Source:        AlertRule checkout-5xx (fingerprint {'ab' * 6})",
        f"Acknowledged:  {ALICE} at 2026-12-01T09:05:00Z",
        "Resolved:      2026-12-01T09:40:00Z (20m ago)",
        "MTTA/MTTR:     MTTA 5m, MTTR 40m",
        "Alerts (0 firing, 1 resolved, 2 more not listed):",
        "Timeline (newest 1 of 60; all in ConfigMap checkout-5xx-1a2b-timeline):",
    ]:
        assert line in shown.splitlines(), (line, shown)
    assert 'resolved   2026-12-01T09:00:00Z   checkout-5xx{service="checkout"}' in shown
    assert f"2026-12-01T09:06:00Z   {ALICE}   rolling back" in shown
    assert "SourceRecovered   operator   AlertRule checkout-5xx recovered" in shown
    assert "pager     opened   1       P1         delivered" in shown


def test_show_of_a_fresh_hand_opened_incident() -> None:
    shown = format_show(incident("db", "P3", "2026-12-01T09:00:00Z"), NOW, None)
    assert "Source:        opened by hand" in shown
    assert "Escalation:    no policy" in shown
    assert "Acknowledged:  not acknowledged" in shown
    assert "Timeline: empty" in shown and "Notifications: none sent" in shown
