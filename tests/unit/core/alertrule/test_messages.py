"""core.alertrule.messages: the notification an AlertRule sends for one due item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_operator.api.alertrule import AlertInstance, AlertRuleSpec
from runbook_operator.core.alertrule.messages import notification_for
from runbook_operator.core.alertrule.rule import compile_rule
from runbook_operator.core.notify_plan import Due

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = ("shop", "web-5xx")
FIRING = AlertInstance(fingerprint="fp1", labels={"pod": "web-1", "team": "series"},
                       state="Firing", active_since=T0, pending_since=T0, firing_since=T0,
                       last_value="0.25")


def due(event: str = "firing", reason: Any = "new", severity: str = "high") -> Due:
    return Due("fp1", "slack", event, severity, 0, reason)


def rule(**spec: Any):
    return compile_rule(AlertRuleSpec.model_validate({
        "query": "errors", "condition": {"operator": "gt", "threshold": 0.05}, **spec}))


def test_annotations_are_rendered_for_the_instance() -> None:
    compiled = rule(labels={"team": "rule", "tier": "1"}, annotations={
        "summary": "{{ $labels.pod }} errors at {{ $value }}",
        "description": "above 5% for {{ $labels.pod }}", "runbook": "see {{ $labels }}"})
    message = notification_for(KEY, compiled, FIRING, due(), T0 + timedelta(minutes=1))
    assert message.title == "web-1 errors at 0.25"
    assert message.summary == "above 5% for web-1"
    assert message.details == {"runbook": "see pod=web-1, team=series"}
    assert message.labels == {"team": "series", "tier": "1", "pod": "web-1"}
    assert (message.source.kind, message.source.namespace, message.source.name) == (
        "AlertRule", "shop", "web-5xx")
    assert (message.event, message.severity, message.dedup_key) == ("firing", "high", "fp1")
    assert message.started_at == T0 and message.timestamp == T0 + timedelta(minutes=1)


def test_without_annotations_the_rule_and_its_condition_speak() -> None:
    message = notification_for(KEY, rule(), FIRING, due(), T0)
    assert message.title == "web-5xx is firing"
    assert message.summary == "value 0.25 gt 0.05"


def test_an_escalation_and_an_error_say_so() -> None:
    escalated = notification_for(KEY, rule(), FIRING, due(reason="escalated",
                                                          severity="critical"), T0)
    assert (escalated.event, escalated.severity) == ("escalated", "critical")
    error = AlertInstance(fingerprint="fp1", state="Error", last_error="timeout")
    failed = notification_for(KEY, rule(), error, due("error"), T0)
    assert (failed.event, failed.title, failed.summary) == ("failed", "web-5xx is error",
                                                            "timeout")
    assert failed.started_at == T0  # no active time: the message's own


def test_long_texts_are_cut_to_what_receivers_take() -> None:
    compiled = rule(annotations={"summary": "s" * 4000, "description": "d" * 4000})
    message = notification_for(KEY, compiled, FIRING, due("resolved", "resolved"), T0)
    assert (len(message.title), len(message.summary), message.event) == (1024, 1024, "resolved")
