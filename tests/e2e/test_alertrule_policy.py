"""One escalation model, end to end: an AlertRule that references an EscalationPolicy instead of
inline levels pages the policy's levels at the policy's delays (a real Prometheus, in-test
webhook receivers), and is Stalled, with the reason, while the policy does not exist."""

from __future__ import annotations

from datetime import datetime

from kubernetes import client

from runbook_operator.api.common import API_VERSION
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import alert_rule, errors_of
from tests.support.kube import (
    ALERT_RULES,
    ESCALATION_POLICIES,
    alert_notifications,
    condition,
    create_webhook_channel,
)
from tests.support.prometheus import exporter, prometheus  # noqa: F401
from tests.support.receivers import HTTPReceiver

SECOND_LEVEL_AFTER = 8


def time_of(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_rule_climbs_its_teams_escalation_policy(
    api: client.ApiClient, namespace: str, running_operator: LocalOperator,
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    series = {"service": f"cart-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.01)
    with HTTPReceiver() as receiver:
        for level in ("first", "second"):
            create_webhook_channel(api, namespace, receiver.url(f"/{level}"), name=level,
                                   secret=level)
        ALERT_RULES.create(api, namespace, alert_rule(
            "cart-5xx", prometheus.url, query=errors_of(series), channels=[],
            escalationPolicyRef={"name": "team-ladder"}))
        stalled = ALERT_RULES.wait_condition(api, namespace, "cart-5xx", "Stalled", timeout=60)
        assert condition(stalled, "Stalled")["reason"] == "EscalationPolicyNotFound"

        ESCALATION_POLICIES.create(api, namespace, {
            "apiVersion": API_VERSION, "kind": "EscalationPolicy",
            "metadata": {"name": "team-ladder"},
            "spec": {"levels": [{"after": "0s", "channels": ["first"]},
                                {"after": f"{SECOND_LEVEL_AFTER}s", "channels": ["second"]}]}})
        ALERT_RULES.wait_ready(api, namespace, "cart-5xx", timeout=60)

        exporter.set("http_errors_ratio", series, 0.09)
        wait_for(lambda: receiver.bodies(path="/first", status="firing"), "level 1 paged",
                 timeout=90)
        wait_for(lambda: receiver.bodies(path="/second", status="firing"), "level 2 paged",
                 timeout=90)
        (instance,) = ALERT_RULES.status(api, namespace, "cart-5xx")["instances"]
        sent = {r["channel"]: r for r in wait_for(
            lambda: [r for r in alert_notifications(api, namespace, "cart-5xx")
                     if r["event"] == "firing" and r["level"] == 2] and alert_notifications(
                api, namespace, "cart-5xx"), "level 2 recorded")}
        assert sent["second"]["level"] == 2 and sent["first"]["level"] == 2
        waited = time_of(sent["second"]["time"]) - time_of(instance["firingSince"])
        assert waited.total_seconds() >= SECOND_LEVEL_AFTER

        exporter.set("http_errors_ratio", series, 0.01)
        for level in ("first", "second"):
            wait_for(lambda p=f"/{level}": receiver.bodies(path=p, status="resolved"),
                     f"{level} told it resolved", timeout=90)
    exporter.remove("http_errors_ratio", series)
