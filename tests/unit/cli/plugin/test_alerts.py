"""`alerts`: rows of AlertRules, the worst first, with values as people read them."""

from __future__ import annotations

from datetime import UTC, datetime

from runbook_operator.cli.plugin.alerts import alert_rows


def test_alert_rows_put_firing_rules_first() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    quiet = {"metadata": {"name": "quiet", "namespace": "a"}, "spec": {"severity": "low"},
             "status": {"state": "Normal", "conditions": [{"type": "Ready", "status": "True"}]}}
    loud = {"metadata": {"name": "loud", "namespace": "b"}, "spec": {"severity": "critical"},
            "status": {"state": "Firing", "lastValue": "0.09",
                       "activeSince": "2026-01-01T11:55:00Z",
                       "instances": [{"state": "Firing"}, {"state": "Normal"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    fresh = {"metadata": {"name": "fresh", "namespace": "a"}}
    rows = alert_rows([quiet, fresh, loud], now)
    assert rows[0] == ("b", "loud", "Firing", "0.09", "5m", "critical", "1", "True")
    assert rows[1][1] == "quiet" and rows[1][4] == "-"
    assert rows[2] == ("a", "fresh", "Unknown", "-", "-", "medium", "0", "Unknown")


def test_alert_values_are_shown_with_a_few_significant_digits() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    rule = {"metadata": {"name": "latency", "namespace": "a"},
            "status": {"state": "Firing", "lastValue": "0.5900000000000001"}}
    assert alert_rows([rule], now)[0][3] == "0.59"
