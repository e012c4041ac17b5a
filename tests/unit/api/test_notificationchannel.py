"""api.notificationchannel: both severity vocabularies and their one mapping."""

from __future__ import annotations

from typing import get_args

import pytest
from runbook_operator.api.alertrule import AlertRuleSpec
from runbook_operator.api.notificationchannel import (
    SEVERITIES,
    PagerDutySeverityMapping,
    Severity,
)
from runbook_operator.core.escalation import SEVERITY_ORDER


def test_every_severity_is_mapped_once_most_severe_first() -> None:
    assert list(SEVERITIES) == list(get_args(Severity))
    assert SEVERITY_ORDER == tuple(reversed(SEVERITIES))  # escalation raises along this order


def test_pagerduty_defaults_are_the_mapping() -> None:
    defaults = PagerDutySeverityMapping().model_dump()
    assert defaults == {name: style.pagerduty for name, style in SEVERITIES.items()}


def test_warning_sits_with_medium() -> None:
    assert SEVERITIES["warning"] == SEVERITIES["medium"]
    assert SEVERITY_ORDER.index("low") < SEVERITY_ORDER.index("warning") < SEVERITY_ORDER.index(
        "medium")


@pytest.mark.parametrize("severity", ["critical", "warning", "info", "high", "medium", "low"])
def test_alert_rules_accept_both_vocabularies(severity: str) -> None:
    rule = AlertRuleSpec.model_validate({
        "query": "up == 0", "condition": {"operator": "eq", "threshold": 1},
        "severity": severity, "escalateAfter": [{"after": "5m", "severity": severity}]})
    assert rule.severity == rule.escalate_after[0].severity == severity
