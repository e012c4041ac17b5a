"""core.alertrule.messages: what an AlertRule says about an alert, per alert and as a group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_operator.api.alertrule import AlertInstance, AlertRuleSpec
from runbook_operator.core.alert_group import fingerprint
from runbook_operator.core.alertrule.messages import (
    alert_group,
    alert_labels,
    grouped_alert,
    notification_for,
)
from runbook_operator.core.alertrule.rule import Links, compile_rule
from runbook_operator.core.notify_plan import Due

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
KEY = ("shop", "web-5xx")
FIRING = AlertInstance(fingerprint="fp1", labels={"pod": "web-1", "team": "series"},
                       state="Firing", active_since=T0, pending_since=T0, firing_since=T0,
                       started_at=T0, last_value="0.25", active_value="0.25")
#: Resolved at LATER: the value it recovered with is not what it fired with.
RESOLVED = AlertInstance(fingerprint="fp1", labels={"pod": "web-1"}, state="Normal",
                         started_at=T0, resolved_at=LATER, last_value="0.01",
                         active_value="0.25")


def due(event: str = "firing", reason: Any = "new", severity: str = "high") -> Due:
    return Due("fp1", "slack", event, severity, 0, reason)


def rule(links: Links = Links(), **spec: Any):
    return compile_rule(AlertRuleSpec.model_validate({
        "query": "errors", "condition": {"operator": "gt", "threshold": 0.05},
        "severity": "high", **spec}), links)


def test_annotations_are_rendered_for_the_instance() -> None:
    compiled = rule(labels={"team": "rule", "tier": "1"}, annotations={
        "summary": "{{ $labels.pod }} errors at {{ $value }}",
        "description": "above 5% for {{ $labels.pod }}", "runbook": "see {{ $labels }}"})
    message = notification_for(KEY, compiled, FIRING, due(), T0 + timedelta(minutes=1))
    assert message.title == "web-1 errors at 0.25"
    assert message.summary == "above 5% for web-1"
    assert message.details == {"runbook": "see pod=web-1, team=series"}
    assert (message.source.kind, message.source.namespace, message.source.name) == (
        "AlertRule", "shop", "web-5xx")
    assert (message.event, message.severity, message.dedup_key) == ("firing", "high", "fp1")
    assert message.started_at == T0 and message.timestamp == T0 + timedelta(minutes=1)


def test_rule_labels_win_and_the_series_values_they_replace_are_kept_as_exported() -> None:
    compiled = rule(labels={"team": "rule", "tier": "1"})
    series = FIRING.model_copy(update={"labels": {
        "pod": "web-1", "team": "series", "severity": "low", "alertname": "Up",
        "namespace": "monitoring", "tier": "1"}})
    assert alert_labels(KEY, compiled, series, "critical") == {
        "pod": "web-1", "tier": "1",  # the same value: nothing to keep
        "alertname": "web-5xx", "namespace": "shop", "kind": "AlertRule",
        "severity": "critical", "team": "rule",
        "exported_team": "series", "exported_severity": "low", "exported_alertname": "Up",
        "exported_namespace": "monitoring"}
    message = notification_for(KEY, compiled, series, due(), T0)
    assert message.labels["exported_team"] == "series" and message.labels["team"] == "rule"


def test_without_annotations_the_rule_and_its_condition_speak() -> None:
    message = notification_for(KEY, rule(), FIRING, due(), T0)
    assert message.title == "web-5xx is firing"
    assert message.summary == "value 0.25 gt 0.05"


def test_a_resolved_alert_repeats_the_last_firing_text_and_keeps_its_start() -> None:
    compiled = rule(annotations={"summary": "{{ $labels.pod }} errors at {{ $value }}"})
    message = notification_for(KEY, compiled, RESOLVED, due("resolved", "resolved"), LATER)
    assert message.title == "web-1 errors at 0.25"  # not 0.01, the value it recovered with
    assert message.started_at == T0 and message.timestamp == LATER
    assert notification_for(KEY, rule(), RESOLVED, due("resolved", "resolved"),
                            LATER).summary == "value 0.25 gt 0.05"
    alert = grouped_alert(KEY, compiled, RESOLVED, due("resolved", "resolved"),
                          LATER + timedelta(minutes=1))
    assert alert.status == "resolved" and alert.annotations == {"summary": "web-1 errors at 0.25"}
    assert (alert.starts_at, alert.ends_at) == (T0, LATER)  # endsAt: when it resolved


def test_an_escalation_and_an_error_say_so() -> None:
    escalated = notification_for(KEY, rule(), FIRING, due(reason="escalated",
                                                          severity="critical"), T0)
    assert (escalated.event, escalated.severity) == ("escalated", "critical")
    error = AlertInstance(fingerprint="fp1", state="Error", last_error="timeout")
    failed = notification_for(KEY, rule(), error, due("error"), T0)
    assert (failed.event, failed.title, failed.summary) == ("failed", "web-5xx is error",
                                                            "timeout")
    assert failed.started_at == T0  # no active time: the message's own
    alert = grouped_alert(KEY, rule(annotations={"runbook": "r"}), error, due("error"), T0)
    assert alert.status == "firing"
    assert alert.annotations == {"runbook": "r", "summary": "web-5xx is error",
                                 "description": "timeout"}


def test_a_grouped_alert_is_what_prometheus_would_send_for_the_series() -> None:
    compiled = rule(Links(prometheus_external_url="https://prom.example"),
                    annotations={"summary": "{{ $labels.pod }} at {{ $value }}"})
    alert = grouped_alert(KEY, compiled, FIRING, due(), LATER)
    labels = {"pod": "web-1", "team": "series", "alertname": "web-5xx", "namespace": "shop",
              "kind": "AlertRule", "severity": "high"}
    assert (alert.subject, alert.status, dict(alert.labels)) == ("fp1", "firing", labels)
    assert alert.annotations == {"summary": "web-1 at 0.25"}  # no invented texts
    assert (alert.starts_at, alert.ends_at) == (T0, None)
    assert alert.generator_url == "https://prom.example/graph?g0.expr=errors&g0.tab=1"
    assert alert.fingerprint == fingerprint(labels)
    # An escalation raises the severity label, and the alert stays the same alert.
    raised = grouped_alert(KEY, compiled, FIRING, due(severity="critical"), LATER)
    assert raised.labels["severity"] == "critical" and raised.fingerprint == alert.fingerprint
    message = notification_for(KEY, compiled, FIRING, due(), LATER)
    assert [(link.text, link.href) for link in message.links] == [
        ("Prometheus", alert.generator_url)]


def test_a_group_holds_the_rules_alerts_in_alertmanagers_order() -> None:
    other = FIRING.model_copy(update={"fingerprint": "fp0", "labels": {"pod": "web-0"}})
    compiled = rule(Links(external_url="https://runbook.example/"))
    group = alert_group(KEY, compiled, [(FIRING, due()), (other, due(severity="critical")),
                                        (RESOLVED, due("resolved", "resolved"))], LATER)
    assert group.group_labels == {"alertname": "web-5xx", "namespace": "shop"}
    assert group.key == '{}:{alertname="web-5xx", namespace="shop"}'
    assert [a.labels["pod"] for a in group.alerts] == ["web-0", "web-1", "web-1"]
    assert [a.status for a in group.alerts] == ["firing", "resolved", "firing"]
    assert (group.event, group.severity) == ("firing", "critical")
    assert group.external_url == "https://runbook.example"


def test_long_texts_are_cut_to_what_receivers_take() -> None:
    compiled = rule(annotations={"summary": "s" * 4000, "description": "d" * 4000})
    message = notification_for(KEY, compiled, FIRING, due("resolved", "resolved"), T0)
    assert (len(message.title), len(message.summary), message.event) == (1024, 1024, "resolved")
